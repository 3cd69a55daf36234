import type { Server } from "../balancer/server.ts";
import { hashString, unit } from "./hash.ts";
import { isTried, type PickContext, type PoolView, type Selector } from "./selector.ts";

/** Fixed so that a client's bucket never depends on the pool size. */
const BUCKETS = 65536;

/**
 * Weighted rendezvous (HRW) hashing, tabulated. A client address hashes to one of 65,536
 * buckets; each bucket belongs to the server with the highest weighted score
 * ln(u)/w for that bucket. Removing a server only reassigns its own buckets (every other
 * bucket keeps its highest scorer), and adding one only takes buckets it now wins. Scores
 * use the servers' effective weights (ratios), which rebalancing to 100 does not change.
 * A pick is one table read; a client whose server is not available (or already tried) goes
 * to its next rendezvous choice among available servers, and returns when its server does.
 */
export class IpHashSelector implements Selector {
  readonly mode = "ip_hash" as const;
  #servers: Server[] = [];
  #owner: (Server | undefined)[] = new Array(BUCKETS).fill(undefined);
  #score = new Float64Array(BUCKETS).fill(Number.NEGATIVE_INFINITY);
  /** key → weight the table was built with */
  #built = new Map<string, { server: Server; weight: number; seed: number }>();
  #dirty = false;
  #pending: PoolView | undefined;

  rebuild(pool: PoolView): void {
    // Availability changes reach here too, but do not touch the table; defer real work to
    // the next pick so adding 1,000 servers one by one costs one build.
    this.#pending = pool;
    this.#dirty = true;
  }

  #sync(): void {
    const pool = this.#pending!;
    this.#dirty = false;
    this.#pending = undefined;
    this.#servers = pool.servers.slice();
    const next = new Map<string, { server: Server; weight: number; seed: number }>();
    for (const s of pool.servers)
      next.set(s.key, { server: s, weight: s.effectiveWeight, seed: hashString(s.key) });
    let full = false;
    const removed: Server[] = [];
    const added: { server: Server; weight: number; seed: number }[] = [];
    for (const [key, old] of this.#built) {
      const cur = next.get(key);
      if (!cur) removed.push(old.server);
      else if (cur.weight !== old.weight) full = true;
    }
    for (const [key, cur] of next) if (!this.#built.has(key)) added.push(cur);
    // a replaced server object with the same key keeps its buckets
    for (const [key, cur] of next) {
      const old = this.#built.get(key);
      if (old && old.server !== cur.server) this.#replaceOwner(old.server, cur.server);
    }
    this.#built = next;
    if (full || added.length + removed.length > next.size) {
      this.#buildAll();
      return;
    }
    if (removed.length) {
      const gone = new Set(removed);
      for (let b = 0; b < BUCKETS; b++) {
        const o = this.#owner[b];
        if (o !== undefined && gone.has(o)) this.#rescore(b);
      }
    }
    for (const a of added) {
      const w = a.weight;
      for (let b = 0; b < BUCKETS; b++) {
        const sc = Math.log(unit(b, a.seed)) / w;
        if (sc > this.#score[b]) {
          this.#score[b] = sc;
          this.#owner[b] = a.server;
        }
      }
    }
  }

  #replaceOwner(from: Server, to: Server): void {
    for (let b = 0; b < BUCKETS; b++) if (this.#owner[b] === from) this.#owner[b] = to;
  }

  #buildAll(): void {
    this.#score.fill(Number.NEGATIVE_INFINITY);
    this.#owner.fill(undefined);
    for (const entry of this.#built.values()) {
      const { server, weight, seed } = entry;
      for (let b = 0; b < BUCKETS; b++) {
        const sc = Math.log(unit(b, seed)) / weight;
        if (sc > this.#score[b]) {
          this.#score[b] = sc;
          this.#owner[b] = server;
        }
      }
    }
  }

  #rescore(b: number): void {
    let best: Server | undefined;
    let bestScore = Number.NEGATIVE_INFINITY;
    for (const { server, weight, seed } of this.#built.values()) {
      const sc = Math.log(unit(b, seed)) / weight;
      if (sc > bestScore) {
        bestScore = sc;
        best = server;
      }
    }
    this.#owner[b] = best;
    this.#score[b] = bestScore;
  }

  /** The bucket a client address falls in. */
  static bucket(ip: string): number {
    return hashString(ip) & (BUCKETS - 1);
  }

  pick(ctx: PickContext): Server | undefined {
    if (this.#dirty) this.#sync();
    const b = hashString(ctx.ip) & (BUCKETS - 1);
    const s = this.#owner[b];
    if (s === undefined) return undefined;
    if (s.available && (ctx.tried === null || !isTried(ctx, s))) return s;
    // next rendezvous choice among the servers that can take it
    let best: Server | undefined;
    let bestScore = Number.NEGATIVE_INFINITY;
    for (const { server, weight, seed } of this.#built.values()) {
      if (!server.available || (ctx.tried !== null && isTried(ctx, server))) continue;
      const sc = Math.log(unit(b, seed)) / weight;
      if (sc > bestScore) {
        bestScore = sc;
        best = server;
      }
    }
    return best;
  }
}
