import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { promisify } from "node:util";

const run = promisify(execFile);
const root = new URL("..", import.meta.url).pathname;
const node = process.execPath;

test("the README's library example is examples/library.ts, verbatim", async () => {
  const readme = await readFile(new URL("README.md", `file://${root}`), "utf8");
  const example = await readFile(new URL("examples/library.ts", `file://${root}`), "utf8");
  const block = readme.split("<!-- example:library -->\n```ts\n")[1]?.split("\n```")[0];
  assert.ok(block, "README has the library example block");
  assert.equal(block.trim(), example.trim());
});

test("after `npm run build`, the library example runs as written and exits by itself", {
  timeout: 120_000,
}, async () => {
  // the package's own build, then self-reference through "exports" as a user of the checkout would
  await run(node, [`${root}node_modules/typescript/bin/tsc`, "-p", "tsconfig.build.json"], { cwd: root });
  const { stdout } = await run(node, ["examples/library.ts"], { cwd: root, timeout: 60_000 });
  assert.deepEqual(stdout.trim().split("\n"), [
    "hello from a",
    "hello from a",
    "hello from b",
    "hello from a",
    "2/2 servers are healthy",
  ]);
});
