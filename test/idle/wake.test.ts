/**
 * Request handling around a wake, against real processes: single-flight under 200 concurrent
 * requests, start_endpoint, wake_timeout, the loading page and the wake-events stream, a ready
 * server preferred over a napping one, WebSockets keeping a server awake, depends_on order.
 */
import * as assert from "node:assert/strict";
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import * as net from "node:net";
import { join } from "node:path";
import { describe, test } from "node:test";
import { requestHead } from "../support/http.ts";
import { alive, concurrentPids, processStarts, runApp, serveIdleApp, wakeActions } from "../support/idle.ts";
import { freePort } from "../support/ports.ts";
import {
  eventually,
  get,
  serveYaml,
  splitAddress,
  startBackend,
  tempDirFor,
  yamlHead,
} from "../support/switchyard.ts";

const JSON_ACCEPT = { headers: { accept: "application/json" } };

describe("idle: wakes and requests", { timeout: 120_000 }, () => {
  test("200 concurrent requests share one start; every one is answered", async (t) => {
    const { sy } = await serveIdleApp(t, "one", {
      idle: "{ idle_timeout: 1m }",
      env: { READY_DELAY: 300 },
    });
    const all = await concurrentPids(sy.proxy[0], 200, (i) => `/r${i}`);
    assert.deepEqual(new Set(all.map((r) => r.status)), new Set([200]));
    assert.equal(new Set(all.map((r) => r.pid)).size, 1, "one process answered all");
    assert.equal(processStarts(sy).length, 1);
    const metrics = (await get(sy.admin!, "/metrics")).body;
    assert.match(metrics, /switchyard_wakes_total\{service="app",server="one",result="ok"\} 1/);
    assert.match(metrics, /switchyard_wake_duration_seconds_count\{service="app",server="one"\} 1/);
  });

  test("start_endpoint: other paths get 403 and wake nothing; the endpoint wakes", async (t) => {
    const { sy } = await serveIdleApp(t, "guarded", { idle: "{ idle_timeout: 1m, start_endpoint: /wake }" });
    const r = await get(sy.proxy[0], "/other", JSON_ACCEPT);
    assert.equal(r.status, 403);
    assert.match(r.body, /guarded/);
    assert.equal(processStarts(sy).length, 0);
    const w = await get(sy.proxy[0], "/wake", JSON_ACCEPT);
    assert.equal(w.status, 200);
    assert.equal(JSON.parse(w.body).path, "/wake");
    // once awake, every path is served
    assert.equal((await get(sy.proxy[0], "/other", JSON_ACCEPT)).status, 200);
  });

  test("wake_timeout: 504 naming the server; the process is not left running", async (t) => {
    const { sy, port } = await serveIdleApp(t, "sleepy", {
      idle: "{ idle_timeout: 1m, wake_timeout: 500ms }",
      env: { READY_DELAY: 60000 },
    });
    const r = await get(sy.proxy[0], "/", JSON_ACCEPT);
    assert.equal(r.status, 504);
    assert.match(r.body, /sleepy/);
    assert.ok(!r.body.includes(String(port)));
    await sy.waitForLog((l) => l.msg === "process killed by SIGKILL" && l.server === "sleepy");
    const metrics = (await get(sy.admin!, "/metrics")).body;
    assert.match(metrics, /switchyard_wakes_total\{service="app",server="sleepy",result="timeout"\} 1/);
  });

  test("a browser gets the loading page (no-store) while the wake runs; wake-events streams progress", async (t) => {
    // web-1 listens once the test creates this file: still starting while the page, its script
    // and the start of the progress stream are fetched, however slow the machine
    const ready = join(tempDirFor(t).dir, "ready");
    const { sy, port } = await serveIdleApp(t, "web-1", {
      idle: "{ idle_timeout: 1m }",
      env: { READY_FILE: ready },
    });
    const page = await get(sy.proxy[0], "/", { headers: { accept: "text/html,*/*" } });
    assert.equal(page.status, 200);
    assert.match(String(page.headers["content-type"]), /^text\/html/);
    assert.equal(page.headers["cache-control"], "no-store");
    assert.match(page.body, /web-1/);
    assert.match(page.body, /<script src="\/\$switchyard\/loading\.js"/);
    assert.ok(!page.body.includes(String(port)));
    const cookie = String(page.headers["set-cookie"]).split(";")[0];
    const js = await get(sy.proxy[0], "/$switchyard/loading.js", { headers: { cookie } });
    assert.equal(js.status, 200);
    assert.match(String(js.headers["content-type"]), /javascript/);
    const { res: ev } = await requestHead(splitAddress(sy.proxy[0])[1], "/$switchyard/wake-events", {
      cookie,
    });
    let body = "";
    ev.setEncoding("utf8").on("data", (c: string) => {
      body += c;
    });
    const ended = once(ev, "end");
    await new Promise<void>((resolve) => {
      const check = () => {
        if (!body.includes('"waiting_ready"')) return;
        ev.off("data", check);
        resolve();
      };
      ev.on("data", check);
      check();
    });
    writeFileSync(ready, "");
    await ended;
    const frames = body
      .split("\n\n")
      .filter(Boolean)
      .map((f) => JSON.parse(f.replace(/^data: /, "")));
    const actions = frames.map((f) => (f.server ? `${f.server}:${f.action}` : f.action));
    assert.deepEqual(actions, ["web-1:starting", "web-1:waiting_ready", "web-1:ready", "ready"]);
    // now the page is the backend's own
    const home = await get(sy.proxy[0], "/", { headers: { accept: "text/html", cookie } });
    assert.match(home.body, /hello from app/);
  });

  test("a ready server answers while a napping one is woken in the background", async (t) => {
    const port = await freePort();
    const awake = await startBackend("awake");
    t.after(() => awake.stop());
    // lazy listens only once the test creates this file: it cannot be ready before the four
    // requests are answered, however slow the machine
    const ready = join(tempDirFor(t).dir, "ready");
    const sy = await serveYaml(
      t,
      `${yamlHead()}  app:
    hosts: ["*"]
    healthcheck: { interval: 200ms }
    idle: { idle_timeout: 1m }
    servers:
      - { name: lazy, url: "http://127.0.0.1:${port}", run: ${runApp(port, { READY_FILE: ready, NAME: "lazy" })} }
      - { name: awake, url: "${awake.url}" }
`,
    );
    const bodies: string[] = [];
    for (let i = 0; i < 4; i++) bodies.push((await get(sy.proxy[0], "/", JSON_ACCEPT)).body.trim());
    assert.deepEqual(bodies, ["awake", "awake", "awake", "awake"]);
    // (a request that waited for the wake would have been answered by "lazy", once it is let be ready)
    await sy.waitForLog(
      (l) => typeof l.msg === "string" && l.msg.startsWith("process started") && l.server === "lazy",
    );
    writeFileSync(ready, "");
    await sy.waitForLog((l) => typeof l.msg === "string" && l.msg.startsWith("server lazy woke"), 15_000);
    await eventually(
      async () => (await get(sy.proxy[0], "/", JSON_ACCEPT)).body.includes('"lazy"'),
      5000,
      "lazy to serve",
    );
  });

  test("an open WebSocket keeps the server awake; it is stopped once the socket closes", async (t) => {
    const { sy } = await serveIdleApp(t, "ws", { idle: "{ idle_timeout: 300ms }" });
    // the upgrade itself wakes the napping server and waits for it
    const [host, p] = splitAddress(sy.proxy[0]);
    const sock = net.connect(p, host);
    sock.write(
      "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    let got = "";
    sock.setEncoding("utf8").on("data", (d: string) => (got += d));
    await eventually(() => got.includes("101"), 5000, "the upgrade");
    const a = JSON.parse((await get(sy.proxy[0], "/", JSON_ACCEPT)).body);
    // three idle timeouts pass with the socket open: still running
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok(!sy.logs.some((l) => l.msg === "server ws stopped (idle)"));
    sock.write("ping");
    await eventually(() => got.endsWith("ping"), 5000, "the echo");
    sock.destroy();
    await sy.waitForLog((l) => l.msg === "server ws stopped (idle)", 3000);
    await eventually(() => !alive(a.pid), 5000, "the process to stop");
  });

  test("depends_on: the dependency is ready before the dependent starts, and stopped after it", async (t) => {
    const [pd, pa] = [await freePort(), await freePort()];
    const sy = await serveYaml(
      t,
      `${yamlHead()}  db:
    hosts: [db.test]
    idle: { idle_timeout: 1h }
    servers:
      - { name: db-1, url: "http://127.0.0.1:${pd}", run: ${runApp(pd, { READY_DELAY: 300, NAME: "db" })} }
  app:
    hosts: ["*"]
    idle: { idle_timeout: 300ms, depends_on: [db] }
    servers:
      - { name: app-1, url: "http://127.0.0.1:${pa}", run: ${runApp(pa, { NAME: "app" })} }
`,
    );
    assert.deepEqual(await wakeActions(sy.proxy[0]), [
      "app-1:starting",
      "app-1:waking_dep",
      "app-1:dep_ready",
      "app-1:waiting_ready",
      "app-1:ready",
      "ready",
    ]);
    const idx = (pred: (l: Record<string, unknown>) => boolean) => sy.logs.findIndex(pred);
    const isDbReady = (l: Record<string, unknown>) =>
      typeof l.msg === "string" && l.msg.startsWith("server db-1 woke");
    const isAppStart = (l: Record<string, unknown>) =>
      typeof l.msg === "string" && l.msg.startsWith("process started") && l.server === "app-1";
    // the log comes on the process's stdout, the frames on HTTP: the lines may not be read yet
    await sy.waitForLog(isDbReady);
    await sy.waitForLog(isAppStart);
    const [dbReady, appStart] = [idx(isDbReady), idx(isAppStart)];
    assert.ok(appStart > dbReady, `db ready (log line ${dbReady}) before app starts (line ${appStart})`);
    // app idles out after 300 ms, then db (idle_timeout 1h) is stopped after it
    await sy.waitForLog((l) => l.msg === "server app-1 stopped (idle)");
    await sy.waitForLog((l) => l.msg === "server db-1 stopped (dependency)");
    assert.ok(
      idx((l) => l.msg === "server app-1 stopped (idle)") <
        idx((l) => l.msg === "server db-1 stopped (dependency)"),
    );
  });

  test("a held client that disconnects is not forwarded and frees its request", async (t) => {
    // h listens only once the test creates this file: ready after its client has left, however
    // slow the machine
    const ready = join(tempDirFor(t).dir, "ready");
    const { sy } = await serveIdleApp(t, "h", { idle: "{ idle_timeout: 1m }", env: { READY_FILE: ready } });
    const [host, p] = splitAddress(sy.proxy[0]);
    const sock = net.connect(p, host);
    sock.write(
      "POST /held HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\nContent-Length: 5\r\n\r\nhello",
    );
    await sy.waitForLog((l) => typeof l.msg === "string" && l.msg.startsWith("process started"));
    sock.destroy();
    // switchyard has seen the client leave: its access-log line (aborted) is written
    await sy.waitForLog((l) => l.component === "access" && l.path === "/held" && l.aborted === true);
    writeFileSync(ready, "");
    await sy.waitForLog((l) => typeof l.msg === "string" && l.msg.startsWith("server h woke"));
    const r = await get(sy.proxy[0], "/after", JSON_ACCEPT);
    assert.equal(r.status, 200);
    const seen = JSON.parse((await get(sy.proxy[0], "/__seen")).body);
    // (the "/" entries are readiness and health probes)
    assert.deepEqual(
      seen.filter((p: string) => p !== "/"),
      ["/after"],
      "the request of the client that left never reached the backend",
    );
    const metrics = (await get(sy.admin!, "/metrics")).body;
    assert.match(metrics, /switchyard_requests_in_flight\{service="app"\} 0/);
  });

  test("no_loading_page: a browser's GET is held and gets the backend's own page", async (t) => {
    const { sy } = await serveIdleApp(t, "plainwait", {
      idle: "{ idle_timeout: 1m, no_loading_page: true }",
      env: { READY_DELAY: 200, NAME: "plainwait" },
    });
    const r = await get(sy.proxy[0], "/", { headers: { accept: "text/html" } });
    assert.equal(r.status, 200);
    assert.match(r.body, /hello from plainwait/);
  });
});
