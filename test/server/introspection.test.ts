import * as assert from "node:assert/strict";
import { test } from "node:test";
import { get, startBackend, startSwitchyard, tempDir, yamlConfig } from "../support/switchyard.ts";

test("switchyard serve: switchyard-debug with the admin token gets switchyard-decision; without it, nothing", {
  timeout: 60_000,
}, async () => {
  const tmp = tempDir();
  const b = [await startBackend("api-1"), await startBackend("api-2")];
  const servers = b.map((x) => ({ name: x.name, url: x.url }));
  const withToken = tmp.write(
    "token.yaml",
    yamlConfig({ api: { hosts: ["*"], servers, extra: "    mode: least_conn\n" } }).replace(
      "admin: 127.0.0.1:0\n",
      "admin: { address: 127.0.0.1:0, token: t0ken-for-tests }\n",
    ),
  );
  const open = tmp.write("open.yaml", yamlConfig({ api: { hosts: ["*"], servers } }));
  const [sy, plain] = await Promise.all([
    startSwitchyard(["serve", "-c", withToken], { env: { SWITCHYARD_ADMIN_TOKEN: "" } }),
    startSwitchyard(["serve", "-c", open], { env: { SWITCHYARD_ADMIN_TOKEN: "" } }),
  ]);
  try {
    const none = await get(sy.proxy[0], "/");
    assert.equal(none.headers["switchyard-decision"], undefined);
    const wrong = await get(sy.proxy[0], "/", { headers: { "switchyard-debug": "guess" } });
    assert.equal(wrong.status, 200);
    assert.equal(
      wrong.headers["switchyard-decision"],
      undefined,
      "a wrong token gets nothing, even on loopback",
    );
    const right = await get(sy.proxy[0], "/", { headers: { "switchyard-debug": "t0ken-for-tests" } });
    assert.match(
      String(right.headers["switchyard-decision"]),
      new RegExp(
        `^service=api; server=${right.body.trim()}; mode=least_conn; why="least_conn 0/50"; tries=1$`,
      ),
    );
    // no token configured: a loopback client gets it with any value
    const loop = await get(plain.proxy[0], "/", { headers: { "switchyard-debug": "1" } });
    assert.match(
      String(loop.headers["switchyard-decision"]),
      /^service=api; server=api-[12]; mode=round_robin; why="round robin"; tries=1$/,
    );
    assert.equal((await get(plain.proxy[0], "/")).headers["switchyard-decision"], undefined);
  } finally {
    const exits = await Promise.all([sy.stop(), plain.stop()]);
    await Promise.all(b.map((x) => x.stop()));
    tmp.remove();
    for (const e of exits) assert.equal(e.code, 0);
  }
});
