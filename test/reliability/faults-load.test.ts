/**
 * Faults under load: a backend killed and restarted, and hot reloads, while 64 keep-alive
 * clients send a fixed count of GETs. Nothing may fail.
 */
import * as assert from "node:assert/strict";
import { after, test } from "node:test";
import type { Server } from "../../src/index.ts";
import { type Backend, backend } from "../support/backend.ts";
import { Cleanup } from "../support/cleanup.ts";
import { freePort } from "../support/ports.ts";
import { until } from "../support/until.ts";
import { runLoad } from "./load.ts";
import { record } from "./summary.ts";
import { reloadSteps, type ServiceSpec, startProxy } from "./switchyards.ts";

const CONCURRENCY = 64;
const TOTAL = Number(process.env.RELIABILITY_LOAD ?? 6_000);

const cleanup = new Cleanup();
after(() => cleanup.run());

test("one of three backends killed and restarted under load: 0 failed requests", {
  timeout: 60_000,
}, async () => {
  const backends: Backend[] = [];
  // b (the victim) listens again on its port after the kill: one outside the ephemeral range,
  // which no listen(0) on the machine can take while it is down
  for (const n of ["a", "b", "c"])
    backends.push(await backend(n, n === "b" ? { port: await freePort() } : {}));
  for (const b of backends) cleanup.add(() => b.stop());
  const [, victim] = backends;
  const svc: ServiceSpec = {
    // default retries (max(1, 15s/interval)): passive ejection must not wait for them
    healthcheck: { path: "/healthz", interval: "100ms", timeout: "1s" },
    servers: backends.map((b) => ({ name: b.name, url: b.url })),
  };
  const proxy = await startProxy({ services: { api: svc } });
  cleanup.add(() => proxy.close());
  const lb = proxy.lbs.get("api")!;
  const target = lb.servers.find((s) => s.name === "b")!;

  // the balancer's own view: every pick of a server and every failure it reports
  type Ev = { kind: "pick" | "fail"; server: string; t: number };
  const events: Ev[] = [];
  let seq = 0;
  const origDispatch = lb.dispatch.bind(lb);
  lb.dispatch = (req, res, server) => {
    events.push({ kind: "pick", server: server.name, t: seq++ });
    origDispatch(req, res, server);
  };
  const origRetry = lb.pickRetry.bind(lb);
  lb.pickRetry = (req, tried) => {
    const s = origRetry(req, tried);
    if (s) events.push({ kind: "pick", server: s.name, t: seq++ });
    return s;
  };
  const origFail = lb.reportFailure.bind(lb);
  let outAfterFirstFailure: boolean | undefined;
  lb.reportFailure = (server: Server, err: unknown) => {
    events.push({ kind: "fail", server: server.name, t: seq++ });
    origFail(server, err);
    if (server === target && outAfterFirstFailure === undefined) outAfterFirstFailure = !server.available;
  };

  let killedAt = -1;
  let restartedAt = -1;
  let receivedAtRestart = 0;
  let servedAtRestart = 0;
  let phase: Promise<void> | undefined;
  // the last 40% of the load waits until the restarted backend is back in: otherwise a fast run
  // finishes its load before the first good probe and nothing is left to reach it
  let backIn!: () => void;
  const held = new Promise<void>((r) => {
    backIn = r;
  });
  const result = await runLoad({
    url: proxy.url,
    host: "api.test",
    total: TOTAL,
    concurrency: CONCURRENCY,
    gate: (index) => (index >= Math.floor(TOTAL * 0.6) ? held : undefined),
    onProgress: (done) => {
      if (done === Math.floor(TOTAL * 0.15)) {
        phase = (async () => {
          try {
            killedAt = seq;
            await victim.kill();
            await until(() => !target.available, 5000, "the killed backend to be out");
            // stay dead for a while under load, then come back
            await new Promise((r) => setTimeout(r, 300));
            receivedAtRestart = victim.received.length;
            servedAtRestart = victim.served();
            restartedAt = seq;
            // back within one successful probe: the restarted backend answers one probe and
            // holds the next ones, so traffic can only reach it if one good probe was enough
            // (however slow the machine is next to the 100 ms probe interval)
            victim.probeBudget = 1;
            await victim.restart();
            await until(() => target.available, 10_000, "the restarted backend to be in");
          } finally {
            backIn();
          }
          await until(
            () => victim.served() > servedAtRestart,
            10_000,
            "the restarted backend to get traffic after one good probe",
          );
          victim.probeBudget = undefined;
          victim.release();
        })();
      }
    },
  });
  await phase;

  const picksWhileOut = (() => {
    const firstFail = events.find((e) => e.kind === "fail" && e.server === "b" && e.t >= killedAt);
    if (!firstFail) return -1;
    return events.filter(
      (e) => e.kind === "pick" && e.server === "b" && e.t > firstFail.t && e.t < restartedAt,
    ).length;
  })();
  const failedAttempts = events.filter(
    (e) => e.kind === "fail" && e.t >= killedAt && e.t < restartedAt,
  ).length;
  // probes that reached the restarted backend before its first request (the first answered,
  // any later one held)
  const probesBeforeTraffic = victim.probesFirst(receivedAtRestart);

  record({
    suite: "faults",
    scenario: "kill + restart 1 of 3 backends",
    requests: result.sent,
    failed: result.failed,
    faults: 2,
    concurrency: CONCURRENCY,
    failedAttempts,
    picksWhileOut,
    probesBeforeTraffic,
    perBackend: result.bodies,
  });

  assert.equal(result.sent, TOTAL);
  assert.equal(result.failed, 0, `failed requests: ${result.errors.join("; ")}`);
  assert.equal(result.ok, TOTAL);
  assert.ok(killedAt >= 0 && restartedAt > killedAt, "the fault was injected during the load");
  assert.equal(outAfterFirstFailure, true, "the first failed attempt takes the server out at once");
  assert.equal(picksWhileOut, 0, "no request is sent to the killed server after its first failure");
  assert.ok(probesBeforeTraffic >= 1, "its first request came after a good probe");
  assert.ok((result.bodies.b ?? 0) > 0 && (result.bodies.a ?? 0) > 0 && (result.bodies.c ?? 0) > 0);
});

test("10 hot reloads that add, remove and re-weight servers under load: 0 failed requests", {
  timeout: 60_000,
}, async () => {
  const backends: Backend[] = [];
  for (const n of ["r1", "r2", "r3", "r4", "r5"]) backends.push(await backend(n));
  for (const b of backends) cleanup.add(() => b.stop());
  const steps = reloadSteps(backends);
  const spec = (servers: ServiceSpec["servers"]) => ({
    services: { api: { healthcheck: { path: "/healthz", interval: "200ms" }, servers } },
  });
  const proxy = await startProxy(spec(steps[0]));
  cleanup.add(() => proxy.close());
  let reloads = 0;
  const every = Math.floor(TOTAL / (steps.length + 1));
  const result = await runLoad({
    url: proxy.url,
    host: "api.test",
    total: TOTAL,
    concurrency: CONCURRENCY,
    onProgress: (done) => {
      if (done % every === 0 && reloads < steps.length - 1) {
        reloads++;
        proxy.reload(spec(steps[reloads]));
      }
    },
  });
  record({
    suite: "faults",
    scenario: "10 hot reloads (add / remove / re-weight)",
    requests: result.sent,
    failed: result.failed,
    faults: reloads,
    concurrency: CONCURRENCY,
    perBackend: result.bodies,
  });
  assert.equal(reloads, 10);
  assert.equal(result.failed, 0, `failed requests: ${result.errors.join("; ")}`);
  assert.equal(result.ok, TOTAL);
  // every backend took part at some point
  for (const b of backends) assert.ok(b.served() > 0, `${b.name} served requests`);
});
