import * as assert from "node:assert/strict";
import { test } from "node:test";
import type { LogRecord } from "../support/cli.ts";
import { freePort } from "../support/ports.ts";
import { eventually, get, serveYaml, startBackend, startSwitchyard, tempDir } from "../support/switchyard.ts";

const isAccess = (r: LogRecord) => r.component === "access" && r.msg === "request";

test("access log: one info line per request with the resolved client, status, bytes, service, server and tries; off per service; unmatched hosts too; passive_cooldown brings an ejected server back", {
  timeout: 60_000,
}, async (t) => {
  const alive = await startBackend("alive", 0, t);
  const dead = await freePort();
  const sy = await serveYaml(
    t,
    `listen: 127.0.0.1:0
admin: 127.0.0.1:0
services:
  api:
    hosts: [api.test]
    options: { header: X-Forwarded-For, from: [127.0.0.1] }
    healthcheck: { disable: true }
    passive_cooldown: 1s
    servers:
      - { name: dead, url: "http://127.0.0.1:${dead}" }
      - { name: alive, url: "${alive.url}" }
  quiet:
    hosts: [quiet.test]
    access_log: false
    servers:
      - { name: q, url: "${alive.url}" }
`,
    [],
    { cleanExit: true },
  );
  const proxy = sy.proxy[0];
  // round robin over [dead, alive]: within two requests one goes to `dead`, is refused and retried
  for (let i = 0; i < 2; i++) {
    const r = await get(proxy, `/p?i=${i}`, {
      host: "api.test",
      headers: { "x-forwarded-for": "203.0.113.7" },
    });
    assert.equal(r.status, 200);
  }
  const retried = await sy.waitForLog((r) => isAccess(r) && r.tries === 2, 5000, "a retried request's line");
  assert.equal(retried.level, 30, "at info");
  assert.equal(retried.client, "203.0.113.7", "the resolved client, not the TCP peer");
  assert.equal(retried.method, "GET");
  assert.equal(retried.host, "api.test");
  assert.match(String(retried.path), /^\/p\?i=\d$/);
  assert.equal(retried.status, 200);
  assert.equal(retried.bytes, "alive\n".length);
  assert.equal(retried.service, "api");
  assert.equal(retried.server, "alive", "the server that answered");
  assert.equal(typeof retried.ms, "number");

  // health checks off: the ejection says how and when the server comes back...
  const ejected = await sy.waitForLog((r) => r.action === "ejected" && r.server === "dead", 5000);
  assert.match(String(ejected.msg), /taken out back in 1s \(no active health check; passive_cooldown\)/);
  // ...and it does: after the cooldown a request reaches it again (and ejects it again)
  const mark = sy.logs.length;
  await eventually(
    async () => {
      await get(proxy, "/again", { host: "api.test" });
      return sy.logs.slice(mark).some((r) => r.action === "ejected" && r.server === "dead");
    },
    10_000,
    "the dead server back after passive_cooldown",
  );

  // a service with access_log: false writes none; a Host nobody serves is logged with its 404
  assert.equal((await get(proxy, "/q", { host: "quiet.test" })).status, 200);
  assert.equal((await get(proxy, "/nobody", { host: "nobody.test" })).status, 404);
  const unmatched = await sy.waitForLog((r) => isAccess(r) && r.host === "nobody.test", 5000);
  assert.equal(unmatched.status, 404);
  assert.equal(unmatched.service, undefined);
  assert.equal(unmatched.client, "127.0.0.1");
  // lines leave in order through one buffer: had quiet.test been logged, it would be in by now
  assert.equal(sy.logs.filter((r) => isAccess(r) && r.host === "quiet.test").length, 0);
});

test("access log: `access_log: false` at the top turns it off; on by default, in by exit", {
  timeout: 60_000,
}, async () => {
  const tmp = tempDir();
  const b = await startBackend("b");
  const services = `services:\n  web:\n    hosts: ["*"]\n    healthcheck: { disable: true }\n    servers: ["${b.url}"]\n`;
  try {
    const count = async (top: string) => {
      const file = tmp.write("s.yaml", `listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\n${top}${services}`);
      const sy = await startSwitchyard(["serve", "-c", file]);
      assert.equal((await get(sy.proxy[0], "/x")).status, 200);
      // stopped at once: what the buffer holds is written at exit, whatever the 1 s batching
      const exit = await sy.stop();
      assert.equal(exit.code, 0);
      return sy.logs.filter(isAccess).length;
    };
    assert.equal(await count("access_log: false\n"), 0);
    assert.equal(await count(""), 1);
  } finally {
    await b.stop();
    tmp.remove();
  }
});
