/**
 * Idle wake figures (docs/idle.md):
 * 1. time to first byte of the first request to a napping `run` backend that is ready ~300 ms
 *    after it starts, and switchyard's own share of it (TTFB minus the backend's own start-to-ready
 *    time, which the backend reports: Node's boot + its 300 ms);
 * 2. RSS of switchyard with 50 napping `run` servers, next to the same file with 50 plain servers.
 *
 *   node bench/idle.ts [--rounds 10]
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "..");
const NODE = process.execPath;
const APP = join(ROOT, "bench/idle/app.mjs");
const rounds = Number(process.argv[process.argv.indexOf("--rounds") + 1] || 10) || 10;
const dir = mkdtempSync(join(tmpdir(), "switchyard-idle-bench-"));
const children: ChildProcess[] = [];
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Starts switchyard on `yaml`; resolves with its proxy address and a way to wait for log lines. */
async function switchyard(yaml: string) {
  const file = join(dir, `s${children.length}.yaml`);
  writeFileSync(file, yaml);
  const child = spawn(NODE, [join(ROOT, "src/cli.ts"), "serve", "-c", file], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.push(child);
  const logs: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  let buf = "";
  child.stdout!.setEncoding("utf8").on("data", (c: string) => {
    buf += c;
    let i = buf.indexOf("\n");
    while (i >= 0) {
      try {
        logs.push(JSON.parse(buf.slice(0, i)));
      } catch {}
      buf = buf.slice(i + 1);
      i = buf.indexOf("\n");
    }
    for (const w of waiters) w();
  });
  const waitFor = (pred: (l: Record<string, unknown>) => boolean, from = 0) =>
    new Promise<Record<string, unknown>>((ok, fail) => {
      const timer = setTimeout(() => fail(new Error("timed out waiting for a log line")), 30_000);
      const check = () => {
        const l = logs.slice(from).find(pred);
        if (l) {
          clearTimeout(timer);
          waiters.delete(check);
          ok(l);
        }
      };
      waiters.add(check);
      check();
    });
  const listening = await waitFor((l) => l.msg === "listening");
  return { child, proxy: (listening.proxy as string[])[0], logs, waitFor };
}

function ttfb(address: string): Promise<{ ms: number; body: string }> {
  const [host, port] = address.split(":");
  return new Promise((ok, fail) => {
    const t0 = performance.now();
    const req = http.get(
      { host, port: Number(port), path: "/", agent: false, headers: { accept: "application/json" } },
      (res) => {
        let body = "";
        res.once("data", () => {});
        res.setEncoding("utf8").on("data", (c: string) => (body += c));
        res.on("end", () => ok({ ms: performance.now() - t0, body }));
      },
    );
    req.on("response", () => {});
    req.on("error", fail);
  });
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (x: number) => x.toFixed(0);

// 1. first byte after a wake: a silent backend (found by the 200 ms poll) and one that prints a
// line when it listens (probed at once)
async function wakes(print: boolean): Promise<void> {
  const port = await freePort();
  const sy = await switchyard(`listen: 127.0.0.1:0
admin: 127.0.0.1:0
services:
  app:
    hosts: ["*"]
    idle: { idle_timeout: 300ms }
    servers:
      - { name: app, url: "http://127.0.0.1:${port}", run: { command: [${JSON.stringify(NODE)}, ${JSON.stringify(APP)}], env: { PORT: "${port}", READY_DELAY: "300", PRINT: "${print ? 1 : 0}" } } }
`);
  const total: number[] = [];
  const backend: number[] = [];
  const overhead: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const from = sy.logs.length;
    const r = await ttfb(sy.proxy);
    const { readyMs } = JSON.parse(r.body) as { readyMs: number };
    total.push(r.ms);
    backend.push(readyMs);
    overhead.push(r.ms - readyMs);
    await sy.waitFor((l) => l.msg === "server app stopped (idle)", from);
  }
  sy.child.kill("SIGTERM");
  await new Promise((r) => sy.child.once("exit", r));
  console.log(
    `## first byte after a wake: ${print ? "backend prints when it listens" : "silent backend"} (${rounds} wakes, TCP probe every 200 ms)`,
  );
  console.log(
    `total TTFB      median ${fmt(median(total))} ms  (min ${fmt(Math.min(...total))}, max ${fmt(Math.max(...total))})`,
  );
  console.log(
    `backend's own   median ${fmt(median(backend))} ms  (its process start to listening: Node boot + 300 ms)`,
  );
  console.log(
    `switchyard's    median ${fmt(median(overhead))} ms  (min ${fmt(Math.min(...overhead))}, max ${fmt(Math.max(...overhead))}; TTFB minus the backend's own)\n`,
  );
}
await wakes(false);
await wakes(true);

// 2. RSS with 50 napping run servers vs 50 plain servers
async function rssWith(servers: (i: number, port: number) => string): Promise<number> {
  let yaml =
    'listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nservices:\n  many:\n    hosts: ["*"]\n    healthcheck: { disable: true }\n    servers:\n';
  for (let i = 0; i < 50; i++) yaml += servers(i, 20000 + i);
  const s = await switchyard(yaml);
  await new Promise((r) => setTimeout(r, 3000));
  const rss = rssMiB(s.child.pid!);
  s.child.kill("SIGTERM");
  await new Promise((r) => s.child.once("exit", r));
  return rss;
}
const plain = await rssWith((i, p) => `      - { name: s${i}, url: "http://127.0.0.1:${p}" }\n`);
const napping = await rssWith(
  (i, p) =>
    `      - { name: s${i}, url: "http://127.0.0.1:${p}", run: { command: [${JSON.stringify(NODE)}, ${JSON.stringify(APP)}], env: { PORT: "${p}" } }, idle: { idle_timeout: 15m } }\n`,
);
console.log("## RSS of switchyard (3 s after start)");
console.log(`50 plain servers          ${plain.toFixed(1)} MiB`);
console.log(`50 napping run servers    ${napping.toFixed(1)} MiB  (+${(napping - plain).toFixed(1)} MiB)`);
process.exit(0);
