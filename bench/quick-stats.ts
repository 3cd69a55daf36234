/**
 * Cost of the live request stats (`GET /api/stats`: a per-second ring and a latency histogram per
 * server, recorded as each request finishes): `switchyard serve` from this checkout against the
 * same CLI from another source tree (the commit before the stats), same config, interleaved
 * rounds. Canned-response upstreams (quick-proxy's) and wrk on core 1, the proxy on core 0.
 * Prints req/s and CPU time per request (the figure that survives a busy machine best) per round,
 * then the medians.
 *
 *   git archive <commit-before> | tar -x -C /tmp/sy-base && ln -s $PWD/node_modules /tmp/sy-base/
 *   node bench/quick-stats.ts --base /tmp/sy-base [--duration 5] [--connections 64] [--rounds 3]
 *
 * `--access-log` instead compares this checkout with the access log off (`access_log: false`) and
 * on (the default), both at `--log-level info` with stdout a file; it prints the log bytes
 * written by the end of each round.
 *
 *   node bench/quick-stats.ts --access-log [--duration 5] [--connections 64] [--rounds 3]
 *
 * `--access-log --base DIR` runs four: the access log off and on, in DIR and in this checkout.
 *
 * Needs `wrk` and `taskset` on PATH.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { switchyardYaml } from "./lib/configs.ts";
import { freePort, treeCpuSeconds, waitHttp } from "./lib/procs.ts";
import { median } from "./lib/report.ts";

const here = resolve(fileURLToPath(import.meta.url), "../..");
const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const base = opt("base", "");
const accessLog = args.includes("--access-log");
if (!base && !accessLog) {
  process.stderr.write(
    "usage: node bench/quick-stats.ts --base DIR | --access-log [--duration 5] [--rounds 3]\n",
  );
  process.exit(2);
}
/**
 * The variants compared: a base tree against this one, or the access log off against on; with
 * both flags, the access log off and on in the base tree and in this one (four variants).
 */
const both = accessLog && base !== "";
const [A, B] = accessLog ? ["off", "on"] : ["base", "stats"];
const kinds = both ? ["base-off", "base-on", A, B] : [A, B];
const duration = Number(opt("duration", "5"));
const connections = Number(opt("connections", "64"));
const rounds = Number(opt("rounds", "3"));

function wrk(port: number, seconds: number): { rps: number; requests: number } {
  const out = execFileSync(
    "taskset",
    ["-c", "1", "wrk", "-t1", `-c${connections}`, `-d${seconds}s`, `http://127.0.0.1:${port}/`],
    { encoding: "utf8" },
  );
  if (/Non-2xx|Socket errors/.test(out)) process.stderr.write(out);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0),
    requests: Number(/(\d+) requests in/.exec(out)?.[1] ?? 0),
  };
}

const dir = mkdtempSync(join(tmpdir(), "sy-quick-stats-"));
const children: ChildProcess[] = [];
const results: Record<string, { rps: number[]; cpu: number[] }> = Object.fromEntries(
  kinds.map((k) => [k, { rps: [] as number[], cpu: [] as number[] }]),
);
try {
  const ups = [await freePort(), await freePort(), await freePort()];
  for (const p of ups) {
    children.push(
      spawn(
        "taskset",
        ["-c", "1", process.execPath, join(here, "bench/quick-proxy.ts"), "upstream", String(p)],
        {
          stdio: "ignore",
        },
      ),
    );
  }
  for (const p of ups) await waitHttp(p, undefined);
  for (let r = 0; r < rounds; r++) {
    // alternate which goes first, so drift in the machine's load hits both alike
    const order = kinds.map((_, i) => kinds[(i + r) % kinds.length]);
    for (const kind of order) {
      const root = kind.startsWith("base") ? resolve(base) : here;
      const port = await freePort();
      const cfg = join(dir, `${kind}.yaml`);
      const yaml = switchyardYaml(port, await freePort(), ups);
      writeFileSync(cfg, kind.endsWith("off") ? `access_log: false\n${yaml}` : yaml);
      const level = accessLog ? "info" : "warn";
      // the log goes to a file: a pipe to this process would stall while wrk runs (execFileSync)
      const logFile = join(dir, `${kind}.log`);
      const out = accessLog ? openSync(logFile, "w") : "ignore";
      const child = spawn(
        "taskset",
        ["-c", "0", process.execPath, join(root, "src/cli.ts"), "serve", "-c", cfg, "--log-level", level],
        { stdio: ["ignore", out, "inherit"] },
      );
      if (typeof out === "number") closeSync(out);
      const logged = () => (accessLog ? statSync(logFile).size : 0);
      children.push(child);
      await waitHttp(port, undefined);
      wrk(port, 1); // warm-up
      const cpu0 = treeCpuSeconds(child.pid!);
      const res = wrk(port, duration);
      const cpu = ((treeCpuSeconds(child.pid!) - cpu0) * 1e6) / Math.max(1, res.requests);
      results[kind].rps.push(res.rps);
      results[kind].cpu.push(cpu);
      console.log(
        `round ${r + 1} ${kind.padEnd(5)} ${res.rps.toFixed(0).padStart(7)} req/s  ${cpu.toFixed(1)} µs CPU/req${accessLog ? `  ${(logged() / 1048576).toFixed(1)} MB of log` : ""}`,
      );
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    }
  }
  if (both) {
    for (const k of kinds) {
      console.log(
        `median ${k.padEnd(8)} ${median(results[k].rps).toFixed(0)} req/s ${median(results[k].cpu).toFixed(1)} µs/req`,
      );
    }
    for (const side of ["base-", ""]) {
      const off = median(results[`${side}off`].cpu);
      const on = median(results[`${side}on`].cpu);
      console.log(
        `${side || "this "}access log: +${(on - off).toFixed(1)} µs/req (${((on / off - 1) * 100).toFixed(1)}%)`,
      );
    }
  }
  const b = results[A];
  const s = results[B];
  const dr = (median(s.rps) / median(b.rps) - 1) * 100;
  const dc = (median(s.cpu) / median(b.cpu) - 1) * 100;
  console.log(
    `median: ${A} ${median(b.rps).toFixed(0)} req/s ${median(b.cpu).toFixed(1)} µs/req; ${B} ${median(s.rps).toFixed(0)} req/s ${median(s.cpu).toFixed(1)} µs/req; throughput ${dr >= 0 ? "+" : ""}${dr.toFixed(1)}%, CPU/req ${dc >= 0 ? "+" : ""}${dc.toFixed(1)}%`,
  );
} finally {
  for (const c of children) c.kill();
  rmSync(dir, { recursive: true, force: true });
}
