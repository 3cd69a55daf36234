/**
 * Live request stats for `GET /api/stats`: per server, a fixed ring of 60 one-second slots, each
 * holding the counts per status class and a fixed-bucket latency histogram. Recording a request
 * is a few array increments (the slot is zeroed when its second comes round again): no allocation,
 * no per-request objects. Reading sums the slots of the last minute into a `WindowSummary`, which
 * is plain numbers so cluster workers can send theirs to the primary to be added up.
 */

/** Slots in the ring: one per second. */
export const SLOTS = 60;
/** Status classes as in metrics.ts `CODE_CLASSES`: 1xx, 2xx, 3xx, 4xx, 5xx, aborted. */
export const CLASSES = 6;
/** Latency buckets: bucket 0 is <= LAT_MIN_MS, bucket i ends at LAT_MIN_MS * 2^(i/3), the last is everything above. */
export const LAT_BUCKETS = 64;
const LAT_MIN_MS = 0.05;
const PER_OCTAVE = 3;
const STRIDE = CLASSES + LAT_BUCKETS;
/** Requests per second are counted over this many seconds. */
const RATE_SECONDS = 10;

/** The histogram bucket of a latency in ms. */
export function bucketOf(ms: number): number {
  if (!(ms > LAT_MIN_MS)) return 0;
  const i = Math.ceil(Math.log2(ms / LAT_MIN_MS) * PER_OCTAVE);
  return i < LAT_BUCKETS ? i : LAT_BUCKETS - 1;
}

/** The upper bound (ms) of bucket `i` (the last bucket has none; its lower bound is returned). */
export function bucketUpper(i: number): number {
  return LAT_MIN_MS * 2 ** (Math.min(i, LAT_BUCKETS - 2) / PER_OCTAVE);
}

/** A summary of one or more windows over the last minute; plain numbers, mergeable by addition. */
export interface WindowSummary {
  /** Requests per second over the last 10 s. */
  rps: number;
  inflight: number;
  /** Requests finished in the last minute, per status class (CLASSES slots). */
  status: number[];
  /** Latency histogram of the last minute (LAT_BUCKETS slots). */
  hist: number[];
}

export function emptySummary(): WindowSummary {
  return { rps: 0, inflight: 0, status: new Array(CLASSES).fill(0), hist: new Array(LAT_BUCKETS).fill(0) };
}

/** Adds `b` into `a`. */
export function mergeSummary(a: WindowSummary, b: WindowSummary): WindowSummary {
  a.rps += b.rps;
  a.inflight += b.inflight;
  for (let i = 0; i < CLASSES; i++) a.status[i] += b.status[i] ?? 0;
  for (let i = 0; i < LAT_BUCKETS; i++) a.hist[i] += b.hist[i] ?? 0;
  return a;
}

/** The `q` quantile (0..1) of a histogram in ms: the geometric middle of the bucket it falls in; 0 when empty. */
export function quantile(hist: readonly number[], q: number): number {
  let total = 0;
  for (const n of hist) total += n;
  if (total === 0) return 0;
  const rank = Math.max(1, Math.ceil(q * total));
  let acc = 0;
  for (let i = 0; i < hist.length; i++) {
    acc += hist[i];
    if (acc >= rank) {
      if (i === 0) return LAT_MIN_MS;
      if (i === LAT_BUCKETS - 1) return bucketUpper(i);
      return Math.sqrt(bucketUpper(i - 1) * bucketUpper(i));
    }
  }
  return bucketUpper(LAT_BUCKETS - 1);
}

/** One server's (or a service's unrouted requests') last minute. */
export class StatsWindow {
  readonly #cells = new Uint32Array(SLOTS * STRIDE);
  /** The second each slot holds (-1: never used). */
  readonly #stamps = new Float64Array(SLOTS).fill(-1);

  /** Records one finished request: `nowMs` from performance.now(), its class index and latency in ms. */
  record(nowMs: number, cls: number, ms: number): void {
    const sec = Math.floor(nowMs / 1000);
    const slot = sec % SLOTS;
    const base = slot * STRIDE;
    const cells = this.#cells;
    if (this.#stamps[slot] !== sec) {
      this.#stamps[slot] = sec;
      for (let i = base; i < base + STRIDE; i++) cells[i] = 0;
    }
    cells[base + cls]++;
    cells[base + CLASSES + bucketOf(ms)]++;
  }

  /** Adds the last minute (as of `nowMs`) to `into`. */
  collect(nowMs: number, into: WindowSummary): void {
    const now = nowMs / 1000;
    const sec = Math.floor(now);
    const cells = this.#cells;
    let recent = 0;
    for (let slot = 0; slot < SLOTS; slot++) {
      const age = sec - this.#stamps[slot];
      if (this.#stamps[slot] < 0 || age < 0 || age >= SLOTS) continue;
      const base = slot * STRIDE;
      for (let c = 0; c < CLASSES; c++) {
        const n = cells[base + c];
        into.status[c] += n;
        if (age < RATE_SECONDS) recent += n;
      }
      for (let b = 0; b < LAT_BUCKETS; b++) into.hist[b] += cells[base + CLASSES + b];
    }
    // the current second is partly over: divide by the time the counted slots really cover
    into.rps += recent / (RATE_SECONDS - 1 + (now - sec));
  }
}

/** The JSON of one service or server in `GET /api/stats`. */
export interface StatsJSON {
  rps: number;
  inflight: number;
  status: { "2xx": number; "3xx": number; "4xx": number; "5xx": number };
  p50_ms: number;
  p99_ms: number;
}

export function renderSummary(s: WindowSummary): StatsJSON {
  return {
    rps: Math.round(s.rps * 100) / 100,
    inflight: s.inflight,
    status: { "2xx": s.status[1], "3xx": s.status[2], "4xx": s.status[3], "5xx": s.status[4] },
    p50_ms: round2(quantile(s.hist, 0.5)),
    p99_ms: round2(quantile(s.hist, 0.99)),
  };
}

function round2(x: number): number {
  return x >= 10 ? Math.round(x * 10) / 10 : Math.round(x * 100) / 100;
}

/** Raw stats of one service: its totals and its servers', mergeable across processes. */
export interface ServiceSummary {
  total: WindowSummary;
  servers: Record<string, WindowSummary>;
}

export type StatsSnapshot = Record<string, ServiceSummary>;

/** Adds the snapshot `b` into `a`. */
export function mergeSnapshot(a: StatsSnapshot, b: StatsSnapshot): StatsSnapshot {
  for (const [name, svc] of Object.entries(b)) {
    const into = a[name];
    if (into === undefined) {
      a[name] = svc;
      continue;
    }
    mergeSummary(into.total, svc.total);
    for (const [server, s] of Object.entries(svc.servers)) {
      if (into.servers[server] === undefined) into.servers[server] = s;
      else mergeSummary(into.servers[server], s);
    }
  }
  return a;
}

/** The `GET /api/stats` body. */
export function renderSnapshot(
  snap: StatsSnapshot,
): Record<string, StatsJSON & { servers: Record<string, StatsJSON> }> {
  const out: Record<string, StatsJSON & { servers: Record<string, StatsJSON> }> = {};
  for (const [name, svc] of Object.entries(snap)) {
    const servers: Record<string, StatsJSON> = {};
    for (const [server, s] of Object.entries(svc.servers)) servers[server] = renderSummary(s);
    out[name] = { ...renderSummary(svc.total), servers };
  }
  return out;
}
