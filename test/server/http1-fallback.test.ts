/**
 * Issue 16: start-up checks Node's HTTP/1 parser binding. With the binding replaced by a broken
 * one (test/support/broken-binding.ts, preloaded), `switchyard serve` logs one warn line and serves
 * on node:http's server and client; SWITCHYARD_HTTP1=native makes the same start fail clearly, and
 * SWITCHYARD_HTTP1=fallback takes that path without a warning.
 */
import * as assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type LogRecord, listening, ROOT, spawnCli } from "../support/cli.ts";
import { type Backend, get, startBackend, tempDir, yamlConfig } from "../support/switchyard.ts";

const PRELOAD = ["--import", join(ROOT, "test/support/broken-binding.ts")];
const isFallbackWarning = (r: LogRecord) => r.level === 40 && r.http1 === "fallback";

describe("HTTP/1 path: capability check and fallback", { timeout: 120_000 }, () => {
  const tmp = tempDir();
  let backend: Backend;
  let file: string;

  before(async () => {
    backend = await startBackend("b1");
    file = tmp.write(
      "switchyard.yaml",
      yamlConfig({ app: { hosts: ["app.test"], servers: [{ name: "b1", url: backend.url }] } }),
    );
  });

  after(async () => {
    await backend.stop();
    tmp.remove();
  });

  /** Starts serve with `env`; returns the proxy address and the process. */
  async function serve(env: NodeJS.ProcessEnv, preload = true) {
    const p = spawnCli(["serve", "-c", file], { env, nodeArgs: preload ? PRELOAD : [] });
    const rec = await listening(p, 45_000);
    return { p, proxy: (rec.proxy as string[])[0] };
  }

  for (const broken of ["missing", "misparse"]) {
    test(`a ${broken} binding: one warn line at start-up, then requests are served on node:http`, async () => {
      const { p, proxy } = await serve({ BROKEN_BINDING: broken, SWITCHYARD_HTTP1: "" });
      try {
        const warns = p.logs.filter(isFallbackWarning);
        assert.equal(warns.length, 1, p.lines.join("\n"));
        assert.match(
          String(warns[0].msg),
          /parser binding is unusable .*running on node:http's server and client/,
        );
        // before "listening": at start-up, not at the first connection
        assert.ok(p.logs.indexOf(warns[0]) < p.logs.findIndex((r) => r.msg === "listening"));
        for (let i = 0; i < 3; i++) {
          const r = await get(proxy, `/x${i}`, { host: "app.test" });
          assert.equal(r.status, 200);
          assert.equal(r.body, "b1\n");
        }
        assert.equal(p.logs.filter(isFallbackWarning).length, 1);
      } finally {
        assert.equal((await p.stop()).code, 0);
      }
    });
  }

  test("SWITCHYARD_HTTP1=native with a broken binding: start-up fails and says why", async () => {
    const p = spawnCli(["serve", "-c", file], {
      env: { BROKEN_BINDING: "misparse", SWITCHYARD_HTTP1: "native" },
      nodeArgs: PRELOAD,
    });
    const exit = await p.exited;
    assert.equal(exit.code, 1);
    const fatal = p.logs.find((r) => r.level === 60);
    assert.match(
      String(fatal?.msg),
      /SWITCHYARD_HTTP1=native, but Node's HTTP\/1 parser binding is unusable/,
    );
  });

  test("SWITCHYARD_HTTP1=fallback with a good binding: no warning; a bad value fails start-up", async () => {
    const { p, proxy } = await serve({ SWITCHYARD_HTTP1: "fallback" }, false);
    try {
      assert.equal((await get(proxy, "/", { host: "app.test" })).status, 200);
      assert.equal(p.logs.filter(isFallbackWarning).length, 0);
    } finally {
      await p.stop();
    }
    const bad = spawnCli(["serve", "-c", file], { env: { SWITCHYARD_HTTP1: "fast" } });
    assert.equal((await bad.exited).code, 1);
    assert.match(
      String(bad.logs.find((r) => r.level === 60)?.msg),
      /SWITCHYARD_HTTP1=fast: expected native, fallback or auto/,
    );
  });
});
