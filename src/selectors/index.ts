import { InvalidArgumentError } from "../errors.ts";
import { IpHashSelector } from "./ip-hash.ts";
import { LeastConnSelector } from "./least-conn.ts";
import { RoundRobinSelector } from "./round-robin.ts";
import { MODES, type Mode, normalizeMode, type Selector } from "./selector.ts";

export { IpHashSelector } from "./ip-hash.ts";
export type { Mode, PickContext, PoolView, Selector } from "./selector.ts";
export { MODES, normalizeMode } from "./selector.ts";
export { readCookie, STICKY_COOKIE, StickySelector, stickyValue } from "./sticky.ts";

const FACTORIES: Record<Mode, () => Selector> = {
  round_robin: () => new RoundRobinSelector(),
  least_conn: () => new LeastConnSelector(),
  ip_hash: () => new IpHashSelector(),
};

/** Resolves a mode name (any accepted spelling) or throws an error naming the valid modes. */
export function parseMode(name: string | undefined): Mode {
  const mode = normalizeMode(name);
  if (mode === undefined) {
    throw new InvalidArgumentError(
      `unknown load-balancing mode "${name}"; valid modes: ${MODES.join(", ")} (case and "_"/"-" ignored)`,
    );
  }
  return mode;
}

export function createSelector(mode: Mode): Selector {
  return FACTORIES[mode]();
}
