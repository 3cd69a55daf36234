/**
 * The per-request cost of request accounting, in isolation: `ServiceStats.record` (what the
 * server's front calls as each request finishes) from this checkout, which also feeds the live
 * stats window, against the same call from another source tree (the commit before the stats).
 * Interleaved rounds of 5 million calls over 3 servers with varied latencies; prints ns per call.
 * A machine too busy for whole-proxy A/B runs still gives a steady figure here, to set against
 * the proxy's CPU time per request (quick-stats.ts / quick-proxy.ts).
 *
 *   node bench/stats-record.ts --base /tmp/sy-base [--rounds 5]
 */
import { resolve } from "node:path";
import { Server } from "../src/balancer/server.ts";
import { ServiceStats } from "../src/server/metrics.ts";

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const base = opt("base", "");
const rounds = Number(opt("rounds", "5"));
if (!base) {
  process.stderr.write("usage: node bench/stats-record.ts --base DIR [--rounds 5]\n");
  process.exit(2);
}
type Recorder = { record(server: Server | undefined, cls: number, seconds: number, now: number): void };
const Old = (await import(resolve(base, "src/server/metrics.ts"))).ServiceStats as new (
  name: string,
) => Recorder;
const OldServer = (await import(resolve(base, "src/balancer/server.ts"))).Server as typeof Server;

const N = 5_000_000;
const latencies = Float64Array.from({ length: 1024 }, (_, i) => 0.0002 + ((i * 7919) % 1000) / 20000);

function run(stats: Recorder, servers: Server[]): number {
  const t0 = performance.now();
  let now = t0;
  for (let i = 0; i < N; i++) {
    // a request finishing every ~20 µs of simulated time: the seconds turn over as in real traffic
    now += 0.02;
    stats.record(servers[i % 3], 1, latencies[i & 1023], now);
  }
  return ((performance.now() - t0) * 1e6) / N;
}

const mk = (S: typeof Server) =>
  [1, 2, 3].map((i) => new S({ name: `up-${i}`, url: `http://127.0.0.1:${4000 + i}` }));
const results: Record<string, number[]> = { base: [], stats: [] };
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? ["base", "stats"] : ["stats", "base"];
  for (const kind of order) {
    const ns =
      kind === "base" ? run(new Old("bench"), mk(OldServer)) : run(new ServiceStats("bench"), mk(Server));
    results[kind].push(ns);
    console.log(`round ${r + 1} ${kind.padEnd(5)} ${ns.toFixed(1)} ns/record`);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const b = median(results.base);
const s = median(results.stats);
console.log(
  `median: base ${b.toFixed(1)} ns, with the stats window ${s.toFixed(1)} ns: +${(s - b).toFixed(1)} ns per request`,
);
