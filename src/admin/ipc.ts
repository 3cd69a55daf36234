/**
 * The admin API under `--workers N`: the primary serves it, the workers hold the traffic. Reads
 * ask every worker (stats are added up), writes go to every worker and are answered once each
 * has applied them (a drain's wait runs in each worker on its own in-flight requests), and the
 * events only a worker sees (a passive ejection, its part of a drain) reach the primary's log.
 * The messages ride node:cluster IPC beside cluster.ts's own (`sy` tells them apart).
 */
import type { Worker } from "node:cluster";
import type { Runtime } from "../server/runtime.ts";
import { type AdminOp, applyLocal, type LocalResult } from "./actions.ts";
import type { EventLog, SwitchyardEvent } from "./events.ts";
import type { StatsSnapshot } from "./stats.ts";

type Request = { kind: "stats" } | { kind: "op"; op: AdminOp };

export type AdminToWorker = { sy: "admin"; id: number; req: Request };
export type AdminToPrimary =
  | { sy: "adminReply"; id: number; data: unknown }
  | { sy: "adminEvent"; event: SwitchyardEvent };

/** What the primary's runtime needs from the workers. */
export interface WorkerAdmin {
  stats(): Promise<StatsSnapshot[]>;
  act(op: AdminOp): Promise<LocalResult[]>;
}

/** Events a worker forwards: the ones only it sees. Health, admin states and reloads are the primary's own. */
const FORWARDED = new Set(["ejected", "drained", "wake", "idle_stop"]);

function isAdminMessage(m: unknown): m is AdminToPrimary | AdminToWorker {
  const sy = (m as { sy?: unknown } | null)?.sy;
  return sy === "admin" || sy === "adminReply" || sy === "adminEvent";
}

interface Pending {
  workers: Set<Worker>;
  data: unknown[];
  done: () => void;
}

// ---------------------------------------------------------------------------------------------
// primary

export class AdminPrimary implements WorkerAdmin {
  readonly #workers: () => Worker[];
  readonly #send: (w: Worker, m: AdminToWorker) => void;
  #events: EventLog | undefined;
  readonly #pending = new Map<number, Pending>();
  /** Drains under way: "service\nserver" → the workers that reported `drained`. */
  readonly #drains = new Map<string, Set<number>>();
  #nextId = 0;

  constructor(workers: () => Worker[], send: (w: Worker, m: AdminToWorker) => void) {
    this.#workers = workers;
    this.#send = send;
  }

  /** The primary's event log, once its runtime exists. */
  setEvents(events: EventLog): void {
    this.#events = events;
  }

  stats(): Promise<StatsSnapshot[]> {
    return this.#ask({ kind: "stats" }, 5000) as Promise<StatsSnapshot[]>;
  }

  act(op: AdminOp): Promise<LocalResult[]> {
    const key = `${op.service}\n${op.server}`;
    // a repeated drain keeps counting the first one's reports (a worker reports `drained` once per drain)
    if (op.kind === "drain" && !this.#drains.has(key)) this.#drains.set(key, new Set());
    else if (op.kind === "state") this.#drains.delete(key);
    const timeout = (op.kind === "drain" ? op.waitMs : 0) + 10_000;
    return this.#ask({ kind: "op", op }, timeout) as Promise<LocalResult[]>;
  }

  /** Sends `ops` to a worker that just started, so it holds the admin states the others do. No answer awaited. */
  sync(w: Worker, ops: readonly AdminOp[]): void {
    for (const op of ops) this.#send(w, { sy: "admin", id: 0, req: { kind: "op", op } });
  }

  /** Handles an admin message from a worker; false when `m` is not one. */
  onMessage(w: Worker, m: unknown): boolean {
    if (!isAdminMessage(m)) return false;
    if (m.sy === "adminReply") {
      const p = this.#pending.get(m.id);
      if (p?.workers.delete(w)) {
        p.data.push(m.data);
        if (p.workers.size === 0) p.done();
      }
    } else if (m.sy === "adminEvent") this.#event(w, m.event);
    return true;
  }

  /** A worker exited: nothing more will come from it. */
  workerGone(w: Worker): void {
    for (const p of this.#pending.values()) {
      if (p.workers.delete(w) && p.workers.size === 0) p.done();
    }
  }

  #event(w: Worker, e: SwitchyardEvent): void {
    if (e.action !== "drained") {
      this.#events?.emit(e);
      return;
    }
    // a server is drained once every worker has no request left on it: one event for all
    const key = `${e.service}\n${e.server}`;
    const seen = this.#drains.get(key);
    if (seen === undefined) return;
    seen.add(w.id);
    if (seen.size >= this.#workers().length) {
      this.#drains.delete(key);
      this.#events?.emit({ ...e, timestamp: undefined, message: `${e.message} (every worker)` });
    }
  }

  #ask(req: Request, timeoutMs: number): Promise<unknown[]> {
    return new Promise((resolve) => {
      const id = ++this.#nextId;
      const workers = this.#workers();
      const p: Pending = { workers: new Set(workers), data: [], done: () => {} };
      const timer = setTimeout(() => p.done(), timeoutMs);
      p.done = () => {
        clearTimeout(timer);
        this.#pending.delete(id);
        resolve(p.data);
      };
      this.#pending.set(id, p);
      if (workers.length === 0) p.done();
      for (const w of workers) this.#send(w, { sy: "admin", id, req });
    });
  }
}

// ---------------------------------------------------------------------------------------------
// worker

/**
 * The worker's side: answers the primary's admin requests against its runtime (once it has
 * started; earlier requests wait for it) and forwards its own events.
 */
export class AdminWorker {
  readonly #reply: (m: AdminToPrimary) => void;
  #runtime: Promise<Runtime>;
  #started!: (rt: Runtime) => void;

  constructor(reply: (m: AdminToPrimary) => void) {
    this.#reply = reply;
    this.#runtime = new Promise((ok) => {
      this.#started = ok;
    });
  }

  /** The worker's runtime has started: answer what waited, forward its events from now on. */
  started(rt: Runtime): void {
    rt.events.subscribe((event) => {
      if (FORWARDED.has(event.action)) this.#reply({ sy: "adminEvent", event });
    });
    this.#started(rt);
  }

  /** Handles an admin message from the primary; false when `m` is not one. */
  onMessage(m: unknown): boolean {
    if (!isAdminMessage(m) || m.sy !== "admin") return false;
    void this.#runtime.then(async (rt) => {
      let data: unknown;
      if (m.req.kind === "stats") data = rt.statsSnapshot();
      else data = await applyLocal(rt.services, m.req.op);
      if (m.id !== 0) this.#reply({ sy: "adminReply", id: m.id, data });
    });
    return true;
  }
}
