/**
 * Child processes of the bench: every one is spawned in its own process group and recorded, so
 * `stopAll()` (also run on Ctrl-C, SIGTERM, errors and exit) can end each group by its id.
 */
import { type ChildProcess, execFileSync, type SpawnOptions, spawn } from "node:child_process";
import { once } from "node:events";
import * as fs from "node:fs";
import * as net from "node:net";

const live = new Set<ChildProcess>();
let closing = false;
let niceness = 0;

/** Scheduling priority for everything started from now on (negative: ahead of other tenants; root only). */
export function setNiceness(n: number): void {
  niceness = n;
}

export interface Spawned {
  child: ChildProcess;
  pid: number;
  /** stderr + stdout collected (bounded) for error messages. */
  output: () => string;
  exited: Promise<number | null>;
}

/** Spawns `cmd` pinned to `cpus` (taskset list, or undefined for no pinning). */
export function start(
  name: string,
  cpus: string | undefined,
  cmd: string,
  args: string[],
  opts: SpawnOptions = {},
): Spawned {
  if (closing) throw new Error(`not starting ${name}: the bench is stopping`);
  const niced = niceness !== 0 ? ["nice", "-n", String(niceness), cmd, ...args] : [cmd, ...args];
  const [file, argv] = cpus ? ["taskset", ["-c", cpus, ...niced]] : [niced[0], niced.slice(1)];
  const child = spawn(file, argv, { stdio: ["ignore", "pipe", "pipe"], detached: true, ...opts });
  live.add(child);
  if (niceness !== 0 && child.pid !== undefined) {
    // With sched_autogroup the scheduler shares CPU between sessions first; a detached child is its own
    // session, so its autogroup's nice is what ranks it against other tenants.
    try {
      fs.writeFileSync(`/proc/${child.pid}/autogroup`, String(niceness));
    } catch {
      // no autogroup support: `nice` alone applies
    }
  }
  let out = "";
  const keep = (b: Buffer) => {
    out += b.toString();
    if (out.length > 20_000) out = out.slice(-10_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<number | null>((resolve) => {
    child.on("exit", (code, signal) => {
      live.delete(child);
      resolve(code ?? (signal ? -1 : null));
    });
    child.on("error", (err) => {
      live.delete(child);
      out += `\nspawn error: ${err.message}`;
      resolve(-1);
    });
  });
  if (child.pid === undefined) {
    return { child, pid: -1, output: () => `${name}: ${out}`, exited };
  }
  return { child, pid: child.pid, output: () => out, exited };
}

/** Ends one process group: SIGTERM, then SIGKILL after `graceMs`. */
export async function stop(p: Spawned, graceMs = 3000): Promise<void> {
  if (p.pid <= 0 || p.child.exitCode !== null || p.child.signalCode !== null) return;
  killGroup(p.pid, "SIGTERM");
  const timer = setTimeout(() => killGroup(p.pid, "SIGKILL"), graceMs);
  await p.exited;
  clearTimeout(timer);
  // The leader is gone; workers of its group (nginx, cluster) may still be exiting.
  killGroup(p.pid, "SIGKILL");
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/** Synchronous last resort (process 'exit'): SIGKILL every recorded group. */
export function killAllSync(): void {
  for (const c of live) if (c.pid) killGroup(c.pid, "SIGKILL");
  live.clear();
}

export async function stopAll(): Promise<void> {
  closing = true;
  await Promise.all(
    [...live].map((child) =>
      stop(
        { child, pid: child.pid ?? -1, output: () => "", exited: once(child, "exit").then(() => 0) },
        2000,
      ),
    ),
  );
}

const handedOut = new Set<number>();

/**
 * A port that was free a moment ago on 127.0.0.1 and that this bench has not handed out before:
 * the kernel may give a closed listen(0) port again at once, and two upstreams on one port make
 * nginx refuse its config ("duplicate listen options").
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1");
    await once(srv, "listening");
    const { port } = srv.address() as net.AddressInfo;
    srv.close();
    await once(srv, "close");
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
}

/** Resolves when an HTTP GET to 127.0.0.1:port answers 2xx, or rejects after `timeoutMs`. */
export async function waitHttp(port: number, p: Spawned | undefined, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    if (p && (p.child.exitCode !== null || p.child.signalCode !== null)) {
      throw new Error(
        `process exited (${p.child.exitCode ?? p.child.signalCode}) before answering on :${port}\n${p.output().slice(-2000)}`,
      );
    }
    try {
      const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.ok) return;
      last = `status ${res.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `nothing answered 2xx on 127.0.0.1:${port} within ${timeoutMs} ms (${last})${p ? `\n${p.output().slice(-2000)}` : ""}`,
  );
}

/** The pid and its descendants (from /proc/<pid>/task/<tid>/children, falling back to a /proc scan). */
export function processTree(root: number): number[] {
  const out: number[] = [];
  const byParent = new Map<number, number[]>();
  for (const name of safeReaddir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const stat = safeRead(`/proc/${name}/stat`);
    if (!stat) continue;
    // The comm field may contain spaces and parens: the ppid is the second field after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ppid = Number(rest[1]);
    const list = byParent.get(ppid);
    if (list) list.push(Number(name));
    else byParent.set(ppid, [Number(name)]);
  }
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    out.push(pid);
    for (const c of byParent.get(pid) ?? []) queue.push(c);
  }
  return out;
}

/** VmRSS in bytes of each process of the tree (missing processes are skipped). */
export function treeRss(root: number): number[] {
  const out: number[] = [];
  for (const pid of processTree(root)) {
    const status = safeRead(`/proc/${pid}/status`);
    const m = status && /VmRSS:\s+(\d+) kB/.exec(status);
    if (m) out.push(Number(m[1]) * 1024);
  }
  return out;
}

const TICKS = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU seconds (user + system) used so far by the tree. */
export function treeCpuSeconds(root: number): number {
  let ticks = 0;
  for (const pid of processTree(root)) {
    const stat = safeRead(`/proc/${pid}/stat`);
    if (!stat) continue;
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields after ')' start at index 0 = state (field 3); utime = field 14, stime = field 15.
    ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks / TICKS;
}

/** Samples the tree's RSS every `everyMs` until stopped; returns the max sum and the max single process. */
export function sampleRss(
  root: number,
  everyMs = 250,
): () => { sum: number; maxProc: number; procs: number } {
  let sum = 0;
  let maxProc = 0;
  let procs = 0;
  const take = () => {
    const list = treeRss(root);
    const s = list.reduce((a, b) => a + b, 0);
    if (s > sum) {
      sum = s;
      procs = list.length;
    }
    for (const r of list) if (r > maxProc) maxProc = r;
  };
  take();
  const timer = setInterval(take, everyMs);
  return () => {
    clearInterval(timer);
    take();
    return { sum, maxProc, procs };
  };
}

function safeRead(path: string): string | undefined {
  try {
    return fs.readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

function safeReaddir(path: string): string[] {
  try {
    return fs.readdirSync(path);
  } catch {
    return [];
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** CPU list ("0-3,6") → indices. */
export function cpuList(spec: string): number[] {
  const out: number[] = [];
  for (const part of spec.split(",")) {
    const [a, b] = part.split("-").map(Number);
    for (let i = a; i <= (b ?? a); i++) out.push(i);
  }
  return out;
}

/** Seconds of user+nice+system time and of steal time on the given CPUs, from /proc/stat. */
export function cpuTimes(cpus: number[]): { busy: number; steal: number } {
  let busy = 0;
  let steal = 0;
  for (const line of (safeRead("/proc/stat") ?? "").split("\n")) {
    const m = /^cpu(\d+) (.*)/.exec(line);
    if (!m || !cpus.includes(Number(m[1]))) continue;
    const f = m[2].trim().split(/\s+/).map(Number);
    busy += f[0] + f[1] + f[2];
    steal += f[7] ?? 0;
  }
  return { busy: busy / TICKS, steal: steal / TICKS };
}

/** CPU seconds of this process plus its reaped children (wrk, once it exits). */
export function selfCpuSeconds(): number {
  const stat = safeRead("/proc/self/stat") ?? "";
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / TICKS;
}

/** Seconds the tree's threads spent runnable but waiting for a CPU (/proc/<pid>/task/<tid>/schedstat). */
export function treeRunqueueWait(root: number): number {
  let ns = 0;
  for (const pid of processTree(root)) {
    for (const tid of safeReaddir(`/proc/${pid}/task`)) {
      const s = safeRead(`/proc/${pid}/task/${tid}/schedstat`);
      if (s) ns += Number(s.split(" ")[1]) || 0;
    }
  }
  return ns / 1e9;
}
