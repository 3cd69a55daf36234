import type { Server } from "../balancer/server.ts";

/** What the balancer prepared for one pick. Selectors never parse requests. */
export interface PickContext {
  /** Client address after real-IP resolution ("" when unknown). */
  ip: string;
  /** Servers already tried for this request (retries); never picked again. */
  tried: readonly Server[] | null;
}

/**
 * The pool as selectors see it: every server (add order) and which can take requests. The
 * balancer passes a new array whenever membership or weights change and the same array when
 * only availability changed, so a selector may skip work that depends on membership alone.
 */
export interface PoolView {
  readonly servers: readonly Server[];
  /**
   * Only slow-start factors (`server.ramp`) moved on: a selector re-reads weights but keeps its
   * rotation where it was.
   */
  readonly step?: boolean;
}

/**
 * One selection strategy. `rebuild` runs when membership, weights or availability change
 * (never per request); `pick` must be cheap and side-effect free beyond its own rotation state.
 */
export interface Selector {
  readonly mode: Mode;
  rebuild(pool: PoolView): void;
  pick(ctx: PickContext): Server | undefined;
  /** Optional: told when a server's `inflight` changed (only selectors that order by load need it). */
  loadChanged?(server: Server): void;
}

export const MODES = ["round_robin", "least_conn", "ip_hash"] as const;
export type Mode = (typeof MODES)[number];

const ALIASES: Record<string, Mode> = {
  roundrobin: "round_robin",
  leastconn: "least_conn",
  iphash: "ip_hash",
};

/** Case-insensitive, `_` and `-` ignored; undefined when unknown. */
export function normalizeMode(name: string | undefined | null): Mode | undefined {
  if (name === undefined || name === null || name === "") return "round_robin";
  return ALIASES[String(name).toLowerCase().replace(/[-_]/g, "")];
}

export function isTried(ctx: PickContext, s: Server): boolean {
  const t = ctx.tried;
  if (t === null) return false;
  for (let i = 0; i < t.length; i++) if (t[i] === s) return true;
  return false;
}
