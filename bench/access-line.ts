/**
 * CPU time of one access line through the CLI's stdout destination (src/log.ts: `createLogger` +
 * `batchedInfo`), stdout a file, in this checkout and optionally another tree, alternating runs;
 * each run writes LINES lines and waits until they are on disk, so the write(2) calls (libuv's
 * thread pool) are counted. The line's fields are written as the proxy writes them (field by field
 * through `AccessLine`; in a tree before that, as one string built per line).
 *
 *   node bench/access-line.ts [--base DIR] [--runs 5] [--lines 300000]
 */
import { spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { AccessLine } from "../src/log.ts";

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
  const access = batchedInfo(logger.child({ component: "access" }), "request") as unknown;
  // the same line both ways: field by field (AccessLine, this checkout) or as a string of fields
  // (trees before it); `bytes` and `ms` vary as in the proxy
  const [client, method, host, path, service, server] = [
    "127.0.0.1",
    "GET",
    "127.0.0.1:19310",
    "/",
    "bench",
    "up-2",
  ];
  const write =
    typeof access === "function"
      ? (i: number) =>
          (access as (fields: string) => void)(
            `,"client":"${client}","method":"${method}","host":"${host}","path":"${path}","status":200,"bytes":${i & 1023},"ms":0.${10 + (i % 90)},"service":"${service}","server":"${server}","tries":1`,
          )
      : (i: number) => {
          const l = access as AccessLine;
          l.begin();
          l.key(',"client":');
          l.str(client);
          l.key(',"method":');
          l.str(method);
          l.key(',"host":');
          l.str(host);
          l.key(',"path":');
          l.str(path);
          l.key(',"status":');
          l.int(200);
          l.key(',"bytes":');
          l.int(i & 1023);
          l.key(',"ms":');
          l.hundredths(10 + (i % 90));
          l.key(',"service":');
          l.str(service);
          l.key(',"server":');
          l.str(server);
          l.key(',"tries":');
          l.int(1);
          l.end();
        };
  for (let i = 0; i < 20_000; i++) write(i); // warm-up
  const c0 = process.cpuUsage();
  for (let i = 0; i < lines; i++) write(i);
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
