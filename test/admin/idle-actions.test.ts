/**
 * The admin API's wake and stop on an idle-managed server (a `run` provider): POST /wake starts
 * it and answers once it is ready, POST /stop stops it; the health JSON says which servers are
 * idle-managed, and a plain server refuses both with 409.
 */
import * as assert from "node:assert/strict";
import { test } from "node:test";
import { healthPool, serverAction } from "../support/admin.ts";
import { alive, runApp } from "../support/idle.ts";
import { freePort } from "../support/ports.ts";
import { get, serveYaml, yamlHead } from "../support/switchyard.ts";

test("admin wake/stop drive an idle server's provider; a plain server answers 409", {
  timeout: 60_000,
}, async (t) => {
  const [port, plain] = [await freePort(), await freePort()];
  const sy = await serveYaml(
    t,
    `${yamlHead()}  app:
    hosts: ["*"]
    healthcheck: { disable: true }
    servers:
      - name: app-1
        url: http://127.0.0.1:${port}
        run: ${runApp(port, { NAME: "app-1" })}
        idle: { idle_timeout: 1h }
      - { name: plain, url: "http://127.0.0.1:${plain}" }
`,
  );
  const admin = sy.admin!;

  let p = await healthPool(admin, "app");
  assert.equal(p["app-1"].idle, true);
  assert.equal(p.plain.idle, false);
  assert.equal(p["app-1"].status, "napping");

  const woke = await serverAction(admin, "app", "app-1", "wake");
  assert.equal(woke.status, 200, woke.body);
  p = await healthPool(admin, "app");
  assert.equal(p["app-1"].status, "healthy", "answered once ready");
  const direct = JSON.parse((await get(`127.0.0.1:${port}`, "/")).body);
  assert.equal(direct.name, "app-1");
  assert.ok(alive(direct.pid));

  const stopped = await serverAction(admin, "app", "app-1", "stop");
  assert.equal(stopped.status, 200, stopped.body);
  assert.equal((await healthPool(admin, "app"))["app-1"].status, "napping");
  assert.equal(alive(direct.pid), false, "the process is gone");

  for (const action of ["wake", "stop"]) {
    const r = await serverAction(admin, "app", "plain", action);
    assert.equal(r.status, 409);
    assert.match(JSON.parse(r.body).error, /no idle provider/);
  }
});
