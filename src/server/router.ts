/**
 * Host → service routing with the SPEC's precedence: exact name, then a one-label wildcard
 * (`*.example.com`), then a service without `hosts` named like the first label, then `*`.
 * Lookup maps are built once per config; a request costs one normalisation and a few map gets.
 */
export interface Route<T> {
  /** Service name. */
  readonly name: string;
  /** Host patterns; empty = matched by the first label of Host. */
  readonly hosts: readonly string[];
  readonly target: T;
}

export class HostRouter<T> {
  readonly #exact = new Map<string, T>();
  /** Keyed by the suffix after `*.` (e.g. `example.com`). */
  readonly #wildcard = new Map<string, T>();
  readonly #label = new Map<string, T>();
  #any: T | undefined;
  readonly #cache = new Map<string, T | typeof MISS>();

  constructor(routes: Iterable<Route<T>>) {
    for (const r of routes) {
      if (r.hosts.length === 0) {
        setFirst(this.#label, r.name.toLowerCase(), r.target);
        continue;
      }
      for (const raw of r.hosts) {
        const h = normalizeHost(raw);
        if (h === "*") {
          if (this.#any === undefined) this.#any = r.target;
        } else if (h.startsWith("*.")) setFirst(this.#wildcard, h.slice(2), r.target);
        else setFirst(this.#exact, h, r.target);
      }
    }
  }

  /** The target for a Host header value (any case, with or without port), or undefined. */
  match(host: string | undefined): T | undefined {
    if (host === undefined || host === "") return this.#any;
    // clients repeat the same few Host values: one lookup on the raw header in the common case
    const hit = this.#cache.get(host);
    if (hit !== undefined) return hit === MISS ? undefined : (hit as T);
    const found = this.#resolve(normalizeHost(host));
    // bounded: random Host values cannot grow it without limit
    if (this.#cache.size >= CACHE_SIZE) this.#cache.clear();
    this.#cache.set(host, found === undefined ? MISS : found);
    return found;
  }

  #resolve(h: string): T | undefined {
    const exact = this.#exact.get(h);
    if (exact !== undefined) return exact;
    const dot = h.indexOf(".");
    if (dot > 0) {
      const wild = this.#wildcard.get(h.slice(dot + 1));
      if (wild !== undefined) return wild;
    }
    if (this.#label.size !== 0) {
      const label = this.#label.get(dot > 0 ? h.slice(0, dot) : h);
      if (label !== undefined) return label;
    }
    return this.#any;
  }
}

const MISS: unique symbol = Symbol("miss");
const CACHE_SIZE = 1024;

function setFirst<T>(map: Map<string, T>, key: string, value: T): void {
  // the first service in file order wins a duplicate pattern (the loader reports duplicates)
  if (!map.has(key)) map.set(key, value);
}

/** Lower-cases and strips the port: `API.example.com:8080` → `api.example.com`, `[::1]:80` → `[::1]`. */
export function normalizeHost(host: string): string {
  const n = host.length;
  let end = n;
  let upper = false;
  if (host.charCodeAt(0) === 91 /* [ */) {
    const close = host.indexOf("]");
    if (close > 0) end = close + 1;
    for (let i = 1; i < end; i++) {
      const c = host.charCodeAt(i);
      if (c >= 65 && c <= 90) upper = true;
    }
  } else {
    let colons = 0;
    let colon = -1;
    for (let i = 0; i < n; i++) {
      const c = host.charCodeAt(i);
      if (c === 58 /* : */) {
        colons++;
        colon = i;
      } else if (c >= 65 && c <= 90) upper = true;
    }
    // a bare IPv6 literal without brackets has several colons: keep it whole
    if (colons === 1) end = colon;
  }
  if (end > 0 && host.charCodeAt(end - 1) === 46 /* . */) end--; // FQDN trailing dot
  const h = end === n ? host : host.slice(0, end);
  return upper ? h.toLowerCase() : h;
}
