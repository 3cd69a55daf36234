export const STATUSES = ["healthy", "napping", "starting", "unhealthy", "error", "unknown"] as const;
export type HealthStatus = (typeof STATUSES)[number];

/** healthy, napping and starting can take requests (napping/starting are woken first). */
export function isGood(status: HealthStatus): boolean {
  return status === "healthy" || status === "napping" || status === "starting";
}

/**
 * Anything that can report a server's health. Only `status()` is required.
 * `subscribe` lets the balancer learn of changes without polling status() per request.
 */
export interface HealthSource {
  status(): HealthStatus;
  latency?(): number;
  detail?(): string;
  start?(signal: AbortSignal): void;
  /**
   * Called after every check with its resulting status (`changed` tells whether it differs
   * from the previous one): a success also ends a passive ejection. Returns an unsubscribe function.
   */
  subscribe?(listener: (status: HealthStatus, changed: boolean) => void): () => void;
  /** Asks for a probe as soon as possible (used after a passive failure). */
  checkNow?(): void;
  toJSON?(): unknown;
}

/**
 * What a HealthSource reports (status, latency, detail) and its subscribers; a source extends it
 * and records each result through the protected setters.
 */
export abstract class ReportedHealth implements HealthSource {
  #status: HealthStatus = "healthy";
  #latency = 0;
  #detail = "";
  readonly #listeners = new Set<(s: HealthStatus, changed: boolean) => void>();

  status(): HealthStatus {
    return this.#status;
  }
  latency(): number {
    return this.#latency;
  }
  detail(): string {
    return this.#detail;
  }
  /** `listener` runs after every reported status (a success also ends a passive ejection); returns unsubscribe. */
  subscribe(listener: (s: HealthStatus, changed: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  protected setLatency(ms: number): void {
    this.#latency = ms;
  }
  protected setDetail(detail: string): void {
    this.#detail = detail;
  }
  /** Sets the status and runs the listeners with whether it changed; `onlyIfChanged` skips them when it did not. */
  protected setStatus(status: HealthStatus, onlyIfChanged = false): void {
    const changed = this.#status !== status;
    this.#status = status;
    if (changed || !onlyIfChanged) for (const l of this.#listeners) l(status, changed);
  }
}
