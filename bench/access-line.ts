/**
 * CPU time of one access line through the CLI's stdout destination (src/log.ts: `createLogger` +
 * `batchedInfo`), stdout a file, in this checkout and optionally another tree, alternating runs;
 * each run writes LINES lines and waits until they are on disk, so the write(2) calls (libuv's
 * thread pool) are counted. The line's fields are a fixed string here (building them is a
 * separate cost, `accessFields` in src/server/front.ts).
 *
 *   node bench/access-line.ts [--base DIR] [--runs 5] [--lines 300000]
 */
import { spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const self = fileURLToPath(import.meta.url);
const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};

if (args[0] === "child") {
  const tree = args[1];
  const lines = Number(args[2]);
  const { createLogger, batchedInfo } = (await import(
    pathToFileURL(join(tree, "src/log.ts")).href
  )) as typeof import("../src/log.ts");
  const logger = createLogger({ level: "info", pretty: false });
  const write = batchedInfo(logger.child({ component: "access" }), "request")!;
  const fields =
    ',"client":"127.0.0.1","method":"GET","host":"127.0.0.1:19310","path":"/","status":200,"bytes":12,"ms":0.76,"service":"bench","server":"up-2","tries":1';
  for (let i = 0; i < 20_000; i++) write(fields); // warm-up
  const c0 = process.cpuUsage();
  for (let i = 0; i < lines; i++) write(fields);
  process.on("exit", () => {
    const c = process.cpuUsage(c0);
    process.stderr.write(`${(((c.user + c.system) * 1000) / lines).toFixed(0)}\n`);
  });
} else {
  const runs = Number(opt("runs", "5"));
  const lines = Number(opt("lines", "300000"));
  const base = opt("base", "");
  const trees = base
    ? { base: resolve(base), this: resolve(self, "../..") }
    : { this: resolve(self, "../..") };
  const dir = mkdtempSync(join(tmpdir(), "access-line-"));
  const ns: Record<string, number[]> = {};
  try {
    for (let r = 0; r < runs; r++) {
      for (const [name, tree] of Object.entries(trees)) {
        const file = join(dir, `${name}.log`);
        const fd = openSync(file, "w");
        const out = spawnSync(process.execPath, [self, "child", tree, String(lines)], {
          stdio: ["ignore", fd, "pipe"],
          encoding: "utf8",
        });
        closeSync(fd);
        const v = Number(out.stderr.trim().split("\n").pop());
        if (ns[name] === undefined) ns[name] = [];
        ns[name].push(v);
        console.log(
          `run ${r + 1} ${name.padEnd(4)} ${v} ns/line  ${(statSync(file).size / lines).toFixed(0)} bytes/line`,
        );
      }
    }
    for (const [name, xs] of Object.entries(ns)) {
      const s = [...xs].sort((a, b) => a - b);
      console.log(`median ${name}: ${s[Math.floor(s.length / 2)]} ns/line`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
