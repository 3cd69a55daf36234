/**
 * The server's memory under load: `switchyard serve` compiled to JavaScript as users run `dist/`
 * (type stripping alone costs ~30 MB RSS), 3 canned-response upstreams and wrk -c64 on core 1,
 * the server on core 0. Each variant is started fresh, warmed up for 3 s, then measured for
 * `--rounds` windows of `--duration` s: the highest RSS of each window (sampled every 250 ms),
 * req/s and CPU time per request; variants alternate `--sets` times so drift in the machine's
 * load hits them alike. At the end, the medians and the last run's RSS split into the binary's
 * pages (file-backed) and anonymous memory (heaps).
 *
 *   node bench/serve-memory.ts [--log] [--sets 4] [--rounds 2] [--duration 6] [--connections 64]
 *       [--base DIR] [--variant 'NAME:KEY=VALUE;KEY=VALUE']...
 *
 * Variants: this checkout as it is (`this`), the tree in DIR (`base`; e.g.
 * `git worktree add /tmp/sy-base <commit>` and a node_modules symlink), and any number of this
 * checkout with extra environment, e.g. `--variant 'semi2:SWITCHYARD_V8_FLAGS=--max-semi-space-size=2'`.
 * `--log` runs every variant at `--log-level info` with the access log written to a file.
 *
 * RSS grows over the first minute of load when V8 collects the old generation late: raise
 * `--rounds` to see where it settles. Needs `wrk` and `taskset` on PATH.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { compileTree } from "./lib/compile.ts";
import { switchyardYaml } from "./lib/configs.ts";
import { freePort, sampleRss, treeCpuSeconds, waitHttp } from "./lib/procs.ts";
import { median } from "./lib/report.ts";
import { wrk } from "./lib/wrk.ts";

const here = resolve(fileURLToPath(import.meta.url), "../..");
const { values: flags } = parseArgs({
  options: {
    log: { type: "boolean", default: false },
    sets: { type: "string", default: "4" },
    rounds: { type: "string", default: "2" },
    duration: { type: "string", default: "6" },
    connections: { type: "string", default: "64" },
    base: { type: "string" },
    variant: { type: "string", multiple: true, default: [] },
  },
});

interface Variant {
  name: string;
  root: string;
  env: Record<string, string>;
}

const variants: Variant[] = [{ name: "this", root: here, env: {} }];
if (flags.base) variants.push({ name: "base", root: resolve(flags.base), env: {} });
for (const v of flags.variant) {
  const i = v.indexOf(":");
  if (i < 1) throw new Error(`--variant ${JSON.stringify(v)}: expected NAME:KEY=VALUE;KEY=VALUE`);
  const env: Record<string, string> = {};
  for (const kv of v
    .slice(i + 1)
    .split(";")
    .filter(Boolean)) {
    const eq = kv.indexOf("=");
    if (eq < 1) throw new Error(`--variant ${JSON.stringify(v)}: ${JSON.stringify(kv)} is not KEY=VALUE`);
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  variants.push({ name: v.slice(0, i), root: here, env });
}

const dir = mkdtempSync(join(tmpdir(), "sy-serve-memory-"));
const children: ChildProcess[] = [];

/** A tree's `src/cli.ts` compiled as `npm run build` would emit it, in dir/NAME. */
function compile(v: Variant): string {
  const out = join(dir, v.name);
  const failed = compileTree(v.root, out, [join(v.root, "src/cli.ts")]);
  if (failed !== undefined) throw new Error(`compiling ${v.root}: ${failed}`);
  // the compiled files import their packages from the tree's own node_modules
  spawnSync("ln", ["-s", join(v.root, "node_modules"), join(out, "node_modules")]);
  return join(out, "src/cli.js");
}

/** wrk, one thread on core 1; errors (non-2xx/3xx, socket) are reported, not hidden in the figures. */
async function load(port: number, seconds: number): Promise<{ rps: number; requests: number }> {
  const r = await wrk({
    cpus: "1",
    threads: 1,
    connections: Number(flags.connections),
    seconds,
    url: `http://127.0.0.1:${port}/`,
  });
  if (r.errors > 0) process.stderr.write(`wrk: ${r.status} non-2xx/3xx, ${r.socket} socket errors\n`);
  return r;
}

function split(pid: number): string {
  const roll = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(roll)?.[1] ?? 0);
  return `anonymous ${(kb("Anonymous") / 1024).toFixed(0)} MB, file-backed ${((kb("Rss") - kb("Anonymous")) / 1024).toFixed(0)} MB`;
}

const results = new Map(
  variants.map((v) => [v.name, { rss: [] as number[], rps: [] as number[], cpu: [] as number[], split: "" }]),
);
try {
  const cli = new Map(variants.map((v) => [v.name, v.root === here && v.name !== "this" ? "" : compile(v)]));
  for (const v of variants) if (cli.get(v.name) === "") cli.set(v.name, cli.get("this")!);
  const ups = [await freePort(), await freePort(), await freePort()];
  for (const p of ups) {
    const up = spawn(
      "taskset",
      ["-c", "1", process.execPath, join(here, "bench/quick-proxy.ts"), "upstream", String(p)],
      {
        stdio: "ignore",
      },
    );
    children.push(up);
  }
  for (const p of ups) await waitHttp(p, undefined);
  for (let set = 0; set < Number(flags.sets); set++) {
    for (let k = 0; k < variants.length; k++) {
      const v = variants[(k + set) % variants.length];
      const port = await freePort();
      const cfg = join(dir, `${v.name}.yaml`);
      writeFileSync(cfg, switchyardYaml(port, await freePort(), ups));
      const log = flags.log ? openSync(join(dir, `${v.name}.log`), "w") : "ignore";
      const child = spawn(
        "taskset",
        [
          "-c",
          "0",
          process.execPath,
          cli.get(v.name)!,
          "serve",
          "-c",
          cfg,
          "--log-level",
          flags.log ? "info" : "warn",
        ],
        { stdio: ["ignore", log, "inherit"], env: { ...process.env, NODE_ENV: "production", ...v.env } },
      );
      if (typeof log === "number") closeSync(log);
      children.push(child);
      await waitHttp(port, undefined, 15_000);
      const pid = child.pid!; // taskset execs node; serve re-executes itself in place (same pid)
      await load(port, 3);
      const row = results.get(v.name)!;
      const line: string[] = [];
      for (let r = 0; r < Number(flags.rounds); r++) {
        const rss = sampleRss(pid);
        const cpu0 = treeCpuSeconds(pid);
        const res = await load(port, Number(flags.duration));
        const max = rss().sum / 1048576;
        const cpu = ((treeCpuSeconds(pid) - cpu0) * 1e6) / Math.max(1, res.requests);
        row.rss.push(max);
        row.rps.push(res.rps);
        row.cpu.push(cpu);
        line.push(`${max.toFixed(0)} MB ${res.rps.toFixed(0)} req/s ${cpu.toFixed(1)} µs/req`);
      }
      row.split = split(pid);
      console.log(`set ${set + 1} ${v.name.padEnd(10)} ${line.join(" | ")}`);
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    }
  }
  for (const v of variants) {
    const row = results.get(v.name)!;
    console.log(
      `median ${v.name.padEnd(10)} RSS ${median(row.rss).toFixed(0)} MB (${Math.min(...row.rss).toFixed(0)}-${Math.max(...row.rss).toFixed(0)}), ` +
        `${median(row.rps).toFixed(0)} req/s, ${median(row.cpu).toFixed(2)} µs CPU/req; last run: ${row.split}`,
    );
  }
} finally {
  for (const c of children) c.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
}
