import * as assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { test } from "node:test";
import {
  runCli,
  startBackend,
  startSwitchyard,
  tempDir,
  tempDirFor,
  yamlConfig,
} from "../support/switchyard.ts";

const records = (stdout: string) =>
  stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

test("a bad flag value exits 2 with a message naming the flag, before any file is read", async (t) => {
  const tmp = tempDirFor(t);
  // a good file: the flag alone is at fault and the file is not blamed
  const file = tmp.write(
    "ok.yaml",
    yamlConfig({ api: { servers: [{ name: "a", url: "http://127.0.0.1:9" }] } }),
  );
  for (const [args, flag] of [
    [["--listen", "foo"], /^switchyard: --listen: "foo" is not a host:port address/m],
    [["--listen", "127.0.0.1:99999"], /^switchyard: --listen: .*port must be 0-65535/m],
    [["--admin", "x:y"], /^switchyard: --admin: /m],
    [["--log-level", "loud"], /^switchyard: --log-level: must be one of fatal, error, warn, info/m],
    [["--workers", "0"], /--workers must be a whole number/],
  ] as const) {
    for (const withFile of [true, false]) {
      const r = await runCli(["serve", ...(withFile ? ["-c", file] : []), ...args], tmp.dir);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, flag);
      assert.doesNotMatch(r.stderr, /ok\.yaml|invalid configuration/, "the file is not blamed");
      assert.equal(r.stdout, "", "nothing started");
    }
  }
  const unknown = await runCli(["serve", "--lisen", "1"], tmp.dir);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /--lisen/);
});

test("a start-up error shows no stack trace unless --log-level debug", async () => {
  const tmp = tempDir();
  const busy: Server = createServer();
  await new Promise<void>((ok) => busy.listen(0, "127.0.0.1", () => ok()));
  const port = (busy.address() as { port: number }).port;
  try {
    const file = tmp.write(
      "s.yaml",
      yamlConfig({ api: { servers: [{ name: "a", url: "http://127.0.0.1:9" }] } }).replace(
        "listen: 127.0.0.1:0",
        `listen: 127.0.0.1:${port}`,
      ),
    );
    const plain = await runCli(["serve", "-c", file]);
    assert.equal(plain.code, 1);
    const fatal = records(plain.stdout).find((r) => r.level === 60);
    assert.ok(fatal, plain.stdout);
    assert.match(
      String(fatal.msg),
      new RegExp(`cannot start: .*cannot listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE`),
    );
    assert.equal(fatal.err, undefined);
    assert.doesNotMatch(plain.stdout + plain.stderr, /\n\s+at /, "no stack frames");

    const debug = await runCli(["serve", "-c", file, "--log-level", "debug"]);
    assert.equal(debug.code, 1);
    const err = records(debug.stdout).find((r) => r.level === 60)?.err as { stack?: string } | undefined;
    assert.match(String(err?.stack), /\n\s+at /, "the stack at debug");
  } finally {
    busy.close();
    tmp.remove();
  }
});

test("a reload error shows no stack trace unless --log-level debug", { timeout: 60_000 }, async () => {
  const tmp = tempDir();
  const b = await startBackend("b");
  try {
    for (const level of ["info", "debug"]) {
      const good = yamlConfig({ api: { servers: [{ name: "b", url: b.url }] } });
      const file = tmp.write(`${level}.yaml`, good);
      const sy = await startSwitchyard(["serve", "-c", file, "--log-level", level]);
      writeFileSync(file, good.replace("    servers:", "    mode: nope\n    servers:"));
      const failed = await sy.waitForLog((r) => /^config reload failed/.test(String(r.msg)), 10_000);
      assert.match(String(failed.error ?? (failed.err as { message?: string })?.message), /mode/);
      if (level === "info") assert.equal(failed.err, undefined, "no stack at info");
      else assert.match(String((failed.err as { stack?: string }).stack), /\n\s+at /, "the stack at debug");
      const exit = await sy.stop();
      assert.equal(exit.code, 0);
    }
  } finally {
    await b.stop();
    tmp.remove();
  }
});
