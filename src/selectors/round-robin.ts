import type { Server } from "../balancer/server.ts";
import { isTried, type PickContext, type PoolView, type Selector } from "./selector.ts";

/**
 * Smooth weighted round robin (nginx). The sequence over the available servers is periodic
 * with period = total weight (100), so it is computed once per change (lazily, at the next
 * pick, so adding many servers one by one costs one build) and a pick is O(1).
 */
export class RoundRobinSelector implements Selector {
  readonly mode = "round_robin" as const;
  #schedule: Server[] = [];
  #pos = 0;
  #good: Server[] = [];
  #pending: PoolView | undefined;

  #keepPosition = false;

  rebuild(pool: PoolView): void {
    // a slow-start step keeps the rotation going (a step may come before a whole period was used)
    this.#keepPosition = pool.step === true && (this.#pending === undefined || this.#keepPosition);
    this.#pending = pool;
  }

  pick(ctx: PickContext): Server | undefined {
    if (this.#pending !== undefined) {
      this.#good = this.#pending.servers.filter((s) => s.available);
      this.#schedule = smoothSchedule(this.#good);
      this.#pending = undefined;
      this.#pos = this.#keepPosition && this.#pos < this.#schedule.length ? this.#pos : 0;
    }
    const sched = this.#schedule;
    const n = sched.length;
    if (n === 0) return undefined;
    for (let i = 0; i < n; i++) {
      const s = sched[this.#pos];
      this.#pos = this.#pos + 1 === n ? 0 : this.#pos + 1;
      if (s.available && (ctx.tried === null || !isTried(ctx, s))) return s;
    }
    // a retry whose weighted servers were all tried may still use one rounded down to weight 0
    for (const s of this.#good) if (s.available && !isTried(ctx, s)) return s;
    return undefined;
  }
}

/** The weights one period is made of, and the period (their total). */
function periodWeights(servers: readonly Server[]): { weights: number[]; total: number } {
  // a server in its slow-start ramp counts with its share of its weight so far
  const weights = servers.map((s) => (s.ramp < 1 ? Math.round(s.weight * s.ramp) : s.weight));
  const total = weights.reduce((a, b) => a + b, 0);
  // every good server was rounded to weight 0: share equally rather than serve nobody
  if (total === 0) return { weights: servers.map(() => 1), total: servers.length };
  return { weights, total };
}

/**
 * nginx's smooth weighted round robin, unrolled over one period (= total weight). nginx adds
 * every weight to its server's `current`, takes the first server with the highest `current`
 * and subtracts the total from it; so at step k a server's `current` is k·w − total·picks. Among
 * servers of equal weight the winner is the one with the fewest picks (then the first), i.e.
 * they take turns in order, so only one candidate per distinct weight has to be compared:
 * O(total × distinct weights) instead of O(total × n).
 */
export function smoothSchedule(servers: readonly Server[]): Server[] {
  const n = servers.length;
  if (n === 0) return [];
  const { weights, total } = periodWeights(servers);
  const byWeight = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const w = weights[i];
    if (w <= 0) continue;
    let members = byWeight.get(w);
    if (members === undefined) {
      members = [];
      byWeight.set(w, members);
    }
    members.push(i);
  }
  const classes = [...byWeight].map(([weight, members]) => ({ weight, members, next: 0, picks: 0 }));
  const out: Server[] = new Array(total);
  for (let k = 1; k <= total; k++) {
    let best = classes[0];
    let bestKey = k * best.weight - total * best.picks;
    for (let c = 1; c < classes.length; c++) {
      const cl = classes[c];
      const key = k * cl.weight - total * cl.picks;
      if (key > bestKey || (key === bestKey && cl.members[cl.next] < best.members[best.next])) {
        best = cl;
        bestKey = key;
      }
    }
    out[k - 1] = servers[best.members[best.next]];
    if (++best.next === best.members.length) {
      best.next = 0;
      best.picks++;
    }
  }
  return out;
}

/** The plain O(total × n) nginx loop, kept as the reference the tests compare against. */
export function smoothScheduleReference(servers: readonly Server[]): Server[] {
  const n = servers.length;
  if (n === 0) return [];
  const { weights, total } = periodWeights(servers);
  const current = new Float64Array(n);
  const out: Server[] = new Array(total);
  for (let k = 0; k < total; k++) {
    let best = -1;
    for (let i = 0; i < n; i++) {
      current[i] += weights[i];
      if (weights[i] > 0 && (best < 0 || current[i] > current[best])) best = i;
    }
    current[best] -= total;
    out[k] = servers[best];
  }
  return out;
}
