import * as assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConfigError } from "../errors.ts";
import { parseConfig } from "./load.ts";

const F = "routes.yaml";

function problems(text: string): readonly string[] {
  try {
    parseConfig(text, F, {}, {});
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  assert.fail("expected the route file to be refused");
}

const ROUTES = `app-1:
  host: 10.0.2.1
  port: 8080
  healthcheck: { path: /health, interval: 2s, use_get: true, retries: 2 }
  load_balance:
    link: app
    mode: least_conn
    weight: 3
    sticky: true
    sticky_max_age: 30m
    options:
      header: X-Forwarded-For
      from: 10.0.0.0/8, 172.16.0.0/12
      recursive: true
app-2:
  scheme: https
  host: 10.0.2.2
  load_balance: { link: app, weight: 1 }
app-3:
  host: 10.0.2.3
  port: "8080"
  LoadBalance: { Link: app }
solo:
  host: 127.0.0.1
  port: 3000
  healthcheck: { disable: true }
`;

describe("GoDoxy route files", () => {
  test("routes sharing a link become one service; the rest are one-server services", () => {
    const c = parseConfig(ROUTES, F, {}, {});
    assert.deepEqual(Object.keys(c.services), ["app", "solo"]);
    const app = c.services.app;
    assert.deepEqual(app.hosts, [], "matched by first label");
    assert.equal(app.mode, "least_conn");
    assert.equal(app.sticky, true);
    assert.equal(app.stickyMaxAge, 1_800_000);
    assert.deepEqual(app.options, {
      header: "X-Forwarded-For",
      from: ["10.0.0.0/8", "172.16.0.0/12"],
      recursive: true,
    });
    assert.deepEqual(app.healthcheck, {
      path: "/health",
      useGet: true,
      interval: 2000,
      timeout: 5000,
      retries: 2,
      enabled: true,
    });
    assert.deepEqual(app.servers, [
      { name: "app-1", url: "http://10.0.2.1:8080", weight: 3, backup: false },
      { name: "app-2", url: "https://10.0.2.2", weight: 1, backup: false },
      { name: "app-3", url: "http://10.0.2.3:8080", weight: 0, backup: false },
    ]);
    assert.deepEqual(c.services.solo.servers, [
      { name: "solo", url: "http://127.0.0.1:3000", weight: 0, backup: false },
    ]);
    assert.equal(c.services.solo.healthcheck.enabled, false);
    assert.equal(c.services.solo.mode, "round_robin");
    // listen/admin from the defaults, or the command line
    assert.equal(c.listen[0].address, "0.0.0.0:8080");
    assert.equal(c.admin.address, "127.0.0.1:8081");
    const flagged = parseConfig(ROUTES, F, { listen: ["127.0.0.1:0"], admin: "127.0.0.1:0" }, {});
    assert.equal(flagged.listen[0].address, "127.0.0.1:0");
    assert.equal(flagged.admin.port, 0);
  });

  test("keys match ignoring case and underscores; GoDoxy mode spellings work", () => {
    const c = parseConfig(
      `a:\n  Host: 10.0.0.1\n  PORT: 81\n  load_balance: { LINK: svc, Mode: IPHash, StickyMaxAge: 1h, STICKY: true }\n`,
      F,
      {},
      {},
    );
    assert.equal(c.services.svc.mode, "ip_hash");
    assert.equal(c.services.svc.stickyMaxAge, 3_600_000);
    assert.equal(c.services.svc.sticky, true);
  });

  test("members that disagree are problems, whatever their order", () => {
    const text = `a-1:
  host: 10.0.0.1
  load_balance: { link: app, mode: iphash, sticky_max_age: 1h }
a-2:
  host: 10.0.0.2
  load_balance: { link: app, sticky_max_age: 1h }
a-3:
  host: 10.0.0.3
  healthcheck: { path: /x }
  load_balance:
    link: app
    mode: roundrobin
    sticky_max_age: 2h
    options: { from: [10.0.0.0/8] }
a-4:
  host: 10.0.0.4
  healthcheck: { path: /y }
  load_balance: { link: app, options: { from: [10.0.0.0/16] } }
`;
    assert.deepEqual(problems(text), [
      `${F}:12: a-3.load_balance.mode: mode "round_robin" conflicts with "ip_hash" set by route "a-1" (members of service "app" must agree)`,
      `${F}:13: a-3.load_balance.sticky_max_age: sticky_max_age 2h0m0s conflicts with 1h0m0s set by route "a-1" (members of service "app" must agree)`,
      `${F}:17: a-4.healthcheck: healthcheck (path "/y" vs "/x") conflicts with the one set by route "a-3" (members of service "app" must agree)`,
      `${F}:18: a-4.load_balance.options: options (from ["10.0.0.0/16"] vs ["10.0.0.0/8"]) conflicts with the one set by route "a-3" (members of service "app" must agree)`,
    ]);
  });

  test("mistakes in a route file are reported with lines", () => {
    const text = `web:
  scheme: h2c
  host: 10.0.0.1
  port: 99999
  middlewares:
    cidr_whitelist: { allow: [10.0.0.0/8] }
api-1:
  host: 10.0.0.2
  port: 80
  load_balance: { link: api, wieght: 2, mode: fastest }
  healthcheck: { interval: 5 }
api-2:
  host: 10.0.0.5
  port: 80
  load_balance: { link: api, weight: -1 }
api:
  host: 10.0.0.9
  port: 80
Bad_Alias:
  host: 10.0.0.3
  port: 80
`;
    assert.deepEqual(problems(text), [
      `${F}:2: web.scheme: GoDoxy scheme "h2c" is not supported: cleartext HTTP/2 to backends (a service's \`protocol: h2c\`) is not in this build of switchyard yet`,
      `${F}:4: web.port: must be ≤ 65535, got 99999`,
      `${F}:10: api-1.load_balance.wieght: unknown key; did you mean "weight"?`,
      `${F}:10: api-1.load_balance.mode: unknown load-balancing mode "fastest"; valid modes: round_robin, least_conn, ip_hash (case and "_"/"-" ignored)`,
      `${F}:11: api-1.healthcheck.interval: bare number 5 is not a duration: add a unit, e.g. "5s" or "5ms" (GoDoxy would read 5 as nanoseconds)`,
      `${F}:15: api-2.load_balance.weight: must be ≥ 0, got -1`,
      `${F}:16: api: service "api" is also defined by load_balance.link of route "api-1"`,
      `${F}:19: Bad_Alias: service name "bad_alias" must be a DNS label (lowercase letters, digits and "-", at most 63, no "-" at either end): it is matched against the first label of Host (or set load_balance.link)`,
    ]);
  });

  test("host with a port, and IPv6 hosts", () => {
    assert.deepEqual(problems(`a:\n  host: 10.0.0.1:80\n`), [
      `${F}:2: a.host: give the host without a port (the port goes in \`port\`)`,
    ]);
    const c = parseConfig(`a:\n  host: "::1"\n  port: 81\nb:\n  host: "[::2]"\n`, F, {}, {});
    assert.equal(c.services.a.servers[0].url, "http://[::1]:81");
    assert.equal(c.services.b.servers[0].url, "http://[::2]");
  });

  test("two members on the same backend are refused", () => {
    assert.deepEqual(
      problems(
        `a:\n  host: h\n  port: 80\n  load_balance: { link: x }\nb:\n  host: H\n  load_balance: { link: x }\n`,
      ),
      [`${F}:5: b: same backend h:80 as route "a" in service "x"`],
    );
  });

  test("homepage is accepted and ignored; a file with `services` is never a route file", () => {
    const c = parseConfig(`a:\n  host: 10.0.0.1\n  homepage: { name: A }\n`, F, {}, {});
    assert.equal(c.services.a.servers[0].url, "http://10.0.0.1");
    assert.deepEqual(problems(`services:\n  a:\n    host: 10.0.0.1\n`), [
      `${F}:2: services.a: no servers: add \`servers:\` with at least one { url }`,
      `${F}:3: services.a.host: unknown key; did you mean "hosts"?`,
    ]);
  });
});
