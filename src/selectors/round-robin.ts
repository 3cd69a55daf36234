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

  rebuild(pool: PoolView): void {
    this.#pending = pool;
  }

  pick(ctx: PickContext): Server | undefined {
    if (this.#pending !== undefined) {
      this.#good = this.#pending.servers.filter((s) => s.available);
      this.#schedule = smoothSchedule(this.#good);
      this.#pending = undefined;
      this.#pos = 0;
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

/** nginx's smooth weighted round robin, unrolled over one period. */
export function smoothSchedule(servers: readonly Server[]): Server[] {
  const n = servers.length;
  if (n === 0) return [];
  let weights = servers.map((s) => s.weight);
  let total = weights.reduce((a, b) => a + b, 0);
  if (total === 0) {
    // every good server was rounded to weight 0: share equally rather than serve nobody
    weights = servers.map(() => 1);
    total = n;
  }
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
