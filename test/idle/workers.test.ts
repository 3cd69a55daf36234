/** `--workers 2`: the primary owns the idle watchers; requests on both workers share one wake. */
import * as assert from "node:assert/strict";
import * as http from "node:http";
import { describe, test } from "node:test";
import { get, serveYaml, splitAddress } from "../support/switchyard.ts";
import { alive, freePort, header, runApp } from "./helpers.ts";

describe("idle: --workers 2", { timeout: 120_000 }, () => {
  test("one wake for requests on every worker; idle stop counts use on all of them", async (t) => {
    const port = await freePort();
    const sy = await serveYaml(
      t,
      `${header()}  app:
    hosts: ["*"]
    idle: { idle_timeout: 1500ms }
    servers:
      - { name: w-1, url: "http://127.0.0.1:${port}", run: ${runApp(port, { READY_DELAY: 300 })} }
`,
      ["--workers", "2"],
    );
    const [host, p] = splitAddress(sy.proxy[0]);
    // new connections each: the primary hands them to both workers in turn
    const agent = new http.Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY });
    const one = () =>
      new Promise<{ status: number; pid: number }>((ok, fail) => {
        const req = http.request(
          { host, port: p, path: "/", agent, headers: { accept: "application/json" } },
          (res) => {
            let b = "";
            res.setEncoding("utf8").on("data", (c: string) => (b += c));
            res.on("end", () =>
              ok({ status: res.statusCode ?? 0, pid: res.statusCode === 200 ? JSON.parse(b).pid : 0 }),
            );
          },
        );
        req.on("error", fail);
        req.end();
      });
    const all = await Promise.all(Array.from({ length: 40 }, one));
    assert.deepEqual(new Set(all.map((r) => r.status)), new Set([200]));
    assert.equal(new Set(all.map((r) => r.pid)).size, 1);
    const starts = sy.logs.filter((l) => typeof l.msg === "string" && l.msg.startsWith("process started"));
    assert.equal(starts.length, 1, "one start across both workers");
    assert.equal(starts[0].worker, undefined, "started by the primary");
    const metrics = (await get(sy.admin!, "/metrics")).body;
    assert.match(metrics, /switchyard_wakes_total\{service="app",server="w-1",result="ok"\} 1/);
    const pid = all[0].pid;
    await sy.waitForLog((l) => l.msg === "server w-1 stopped (idle)", 15_000);
    assert.ok(!alive(pid));
    // the loading page's stream, served by a worker, relays the primary's progress frames
    const ev = await get(sy.proxy[0], "/$switchyard/wake-events");
    const actions = ev.body
      .split("\n\n")
      .filter(Boolean)
      .map((f) => JSON.parse(f.replace(/^data: /, "")))
      .map((f) => (f.server ? `${f.server}:${f.action}` : f.action));
    assert.deepEqual(actions, ["w-1:starting", "w-1:waiting_ready", "w-1:ready", "ready"]);
    assert.equal(
      sy.logs.filter((l) => typeof l.msg === "string" && l.msg.startsWith("process started")).length,
      2,
    );
    assert.equal((await sy.stop("SIGTERM")).code, 0);
  });
});
