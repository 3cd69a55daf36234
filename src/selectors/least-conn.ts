import type { Server } from "../balancer/server.ts";
import { isTried, type PickContext, type PoolView, type Selector } from "./selector.ts";

/**
 * Weighted least connections (nginx's least_conn): the available server with the lowest
 * inflight/weight; ties are broken by smooth weighted round robin among the tied servers,
 * so idle pools still follow the weights and never favour the first server.
 */
export class LeastConnSelector implements Selector {
  readonly mode = "least_conn" as const;
  #servers: Server[] = [];
  #current = new Float64Array(0);

  rebuild(pool: PoolView): void {
    this.#servers = pool.servers.filter((s) => s.available);
    this.#current = new Float64Array(this.#servers.length);
  }

  pick(ctx: PickContext): Server | undefined {
    const list = this.#servers;
    const n = list.length;
    let best = -1;
    let bestLoad = 0;
    let bestWeight = 1;
    let ties = 0;
    for (let i = 0; i < n; i++) {
      const s = list[i];
      if (!s.available || (ctx.tried !== null && isTried(ctx, s))) continue;
      const w = s.weight > 0 ? s.weight : 0.001;
      const load = s.inflight;
      // inflight/weight compared by cross-multiplying
      const a = load * bestWeight;
      const b = bestLoad * w;
      if (best < 0 || a < b) {
        best = i;
        bestLoad = load;
        bestWeight = w;
        ties = 1;
      } else if (a === b) {
        ties++;
      }
    }
    if (best < 0) return undefined;
    if (ties === 1) return list[best];
    const current = this.#current;
    let total = 0;
    let chosen = -1;
    for (let i = best; i < n; i++) {
      const s = list[i];
      if (!s.available || (ctx.tried !== null && isTried(ctx, s))) continue;
      const w = s.weight > 0 ? s.weight : 0.001;
      if (s.inflight * bestWeight !== bestLoad * w) continue;
      current[i] += w;
      total += w;
      if (chosen < 0 || current[i] > current[chosen]) chosen = i;
    }
    current[chosen] -= total;
    return list[chosen];
  }
}
