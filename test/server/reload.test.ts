import * as assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { WebSocket, WebSocketServer } from "ws";
import { freePort } from "../support/ports.ts";
import {
  eventually,
  get,
  serveYaml,
  startBackend,
  startSwitchyard,
  tempDir,
  yamlConfig,
} from "../support/switchyard.ts";

const reloaded = (pattern: RegExp) => (r: Record<string, unknown>) =>
  typeof r.msg === "string" && r.msg.startsWith("config reloaded") && pattern.test(r.msg);

test("reload: a removed server finishes its in-flight request, a kept server's WebSocket stays open, re-weighting applies, listeners re-bind", {
  timeout: 120_000,
}, async () => {
  const tmp = tempDir();
  const gone = await startBackend("gone");
  const stays = await startBackend("stays");
  // a WebSocket echo backend that stays in the config throughout
  const wsHttp = http.createServer((_q, s) => s.end("ws\n"));
  const wss = new WebSocketServer({ server: wsHttp });
  wss.on("connection", (s) => s.on("message", (d) => s.send(String(d))));
  await new Promise<void>((r) => wsHttp.listen(0, "127.0.0.1", () => r()));
  const wsUrl = `http://127.0.0.1:${(wsHttp.address() as AddressInfo).port}`;
  const conf = (servers: { name: string; url: string; weight?: number }[], listen = "127.0.0.1:0") =>
    yamlConfig({
      web: { hosts: ["web.test"], servers },
      ws: { hosts: ["ws.test"], servers: [{ name: "echo", url: wsUrl }] },
    }).replace("listen: 127.0.0.1:0", `listen: ${listen}`);
  const file = tmp.write(
    "s.yaml",
    conf([
      { name: "gone", url: gone.url },
      { name: "stays", url: stays.url },
    ]),
  );
  const sy = await startSwitchyard(["serve", "-c", file]);
  const ws = new WebSocket(`ws://${sy.proxy[0]}/`, { headers: { host: "ws.test" } });
  try {
    await new Promise<void>((ok, fail) => {
      ws.once("open", () => ok());
      ws.once("error", fail);
    });
    let wsClosed = false;
    ws.once("close", () => (wsClosed = true));

    // a request held at "gone" (round robin: the first pick is the first server) across its removal
    let answered = false;
    const slow = get(sy.proxy[0], "/hold", { host: "web.test" }).finally(() => (answered = true));
    await eventually(() => gone.counts.GET === 1, 10_000, "held request at 'gone'");
    writeFileSync(file, conf([{ name: "stays", url: stays.url }]));
    await sy.waitForLog(reloaded(/-gone/));
    assert.equal(answered, false);
    gone.release();
    const r = await slow;
    assert.equal(r.status, 200);
    assert.equal(r.body, "gone\n");
    for (let i = 0; i < 5; i++)
      assert.equal((await get(sy.proxy[0], "/", { host: "web.test" })).body, "stays\n");

    // the WebSocket to the kept service survived the reload
    assert.equal(wsClosed, false);
    const echo = new Promise<string>((ok) => ws.once("message", (d) => ok(String(d))));
    ws.send("still here");
    assert.equal(await echo, "still here");

    // re-weight: add "gone" back with weight 1 and "stays" at 3 → 25/75 over 100 picks
    writeFileSync(
      file,
      conf([
        { name: "stays", url: stays.url, weight: 3 },
        { name: "gone", url: gone.url, weight: 1 },
      ]),
    );
    await sy.waitForLog(reloaded(/\+gone/));
    writeFileSync(
      file,
      conf([
        { name: "stays", url: stays.url, weight: 1 },
        { name: "gone", url: gone.url, weight: 1 },
      ]),
    );
    await sy.waitForLog(reloaded(/stays weight 3→1/));
    const counts: Record<string, number> = {};
    for (let i = 0; i < 100; i++) {
      const b = (await get(sy.proxy[0], "/", { host: "web.test" })).body.trim();
      counts[b] = (counts[b] ?? 0) + 1;
    }
    assert.deepEqual(counts, { stays: 50, gone: 50 });
    const health = JSON.parse((await get(sy.admin!, "/api/health/web")).body);
    assert.equal(health.detail, "2/2 servers are healthy");

    // listeners: a new address is bound, the old one closed
    const port = await freePort();
    writeFileSync(
      file,
      conf(
        [
          { name: "stays", url: stays.url, weight: 1 },
          { name: "gone", url: gone.url, weight: 1 },
        ],
        `127.0.0.1:${port}`,
      ),
    );
    await sy.waitForLog(reloaded(/\+listen 127\.0\.0\.1:\d+/));
    assert.equal((await get(`127.0.0.1:${port}`, "/", { host: "web.test" })).status, 200);
    await eventually(
      () =>
        get(sy.proxy[0], "/", { host: "web.test" }).then(
          () => false,
          () => true,
        ),
      5000,
      "old listener closed",
    );
  } finally {
    ws.terminate();
    const exit = await sy.stop();
    await gone.stop();
    await stays.stop();
    wss.close();
    await new Promise<void>((r) => {
      wsHttp.close(() => r());
      wsHttp.closeAllConnections();
    });
    tmp.remove();
    assert.equal(exit.code, 0);
  }
});

test("reload with --workers 2: every worker picks up a new server", { timeout: 180_000 }, async (t) => {
  const a = await startBackend("c-1", 0, t);
  const b = await startBackend("c-2", 0, t);
  const conf = (n: number) =>
    yamlConfig({
      web: { hosts: ["*"], servers: [a, b].slice(0, n).map((x) => ({ name: x.name, url: x.url })) },
    });
  const sy = await serveYaml(t, conf(1), ["--workers", "2", "--log-level", "debug"], {
    timeoutMs: 90_000,
    cleanExit: true,
  });
  const file = sy.file;
  writeFileSync(file, conf(2));
  await sy.waitForLog(reloaded(/\+c-2/));
  // after the primary's reload, each worker applies the config; poll until both serve c-2
  const seenOn = new Set<number>();
  let n = 0;
  await eventually(
    async () => {
      // each request's own access line (lines are batched: up to 1 s late, in order)
      const path = `/?n=${++n}`;
      const r = await get(sy.proxy[0], path);
      if (r.body.trim() === "c-2") {
        const rec = await sy.waitForLog((l) => l.msg === "request" && l.path === path, 3000, "its line");
        seenOn.add(rec.worker as number);
      }
      return seenOn.size === 2;
    },
    15_000,
    "c-2 served by both workers",
  );
  // logged once, by the primary; each worker's application of it is a debug line
  const lines = (level: number) => sy.logs.filter((r) => reloaded(/\+c-2/)(r) && r.level === level);
  await eventually(() => lines(20).length === 2, 5000, "each worker's debug line");
  assert.equal(lines(30).length, 1, "one info line for the reload");
});
