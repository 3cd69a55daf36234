/**
 * The admin surface's request checks, in the order the server applies them:
 *
 * 1. `Host` must name the admin itself: `localhost`, a loopback address, the configured admin
 *    host or the local address the connection came in on. A web page on evil.example whose DNS
 *    now points at 127.0.0.1 (DNS rebinding) sends `Host: evil.example` and gets a 403.
 * 2. A present `Origin` must be this same origin (`http://<Host>`): a page elsewhere cannot drive
 *    the API from the operator's browser (403).
 * 3. A configured token (admin.token or SWITCHYARD_ADMIN_TOKEN) is required on every address:
 *    `Authorization: Bearer <token>`, compared in constant time (both sides hashed to equal
 *    length first), else 401 with `WWW-Authenticate: Bearer`.
 */
import type { IncomingMessage } from "node:http";
import type { AdminConfig } from "../config/types.ts";

export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return (
    h === "localhost" ||
    h === "::1" ||
    /^127\.\d+\.\d+\.\d+$/.test(h) ||
    /^::ffff:127\.\d+\.\d+\.\d+$/.test(h)
  );
}

/** The admin token: config first, then SWITCHYARD_ADMIN_TOKEN; undefined when neither is set. */
export function adminToken(c: AdminConfig): string | undefined {
  return c.token || process.env.SWITCHYARD_ADMIN_TOKEN || undefined;
}

/** The host name of a `Host` header value (no port, no brackets, lower case, no trailing dot); undefined if malformed. */
export function hostName(header: string): string | undefined {
  let h = header.trim().toLowerCase();
  if (h.startsWith("[")) {
    const end = h.indexOf("]");
    if (end < 0) return undefined;
    const rest = h.slice(end + 1);
    if (rest !== "" && !/^:\d{1,5}$/.test(rest)) return undefined;
    return h.slice(1, end);
  }
  const colon = h.indexOf(":");
  if (colon >= 0) {
    if (!/^:\d{1,5}$/.test(h.slice(colon))) return undefined;
    h = h.slice(0, colon);
  }
  if (h.endsWith(".")) h = h.slice(0, -1);
  return h === "" ? undefined : h;
}

function plainAddress(a: string | undefined): string | undefined {
  if (a === undefined) return undefined;
  const l = a.toLowerCase().replace(/^\[|\]$/g, "");
  return l.startsWith("::ffff:") && l.includes(".") ? l.slice(7) : l;
}

/** Why a request's `Host` is refused, or undefined when it names the admin itself. */
export function hostRefusal(req: IncomingMessage, configuredHost: string): string | undefined {
  const header = req.headers.host;
  if (typeof header !== "string" || header === "") return "a Host header is required";
  const name = hostName(header);
  if (name === undefined) return "malformed Host header";
  if (isLoopback(name)) return undefined;
  if (name === plainAddress(configuredHost)) return undefined;
  if (name === plainAddress(req.socket.localAddress)) return undefined;
  return `Host ${JSON.stringify(header)} is not this admin's address (use its IP address, localhost or a loopback address)`;
}

/** Why a request's `Origin` is refused, or undefined when absent or this same origin. */
export function originRefusal(req: IncomingMessage): string | undefined {
  const origin = req.headers.origin;
  if (origin === undefined) return undefined;
  let u: URL;
  try {
    u = new URL(origin);
  } catch {
    return "foreign Origin";
  }
  const host = req.headers.host?.toLowerCase();
  if (u.protocol !== "http:" || host === undefined || u.host !== new URL(`http://${host}`).host) {
    return `Origin ${JSON.stringify(origin)} is not this admin's origin`;
  }
  return undefined;
}

/** Checks bearer tokens against a configured one in constant time. */
export class TokenCheck {
  readonly #digest: Buffer | undefined;

  constructor(token: string | undefined) {
    this.#digest = token === undefined ? undefined : digest(token);
  }

  get required(): boolean {
    return this.#digest !== undefined;
  }

  /** True when no token is configured, or `Authorization` carries it. */
  allows(req: IncomingMessage): boolean {
    const want = this.#digest;
    if (want === undefined) return true;
    const given = req.headers.authorization;
    if (typeof given !== "string") return false;
    const m = /^bearer[ \t]+(\S+)[ \t]*$/i.exec(given);
    // hash whatever came so a wrong token costs the same as a right one
    return (
      process.getBuiltinModule("node:crypto").timingSafeEqual(digest(m ? m[1] : given), want) && m !== null
    );
  }
}

function digest(s: string): Buffer {
  return process.getBuiltinModule("node:crypto").createHash("sha256").update(s).digest();
}
