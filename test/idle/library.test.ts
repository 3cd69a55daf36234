/** examples/idle.ts runs as written (against the sources: "switchyard-lb" mapped to src/index.ts). */
import * as assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { NODE, ROOT } from "../support/cli.ts";
import { tempDir } from "../support/switchyard.ts";

test("examples/idle.ts: napping, woken by a request, answered, healthy, stopped", {
  timeout: 60_000,
}, async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const src = readFileSync(join(ROOT, "examples/idle.ts"), "utf8").replace(
    '"switchyard-lb"',
    JSON.stringify(join(ROOT, "src/index.ts")),
  );
  const file = join(tmp.dir, "idle.ts");
  writeFileSync(file, src);
  const { stdout } = await promisify(execFile)(NODE, [file], { timeout: 30_000 });
  assert.deepEqual(stdout.trim().split("\n"), ["napping", "hello from the woken app", "healthy"]);
});
