/**
 * Which trailer fields are relayed. RFC 9110 §6.5.1: a trailer must not carry fields needed for
 * framing (Content-Length, Transfer-Encoding), routing (Host), request modifiers (controls and
 * conditionals), authentication, response control data or content processing; and hop-by-hop
 * fields never cross a proxy. Those are dropped here, both ways: a `Set-Cookie` or `Location` in a
 * trailer is where a client (or a cache) would not look for it, and nothing in a trailer may change
 * how a message is framed or routed.
 */
const FORBIDDEN: ReadonlySet<string> = new Set([
  // framing
  "content-length",
  "transfer-encoding",
  // routing
  "host",
  // hop-by-hop
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "upgrade",
  "http2-settings",
  // request modifiers: controls and conditionals
  "cache-control",
  "expect",
  "max-forwards",
  "pragma",
  "range",
  "if-match",
  "if-none-match",
  "if-modified-since",
  "if-unmodified-since",
  "if-range",
  // authentication
  "authorization",
  "proxy-authenticate",
  "proxy-authorization",
  "www-authenticate",
  "authentication-info",
  "proxy-authentication-info",
  "set-cookie",
  "cookie",
  // response control data
  "age",
  "date",
  "expires",
  "location",
  "retry-after",
  "vary",
  "warning",
  // content processing
  "content-encoding",
  "content-type",
  "content-range",
]);

/** The fields of a flat [name, value, ...] trailer list that may be relayed; null when none. */
export function relayableTrailers(list: readonly string[] | null | undefined): string[] | null {
  if (list === null || list === undefined || list.length === 0) return null;
  let out: string[] | null = null;
  for (let i = 0; i < list.length; i += 2) {
    const name = list[i];
    if (FORBIDDEN.has(name.toLowerCase()) || name.charCodeAt(0) === 58 /* : pseudo-header */) continue;
    if (out === null) out = [];
    out.push(name, list[i + 1]);
  }
  return out;
}

/** Is `name` a field a trailer may carry (for tests and callers that check one at a time). */
export function trailerAllowed(name: string): boolean {
  return !FORBIDDEN.has(name.toLowerCase());
}
