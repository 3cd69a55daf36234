/**
 * Path routing among the services that share a host (SPEC "Paths and middlewares"): the longest
 * matching prefix wins, segment-wise (`/api` matches `/api`, `/api/…`, never `/apis`). Built once
 * per config; a lookup costs at most one map get per path segment up to the deepest prefix, no
 * scan over services.
 */

export class PathTable<T> {
  readonly #byPrefix = new Map<string, T>();
  /** The service for "/" (a service of this host without `paths`), or undefined (404). */
  readonly #root: T | undefined;
  /** Segments in the deepest prefix: deeper parts of a path are never looked up. */
  readonly #depth: number;
  /** Reused boundary offsets of the path being matched (single-threaded; read at once). */
  readonly #ends: Int32Array;
  /** Length of the prefix of the last successful `match` (0 for the root). */
  matched = 0;

  constructor(entries: Iterable<{ prefix: string; target: T }>) {
    let depth = 0;
    let root: T | undefined;
    for (const { prefix, target } of entries) {
      if (prefix === "/") {
        root ??= target;
        continue;
      }
      if (!this.#byPrefix.has(prefix)) this.#byPrefix.set(prefix, target);
      let d = 0;
      for (let i = 0; i < prefix.length; i++) if (prefix.charCodeAt(i) === 47) d++;
      if (d > depth) depth = d;
    }
    this.#root = root;
    this.#depth = depth;
    this.#ends = new Int32Array(depth + 1);
  }

  /** The target for a request target (origin-form `/a/b?q`), or undefined; sets `matched`. */
  match(url: string): T | undefined {
    if (this.#depth > 0 && url.charCodeAt(0) === 47) {
      const ends = this.#ends;
      let n = 0;
      let i = 1;
      const len = url.length;
      for (; i < len && n < this.#depth; i++) {
        const c = url.charCodeAt(i);
        if (c === 47 /* / */) ends[n++] = i;
        else if (c === 63 /* ? */ || c === 35 /* # */) break;
      }
      // the whole path is a candidate too (`/api` for the prefix `/api`)
      if (n < this.#depth && (i === len || url.charCodeAt(i) === 63 || url.charCodeAt(i) === 35)) {
        if (url.charCodeAt(i - 1) !== 47) ends[n++] = i;
      }
      for (let k = n - 1; k >= 0; k--) {
        const t = this.#byPrefix.get(url.slice(0, ends[k]));
        if (t !== undefined) {
          this.matched = ends[k];
          return t;
        }
      }
    }
    this.matched = 0;
    return this.#root;
  }

  /** The prefixes, longest first, for the health JSON and tests. */
  prefixes(): string[] {
    return [...this.#byPrefix.keys()].sort((a, b) => b.length - a.length);
  }
}

/** `url` with its first `length` characters (a matched prefix) removed; always origin-form. */
export function stripPrefix(url: string, length: number): string {
  if (length <= 1) return url;
  const rest = url.slice(length);
  return rest === "" || rest.charCodeAt(0) !== 47 ? `/${rest}` : rest;
}
