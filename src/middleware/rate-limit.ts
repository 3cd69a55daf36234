/**
 * `rate_limit`: a token bucket per client address (`limit` per `period`, at most `burst` at
 * once); over it, 429 with Retry-After. Memory is bounded: at most MAX_CLIENTS buckets in
 * typed arrays; when the table is full, a bucket that has refilled completely (the same as a
 * fresh one) is dropped first, else the least recently used (ages are kept once the table is
 * 90 % full). With `--workers N` the buckets live in the
 * cluster primary: a worker leases small batches of tokens per address (see `Leases`), so the
 * total admitted is the service's limit, not N times it.
 */
import type { MiddlewareConfig } from "../config/types.ts";
import {
  type Answer,
  type Middleware,
  PENDING,
  plainAnswer,
  type RemoteTokens,
  type RequestInfo,
} from "./types.ts";

export const MAX_CLIENTS = 100_000;
/** Entries looked at for a completely refilled bucket before the oldest is dropped. */
const EVICT_SCAN = 32;

/** Token buckets for up to `capacity` keys, in typed arrays (no object per client). */
export class Buckets {
  readonly #slot = new Map<string, number>();
  readonly #tokens: Float64Array;
  readonly #stamp: Float64Array;
  readonly #free: number[] = [];
  readonly #perMs: number;
  readonly #burst: number;
  /** From this size on, each use refreshes a key's age (LRU); below it, nothing is evicted anyway. */
  readonly #pressure: number;
  #used = 0;

  constructor(limit: number, period: number, burst: number, capacity = MAX_CLIENTS) {
    this.#perMs = limit / period;
    this.#burst = burst;
    this.#tokens = new Float64Array(capacity);
    this.#pressure = Math.floor(capacity * 0.9);
    this.#stamp = new Float64Array(capacity);
  }

  get size(): number {
    return this.#slot.size;
  }

  /**
   * Takes up to `want` whole tokens of `key` at `now` (ms). Returns how many it got; when 0,
   * `retryAfter` (ms) says when one will be there.
   */
  take(key: string, want: number, now: number): number {
    let s = this.#slot.get(key);
    let tokens: number;
    if (s === undefined) {
      s = this.#alloc(now);
      this.#slot.set(key, s);
      tokens = this.#burst;
    } else {
      tokens = Math.min(this.#burst, this.#tokens[s] + (now - this.#stamp[s]) * this.#perMs);
      // under pressure, a client in use moves to the young end: eviction takes the least recent
      if (this.#slot.size >= this.#pressure) {
        this.#slot.delete(key);
        this.#slot.set(key, s);
      }
    }
    const got = Math.min(want, Math.floor(tokens));
    const rest = tokens - got;
    this.#tokens[s] = rest;
    this.#stamp[s] = now;
    this.retryAfter = rest >= 1 ? 0 : (1 - rest) / this.#perMs;
    return got;
  }

  /** Set by `take`: ms until the key has a whole token again (0 when it has one). */
  retryAfter = 0;

  #alloc(now: number): number {
    if (this.#free.length > 0) return this.#free.pop()!;
    if (this.#used < this.#tokens.length) return this.#used++;
    // full: drop a bucket that has refilled completely (nothing is lost), else the oldest
    let scanned = 0;
    let victim: string | undefined;
    for (const [key, s] of this.#slot) {
      if (victim === undefined) victim = key;
      if (this.#tokens[s] + (now - this.#stamp[s]) * this.#perMs >= this.#burst) {
        victim = key;
        break;
      }
      if (++scanned >= EVICT_SCAN) break;
    }
    const s = this.#slot.get(victim!)!;
    this.#slot.delete(victim!);
    return s;
  }
}

function tooMany(retryAfterMs: number): Answer {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return plainAnswer(429, "Too Many Requests", ["retry-after", String(seconds)]);
}

/**
 * Process-wide: set once when the process starts as a cluster worker, where every limit is the
 * cluster's and its buckets live in the primary; a process is a worker for all its services or none.
 */
let remote: RemoteTokens | undefined;
export function setRemoteTokens(fn: RemoteTokens | undefined): void {
  remote = fn;
}

export class RateLimit implements Middleware {
  readonly kind = "rate_limit";
  readonly needsClient = true;
  readonly #local: Buckets | undefined;
  readonly #leases: Leases | undefined;

  constructor(config: Extract<MiddlewareConfig, { kind: "rate_limit" }>, id: string) {
    if (remote === undefined) this.#local = new Buckets(config.limit, config.period, config.burst);
    else this.#leases = new Leases(config, id, remote);
  }

  request(
    _req: unknown,
    info: RequestInfo,
    resume: (a: Answer | undefined) => void,
  ): Answer | undefined | typeof PENDING {
    const local = this.#local;
    if (local !== undefined) {
      return local.take(info.client, 1, performance.now()) === 1 ? undefined : tooMany(local.retryAfter);
    }
    return this.#leases!.take(info.client, resume);
  }
}

interface Lease {
  tokens: number;
  expires: number;
  waiting: ((a: Answer | undefined) => void)[] | null;
}

/**
 * A worker's side of a cluster-wide limit: tokens leased from the primary in small batches
 * per address (1/20 s of the rate, at most a quarter of the burst). A lease not used within a
 * second is dropped, so a worker never holds a burst the primary has already refilled. The
 * total can only fall short of the limit (by what leases expire unused), never exceed it.
 */
class Leases {
  readonly #id: string;
  readonly #remote: RemoteTokens;
  readonly #batch: number;
  readonly #map = new Map<string, Lease>();

  constructor(config: Extract<MiddlewareConfig, { kind: "rate_limit" }>, id: string, remote: RemoteTokens) {
    this.#id = id;
    this.#remote = remote;
    const perSecond = (config.limit * 1000) / config.period;
    this.#batch = Math.max(1, Math.min(Math.ceil(perSecond / 20), Math.ceil(config.burst / 4)));
  }

  take(client: string, resume: (a: Answer | undefined) => void): Answer | undefined | typeof PENDING {
    const now = performance.now();
    let lease = this.#map.get(client);
    if (lease !== undefined && lease.waiting === null && lease.expires < now) lease.tokens = 0;
    if (lease !== undefined && lease.tokens >= 1) {
      lease.tokens--;
      return undefined;
    }
    if (lease === undefined) {
      if (this.#map.size >= MAX_CLIENTS) this.#evict(now);
      lease = { tokens: 0, expires: 0, waiting: null };
      this.#map.set(client, lease);
    }
    if (lease.waiting !== null) {
      lease.waiting.push(resume);
      return PENDING;
    }
    lease.waiting = [resume];
    this.#ask(lease, client);
    return PENDING;
  }

  /** Asks the primary for tokens for the requests waiting on `l`; more while it has them. */
  #ask(l: Lease, client: string): void {
    const want = Math.max(this.#batch, l.waiting!.length);
    this.#remote(this.#id, client, want).then(
      ({ granted, retryAfter }) => {
        const waiting = l.waiting!;
        l.tokens = granted;
        l.expires = performance.now() + 1000;
        let i = 0;
        for (; i < waiting.length && l.tokens >= 1; i++) {
          l.tokens--;
          waiting[i](undefined);
        }
        if (i < waiting.length && granted >= want) {
          // requests arrived while asking and the primary may have more: ask again for them
          l.waiting = waiting.slice(i);
          this.#ask(l, client);
          return;
        }
        l.waiting = null;
        for (; i < waiting.length; i++) waiting[i](tooMany(retryAfter));
      },
      () => {
        // the primary is gone (shutting down): let the requests through rather than hang them
        const waiting = l.waiting!;
        l.waiting = null;
        for (const w of waiting) w(undefined);
      },
    );
  }

  #evict(now: number): void {
    let n = 0;
    for (const [k, l] of this.#map) {
      if (l.waiting === null && (l.tokens < 1 || l.expires < now)) this.#map.delete(k);
      if (++n >= EVICT_SCAN) break;
    }
    if (this.#map.size >= MAX_CLIENTS) {
      const first = this.#map.keys().next().value as string;
      if (this.#map.get(first)!.waiting === null) this.#map.delete(first);
    }
  }
}

/** The primary's side: one Buckets per limiter id, rebuilt when its settings change. */
export class TokenBank {
  readonly #banks = new Map<string, { key: string; buckets: Buckets }>();

  grant(
    id: string,
    config: Extract<MiddlewareConfig, { kind: "rate_limit" }> | undefined,
    client: string,
    want: number,
  ): { granted: number; retryAfter: number } {
    if (config === undefined) return { granted: want, retryAfter: 0 };
    const key = `${config.limit}/${config.period}/${config.burst}`;
    let bank = this.#banks.get(id);
    if (bank === undefined || bank.key !== key) {
      bank = { key, buckets: new Buckets(config.limit, config.period, config.burst) };
      this.#banks.set(id, bank);
    }
    const granted = bank.buckets.take(client, Math.max(1, Math.floor(want)), performance.now());
    return { granted, retryAfter: bank.buckets.retryAfter };
  }
}
