/** Hot reload of idle settings: changed settings restart the watcher; a removed `run` server's process is stopped. */
import * as assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { describe, test } from "node:test";
import { alive, runApp } from "../support/idle.ts";
import { freePort } from "../support/ports.ts";
import { eventually, get, serveYaml, startBackend, yamlHead } from "../support/switchyard.ts";

const JSON_ACCEPT = { headers: { accept: "application/json" } };

describe("idle: hot reload", { timeout: 60_000 }, () => {
  test("idle settings added, changed and removed on a running service", async (t) => {
    const port = await freePort();
    const plain = await startBackend("plain");
    t.after(() => plain.stop());
    const conf = (servers: string) => `${yamlHead()}  app:\n    hosts: ["*"]\n    servers:\n${servers}`;
    const runServer = (timeout: string) =>
      `      - { name: r, url: "http://127.0.0.1:${port}", run: ${runApp(port)}, idle: { idle_timeout: ${timeout} } }\n`;
    const sy = await serveYaml(t, conf(`      - { name: plain, url: "${plain.url}" }\n`));
    const file = sy.file;
    let reloads = 0;
    const reloaded = async () => {
      reloads++;
      let n = 0;
      await sy.waitForLog(
        (l) => typeof l.msg === "string" && l.msg.startsWith("config reloaded") && ++n === reloads,
      );
    };

    // added: a napping run server next to the plain one; it only starts when asked for
    writeFileSync(file, conf(runServer("1m")));
    await reloaded();
    const a = JSON.parse((await get(sy.proxy[0], "/", JSON_ACCEPT)).body);
    assert.ok(alive(a.pid));

    // changed idle settings: the old process is stopped, the new watcher naps until a request
    writeFileSync(file, conf(runServer("2m")));
    await reloaded();
    await eventually(() => !alive(a.pid), 5000, "the old process to stop");
    const b = JSON.parse((await get(sy.proxy[0], "/", JSON_ACCEPT)).body);
    assert.notEqual(b.pid, a.pid);

    // removed: its process is stopped
    writeFileSync(file, conf(`      - { name: plain, url: "${plain.url}" }\n`));
    await reloaded();
    await eventually(() => !alive(b.pid), 5000, "the removed server's process to stop");
    assert.equal((await get(sy.proxy[0], "/")).body.trim(), "plain");
    assert.equal((await sy.stop("SIGTERM")).code, 0);
  });
});
