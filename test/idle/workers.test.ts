/** `--workers 2`: the primary owns the idle watchers; requests on both workers share one wake. */
import * as assert from "node:assert/strict";
import { describe, test } from "node:test";
import { alive, concurrentPids, processStarts, serveIdleApp, wakeActions } from "../support/idle.ts";
import { get } from "../support/switchyard.ts";

describe("idle: --workers 2", { timeout: 120_000 }, () => {
  test("one wake for requests on every worker; idle stop counts use on all of them", async (t) => {
    const { sy } = await serveIdleApp(t, "w-1", {
      idle: "{ idle_timeout: 1500ms }",
      env: { READY_DELAY: 300 },
      args: ["--workers", "2"],
    });
    // new connections each: the primary hands them to both workers in turn
    const all = await concurrentPids(sy.proxy[0], 40);
    assert.deepEqual(new Set(all.map((r) => r.status)), new Set([200]));
    assert.equal(new Set(all.map((r) => r.pid)).size, 1);
    const starts = processStarts(sy);
    assert.equal(starts.length, 1, "one start across both workers");
    assert.equal(starts[0].worker, undefined, "started by the primary");
    const metrics = (await get(sy.admin!, "/metrics")).body;
    assert.match(metrics, /switchyard_wakes_total\{service="app",server="w-1",result="ok"\} 1/);
    const pid = all[0].pid;
    await sy.waitForLog((l) => l.msg === "server w-1 stopped (idle)", 15_000);
    assert.ok(!alive(pid));
    // the loading page's stream, served by a worker, relays the primary's progress frames
    assert.deepEqual(await wakeActions(sy.proxy[0]), [
      "w-1:starting",
      "w-1:waiting_ready",
      "w-1:ready",
      "ready",
    ]);
    assert.equal(processStarts(sy).length, 2);
    assert.equal((await sy.stop("SIGTERM")).code, 0);
  });
});
