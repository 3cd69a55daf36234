import * as assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConfigError } from "../errors.ts";
import { parseConfig } from "./load.ts";

function problems(text: string): string[] {
  try {
    parseConfig(text, "s.yaml", {}, {});
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return [...err.problems];
  }
  assert.fail("expected problems");
}

describe("config: idle keys and providers", () => {
  test("service idle block with per-server override, run/exec/docker resolved", () => {
    const c = parseConfig(
      `services:
  app:
    idle: { idle_timeout: 15m, stop_method: pause, stop_signal: INT, depends_on: [db], start_endpoint: "/go#x" }
    servers:
      - { name: a, url: "http://127.0.0.1:3001", run: { command: [node, server.js], cwd: ./app, env: { PORT: 3001 } } }
      - { name: b, url: "http://127.0.0.1:3002", exec: { start: "systemctl start b", stop: "systemctl stop b" }, idle: { idle_timeout: 1h, no_loading_page: true } }
      - { name: c, url: "http://127.0.0.1:3003", docker: { container: app3 } }
      - { name: d, url: "http://127.0.0.1:3004" }
  db:
    servers:
      - { name: db-1, url: "http://127.0.0.1:5432", run: "exec postgres -D /data" }
`,
      "/etc/sy/s.yaml",
      {},
      {},
    );
    const [a, b, cc, d] = c.services.app.servers;
    assert.deepEqual(a.provider, {
      kind: "run",
      command: ["node", "server.js"],
      cwd: "/etc/sy/app",
      env: { PORT: "3001" },
    });
    assert.equal(a.idle?.idleTimeout, 900_000);
    assert.equal(a.idle?.stopMethod, "pause");
    assert.equal(a.idle?.stopSignal, "SIGINT");
    assert.equal(a.idle?.startEndpoint, "/go");
    assert.deepEqual(a.idle?.dependsOn, ["db"]);
    assert.equal(a.idle?.wakeTimeout, 180_000);
    assert.equal(b.idle?.idleTimeout, 3_600_000, "the server's own idle wins key by key");
    assert.equal(b.idle?.stopMethod, "pause");
    assert.equal(b.idle?.noLoadingPage, true);
    assert.equal(b.provider?.kind, "exec");
    assert.deepEqual(cc.provider, { kind: "docker", container: "app3", socketPath: undefined });
    assert.equal(d.provider, undefined);
    assert.equal(d.idle, undefined, "a server without a provider has no idle settings");
    assert.equal(c.services.db.servers[0].idle?.idleTimeout, 0);
  });

  test("check errors name file:line: path", () => {
    const list = problems(`services:
  app:
    idle: { stop_method: sleep, stop_signal: SIGFOO, idle_timeout: -5s }
    servers:
      - { name: a, url: "http://127.0.0.1:3001", run: { command: "" } }
      - { name: b, url: "http://127.0.0.1:3002", run: [], idle: { wake_timeout: 0s } }
      - { name: c, url: "http://127.0.0.1:3003", run: [x], exec: { start: a, stop: b } }
      - { name: d, url: "http://127.0.0.1:3004", idle: { idle_timeout: 1m } }
`);
    const want = [
      /^s\.yaml:3: services\.app\.idle\.stop_method: unknown stop_method "sleep" \(stop, pause or kill\)$/,
      /^s\.yaml:3: services\.app\.idle\.stop_signal: unknown signal "SIGFOO"/,
      /^s\.yaml:3: services\.app\.idle\.idle_timeout: /,
      /^s\.yaml:5: services\.app\.servers\[0\]\.run\.command: empty `run` command$/,
      /^s\.yaml:6: services\.app\.servers\[1\]\.run: empty `run` command$/,
      /^s\.yaml:6: services\.app\.servers\[1\]\.idle\.wake_timeout: must be greater than 0$/,
      /^s\.yaml:7: services\.app\.servers\[2\]\.exec: a server has one provider: both `run` and `exec` are set$/,
      /^s\.yaml:8: services\.app\.servers\[3\]\.idle: idle settings need a provider/,
    ];
    for (const re of want)
      assert.ok(
        list.some((l) => re.test(l)),
        `${re} in\n${list.join("\n")}`,
      );
    assert.equal(list.length, want.length, list.join("\n"));
  });

  test("depends_on: unknown targets and cycles are errors at their line", () => {
    const list = problems(`services:
  a:
    servers:
      - { name: a-1, url: "http://127.0.0.1:3001", run: [x], idle: { depends_on: [b] } }
  b:
    servers:
      - { name: b-1, url: "http://127.0.0.1:3002", run: [x], idle: { depends_on: [c/c-1] } }
  c:
    servers:
      - { name: c-1, url: "http://127.0.0.1:3003", run: [x], idle: { depends_on: [a, nope, b/zz] } }
`);
    assert.ok(
      list.some((l) =>
        /^s\.yaml:10: services\.c\.servers\[0\]\.idle\.depends_on\[1\]: depends_on: unknown service "nope"$/.test(
          l,
        ),
      ),
      list.join("\n"),
    );
    assert.ok(
      list.some((l) => /^s\.yaml:10: .*depends_on\[2\]: depends_on: service "b" has no server "zz"$/.test(l)),
      list.join("\n"),
    );
    const cycle = list.filter((l) => l.includes("depends_on cycle"));
    assert.equal(cycle.length, 1, list.join("\n"));
    assert.match(cycle[0], /^s\.yaml:\d+: .*depends_on cycle: (a\/a-1|b\/b-1|c\/c-1) → .* → .* → \1$/);
  });

  test("GoDoxy route-level idle keys with run on the route, and the idlewatcher block", () => {
    const c = parseConfig(
      `app:
  host: 127.0.0.1
  port: 3001
  idle_timeout: 10m
  stop_method: kill
  wake_timeout: 30s
  run: { command: [node, app.js] }
worker:
  host: 127.0.0.1
  port: 3002
  exec: { start: "true", stop: "true" }
  idlewatcher: { idle_timeout: 1m, depends_on: [app] }
`,
      "routes.yml",
      {},
      {},
    );
    const app = c.services.app.servers[0];
    assert.equal(app.idle?.idleTimeout, 600_000);
    assert.equal(app.idle?.stopMethod, "kill");
    assert.equal(app.idle?.wakeTimeout, 30_000);
    assert.equal(app.provider?.kind, "run");
    const w = c.services.worker.servers[0];
    assert.equal(w.idle?.idleTimeout, 60_000);
    assert.deepEqual(w.idle?.dependsOn, ["app"]);
    const list = problems(`app:
  host: 127.0.0.1
  port: 3001
  stop_method: nap
`);
    assert.ok(
      list.some((l) => /^s\.yaml:4: app\.stop_method: unknown stop_method/.test(l)),
      list.join("\n"),
    );
  });
});
