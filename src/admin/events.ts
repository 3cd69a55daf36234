/**
 * The operator's event log: what happened to services and servers (health changes, ejections,
 * wakes, idle stops, reloads, admin actions). The last 100 are kept for `GET /api/events` to
 * replay; listeners get every event live. Emitting costs one object and nothing else when no
 * one listens, and events are rare (never per request).
 */

export type EventAction =
  | "health"
  | "ejected"
  | "wake"
  | "idle_stop"
  | "reload"
  | "drain"
  | "maint"
  | "ready"
  | "weight"
  | "drained";

export interface SwitchyardEvent {
  /** ISO 8601. */
  readonly timestamp: string;
  readonly level: "info" | "warn" | "error";
  readonly action: EventAction;
  readonly service?: string;
  readonly server?: string;
  /** For people. */
  readonly message: string;
}

export type EventInput = Omit<SwitchyardEvent, "timestamp" | "level"> & {
  level?: SwitchyardEvent["level"];
  timestamp?: string;
};

/** Something events can be sent to; the balancer and the idle watcher take one of these. */
export type EventSink = (event: EventInput) => void;

export class EventLog {
  readonly #capacity: number;
  readonly #ring: (SwitchyardEvent | undefined)[];
  #next = 0;
  #count = 0;
  readonly #listeners = new Set<(e: SwitchyardEvent) => void>();

  constructor(capacity = 100) {
    this.#capacity = capacity;
    this.#ring = new Array(capacity);
  }

  /** A bound sink, to hand to producers. */
  readonly emit: EventSink = (input) => {
    const event: SwitchyardEvent = Object.freeze({
      timestamp: input.timestamp ?? new Date().toISOString(),
      level: input.level ?? "info",
      action: input.action,
      service: input.service,
      server: input.server,
      message: input.message,
    });
    this.#ring[this.#next] = event;
    this.#next = (this.#next + 1) % this.#capacity;
    if (this.#count < this.#capacity) this.#count++;
    for (const l of this.#listeners) l(event);
  };

  /** The kept events, oldest first. */
  recent(): SwitchyardEvent[] {
    const out: SwitchyardEvent[] = [];
    const start = (this.#next - this.#count + this.#capacity) % this.#capacity;
    for (let i = 0; i < this.#count; i++) out.push(this.#ring[(start + i) % this.#capacity]!);
    return out;
  }

  /** Live events; returns the unsubscribe function. */
  subscribe(listener: (e: SwitchyardEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  get listenerCount(): number {
    return this.#listeners.size;
  }
}
