/**
 * Compiles entry points of a source tree to JavaScript as `npm run build` emits it (tsc, no type
 * check: others' work in progress must not stop a bench), for measuring what users run from
 * `dist/`: Node's type stripping alone costs ~30 MB of RSS.
 */
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

/** Compiles `entries` (paths under `root`) into `outDir`; undefined, or tsc's output when it failed. */
export function compileTree(root: string, outDir: string, entries: string[]): string | undefined {
  const r = spawnSync(
    process.execPath,
    [
      join(root, "node_modules/typescript/bin/tsc"),
      ...["--noCheck", "--skipLibCheck", "--module", "nodenext", "--moduleResolution", "nodenext"],
      ...["--target", "es2023", "--types", "node", "--rewriteRelativeImportExtensions"],
      ...["--allowImportingTsExtensions", "--verbatimModuleSyntax", "--outDir", outDir, "--rootDir", root],
      ...entries,
    ],
    { cwd: root, encoding: "utf8" },
  );
  if (r.status !== 0) return `${r.stdout}${r.stderr}`.trim() || `tsc exited ${r.status}`;
  // outside the package (e.g. under node_modules/.cache) there is no package scope: say these are ES modules
  writeFileSync(join(outDir, "package.json"), '{ "type": "module", "private": true }\n');
  return undefined;
}
