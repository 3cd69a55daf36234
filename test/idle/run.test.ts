/**
 * The `run` provider end to end: switchyard starts the app fixture on the first request, holds
 * API requests until it is ready, stops it after idle_timeout with each stop_method, and leaves
 * no process behind (SIGTERM or SIGKILL to switchyard).
 */
import * as assert from "node:assert/strict";
import { describe, test } from "node:test";
import { healthPool } from "../support/admin.ts";
import { alive, procState, runApp, serveIdleApp, serveIdleService, wakeActions } from "../support/idle.ts";
import { freePort } from "../support/ports.ts";
import { eventually, get, serveYaml, yamlHead } from "../support/switchyard.ts";

const JSON_ACCEPT = { headers: { accept: "application/json" } };

/** The health entry of the service's (first) server. */
const health = async (admin: string, service: string) => Object.values(await healthPool(admin, service))[0];

describe("idle: run provider", { timeout: 120_000 }, () => {
  test("napping until the first request, which is held until ready and answered; output logged; idle stop", async (t) => {
    const { sy, port } = await serveIdleApp(t, "app-1", {
      idle: "{ idle_timeout: 300ms, wake_timeout: 10s }",
      healthcheck: "{ path: /healthz, interval: 1s }",
      env: { READY_DELAY: 300, NAME: "app-1" },
    });
    const before = await health(sy.admin!, "app");
    assert.equal(before.status, "napping");
    assert.ok(!sy.logs.some((r) => r.msg === "process started"), "nothing started before a request");

    const r = await get(sy.proxy[0], "/api/x", { method: "POST", ...JSON_ACCEPT });
    assert.equal(r.status, 200);
    const body = JSON.parse(r.body);
    assert.equal(body.name, "app-1");
    assert.equal(body.path, "/api/x");
    assert.ok(alive(body.pid));
    // the app's own output reaches the log, tagged with its server
    const line = await sy.waitForLog((l) => l.msg === `app-1 listening on ${port}`);
    assert.equal(line.server, "app-1");
    assert.equal(line.service, "app");
    assert.equal(line.stream, "stdout");

    // idle: stopped after 300 ms without requests
    await sy.waitForLog((l) => typeof l.msg === "string" && l.msg.startsWith("server app-1 stopped (idle)"));
    await eventually(() => !alive(body.pid), 5000, "the process to be gone");
    assert.equal((await health(sy.admin!, "app")).status, "napping");
    const metrics = (await get(sy.admin!, "/metrics")).body;
    assert.match(metrics, /switchyard_idle_stops_total\{service="app",server="app-1"\} 1/);
    // the second wake's progress stream has that wake's frames only (nothing replayed from the first)
    assert.deepEqual(await wakeActions(sy.proxy[0]), [
      "app-1:starting",
      "app-1:waiting_ready",
      "app-1:ready",
      "ready",
    ]);
    // and a request is answered by the new process
    const again = JSON.parse((await get(sy.proxy[0], "/", JSON_ACCEPT)).body);
    assert.notEqual(again.pid, body.pid);
    const exit = await sy.stop("SIGTERM");
    assert.equal(exit.code, 0);
    assert.ok(!alive(again.pid), "SIGTERM to switchyard stops its children");
  });

  test("stop_method pause (SIGSTOP, SIGCONT on wake) and kill", async (t) => {
    const [p1, p2] = [await freePort(), await freePort()];
    const sy = await serveYaml(
      t,
      `${yamlHead()}  paused:
    hosts: [paused.test]
    idle: { idle_timeout: 300ms, stop_method: pause }
    servers:
      - { name: p-1, url: "http://127.0.0.1:${p1}", run: ${runApp(p1)} }
  killed:
    hosts: [killed.test]
    idle: { idle_timeout: 300ms, stop_method: kill }
    servers:
      - { name: k-1, url: "http://127.0.0.1:${p2}", run: ${runApp(p2)} }
`,
    );
    const a = JSON.parse((await get(sy.proxy[0], "/", { host: "paused.test", ...JSON_ACCEPT })).body);
    await sy.waitForLog((l) => l.msg === "server p-1 paused (idle)");
    // paused = SIGSTOP (delivered asynchronously: the state flips a moment after the signal)
    await eventually(() => procState(a.pid) === "T", 5000, "the process to be stopped (T)");
    const a2 = JSON.parse((await get(sy.proxy[0], "/", { host: "paused.test", ...JSON_ACCEPT })).body);
    assert.equal(a2.pid, a.pid, "a wake resumes the same process");
    assert.notEqual(procState(a.pid), "T");

    const k = JSON.parse((await get(sy.proxy[0], "/", { host: "killed.test", ...JSON_ACCEPT })).body);
    await sy.waitForLog((l) => l.msg === "process killed by SIGKILL" && l.server === "k-1");
    assert.ok(!alive(k.pid));
    assert.equal((await sy.stop("SIGTERM")).code, 0);
    assert.ok(!alive(a.pid), "a paused process is stopped at shutdown too");
  });

  test("stop_signal, then SIGKILL after stop_timeout for a process that ignores it", async (t) => {
    const { sy } = await serveIdleApp(t, "stubborn", {
      idle: "{ idle_timeout: 300ms, stop_signal: TERM, stop_timeout: 300ms }",
      env: { IGNORE_TERM: 1, NAME: "stubborn" },
    });
    const a = JSON.parse((await get(sy.proxy[0], "/", JSON_ACCEPT)).body);
    await sy.waitForLog((l) => l.msg === "stubborn: ignoring SIGTERM");
    await sy.waitForLog(
      (l) => typeof l.msg === "string" && l.msg.includes("sending SIGKILL (raise stop_timeout?)"),
    );
    await sy.waitForLog((l) => l.msg === "process killed by SIGKILL");
    assert.ok(!alive(a.pid));
    assert.equal((await sy.stop("SIGTERM")).code, 0);
  });

  test("SIGKILL to switchyard: the watchdog kills the children", async (t) => {
    const { sy } = await serveIdleApp(t, "always", { idle: "{ idle_timeout: 0 }" });
    // idle_timeout 0: started with switchyard
    await sy.waitForLog((l) => typeof l.msg === "string" && l.msg.startsWith("server always woke"));
    const a = JSON.parse((await get(sy.proxy[0], "/", JSON_ACCEPT)).body);
    assert.ok(alive(a.pid));
    await sy.stop("SIGKILL");
    await eventually(() => !alive(a.pid), 5000, "the child to die with switchyard");
  });

  test("a process that exits at once: 502 naming the server, never its address; napping after", async (t) => {
    const port = await freePort();
    const sy = await serveIdleService(
      t,
      `      - { name: crashy, url: "http://127.0.0.1:${port}", run: ${runApp(port, { EXIT_CODE: 3 })} }
      - { name: missing, url: "http://127.0.0.1:${await freePort()}", run: { command: [/nonexistent/switchyard-test-bin] } }
`,
      { idle: "{ idle_timeout: 1m }" },
    );
    const seen = new Map<string, string>();
    for (let i = 0; i < 4 && seen.size < 2; i++) {
      const r = await get(sy.proxy[0], "/", JSON_ACCEPT);
      assert.equal(r.status, 502);
      assert.ok(!r.body.includes("127.0.0.1"), r.body);
      const m = /server (\w+) failed to wake/.exec(r.body);
      assert.ok(m, r.body);
      seen.set(m[1], r.body);
    }
    assert.match(seen.get("crashy") ?? "", /exited with code 3/);
    assert.match(seen.get("missing") ?? "", /command not found/);
    await sy.waitForLog((l) => l.msg === "process exited with code 3" && l.server === "crashy");
    const j = JSON.parse((await get(sy.admin!, "/api/health/app")).body);
    const statuses = Object.values(j.extra.pool).map((s) => (s as { status: string; detail: string }).status);
    assert.deepEqual(statuses, ["error", "error"]);
    assert.match((Object.values(j.extra.pool)[0] as { detail: string }).detail, /wake failed/);
    // a page that asks for the wake's progress now gets the failure, not a false "ready"
    const ev = await get(sy.proxy[0], "/$switchyard/wake-events");
    const frames = ev.body
      .split("\n\n")
      .filter(Boolean)
      .map((f) => JSON.parse(f.replace(/^data: /, "")));
    assert.equal(frames.at(-1).action, "error");
    assert.match(frames.at(-1).error, /exited with code 3/);
    assert.ok(!ev.body.includes("127.0.0.1"), ev.body);
  });

  test("a process that exits by itself naps (exit code logged) and the next request wakes it; idle_timeout 0 restarts it", async (t) => {
    // the apps exit when the test tells them to (POST /__exit straight to the app, not through
    // switchyard), so no request can come too late or too early on a slow machine
    const [p1, p2] = [await freePort(), await freePort()];
    const sy = await serveYaml(
      t,
      `${yamlHead()}  ondemand:
    hosts: [ondemand.test]
    idle: { idle_timeout: 1m }
    servers:
      - { name: od, url: "http://127.0.0.1:${p1}", run: ${runApp(p1)} }
  always:
    hosts: [always.test]
    idle: { idle_timeout: 0 }
    servers:
      - { name: al, url: "http://127.0.0.1:${p2}", run: ${runApp(p2)} }
`,
    );
    const exit = async (port: number) => {
      const r = await get(port, "/__exit", { method: "POST" });
      assert.deepEqual([r.status, r.body], [200, "bye"]);
    };
    const a = JSON.parse((await get(sy.proxy[0], "/", { host: "ondemand.test", ...JSON_ACCEPT })).body);
    assert.equal((await health(sy.admin!, "ondemand")).status, "healthy");
    await exit(p1);
    await sy.waitForLog((l) => l.msg === "process exited with code 0" && l.server === "od");
    await eventually(async () => (await health(sy.admin!, "ondemand")).status === "napping", 5000, "napping");
    const b = JSON.parse((await get(sy.proxy[0], "/", { host: "ondemand.test", ...JSON_ACCEPT })).body);
    assert.notEqual(b.pid, a.pid);
    // idle_timeout 0: started with switchyard, restarted with back-off after it exits, without any request
    await sy.waitForLog((l) => typeof l.msg === "string" && l.msg.startsWith("server al woke"));
    await exit(p2);
    await sy.waitForLog((l) => l.msg === "process exited with code 0" && l.server === "al");
    await sy.waitForLog((l) => typeof l.msg === "string" && l.msg.startsWith("restarting server al in"));
    let n = 0;
    await sy.waitForLog(
      (l) => typeof l.msg === "string" && l.msg.startsWith("server al woke") && ++n === 2,
      10_000,
    );
    const c = JSON.parse((await get(sy.proxy[0], "/", { host: "always.test", ...JSON_ACCEPT })).body);
    assert.ok(alive(c.pid), "the restarted process answers");
  });
});
