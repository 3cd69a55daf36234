import type { Server } from "../balancer/server.ts";
import { hashString, unit } from "./hash.ts";
import { isTried, type PickContext, type PoolView, type Selector } from "./selector.ts";

/** Fixed so that a client's bucket never depends on the pool size. */
const BUCKETS = 65536;
/** Adding more servers than this at once drops the table instead of updating it bucket by bucket. */
const INCREMENTAL_ADDS = 4;

interface Entry {
  server: Server;
  weight: number;
  seed: number;
}

/** Servers of one effective weight: within a class the highest u wins, so one log per class. */
interface WeightClass {
  weight: number;
  members: Entry[];
}

/**
 * Weighted rendezvous (HRW) hashing, tabulated. A client address hashes to one of 65,536
 * buckets; each bucket belongs to the server with the highest weighted score ln(u)/w for that
 * bucket. Removing a server only reassigns its own buckets (every other bucket keeps its highest
 * scorer), and adding one only takes buckets it now wins. Scores use the servers' effective
 * weights (ratios), which rebalancing to 100 does not change.
 *
 * Bucket owners are computed on first use and kept until a change concerns them, so a pool
 * change never stalls a request on a whole-table build: a pick is one table read, or one
 * O(n) scoring (n hashes, one log per distinct weight) the first time a bucket is seen.
 * A client whose server is not available (or already tried) goes to its next rendezvous choice
 * among the servers that can take it, and returns when its server does.
 */
export class IpHashSelector implements Selector {
  readonly mode = "ip_hash" as const;
  #owner: (Server | undefined)[] = new Array(BUCKETS).fill(undefined);
  #score = new Float64Array(BUCKETS);
  /** 1 when #owner/#score hold the bucket's winner */
  #known = new Uint8Array(BUCKETS);
  /** key → entry the table was built with */
  #built = new Map<string, Entry>();
  #classes: WeightClass[] = [];
  #pending: PoolView | undefined;
  /** The server list the table was synced with (the pool passes a new array when membership changes). */
  #list: readonly Server[] | undefined;
  /**
   * Next choices for clients whose server cannot take requests, valid while the pool's
   * availability is unchanged (`#epoch` moves on every rebuild), so an outage costs one O(n)
   * scoring per bucket rather than one per request.
   */
  #alt: (Server | undefined)[] = new Array(BUCKETS).fill(undefined);
  #altEpoch = new Uint32Array(BUCKETS);
  #epoch = 1;
  /**
   * Servers in their slow-start ramp. The table keeps the owners at full weight; a client whose
   * owner ramps takes the alternative path, scored with the ramping servers' current weights. A
   * ramping server can win no bucket it does not own at full weight (its score only grows with its
   * weight), so only clients that end on it move, and more of them as it ramps.
   */
  #ramping: Entry[] = [];

  rebuild(pool: PoolView): void {
    this.#epoch = this.#epoch === 0xffffffff ? 1 : this.#epoch + 1;
    if (this.#epoch === 1) this.#altEpoch.fill(0);
    let ramping = false;
    for (const s of pool.servers) {
      if (s.ramp < 1) {
        ramping = true;
        break;
      }
    }
    this.#rampFrom = ramping ? pool.servers : null;
    // availability changes pass the same list and never touch the table; real work waits for a pick
    if (pool.servers !== this.#list) this.#pending = pool;
  }

  #sync(): void {
    const pool = this.#pending!;
    this.#pending = undefined;
    this.#list = pool.servers;
    const next = new Map<string, Entry>();
    for (const s of pool.servers) {
      const old = this.#built.get(s.key);
      next.set(s.key, { server: s, weight: s.effectiveWeight, seed: old ? old.seed : hashString(s.key) });
    }
    let reweighted = false;
    const removed = new Set<Server>();
    for (const [key, old] of this.#built) {
      const cur = next.get(key);
      if (!cur) removed.add(old.server);
      else if (cur.weight !== old.weight) reweighted = true;
      else if (cur.server !== old.server) this.#replaceOwner(old.server, cur.server); // same key keeps its buckets
    }
    const added: Entry[] = [];
    for (const [key, cur] of next) if (!this.#built.has(key)) added.push(cur);
    this.#built = next;
    this.#classes = classesOf(next);
    if (reweighted || added.length > INCREMENTAL_ADDS) {
      this.#known.fill(0);
      return;
    }
    const owner = this.#owner;
    const known = this.#known;
    if (removed.size) {
      for (let b = 0; b < BUCKETS; b++) if (known[b] && removed.has(owner[b]!)) known[b] = 0;
    }
    for (const a of added) {
      for (let b = 0; b < BUCKETS; b++) {
        if (!known[b]) continue;
        const sc = Math.log(unit(b, a.seed)) / a.weight;
        if (sc > this.#score[b]) {
          this.#score[b] = sc;
          owner[b] = a.server;
        }
      }
    }
  }

  /** The list whose ramping servers #ramping must hold (read at the next pick); null: none ramps. */
  #rampFrom: readonly Server[] | null | undefined;

  #syncRamping(): void {
    const list = this.#rampFrom;
    this.#rampFrom = undefined;
    const out: Entry[] = [];
    if (list) {
      for (const s of list) {
        if (s.ramp >= 1) continue;
        const e = this.#built.get(s.key);
        if (e !== undefined && e.server === s) out.push(e);
      }
    }
    this.#ramping = out;
  }

  #replaceOwner(from: Server, to: Server): void {
    const owner = this.#owner;
    for (let b = 0; b < BUCKETS; b++) if (owner[b] === from) owner[b] = to;
  }

  /**
   * The winner of bucket b: at full weights among all servers (ctx undefined, recorded in the
   * table), or among the servers that can take `ctx` with ramping servers at their current weight.
   */
  #best(b: number, ctx: PickContext | undefined): Server | undefined {
    let best: Server | undefined;
    let bestScore = Number.NEGATIVE_INFINITY;
    const classes = this.#classes;
    const ramp = ctx !== undefined && this.#ramping.length > 0;
    for (let c = 0; c < classes.length; c++) {
      const members = classes[c].members;
      let top: Entry | undefined;
      let topU = -1;
      for (let i = 0; i < members.length; i++) {
        const e = members[i];
        if (ctx !== undefined && (!e.server.available || (ctx.tried !== null && isTried(ctx, e.server))))
          continue;
        if (ramp && e.server.ramp < 1) continue; // scored below with its current weight
        const u = unit(b, e.seed);
        if (u > topU) {
          topU = u;
          top = e;
        }
      }
      if (top === undefined) continue;
      const sc = Math.log(topU) / top.weight;
      if (sc > bestScore) {
        bestScore = sc;
        best = top.server;
      }
    }
    if (ramp) {
      const list = this.#ramping;
      for (let i = 0; i < list.length; i++) {
        const e = list[i];
        const s = e.server;
        if (!s.available || (ctx.tried !== null && isTried(ctx, s))) continue;
        // at the very start of its ramp a server still wins when it is the only one left
        const sc = Math.log(unit(b, e.seed)) / (e.weight * Math.max(s.ramp, 1e-9));
        if (sc > bestScore) {
          bestScore = sc;
          best = s;
        }
      }
    }
    if (ctx === undefined) {
      this.#owner[b] = best;
      this.#score[b] = bestScore;
      this.#known[b] = 1;
    }
    return best;
  }

  /**
   * The rank of `server` in the client's rendezvous order at full weights (1 = its first choice);
   * O(n), for decision introspection only.
   */
  rank(ip: string, server: Server): number {
    if (this.#pending !== undefined) this.#sync();
    const b = hashString(ip) & (BUCKETS - 1);
    const mine = this.#built.get(server.key);
    if (mine === undefined) return 0;
    const score = (e: Entry) => Math.log(unit(b, e.seed)) / e.weight;
    const own = score(mine);
    let rank = 1;
    for (const e of this.#built.values()) if (e !== mine && score(e) > own) rank++;
    return rank;
  }

  /** The bucket a client address falls in. */
  static bucket(ip: string): number {
    return hashString(ip) & (BUCKETS - 1);
  }

  pick(ctx: PickContext): Server | undefined {
    if (this.#pending !== undefined) this.#sync();
    if (this.#rampFrom !== undefined) this.#syncRamping();
    const b = hashString(ctx.ip) & (BUCKETS - 1);
    const s = this.#known[b] ? this.#owner[b] : this.#best(b, undefined);
    if (s === undefined) return undefined;
    if (s.available && s.ramp === 1 && (ctx.tried === null || !isTried(ctx, s))) return s;
    // the client's next rendezvous choice among the servers that can take it
    if (ctx.tried !== null) return this.#best(b, ctx);
    if (this.#altEpoch[b] === this.#epoch) {
      const alt = this.#alt[b];
      if (alt === undefined || alt.available) return alt;
    }
    const alt = this.#best(b, ctx);
    this.#alt[b] = alt;
    this.#altEpoch[b] = this.#epoch;
    return alt;
  }
}

function classesOf(entries: Map<string, Entry>): WeightClass[] {
  const byWeight = new Map<number, WeightClass>();
  for (const e of entries.values()) {
    let c = byWeight.get(e.weight);
    if (c === undefined) {
      c = { weight: e.weight, members: [] };
      byWeight.set(e.weight, c);
    }
    c.members.push(e);
  }
  return [...byWeight.values()];
}
