// Cost of one pick, per mode and pool size: `npm run bench:pick`.
// Prints ns/pick (median of several timed runs after a warm-up) for the selector alone and for
// `lb.pick(req)` (real-IP resolution, cookie parsing, health polling included). A benchmark, not a test.
import type { IncomingMessage } from "node:http";
import { availableParallelism, loadavg } from "node:os";
import { Server } from "../src/balancer/server.ts";
import { LoadBalancer } from "../src/load-balancer.ts";
import {
  createSelector,
  type Mode,
  type PickContext,
  type Selector,
  STICKY_COOKIE,
  StickySelector,
  stickyValue,
} from "../src/selectors/index.ts";

const SIZES = [10, 100, 1000];
const RUNS = Number(process.env.RUNS ?? 5);
const PICKS = Number(process.env.PICKS ?? 200_000);
const TARGET_NS = 1000;

interface Case {
  label: string;
  mode: Mode;
  sticky: boolean;
  /** Slow start active: a tenth of the servers ramping (re-added to the running pool) throughout. */
  slow?: boolean;
}
const CASES: Case[] = [
  { label: "round_robin", mode: "round_robin", sticky: false },
  { label: "least_conn", mode: "least_conn", sticky: false },
  { label: "ip_hash", mode: "ip_hash", sticky: false },
  { label: "sticky(round_robin)", mode: "round_robin", sticky: true },
  { label: "sticky(least_conn)", mode: "least_conn", sticky: true },
  { label: "sticky(ip_hash)", mode: "ip_hash", sticky: true },
  { label: "round_robin, slow start", mode: "round_robin", sticky: false, slow: true },
  { label: "least_conn, slow start", mode: "least_conn", sticky: false, slow: true },
  { label: "ip_hash, slow start", mode: "ip_hash", sticky: false, slow: true },
];

/**
 * ns per call of `fn(i)` over RUNS runs of PICKS calls, after a warm-up: [median CPU time,
 * median wall time]. CPU time (process.cpuUsage) leaves out the time the process waited for a
 * core, so it stays meaningful on a busy machine; on an idle one both agree.
 */
function measure(fn: (i: number) => unknown): [number, number] {
  let sink = 0;
  for (let i = 0; i < PICKS; i++) if (fn(i)) sink++;
  const cpu: number[] = [];
  const wall: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < PICKS; i++) if (fn(i)) sink++;
    const t1 = process.hrtime.bigint();
    const c1 = process.cpuUsage(c0);
    wall.push(Number(t1 - t0) / PICKS);
    cpu.push(((c1.user + c1.system) * 1000) / PICKS);
  }
  if (sink === -1) console.log(sink); // keep the result alive
  return [median(cpu), median(wall)];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

function serversFor(n: number): Server[] {
  return Array.from(
    { length: n },
    (_, i) =>
      new Server({
        name: `s${i}`,
        url: `http://10.${(i >> 8) & 255}.${i & 255}.1:8080`,
        weight: (i % 5) + 1,
      }),
  );
}

/** A flat string, as node's HTTP parser hands out (template literals make slower cons strings). */
function flat(s: string): string {
  return Buffer.from(s, "latin1").toString("latin1");
}

/** Requests from 1,024 different clients (behind a trusted proxy), reused round the loop. */
function requests(n: number, cookieFor: (i: number) => string | undefined): IncomingMessage[] {
  return Array.from(
    { length: 1024 },
    (_, i) =>
      ({
        socket: { remoteAddress: "10.0.0.1" },
        headers: {
          host: "api.example.com",
          "x-real-ip": flat(i % 2 ? `198.51.${(i >> 8) & 255}.${i & 255}` : `2001:db8::${i.toString(16)}`),
          cookie: flat(cookieFor(i % n) ?? ""),
        },
        url: "/api/items?page=2",
      }) as unknown as IncomingMessage,
  );
}

const rows: string[][] = [];
let missed = false;
for (const c of CASES) {
  for (const n of SIZES) {
    // slow start: a clock that advances 1 s per pick over a window of 1e9 ms, so the ramp takes a
    // step (window/50) every 20,000 picks throughout the measurement and never finishes
    let clock = 0;
    const lb = new LoadBalancer({
      link: "bench",
      mode: c.mode,
      sticky: c.sticky,
      options: { from: ["10.0.0.0/8"] },
      slowStart: c.slow ? 1e9 : 0,
      now: () => (clock += 1000),
    });
    const t0 = performance.now();
    const all = serversFor(n);
    for (const s of all) lb.addServer(s);
    if (c.slow) {
      // a tenth of the pool joins the running balancer: they ramp up (re-added = added)
      lb.start(new AbortController().signal);
      for (let i = 0; i < all.length; i += 10) {
        lb.removeServer(all[i]);
        lb.addServer(all[i]);
      }
    }
    const servers = lb.servers; // rebalances once
    const values = servers.map((s) => stickyValue(s.key, undefined));
    const reqs = requests(n, (i) => (c.sticky ? `lang=en; ${STICKY_COOKIE}=${values[i]}` : "lang=en"));
    lb.pick(reqs[0]); // builds the selector
    const buildMs = performance.now() - t0;
    // the selector alone, over the balancer's servers (rebalanced weights)
    const inner = createSelector(c.mode);
    const sel: Selector = c.sticky ? new StickySelector(inner, undefined) : inner;
    sel.rebuild({ servers });
    const ctxs: (PickContext & { cookie?: string })[] = Array.from({ length: 1024 }, (_, i) => ({
      ip: flat(i % 2 ? `198.51.${(i >> 8) & 255}.${i & 255}` : `2001:db8::${i.toString(16)}`),
      tried: null,
      cookie: c.sticky ? values[i % n] : undefined,
    }));
    if (c.slow) for (const s of servers) s.ramp = s.index % 10 === 0 ? 0.5 : 1;
    const selNs = measure((i) => sel.pick(ctxs[i & 1023]));
    const lbNs = measure((i) => lb.pick(reqs[i & 1023]));
    if (selNs[0] > TARGET_NS || lbNs[0] > TARGET_NS) missed = true;
    rows.push([c.label, String(n), fmt(selNs), fmt(lbNs), buildMs.toFixed(1)]);
  }
}

// least_conn as the proxy drives it: every pick opens a request, the oldest of 64 open ones ends
for (const n of SIZES) {
  const lb = new LoadBalancer({ link: "bench", mode: "least_conn" });
  for (const s of serversFor(n)) lb.addServer(s);
  const reqs = requests(n, () => undefined);
  const open: Server[] = new Array(64);
  const ns = measure((i) => {
    const slot = i & 63;
    const done = open[slot];
    if (done !== undefined) done.inflight--;
    const s = lb.pick(reqs[i & 1023])!;
    s.inflight++;
    open[slot] = s;
    return s;
  });
  for (const s of open) if (s) s.inflight--;
  if (ns[0] > TARGET_NS) missed = true;
  rows.push(["least_conn +inflight churn", String(n), "-", fmt(ns), "-"]);
}

function fmt([cpu, wall]: [number, number]): string {
  return `${cpu.toFixed(0)} (${wall.toFixed(0)})`;
}

// ip_hash while one server is down: its clients go to their next choice (cached per bucket)
for (const n of SIZES) {
  const lb = new LoadBalancer({ link: "bench", mode: "ip_hash", options: { from: ["10.0.0.0/8"] } });
  for (const s of serversFor(n)) lb.addServer(s);
  const reqs = requests(n, () => undefined);
  // take down the server with the most of these clients
  const share = new Map<Server, number>();
  for (const r of reqs) {
    const s = lb.pick(r)!;
    share.set(s, (share.get(s) ?? 0) + 1);
  }
  const [down, clients] = [...share].sort((x, y) => y[1] - x[1])[0];
  down.markDown();
  const ns = measure((i) => lb.pick(reqs[i & 1023]));
  if (ns[0] > TARGET_NS) missed = true;
  rows.push([`ip_hash, 1 down (${clients}/1024 clients)`, String(n), "-", fmt(ns), "-"]);
}

const head = ["mode", "servers", "Selector.pick ns", "lb.pick(req) ns", "add all + first pick ms"];
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (r: string[]) =>
  r.map((x, i) => (i < 2 ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join("  ");
console.log(
  `load average ${loadavg()
    .map((x) => x.toFixed(1))
    .join(
      " ",
    )} on ${availableParallelism()} cores; node ${process.version}, ${RUNS} runs × ${PICKS} picks after a warm-up; ns per pick, median of the runs: CPU time (wall time)`,
);
console.log(line(head));
for (const r of rows) console.log(line(r));
console.log(
  missed ? `some figure is above the ${TARGET_NS} ns target` : `all within the ${TARGET_NS} ns target`,
);
