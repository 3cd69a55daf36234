import type { Server } from "../balancer/server.ts";
import { isTried, type PickContext, type PoolView, type Selector } from "./selector.ts";

/**
 * Weighted least connections (nginx's least_conn): the available server with the lowest
 * inflight/weight. Ties go to the tied server with the fewest picks relative to its weight
 * (a divisor-method rotation), so an idle pool follows the weights exactly (every run of
 * `total weight` picks gives each server its weight) and never favours the first server.
 *
 * The available servers sit in a binary min-heap ordered by (inflight/weight, picks/weight,
 * position), compared by cross-multiplying integers, so a pick is O(log n). The pool tells the
 * selector when a server's inflight changes (`loadChanged`) and the server is moved in the heap.
 * The pick counts start again every `total weight` picks so a server's lag stays bounded.
 * A server with a rebalanced weight of 0 is picked only when no weighted server can be.
 */
export class LeastConnSelector implements Selector {
  readonly mode = "least_conn" as const;
  /** Available servers; a server's slot is its index here. */
  #slots: Server[] = [];
  #slotOf = new Map<Server, number>();
  #weight = new Float64Array(0);
  /** slot → the server's inflight, copied when the pool reports a change */
  #load = new Float64Array(0);
  #picks = new Float64Array(0);
  /** heap of slots */
  #heap = new Int32Array(0);
  /** slot → position in the heap */
  #pos = new Int32Array(0);
  #period = 0;
  #sincereset = 0;
  #pending: PoolView | undefined;

  rebuild(pool: PoolView): void {
    // built lazily at the next pick, so adding 1,000 servers one by one costs one build
    this.#pending = pool;
  }

  #sync(): void {
    const pool = this.#pending!;
    this.#pending = undefined;
    const slots = pool.servers.filter((s) => s.available);
    const n = slots.length;
    this.#slots = slots;
    this.#slotOf = new Map();
    this.#weight = new Float64Array(n);
    this.#load = new Float64Array(n);
    this.#picks = new Float64Array(n);
    this.#heap = new Int32Array(n);
    this.#pos = new Int32Array(n);
    let total = 0;
    for (let i = 0; i < n; i++) {
      // a server in its slow-start ramp counts with its share of its weight so far
      const w = slots[i].ramp < 1 ? slots[i].weight * slots[i].ramp : slots[i].weight;
      this.#slotOf.set(slots[i], i);
      this.#weight[i] = Math.max(w, 0);
      this.#load[i] = slots[i].inflight;
      total += Math.max(w, 0);
      this.#heap[i] = i;
      this.#pos[i] = i;
    }
    this.#period = Math.max(total, n, 1);
    this.#sincereset = 0;
    this.#heapify();
  }

  /** Called by the pool when `server.inflight` changed. */
  loadChanged(server: Server): void {
    if (this.#pending !== undefined) return; // the build reads inflight
    const slot = this.#slotOf.get(server);
    if (slot === undefined) return;
    this.#load[slot] = server.inflight;
    const p = this.#pos[slot];
    this.#siftUp(p);
    this.#siftDown(this.#pos[slot]);
  }

  pick(ctx: PickContext): Server | undefined {
    if (this.#pending !== undefined) this.#sync();
    const n = this.#slots.length;
    if (n === 0) return undefined;
    let slot = this.#heap[0];
    const root = this.#slots[slot];
    if (!root.available || (ctx.tried !== null && isTried(ctx, root))) {
      slot = this.#scan(ctx);
      if (slot < 0) return undefined;
    }
    this.#picks[slot]++;
    this.#siftDown(this.#pos[slot]);
    if (++this.#sincereset >= this.#period) this.#resetPicks();
    return this.#slots[slot];
  }

  /** The best slot that can take the request when the root cannot (retries, stale availability). */
  #scan(ctx: PickContext): number {
    let best = -1;
    for (let i = 0; i < this.#slots.length; i++) {
      const s = this.#slots[i];
      if (!s.available || (ctx.tried !== null && isTried(ctx, s))) continue;
      if (best < 0 || this.#less(i, best)) best = i;
    }
    return best;
  }

  #resetPicks(): void {
    this.#picks.fill(0);
    this.#sincereset = 0;
    this.#heapify();
  }

  #less(a: number, b: number): boolean {
    return less(a, b, this.#weight, this.#load, this.#picks);
  }

  #heapify(): void {
    const heap = this.#heap;
    const n = heap.length;
    for (let i = 0; i < n; i++) {
      heap[i] = i;
      this.#pos[i] = i;
    }
    for (let i = (n >> 1) - 1; i >= 0; i--) this.#siftDown(i);
  }

  #siftUp(p: number): void {
    const heap = this.#heap;
    const pos = this.#pos;
    const w = this.#weight;
    const load = this.#load;
    const picks = this.#picks;
    const slot = heap[p];
    while (p > 0) {
      const parent = (p - 1) >> 1;
      const ps = heap[parent];
      if (!less(slot, ps, w, load, picks)) break;
      heap[p] = ps;
      pos[ps] = p;
      p = parent;
    }
    heap[p] = slot;
    pos[slot] = p;
  }

  #siftDown(p: number): void {
    const heap = this.#heap;
    const pos = this.#pos;
    const w = this.#weight;
    const load = this.#load;
    const picks = this.#picks;
    const n = heap.length;
    const slot = heap[p];
    for (;;) {
      let c = 2 * p + 1;
      if (c >= n) break;
      if (c + 1 < n && less(heap[c + 1], heap[c], w, load, picks)) c++;
      const cs = heap[c];
      if (!less(cs, slot, w, load, picks)) break;
      heap[p] = cs;
      pos[cs] = p;
      p = c;
    }
    heap[p] = slot;
    pos[slot] = p;
  }
}

/**
 * Slot a before slot b: lower inflight/weight, then fewer picks/weight, then earlier position
 * (cross-multiplied, exact). A server whose rebalanced weight is 0 comes after every weighted one
 * (as in round_robin).
 */
function less(a: number, b: number, w: Float64Array, load: Float64Array, picks: Float64Array): boolean {
  let wa = w[a];
  let wb = w[b];
  if (wa === 0 || wb === 0) {
    if (wa !== wb) return wb === 0;
    wa = wb = 1;
  }
  const la = load[a] * wb;
  const lb = load[b] * wa;
  if (la !== lb) return la < lb;
  const pa = picks[a] * wb;
  const pb = picks[b] * wa;
  if (pa !== pb) return pa < pb;
  return a < b;
}
