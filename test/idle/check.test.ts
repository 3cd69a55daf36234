/** `switchyard check` on idle keys: every problem as file:line: path: message, exit 1; a good file summarised. */
import * as assert from "node:assert/strict";
import { test } from "node:test";
import { runCli, tempDir } from "../support/switchyard.ts";

test("switchyard check: idle problems with file:line, and a valid file's summary names the providers", {
  timeout: 30_000,
}, async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const bad = tmp.write(
    "bad.yaml",
    `services:
  app:
    idle: { stop_method: hibernate, stop_signal: SIGNOPE, stop_timeout: -1s }
    servers:
      - { name: a, url: "http://127.0.0.1:3001", run: { command: "  " }, idle: { depends_on: [ghost] } }
      - { name: b, url: "http://127.0.0.1:3002", run: [node, b.js], docker: { container: b } }
`,
  );
  const r = await runCli(["check", "-c", bad]);
  assert.equal(r.code, 1);
  const out = r.stdout + r.stderr;
  for (const re of [
    /bad\.yaml:3: services\.app\.idle\.stop_method: unknown stop_method "hibernate"/,
    /bad\.yaml:3: services\.app\.idle\.stop_signal: unknown signal "SIGNOPE"/,
    /bad\.yaml:3: services\.app\.idle\.stop_timeout: must be greater than 0/,
    /bad\.yaml:5: services\.app\.servers\[0\]\.run\.command: empty `run` command/,
    /bad\.yaml:6: services\.app\.servers\[1\]\.docker: a server has one provider/,
  ]) {
    assert.match(out, re);
  }
  const good = tmp.write(
    "good.yaml",
    `services:
  app:
    idle: { idle_timeout: 15m }
    servers:
      - { name: a, url: "http://127.0.0.1:3001", run: [node, a.js] }
      - { name: b, url: "http://127.0.0.1:3002", exec: { start: "true", stop: "true" }, idle: { idle_timeout: 0 } }
`,
  );
  const ok = await runCli(["check", "-c", good]);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /a http:\/\/127\.0\.0\.1:3001 \(run, idle 15m0s\)/);
  assert.match(ok.stdout, /b http:\/\/127\.0\.0\.1:3002 \(exec, always on\)/);
});
