import * as assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { ExecProvider } from "./exec.ts";

test("exec: start, pause, resume, stop and status run their commands; state follows status", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "switchyard-exec-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const log = join(dir, "log");
  const flag = join(dir, "up");
  const p = new ExecProvider({
    start: `echo start >> ${log}; touch ${flag}`,
    stop: `echo stop >> ${log}; rm -f ${flag}`,
    pause: `echo pause >> ${log}; rm -f ${flag}`,
    resume: `echo resume >> ${log}; touch ${flag}`,
    status: `test -f ${flag}`,
  });
  const ac = new AbortController();
  assert.equal(await p.state(), "stopped");
  await p.start(ac.signal);
  assert.equal(await p.state(), "running");
  await p.stop({ method: "pause", signal: undefined, timeout: 5000 });
  assert.equal(await p.state(), "paused");
  await p.start(ac.signal);
  await p.stop({ method: "stop", signal: undefined, timeout: 5000 });
  assert.equal(await p.state(), "stopped");
  assert.deepEqual(readFileSync(log, "utf8").trim().split("\n"), ["start", "pause", "resume", "stop"]);
});

test("exec: a stop past its bound is killed (whole process group) and reported; a failing start carries its last stderr line", async () => {
  const p = new ExecProvider({
    start: "echo first >&2; echo 'unit app2.service not found' >&2; exit 5",
    stop: "sleep 30 & sleep 30; echo never",
  });
  await assert.rejects(
    p.stop({ method: "stop", signal: undefined, timeout: 200 }),
    /stop command did not finish within 200ms/,
  );
  // (had the background `sleep 30` survived, it would hold the output pipe and the rejection with it)
  await assert.rejects(p.start(new AbortController().signal), {
    message: "start command exited with code 5: unit app2.service not found",
  });
  // a start aborted by its signal (wake_timeout) ends at once
  const ac = new AbortController();
  const slow = new ExecProvider({ start: "sleep 30", stop: "true" });
  const started = slow.start(ac.signal);
  ac.abort(new Error("wake_timeout"));
  await assert.rejects(started, /wake_timeout/);
});
