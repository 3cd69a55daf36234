import type { Server } from "../balancer/server.ts";
import { isTried, type PickContext, type PoolView, type Selector } from "./selector.ts";

export const STICKY_COOKIE = "switchyard_lb_sticky";

/**
 * The cookie value for a server: opaque, never the address (not even encoded), and the same
 * on every instance with the same server key and secret. With a secret it is an HMAC, so a
 * client cannot forge a value that names a server of its choice.
 */
export function stickyValue(key: string, secret: string | undefined): string {
  const crypto = process.getBuiltinModule("node:crypto");
  const digest = secret
    ? crypto.createHmac("sha256", secret).update(key).digest()
    : crypto.createHash("sha256").update(`switchyard-lb-sticky:${key}`).digest();
  return digest.subarray(0, 16).toString("base64url");
}

/**
 * Sticky sessions as a wrapper around any selector: a cookie that names an available server
 * selects it; anything else (missing, malformed, forged, stale) falls through to the inner
 * selector. The balancer sets a new cookie whenever the pick differs from the cookie.
 */
export class StickySelector implements Selector {
  readonly inner: Selector;
  readonly #secret: string | undefined;
  #byValue = new Map<string, Server>();
  #valueOf = new Map<Server, string>();
  /** The server list the maps were built from; availability changes keep it and cost nothing. */
  #built: readonly Server[] | undefined;
  #pending: readonly Server[] | undefined;

  constructor(inner: Selector, secret: string | undefined) {
    this.inner = inner;
    this.#secret = secret;
  }

  get mode() {
    return this.inner.mode;
  }

  rebuild(pool: PoolView): void {
    // the maps are rebuilt lazily (adding 1,000 servers one by one costs one build)
    if (pool.servers !== this.#built) this.#pending = pool.servers;
    this.inner.rebuild(pool);
  }

  #sync(): void {
    const servers = this.#pending!;
    this.#pending = undefined;
    this.#built = servers;
    const byValue = new Map<string, Server>();
    const values = new Map<Server, string>();
    for (const s of servers) {
      const v = this.#valueOf.get(s) ?? stickyValue(s.key, this.#secret);
      byValue.set(v, s);
      values.set(s, v);
    }
    this.#byValue = byValue;
    this.#valueOf = values;
  }

  /** The cookie value that pins a client to `server`. */
  valueFor(server: Server): string {
    if (this.#pending !== undefined) this.#sync();
    return this.#valueOf.get(server) ?? stickyValue(server.key, this.#secret);
  }

  /** The server a cookie value names, whatever its state. */
  lookup(value: string | undefined): Server | undefined {
    if (this.#pending !== undefined) this.#sync();
    return value === undefined ? undefined : this.#byValue.get(value);
  }

  pick(ctx: PickContext & { cookie?: string }): Server | undefined {
    if (this.#pending !== undefined) this.#sync();
    const pinned = ctx.cookie === undefined ? undefined : this.#byValue.get(ctx.cookie);
    // a draining server still takes the clients whose cookie names it
    if (
      pinned !== undefined &&
      (pinned.available || pinned.pinnable) &&
      (ctx.tried === null || !isTried(ctx, pinned))
    )
      return pinned;
    return this.inner.pick(ctx);
  }
}

/** Finds one cookie's value in a Cookie header without building a map of all cookies. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  let from = 0;
  while (from < header.length) {
    const at = header.indexOf(name, from);
    if (at < 0) return undefined;
    const before = at === 0 ? ";" : header[at - 1];
    const eq = at + name.length;
    if ((before === ";" || before === " ") && header[eq] === "=") {
      const end = header.indexOf(";", eq + 1);
      return header.slice(eq + 1, end < 0 ? header.length : end).trim();
    }
    from = at + name.length;
  }
  return undefined;
}
