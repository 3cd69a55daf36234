/**
 * `npm run bench`: switchyard against the ceiling (direct), nginx (1 worker), HAProxy (1 thread),
 * a bare node:http + undici proxy, and switchyard with 1 and N workers and with its access log on
 * (`switchyard-log`, against `switchyard` without it) — interleaved by round, loaded
 * by wrk on loopback, the balancer pinned apart from wrk + upstreams. Writes bench/results/latest.md.
 *
 *   npm run bench                         # default: 3 rounds × 10 s, 64 and 256 connections (~17 min)
 *   npm run bench -- --quick              # smoke run (~2 min)
 *   npm run bench -- --balancer-cpus 0-3 --load-cpus 4-7 --workers 4 --duration 20 --rounds 5
 *   npm run bench -- --help
 *
 * Needs root on a fresh machine (installs nginx, haproxy, wrk with apt-get when missing).
 */
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { compileTree } from "./lib/compile.ts";
import {
  ECHO_MODULE,
  haproxyBalancer,
  nginxBalancer,
  nginxUpstreams,
  switchyardYaml,
} from "./lib/configs.ts";
import {
  cpuList,
  cpuTimes,
  freePort,
  killAllSync,
  type Spawned,
  sampleRss,
  selfCpuSeconds,
  setNiceness,
  sleep,
  start,
  stop,
  stopAll,
  treeCpuSeconds,
  treeRss,
  treeRunqueueWait,
  waitHttp,
} from "./lib/procs.ts";
import { type Measurement, type Report, render } from "./lib/report.ts";
import { wrk } from "./lib/wrk.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const NODE = process.execPath;

const { values: flags } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    duration: { type: "string" },
    warmup: { type: "string" },
    rounds: { type: "string" },
    connections: { type: "string" },
    "slow-connections": { type: "string" },
    "slow-delay": { type: "string", default: "5" },
    workers: { type: "string" },
    "balancer-cpus": { type: "string" },
    "load-cpus": { type: "string" },
    "idle-connections": { type: "string" },
    "quiet-wait": { type: "string", default: "0" },
    nice: { type: "string", default: "0" },
    only: { type: "string" },
    driver: { type: "string", default: "auto" },
    source: { type: "string", default: "js" },
    "skip-slow": { type: "boolean", default: false },
    "skip-idle": { type: "boolean", default: false },
    "skip-pick": { type: "boolean", default: false },
    "no-install": { type: "boolean", default: false },
    out: { type: "string" },
    help: { type: "boolean", default: false },
  },
});

if (flags.help) {
  console.log(`npm run bench -- [options]
  --quick                 smoke run: 1 round, 3 s measurements, 1 s warm-up, 2,000 idle connections
  --duration S            seconds per measurement (default 10)
  --warmup S              seconds of warm-up load after each candidate starts (default 2)
  --rounds N              rounds, candidates interleaved per round; medians reported (default 3)
  --connections L         wrk connections, fast upstreams (default 64,256)
  --slow-connections L    wrk connections, delayed upstreams (default 64)
  --slow-delay MS         upstream delay of the second variant (default 5)
  --workers N             workers of the multi-worker switchyard candidate (default: cores = ${os.availableParallelism()})
  --balancer-cpus LIST    taskset list for the balancer (default 0)
  --load-cpus LIST        taskset list for wrk and the upstreams (default 1)
  --idle-connections N    idle keep-alive connections for the RSS check (default 10000)
  --quiet-wait S          before each candidate, wait up to S s for other processes' load on the bench's
                          CPUs to fall under 25% of a core (for shared machines; default 0 = off)
  --nice=N                run every bench process with \`nice -n N\` (e.g. --nice=-10 on a shared machine)
  --only LIST             candidates: direct,nginx,haproxy,bare,switchyard,switchyard-log,switchyard-fallback,switchyard-wN
  --driver auto|cli|lib   how to run switchyard (default auto: the CLI when it works, else the library)
  --source js|ts          js (default): run the Node candidates as JavaScript compiled from the working tree
                          (tsc --noCheck, what users run from dist/); ts: the .ts files via type stripping
  --skip-slow --skip-idle --skip-pick --no-install
  --out FILE              markdown output (default bench/results/latest.md)`);
  process.exit(0);
}

const quick = flags.quick;
const cores = os.availableParallelism();
const cfg = {
  duration: Number(flags.duration ?? (quick ? 3 : 10)),
  warmup: Number(flags.warmup ?? (quick ? 1 : 2)),
  rounds: Number(flags.rounds ?? (quick ? 1 : 3)),
  connections: list(flags.connections ?? "64,256"),
  slowConnections: list(flags["slow-connections"] ?? "64"),
  slowDelay: Number(flags["slow-delay"]),
  workers: Number(flags.workers ?? cores),
  balancerCpus: flags["balancer-cpus"] ?? "0",
  loadCpus: flags["load-cpus"] ?? (cores > 1 ? "1" : "0"),
  idleConnections: Number(flags["idle-connections"] ?? (quick ? 2000 : 10_000)),
  quietWait: Number(flags["quiet-wait"]),
  nice: Number(flags.nice),
  out: path.resolve(flags.out ?? path.join(ROOT, "bench/results/latest.md")),
};
const loadCount = cpuCount(cfg.loadCpus);
const balancerCpus = cpuList(cfg.balancerCpus);
const loadCpus = cpuList(cfg.loadCpus);
const allCpus = [...new Set([...balancerCpus, ...loadCpus])];
const disjoint = allCpus.length === balancerCpus.length + loadCpus.length;

function list(s: string): number[] {
  return s
    .split(",")
    .map((x) => Number(x.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
}

function cpuCount(spec: string): number {
  let n = 0;
  for (const part of spec.split(",")) {
    const [a, b] = part.split("-").map(Number);
    n += b === undefined ? 1 : b - a + 1;
  }
  return Math.max(1, n);
}

const log = (msg: string) =>
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

// ---- cleanup on every exit path -------------------------------------------------------------------
let tmp = "";
let cleaning = false;
async function cleanup(): Promise<void> {
  if (cleaning) return;
  cleaning = true;
  await stopAll();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
}
process.on("exit", () => {
  killAllSync();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(sig, () => {
    log(`${sig}: stopping every process the bench started`);
    void cleanup().finally(() => process.exit(130));
  });
}

// ---- tools ----------------------------------------------------------------------------------------
function has(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

function ensureTools(): void {
  const missing = ["nginx", "haproxy", "wrk", "taskset"].filter((c) => !has(c));
  if (missing.length === 0) return;
  if (flags["no-install"] || process.getuid?.() !== 0) {
    throw new Error(`missing ${missing.join(", ")}: run as root, or apt-get install -y nginx haproxy wrk`);
  }
  log(`installing ${missing.join(", ")} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  execFileSync("apt-get", ["update"], { stdio: "inherit", env });
  const packages = ["nginx", "haproxy", "wrk", ...(missing.includes("taskset") ? ["util-linux"] : [])];
  execFileSync("apt-get", ["install", "-y", ...packages], { stdio: "inherit", env });
  // Optional: echo_sleep gives cheap delayed upstreams; without it, Node upstreams stand in.
  if (!fs.existsSync(ECHO_MODULE)) {
    spawnSync("apt-get", ["install", "-y", "libnginx-mod-http-echo"], { stdio: "inherit", env });
  }
  // Debian starts the packaged services; the bench uses its own configs and ports.
  for (const svc of ["nginx", "haproxy"]) {
    spawnSync("sh", ["-c", `systemctl stop ${svc} 2>/dev/null || service ${svc} stop 2>/dev/null`], {
      stdio: "ignore",
    });
  }
}

function version(cmd: string, args: string[], re: RegExp): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  const m = re.exec(`${r.stdout}${r.stderr}`);
  return m ? m[1] : "?";
}

function raiseFdLimit(): void {
  // Children inherit the limit; 10,000 idle connections need more than the usual 1024. Without
  // CAP_SYS_RESOURCE only the soft limit can rise, up to the hard one.
  for (const n of ["200000:200000", `${hardFdLimit()}:${hardFdLimit()}`]) {
    if (
      spawnSync("prlimit", ["--pid", String(process.pid), `--nofile=${n}`], { stdio: "ignore" }).status === 0
    )
      return;
  }
}

function hardFdLimit(): string {
  const m = /Max open files\s+\d+\s+(\d+)/.exec(fs.readFileSync("/proc/self/limits", "utf8"));
  return m ? m[1] : "1024";
}

function fdLimit(): string {
  const m = /Max open files\s+(\d+)/.exec(fs.readFileSync("/proc/self/limits", "utf8"));
  return m ? m[1] : "?";
}

function loadavg(): string {
  return fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
}

// ---- Node code: compiled like dist/ (type stripping alone costs ~30 MB RSS), or the .ts sources ----
const JS_DIR = path.join(ROOT, "node_modules/.cache/switchyard-bench/js");
let compiled = false;
let sourceNote = "";

/** Compiles src/ and the bench roles with tsc (no type check: others' work in progress must not stop the bench). */
function compile(): void {
  if (flags.source === "ts") {
    sourceNote = "TypeScript sources run by Node's type stripping (`--source ts`)";
    return;
  }
  fs.rmSync(JS_DIR, { recursive: true, force: true });
  const entries = [
    "src/cli.ts",
    "src/index.ts",
    ...["bare-proxy", "switchyard-lib", "slow-upstream", "idle-clients"].map((r) => `bench/roles/${r}.ts`),
  ];
  const failed = compileTree(ROOT, JS_DIR, entries);
  if (failed === undefined && fs.existsSync(path.join(JS_DIR, "src/cli.js"))) {
    compiled = true;
    sourceNote =
      "JavaScript compiled from the working tree with `tsc --noCheck` (as `npm run build` would emit it)";
  } else {
    sourceNote =
      "TypeScript sources run by Node's type stripping (compiling failed: " +
      (failed ?? "no src/cli.js").split("\n")[0] +
      ")";
    log(`compiling for the bench failed, running the .ts sources: ${failed}`);
  }
}

/** The file to run for a module of the tree ("src/cli", "bench/roles/bare-proxy"). */
function code(module: string): string {
  return compiled ? path.join(JS_DIR, `${module}.js`) : path.join(ROOT, `${module}.ts`);
}

// ---- candidates -----------------------------------------------------------------------------------
interface Running {
  port: number;
  proc: Spawned | undefined;
}

interface Candidate {
  id: string;
  label: string;
  launch(ups: number[]): Promise<Running>;
}

type Driver = "cli" | "lib";
const drivers: Record<string, Driver> = {};

/** Which HTTP/1 path switchyard runs on (SWITCHYARD_HTTP1, docs/http1.md): its own or node:http's. */
type Http1 = "native" | "fallback";

async function launchSwitchyard(
  ups: number[],
  workers: number,
  driver: Driver,
  http1: Http1 = "native",
  accessLog = false,
): Promise<Running> {
  if (accessLog && driver !== "cli")
    throw new Error("the access log needs the CLI driver (switchyard serve)");
  const port = await freePort();
  const env = { ...process.env, NODE_ENV: "production", SWITCHYARD_HTTP1: http1 };
  let proc: Spawned;
  if (driver === "cli") {
    const admin = await freePort();
    const file = path.join(tmp, `switchyard-${port}.yaml`);
    fs.writeFileSync(file, switchyardYaml(port, admin, ups));
    const args = [
      code("src/cli"),
      "serve",
      "-c",
      file,
      "--listen",
      `127.0.0.1:${port}`,
      "--admin",
      `127.0.0.1:${admin}`,
      "--log-level",
      // warn: no access log (as nginx runs here); info: the access log on, as `serve` defaults to
      accessLog ? "info" : "warn",
    ];
    if (workers > 1) args.push("--workers", String(workers));
    // the access log goes to a file, as nginx's would: a pipe to the bench would load its CPUs
    const logFd = accessLog ? fs.openSync(path.join(tmp, `switchyard-${port}.log`), "w") : undefined;
    try {
      proc = start("switchyard", cfg.balancerCpus, NODE, args, {
        cwd: ROOT,
        env,
        ...(logFd === undefined ? {} : { stdio: ["ignore", logFd, "pipe"] }),
      });
    } finally {
      if (logFd !== undefined) fs.closeSync(logFd);
    }
  } else {
    proc = start(
      "switchyard-lib",
      cfg.balancerCpus,
      NODE,
      [code(`bench/roles/switchyard-lib`), String(port), String(workers), ...ups.map(String)],
      { env },
    );
  }
  await waitHttp(port, proc, 15_000);
  return { port, proc };
}

/**
 * Starts switchyard with the driver decided for this worker count. The first start decides (auto):
 * the CLI when it serves, else the library driver for the rest of the run.
 */
async function switchyard(
  ups: number[],
  workers: number,
  http1: Http1 = "native",
  accessLog = false,
): Promise<Running> {
  if (accessLog) return launchSwitchyard(ups, workers, "cli", http1, true);
  const key = String(workers);
  const known = drivers[key];
  if (known) return launchSwitchyard(ups, workers, known, http1);
  const cliExists = fs.existsSync(path.join(ROOT, "src/cli.ts"));
  if (flags.driver === "lib" || (!cliExists && flags.driver !== "cli")) {
    drivers[key] = "lib";
    return launchSwitchyard(ups, workers, "lib", http1);
  }
  try {
    const r = await launchSwitchyard(ups, workers, "cli", http1);
    drivers[key] = "cli";
    return r;
  } catch (err) {
    if (flags.driver === "cli") throw err;
    log(
      `switchyard CLI (workers ${workers}) did not serve, using the library driver: ${(err as Error).message.split("\n")[0]}`,
    );
    drivers[key] = "lib";
    return launchSwitchyard(ups, workers, "lib", http1);
  }
}

const candidates: Candidate[] = [
  {
    id: "direct",
    label: "direct (1 upstream, ceiling)",
    launch: async (ups) => ({ port: ups[0], proc: undefined }),
  },
  {
    id: "nginx",
    label: "nginx, 1 worker",
    async launch(ups) {
      const port = await freePort();
      const file = path.join(tmp, `nginx-lb-${port}.conf`);
      fs.writeFileSync(file, nginxBalancer(tmp, port, ups));
      const proc = start("nginx", cfg.balancerCpus, "nginx", [
        "-c",
        file,
        "-p",
        tmp,
        "-e",
        path.join(tmp, "nginx-lb-error.log"),
      ]);
      await waitHttp(port, proc);
      return { port, proc };
    },
  },
  {
    id: "haproxy",
    label: "HAProxy, nbthread 1",
    async launch(ups) {
      const port = await freePort();
      const file = path.join(tmp, `haproxy-${port}.cfg`);
      fs.writeFileSync(file, haproxyBalancer(port, ups, Number(fdLimit())));
      const proc = start("haproxy", cfg.balancerCpus, "haproxy", ["-db", "-f", file]);
      await waitHttp(port, proc);
      return { port, proc };
    },
  },
  {
    id: "bare",
    label: "bare node:http + undici",
    async launch(ups) {
      const port = await freePort();
      const proc = start("bare", cfg.balancerCpus, NODE, [
        code(`bench/roles/bare-proxy`),
        String(port),
        ...ups.map(String),
      ]);
      await waitHttp(port, proc);
      return { port, proc };
    },
  },
  {
    id: "switchyard",
    label: "switchyard, 1 worker",
    launch: (ups) => switchyard(ups, 1),
  },
  {
    // the access log on (`serve`'s default at info, one line per request, written to a file); the
    // `switchyard` candidate runs at warn, without it, as nginx runs here (access_log off)
    id: "switchyard-log",
    label: "switchyard, 1 worker, access log on",
    launch: (ups) => switchyard(ups, 1, "native", true),
  },
  {
    // the same server on node:http's server and client (the path it falls back to when Node's
    // parser binding is unusable): both HTTP/1 paths side by side in one run
    id: "switchyard-fallback",
    label: "switchyard, 1 worker, node:http fallback",
    launch: (ups) => switchyard(ups, 1, "fallback"),
  },
  {
    id: "switchyard-wN",
    label: `switchyard, ${cfg.workers} workers`,
    launch: (ups) => switchyard(ups, cfg.workers),
  },
];

// ---- upstreams ------------------------------------------------------------------------------------
interface Upstreams {
  ports: number[];
  proc: Spawned;
  kind: string;
}

async function startUpstreams(delayMs: number): Promise<Upstreams> {
  const ports = [await freePort(), await freePort(), await freePort()];
  let proc: Spawned;
  let kind: string;
  if (delayMs === 0 || fs.existsSync(ECHO_MODULE)) {
    const name = delayMs > 0 ? "upstream-slow" : "upstream";
    const file = path.join(tmp, `${name}.conf`);
    fs.writeFileSync(file, nginxUpstreams(tmp, ports, loadCount, delayMs));
    proc = start(name, cfg.loadCpus, "nginx", [
      "-c",
      file,
      "-p",
      tmp,
      "-e",
      path.join(tmp, `${name}-error.log`),
    ]);
    kind =
      delayMs > 0
        ? `nginx echo_sleep ${delayMs} ms (${loadCount} worker${loadCount > 1 ? "s" : ""}, chunked ~100-byte body)`
        : `nginx \`return 200\` ~100-byte body (${loadCount} worker${loadCount > 1 ? "s" : ""})`;
  } else {
    proc = start("slow-upstream", cfg.loadCpus, NODE, [
      code(`bench/roles/slow-upstream`),
      String(delayMs),
      ...ports.map(String),
    ]);
    kind = `Node http + setTimeout(${delayMs} ms), ~100-byte body (no nginx echo module)`;
  }
  for (const p of ports) await waitHttp(p, proc);
  return { ports, proc, kind };
}

// ---- shared machines: wait for other tenants to calm down ---------------------------------------
let quietWaited = 0;
async function quiet(ups: Upstreams): Promise<void> {
  if (cfg.quietWait <= 0) return;
  const t0 = Date.now();
  for (;;) {
    const s0 = cpuTimes(allCpus).busy;
    const m0 = treeCpuSeconds(ups.proc.pid) + selfCpuSeconds();
    await sleep(1000);
    const other = cpuTimes(allCpus).busy - s0 - (treeCpuSeconds(ups.proc.pid) + selfCpuSeconds() - m0);
    if (other < 0.25 || Date.now() - t0 >= cfg.quietWait * 1000) {
      if (Date.now() - t0 > 1500)
        log(
          `waited ${((Date.now() - t0) / 1000).toFixed(0)} s for other load (now ${(other * 100).toFixed(0)}%)`,
        );
      quietWaited += Date.now() - t0;
      return;
    }
  }
}

// ---- one variant: rounds × candidates × connection counts ----------------------------------------
async function runVariant(name: string, delayMs: number, conns: number[], chosen: Candidate[]) {
  const ups = await startUpstreams(delayMs);
  const results: Measurement[] = [];
  const failures: string[] = [];
  try {
    for (let round = 1; round <= cfg.rounds; round++) {
      // Rotate the start so no candidate always runs first (or right after the same neighbour).
      const order = chosen.map((_, i) => chosen[(i + round - 1) % chosen.length]);
      for (const c of order) {
        let running: Running;
        await quiet(ups);
        const launched = Date.now();
        try {
          running = await c.launch(ups.ports);
          if (Date.now() - launched > 3000) log(`${c.id} took ${Date.now() - launched} ms to serve`);
        } catch (err) {
          failures.push(`${c.id} (round ${round}): ${(err as Error).message.split("\n")[0]}`);
          log(`${name} r${round} ${c.id}: did not start: ${(err as Error).message}`);
          continue;
        }
        try {
          const url = `http://127.0.0.1:${running.port}/`;
          for (const n of conns) {
            // warmed up at this connection count, so the RSS at 64 is not the high-water mark of a
            // warm-up at 256 (the counts run in the order given, ascending by default)
            if (cfg.warmup > 0) {
              await wrk({ cpus: cfg.loadCpus, threads: loadCount, connections: n, seconds: cfg.warmup, url });
            }
            const root = running.proc?.pid;
            const sampler = root ? sampleRss(root) : undefined;
            // The load side: upstreams, wrk (reaped: counted in our children's time) and the bench itself.
            const loadSide = () => treeCpuSeconds(ups.proc.pid) + selfCpuSeconds();
            const cpu0 = root ? treeCpuSeconds(root) : 0;
            const wait0 = root ? treeRunqueueWait(root) : 0;
            const load0 = loadSide();
            const bal0 = cpuTimes(balancerCpus);
            const lo0 = cpuTimes(loadCpus);
            const t0 = performance.now();
            let r: Awaited<ReturnType<typeof wrk>>;
            try {
              r = await wrk({
                cpus: cfg.loadCpus,
                threads: loadCount,
                connections: n,
                seconds: cfg.duration,
                url,
              });
            } finally {
              sampler?.();
            }
            const wall = (performance.now() - t0) / 1000;
            const cpu = root ? (treeCpuSeconds(root) - cpu0) / wall : undefined;
            // Time the balancer was runnable but not running: how much others (or its own workers) got in its way.
            const wait = root ? (treeRunqueueWait(root) - wait0) / wall : undefined;
            const bal1 = cpuTimes(balancerCpus);
            const lo1 = cpuTimes(loadCpus);
            // CPU that neither the candidate, the upstreams, wrk nor the bench used: other tenants.
            const candidateCpu = (cpu ?? 0) * wall;
            const loadCpu = loadSide() - load0;
            const other = disjoint
              ? {
                  balancer: Math.max(0, (bal1.busy - bal0.busy - candidateCpu) / wall),
                  load: Math.max(0, (lo1.busy - lo0.busy - loadCpu) / wall),
                }
              : { balancer: 0, load: Math.max(0, (lo1.busy - lo0.busy - candidateCpu - loadCpu) / wall) };
            const steal = (bal1.steal - bal0.steal + lo1.steal - lo0.steal) / wall;
            const rss = sampler?.();
            results.push({
              variant: name,
              candidate: c.id,
              label: c.label,
              connections: n,
              round,
              ...r,
              cpu,
              rss,
              other,
              steal,
              wait,
            });
            log(
              `${name} r${round}/${cfg.rounds} ${c.id.padEnd(13)} c${String(n).padEnd(4)} ${r.rps.toFixed(0).padStart(7)} req/s  ` +
                `p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms  err ${r.errors}` +
                (rss ? `  rss ${(rss.sum / 2 ** 20).toFixed(0)} MB` : "") +
                (cpu !== undefined
                  ? `  cpu ${(cpu * 100).toFixed(0)}% wait ${((wait ?? 0) * 100).toFixed(0)}%`
                  : "") +
                `  other ${(other.balancer * 100).toFixed(0)}%/${(other.load * 100).toFixed(0)}% steal ${(steal * 100).toFixed(0)}%`,
            );
          }
        } catch (err) {
          const died = running.proc && running.proc.child.exitCode !== null;
          const why = died
            ? `${c.id} exited (${running.proc!.child.exitCode}): ${running.proc!.output().trim().split("\n").slice(-3).join(" | ")}`
            : (err as Error).message.replace(/\s+/g, " ").slice(0, 300);
          failures.push(`${c.id} (round ${round}): ${why}`);
          log(
            `${name} r${round} ${c.id}: ${(err as Error).message}${died ? `\n${running.proc!.output().slice(-3000)}` : ""}`,
          );
        } finally {
          const t0 = Date.now();
          if (running.proc) await stop(running.proc);
          if (Date.now() - t0 > 1500) log(`${c.id} took ${Date.now() - t0} ms to stop`);
        }
      }
    }
  } finally {
    await stop(ups.proc);
  }
  return { results, failures, upstream: ups.kind };
}

// ---- idle connections ----------------------------------------------------------------------------
async function idleRss(count: number): Promise<Report["idle"]> {
  const ups = await startUpstreams(0);
  let sy: Running | undefined;
  let clients: Spawned | undefined;
  try {
    sy = await switchyard(ups.ports, 1);
    const root = sy.proc!.pid;
    await sleep(500);
    const before = treeRss(root).reduce((a, b) => a + b, 0);
    clients = start("idle-clients", cfg.loadCpus, NODE, [
      code(`bench/roles/idle-clients`),
      String(sy.port),
      String(count),
    ]);
    const deadline = Date.now() + 120_000;
    while (!/READY /.test(clients.output())) {
      if (Date.now() > deadline || clients.child.exitCode !== null) {
        throw new Error(`idle clients did not finish: ${clients.output().slice(-500)}`);
      }
      await sleep(100);
    }
    // Let the handshakes settle and GC run its course, then sample for a while.
    const sampler = sampleRss(root, 200);
    await sleep(quick ? 2000 : 5000);
    const rss = sampler();
    const lines = clients.output().match(/(?:READY|STATUS) (\{.*\})/g) ?? [];
    const last = JSON.parse(lines[lines.length - 1].replace(/^\w+ /, "")) as {
      open: number;
      failed: number;
      non2xx: number;
      ms: number;
    };
    log(
      `idle: ${last.open}/${count} open, rss ${(before / 2 ** 20).toFixed(0)} → ${(rss.sum / 2 ** 20).toFixed(0)} MB`,
    );
    return {
      count,
      open: last.open,
      failed: last.failed,
      non2xx: last.non2xx,
      openMs: last.ms,
      before,
      after: rss.sum,
    };
  } finally {
    if (clients) await stop(clients);
    if (sy?.proc) await stop(sy.proc);
    await stop(ups.proc);
  }
}

// ---- bench:pick -----------------------------------------------------------------------------------
function pickBench(): Report["pick"] {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as {
    scripts?: Record<string, string>;
  };
  const script = pkg.scripts?.["bench:pick"];
  if (!script) return { status: "skipped: no bench:pick script in package.json", output: "" };
  if (!fs.existsSync(path.join(ROOT, "bench/pick.ts")))
    return { status: "skipped: bench/pick.ts does not exist yet", output: "" };
  log("npm run bench:pick");
  const niced = cfg.nice !== 0 ? ["nice", "-n", String(cfg.nice)] : [];
  const r = spawnSync("taskset", ["-c", cfg.balancerCpus, ...niced, "npm", "run", "-s", "bench:pick"], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: quick ? 120_000 : 240_000,
    // The pinned Node first on PATH, as npm scripts have it.
    env: { ...process.env, PATH: `${path.dirname(NODE)}${path.delimiter}${process.env.PATH}` },
    killSignal: "SIGKILL",
  });
  const output = `${r.stdout ?? ""}${r.stderr ? `\n${r.stderr}` : ""}`.trim();
  if (r.error) return { status: `failed: ${r.error.message}`, output };
  if (r.status !== 0) return { status: `failed: exit ${r.status}`, output };
  return { status: "ok", output };
}

// ---- main -----------------------------------------------------------------------------------------
async function main(): Promise<void> {
  ensureTools();
  raiseFdLimit();
  compile();
  setNiceness(cfg.nice);
  // The bench's own sampling stays off the balancer's CPUs.
  spawnSync("taskset", ["-a", "-p", "-c", cfg.loadCpus, String(process.pid)], { stdio: "ignore" });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "switchyard-bench-"));
  const only = flags.only ? new Set(flags.only.split(",")) : undefined;
  const chosen = candidates.filter((c) => !only || only.has(c.id));
  const unknown = [...(only ?? [])].filter((id) => !candidates.some((c) => c.id === id));
  if (unknown.length > 0) {
    throw new Error(
      `unknown candidate ${unknown.join(", ")}; known: ${candidates.map((c) => c.id).join(", ")}`,
    );
  }
  const started = new Date();
  const loadStart = loadavg();
  const perVariant = (n: number) => cfg.rounds * chosen.length * (n * (cfg.warmup + cfg.duration + 0.3) + 1);
  const estimate =
    perVariant(cfg.connections.length) +
    (flags["skip-slow"] ? 0 : perVariant(cfg.slowConnections.length)) +
    30;
  log(
    `${chosen.length} candidates × ${cfg.rounds} rounds × ${cfg.duration}s; balancer cpus ${cfg.balancerCpus}, ` +
      `load cpus ${cfg.loadCpus}; fd limit ${fdLimit()}; estimated ${Math.round(estimate / 60)} min`,
  );

  const fast = await runVariant("fast", 0, cfg.connections, chosen);
  const slow = flags["skip-slow"]
    ? undefined
    : await runVariant(`${cfg.slowDelay}ms`, cfg.slowDelay, cfg.slowConnections, chosen);
  let idle: Report["idle"];
  if (!flags["skip-idle"]) {
    try {
      idle = await idleRss(cfg.idleConnections);
    } catch (err) {
      idle = { error: (err as Error).message.split("\n")[0], count: cfg.idleConnections };
    }
  }
  const pick = flags["skip-pick"] ? undefined : pickBench();

  const cpuModel =
    /model name\s*:\s*(.*)/.exec(fs.readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? os.cpus()[0]?.model;
  const git = (args: string[]) =>
    spawnSync("git", args, { cwd: ROOT, encoding: "utf8" }).stdout?.trim() ?? "";
  const report: Report = {
    started,
    seconds: (Date.now() - started.getTime()) / 1000,
    quick,
    args: process.argv.slice(2).join(" "),
    machine: {
      cpu: `${cpuModel}`,
      cores,
      memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
      kernel: `${os.type()} ${os.release()}`,
    },
    versions: {
      node: process.version,
      undici: JSON.parse(fs.readFileSync(path.join(ROOT, "node_modules/undici/package.json"), "utf8"))
        .version,
      nginx: version("nginx", ["-v"], /nginx\/(\S+)/),
      haproxy: version("haproxy", ["-v"], /version (\S+)/),
      wrk: version("wrk", ["-v"], /wrk (\S+)/),
    },
    commit: `${git(["rev-parse", "--short", "HEAD"])}${git(["status", "--porcelain", "--", "src"]) ? " (+ uncommitted src changes)" : ""}`,
    loadavg: { start: loadStart, end: loadavg() },
    balancerCores: balancerCpus.length,
    quietWaited: quietWaited / 1000,
    source: sourceNote,
    settings: {
      ...cfg,
      drivers: {
        switchyard: drivers["1"] ?? "-",
        [`switchyard-w${cfg.workers}`]: drivers[String(cfg.workers)] ?? "-",
      },
    },
    fast,
    slow,
    slowDelay: cfg.slowDelay,
    idle,
    pick,
    workers: cfg.workers,
  };
  const md = render(report);
  fs.mkdirSync(path.dirname(cfg.out), { recursive: true });
  fs.writeFileSync(cfg.out, md);
  process.stdout.write(`${md}\n`);
  log(`wrote ${path.relative(process.cwd(), cfg.out)} in ${Math.round(report.seconds)} s`);
}

try {
  await main();
} catch (err) {
  log(`failed: ${(err as Error).stack ?? err}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
// Keep-alive sockets of the readiness probes must not hold the process open.
process.exit();
