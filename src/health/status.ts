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
