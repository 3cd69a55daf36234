import * as assert from "node:assert/strict";
import { test } from "node:test";
import type { ServiceConfig, TimeoutsConfig } from "../config/types.ts";
import { silentLogger } from "../log.ts";
import { httpHealth, keyOf, Service } from "./services.ts";

const timeouts: TimeoutsConfig = {
  connect: 5000,
  responseHeader: 60000,
  idle: 60000,
  clientHeader: 30000,
  shutdown: 30000,
  tunnel: 3_600_000,
};

function svc(over: Partial<ServiceConfig> = {}): ServiceConfig {
  return {
    name: "api",
    hosts: [],
    mode: "round_robin",
    sticky: false,
    stickyMaxAge: 86_400_000,
    stickySecret: undefined,
    options: { header: "X-Real-IP", from: [], recursive: false },
    healthcheck: { path: "/", useGet: false, interval: 5000, timeout: 5000, retries: 0, enabled: true },
    slowStart: 0,
    panicThreshold: 0,
    passiveCooldown: 10_000,
    accessLog: true,
    servers: [
      { name: "a", url: "http://127.0.0.1:9001", weight: 1, backup: false },
      { name: "b", url: "http://127.0.0.1:9002", weight: 1, backup: false },
    ],
    ...over,
  };
}

test("re-weighting replaces the server in place and keeps its monitor; removal and addition", () => {
  const s = new Service(svc(), timeouts, silentLogger, httpHealth);
  const [a0, b0] = s.lb.servers;
  assert.deepEqual(
    s.lb.servers.map((x) => x.weight),
    [50, 50],
  );
  const changes = s.apply(
    svc({
      servers: [
        { name: "a", url: "http://127.0.0.1:9001", weight: 3, backup: false },
        { name: "c", url: "http://127.0.0.1:9003", weight: 1, backup: false },
      ],
    }),
    timeouts,
  );
  assert.deepEqual(changes, ["a weight 1→3", "+c", "-b"]);
  const [a1, c1] = s.lb.servers;
  assert.notEqual(a1, a0);
  assert.equal(a1.health, a0.health, "same monitor, same health state");
  assert.equal(a1.key, a0.key);
  assert.deepEqual(
    s.lb.servers.map((x) => [x.name, x.weight]),
    [
      ["a", 75],
      ["c", 25],
    ],
  );
  assert.ok(!s.lb.servers.includes(b0));
  assert.equal(c1.key, keyOf("http://127.0.0.1:9003"));
  s.controller.abort();
});

test("healthcheck, mode, sticky and timeout changes reach the running balancer", () => {
  const s = new Service(svc(), timeouts, silentLogger, httpHealth);
  const before = s.lb.servers.map((x) => x.health);
  const changes = s.apply(
    svc({
      mode: "least_conn",
      sticky: true,
      healthcheck: {
        path: "/healthz",
        useGet: true,
        interval: 1000,
        timeout: 500,
        retries: 2,
        enabled: true,
      },
    }),
    { ...timeouts, responseHeader: 1000 },
  );
  assert.ok(changes.includes("healthcheck"));
  assert.ok(changes.includes("mode round_robin→least_conn"));
  assert.ok(changes.includes("sticky false→true"));
  assert.ok(changes.includes("timeouts"));
  assert.equal(s.lb.config.mode, "least_conn");
  assert.equal(s.lb.config.sticky, true);
  assert.equal(s.lb.config.timeouts.responseHeader, 1000);
  const after = s.lb.servers.map((x) => x.health);
  assert.ok(
    after.every((h, i) => h !== before[i]),
    "new monitors for a new healthcheck",
  );
  assert.equal((after[0] as unknown as { path: string }).path, "/healthz");
  // an identical config changes nothing
  assert.deepEqual(s.apply(s.config, { ...timeouts, responseHeader: 1000 }), []);
  s.controller.abort();
});

test("a disabled healthcheck means no monitor (always healthy)", () => {
  const s = new Service(
    svc({
      healthcheck: { path: "/", useGet: false, interval: 5000, timeout: 5000, retries: 0, enabled: false },
    }),
    timeouts,
    silentLogger,
    httpHealth,
  );
  assert.ok(s.lb.servers.every((x) => x.health === undefined && x.available));
  s.controller.abort();
});

test("a hot reload keeps the admin state and runtime weight of servers whose entry did not change, and resets changed ones", () => {
  const three = (bWeight: number, hcPath = "/") =>
    svc({
      healthcheck: { path: hcPath, useGet: false, interval: 5000, timeout: 5000, retries: 0, enabled: true },
      servers: [
        { name: "a", url: "http://127.0.0.1:9001", weight: 1, backup: false },
        { name: "b", url: "http://127.0.0.1:9002", weight: bWeight, backup: false },
        { name: "c", url: "http://127.0.0.1:9003", weight: 1, backup: false },
      ],
    });
  const s = new Service(three(1), timeouts, silentLogger, httpHealth);
  s.lb.setAdminState("a", "maint");
  s.lb.setWeight("a", 7);
  s.lb.setAdminState("b", "draining");
  s.lb.setWeight("b", 9);
  // b's entry changes, a's and c's do not (the healthcheck change replaces every server's monitor)
  const changes = s.apply(three(2, "/healthz"), timeouts);
  assert.ok(changes.includes("b weight 1→2"));
  const [a, b, c] = s.lb.servers;
  assert.equal(a.adminState, "maint", "unchanged entry keeps its admin state");
  assert.equal(a.runtimeWeight, 7, "and its runtime weight");
  assert.equal(b.adminState, "ready", "a changed entry starts over");
  assert.equal(b.runtimeWeight, undefined);
  assert.equal(c.adminState, "ready");
  // a server in maint takes nothing, and the weights follow the runtime weight of a
  assert.equal(a.available, false);
  assert.deepEqual(
    s.lb.servers.map((x) => x.weight),
    [70, 20, 10],
  );
  s.controller.abort();
});

test("slow_start and panic_threshold reach the running balancer on reload", () => {
  const s = new Service(svc(), timeouts, silentLogger, httpHealth);
  const changes = s.apply(svc({ slowStart: 30_000, panicThreshold: 25 }), timeouts);
  assert.deepEqual(changes, ["slow_start", "panic_threshold"]);
  assert.equal(s.lb.config.slowStart, 30_000);
  assert.equal(s.lb.config.panicThreshold, 25);
  assert.equal(s.lb.toJSON().extra.config.panic_threshold, "25%");
  s.controller.abort();
});

test("allow_h2c_upgrade reaches the running balancer on reload, both ways, and its health JSON", () => {
  const s = new Service(svc(), timeouts, silentLogger, httpHealth);
  assert.equal(s.lb.allowH2cUpgrade, false);
  assert.equal(s.lb.toJSON().extra.config.allow_h2c_upgrade, false);
  assert.deepEqual(s.apply(svc({ allowH2cUpgrade: true }), timeouts), ["allow_h2c_upgrade false→true"]);
  assert.equal(s.lb.allowH2cUpgrade, true);
  assert.equal(s.lb.toJSON().extra.config.allow_h2c_upgrade, true);
  assert.deepEqual(s.apply(svc(), timeouts), ["allow_h2c_upgrade true→false"]);
  assert.equal(s.lb.allowH2cUpgrade, false);
  s.controller.abort();
});

test("a server whose protocol or tls changes is replaced with a new monitor; the others keep theirs", () => {
  const s = new Service(svc(), timeouts, silentLogger, httpHealth);
  const [a0, b0] = s.lb.servers;
  assert.equal(a0.transport.protocol, "http1.1");
  s.lb.setAdminState("a", "maint");
  s.lb.setAdminState("b", "maint");
  const changes = s.apply(
    svc({
      servers: [
        { name: "a", url: "http://127.0.0.1:9001", weight: 1, backup: false, protocol: "h2c" },
        { name: "b", url: "http://127.0.0.1:9002", weight: 1, backup: false },
      ],
    }),
    timeouts,
  );
  assert.deepEqual(changes, ["~a protocol/tls"]);
  const [a1, b1] = s.lb.servers;
  assert.equal(a1.transport.protocol, "h2c");
  assert.notEqual(a1.health, a0.health, "a new monitor that speaks h2c");
  assert.equal((a1.health as { transport?: { protocol: string } }).transport?.protocol, "h2c");
  assert.equal(b1, b0, "untouched");
  // a changed entry resets what the operator set; an unchanged one keeps it
  assert.equal(a1.adminState, "ready");
  assert.equal(b1.adminState, "maint");
});

test("middlewares: none means no chain; a reload builds, keeps or drops it; service timeouts override", () => {
  const s = new Service(svc(), timeouts, silentLogger, httpHealth);
  assert.equal(s.chain, undefined);
  const allow = { kind: "allow", cidrs: ["10.0.0.0/8"] } as const;
  assert.ok(s.apply(svc({ middlewares: [allow] }), timeouts).includes("middlewares"));
  const built = (s as Service).chain;
  assert.deepEqual(built?.kinds, ["allow"]);
  // the same list again: the chain (and its state, e.g. rate-limit buckets) stays
  assert.deepEqual(s.apply(svc({ middlewares: [{ ...allow }] }), timeouts), []);
  assert.equal(s.chain, built);
  const changes = s.apply(svc({ paths: ["/api"], timeouts: { responseHeader: 1000 } }), timeouts);
  assert.deepEqual(changes, ["timeouts", "paths", "middlewares"]);
  assert.equal(s.chain, undefined);
  assert.deepEqual(s.lb.config.timeouts, {
    connect: 5000,
    responseHeader: 1000,
    idle: 60000,
    tunnel: 3_600_000,
  });
  // timeouts.tunnel: a service's own over the top level, read by the forwarder as a tunnel opens
  assert.deepEqual(s.apply(svc({ paths: ["/api"], timeouts: { tunnel: 0 } }), timeouts), ["timeouts"]);
  assert.equal(s.lb.tunnelTimeout, 0);
  assert.deepEqual(s.apply(svc({ paths: ["/api"] }), { ...timeouts, tunnel: 300 }), ["timeouts"]);
  assert.equal(s.lb.tunnelTimeout, 300);
});
