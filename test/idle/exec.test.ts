/**
 * The `exec` provider with shell scripts that start and stop a real backend; a failing start's
 * last stderr line is in the wake error (502 body, health detail, wake-events).
 */
import * as assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { NODE } from "../support/cli.ts";
import { APP, alive, IDLE_FIXTURES as FIXTURES, serveIdleService } from "../support/idle.ts";
import { freePort } from "../support/ports.ts";
import { eventually, get, serveYaml, tempDir, yamlHead } from "../support/switchyard.ts";

const JSON_ACCEPT = { headers: { accept: "application/json" } };

describe("idle: exec provider", { timeout: 60_000 }, () => {
  test("start and stop scripts run a real backend: woken by a request, stopped when idle", async (t) => {
    const tmp = tempDir();
    t.after(() => tmp.remove());
    const port = await freePort();
    const pidfile = join(tmp.dir, "app.pid");
    const env = `NODE='${NODE}' APP='${APP}' PORT=${port} NAME=execd PIDFILE='${pidfile}'`;
    const sy = await serveYaml(
      t,
      `${yamlHead()}  app:
    hosts: ["*"]
    idle: { idle_timeout: 300ms }
    servers:
      - name: x-1
        url: http://127.0.0.1:${port}
        exec:
          start: "${env} ${join(FIXTURES, "start-backend.sh")}"
          stop: "${env} ${join(FIXTURES, "stop-backend.sh")}"
          status: "${env} ${join(FIXTURES, "status-backend.sh")}"
`,
    );
    assert.ok(!existsSync(pidfile), "not started before a request");
    const r = await get(sy.proxy[0], "/hello", JSON_ACCEPT);
    assert.equal(r.status, 200);
    const body = JSON.parse(r.body);
    assert.equal(body.name, "execd");
    assert.equal(Number(readFileSync(pidfile, "utf8")), body.pid);
    await sy.waitForLog((l) => l.msg === "server x-1 stopped (idle)");
    await eventually(() => !alive(body.pid), 5000, "the backend to stop");
    assert.ok(!existsSync(pidfile));
  });

  test("a failing start: 502 with the command's last stderr line; error status with the reason", async (t) => {
    const port = await freePort();
    const sy = await serveIdleService(
      t,
      `      - name: broken
        url: http://127.0.0.1:${port}
        exec: { start: "FAIL_START=app2.service ${join(FIXTURES, "start-backend.sh")}", stop: "true" }
`,
      { idle: "{ idle_timeout: 1m }" },
    );
    const r = await get(sy.proxy[0], "/", JSON_ACCEPT);
    assert.equal(r.status, 502);
    assert.match(r.body, /broken/);
    assert.match(r.body, /no such unit: app2\.service/);
    const h = JSON.parse((await get(sy.admin!, "/api/health/app")).body);
    const srv = Object.values(h.extra.pool)[0] as { status: string; detail: string };
    assert.equal(srv.status, "error");
    assert.match(srv.detail, /start command exited with code 4: no such unit: app2\.service/);
    // within the back-off the next request does not run the command again
    const again = await get(sy.proxy[0], "/", JSON_ACCEPT);
    assert.equal(again.status, 503);
    assert.equal(sy.logs.filter((l) => l.command === "start" && l.stream === "stderr").length, 2);
  });
});
