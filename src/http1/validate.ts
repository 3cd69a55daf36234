/**
 * Request checks the parser does not make, shared by both HTTP/1 fronts and the forwarder (a
 * library user's node:http front): what nginx refuses, or what a backend could read differently.
 * - a version other than 1.x: `HTTP/2.0` (which llhttp accepts) gets 505, `HTTP/0.9` 400;
 * - a `Host` that is not a valid host[:port] (RFC 9112 §3.2, RFC 3986 §3.2.2): 400 — `a/b@c`,
 *   `a, b` or an empty one would otherwise reach the backend, also as X-Forwarded-Host;
 * - a Transfer-Encoding other than exactly `chunked`: 501 (RFC 9112 §6.1) — `gzip, chunked` is
 *   framed by its last coding, but the gzip coding would be lost on the way.
 */

/** reg-name, IPv4 or an IP literal, with an optional port. */
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+;=%-]+)(?::[0-9]{0,5})?$/;

export function validHost(value: string): boolean {
  return HOST.test(value);
}

interface Checked {
  httpVersionMajor: number;
  httpVersionMinor: number;
  rawHeaders: readonly string[];
  /** An HTTP/2 request's stream (node:http2); absent on an HTTP/1 connection. */
  stream?: unknown;
}

export type Problem = readonly [status: number, text: string];

const BAD_VERSION: Problem = [505, "HTTP Version Not Supported"];
const BAD_REQUEST: Problem = [400, "Bad Request"];
const BAD_HOST: Problem = [400, "Bad Request: invalid Host header"];
const BAD_CODING: Problem = [501, "Not Implemented: transfer coding"];

/** The answer a request must get instead of being served, or null. */
export function requestProblem(req: Checked): Problem | null {
  const major = req.httpVersionMajor;
  if (major !== 1) {
    // HTTP/2 (the h2 front): no HTTP/1 framing headers to check; `HTTP/2.0` on an HTTP/1 connection: 505
    if (major === 2 && req.stream !== undefined) return null;
    return major === 0 ? BAD_REQUEST : BAD_VERSION;
  }
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i];
    if (n.length === 4) {
      if (n.toLowerCase() === "host" && !HOST.test(raw[i + 1])) return BAD_HOST;
    } else if (n.length === 17 && n.toLowerCase() === "transfer-encoding") {
      const v = raw[i + 1];
      if (v !== "chunked" && v.trim().toLowerCase() !== "chunked") return BAD_CODING;
    }
  }
  return null;
}

/**
 * A head over the size limit: 414 when it is the request line that is too long (the line being
 * read when the limit was hit starts with a method and a target), else 431. `seen` is what the
 * parser read of the current read up to the error.
 */
export function overflowStatus(seen: Buffer): Problem {
  const end = seen.length;
  const lf = seen.lastIndexOf(10, end - 1);
  const line = seen.toString("latin1", lf + 1, Math.min(end, lf + 1 + 32));
  return /^[A-Z]+ [^ :]/.test(line) ? URI_TOO_LONG : TOO_LARGE;
}
const URI_TOO_LONG: Problem = [414, "URI Too Long"];
const TOO_LARGE: Problem = [431, "Request Header Fields Too Large"];

/**
 * An `Upgrade` to HTTP/2 over cleartext (h2c): tunnelled only to a service that allows it
 * (`allow_h2c_upgrade`); everywhere else served as a plain request (h2c smuggling past the proxy's rules).
 */
export function isH2cUpgrade(value: string | undefined): boolean {
  return value !== undefined && /(?:^|,)\s*h2c\s*(?:,|$)/i.test(value);
}

/**
 * An h2c upgrade request that can be tunnelled: exactly one `HTTP2-Settings` (RFC 7540 §3.2.1) and
 * no body (a tunnel starts right after the head; a request with a body is served as a plain one).
 */
export function h2cTunnelable(raw: readonly string[]): boolean {
  let settings = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i].toLowerCase();
    if (n === "http2-settings") settings++;
    else if (n === "transfer-encoding") return false;
    else if (n === "content-length" && raw[i + 1].trim() !== "0") return false;
  }
  return settings === 1;
}
