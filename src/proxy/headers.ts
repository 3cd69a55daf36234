import type { TLSSocket } from "node:tls";
import type { ProxyRequest } from "../http-types.ts";

/**
 * RFC 9110 §7.6.1 connection-specific headers, plus the legacy ones proxies drop. `expect` is
 * dropped here; the forwarder sends `Expect: 100-continue` on itself for an HTTP/1.1 upload.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
]);

const NO_TOKENS: readonly string[] = Object.freeze([]);
const PLAIN_CONNECTION: ReadonlySet<string> = new Set([
  "keep-alive",
  "Keep-Alive",
  "close",
  "Close",
  "upgrade",
  "Upgrade",
]);

/** The tokens of a Connection header that name further hop-by-hop headers (lower case). */
export function connectionTokens(value: string): readonly string[] {
  // the usual values name no header: skip the split
  if (PLAIN_CONNECTION.has(value)) return NO_TOKENS;
  const out: string[] = [];
  for (const t of value.split(",")) {
    const name = t.trim().toLowerCase();
    if (name === "" || name === "close" || name === "keep-alive" || name === "upgrade") continue;
    out.push(name);
  }
  return out;
}

/** Drops the headers named by `tokens` from a flat [name, value, ...] list (names compared lower-cased). */
function dropNamed(list: string[], tokens: readonly string[]): string[] {
  if (tokens.length === 0) return list;
  const out: string[] = [];
  for (let i = 0; i < list.length; i += 2) {
    if (!tokens.includes(list[i].toLowerCase())) out.push(list[i], list[i + 1]);
  }
  return out;
}

export interface ForwardedInfo {
  /** Resolved client address (real-IP); "" = the TCP peer. */
  clientIp: string;
  /** Whether the TCP peer is trusted (inside options.from). */
  trusted: boolean;
  /** Send no forwarded headers: the client's Forwarded, X-Forwarded-* and X-Real-IP dropped, none added. */
  hide?: boolean;
}

/** Why a request's own headers are skipped or kept, by lower-cased name. */
const SKIP = 1;
const XFF = 2;
const XFP = 3;
const XFH = 4;
const HOST = 5;
const CONNECTION = 6;
const SPECIAL: ReadonlyMap<string, number> = new Map([
  ...[...HOP_BY_HOP].map((h) => [h, SKIP] as const),
  ["connection", CONNECTION],
  ["expect", SKIP],
  ["x-real-ip", SKIP],
  ["x-forwarded-for", XFF],
  ["x-forwarded-proto", XFP],
  ["x-forwarded-host", XFH],
  ["host", HOST],
]);

/**
 * The upstream request headers as a flat [name, value, ...] list, in one pass over rawHeaders:
 * hop-by-hop headers (and those named in Connection) and HTTP/2 pseudo-headers dropped,
 * X-Forwarded-For appended to and X-Forwarded-Proto/-Host kept for trusted peers, replaced for
 * everyone else; X-Real-IP set to the resolved client. Host comes from :authority for HTTP/2.
 * Without `upgrade` the Upgrade pair is dropped; with it, `Connection: upgrade` and
 * `Upgrade: <upgrade>` are sent.
 */
export function upstreamHeaders(req: ProxyRequest, info: ForwardedInfo, upgrade?: string): string[] {
  const raw = req.rawHeaders;
  let out: string[] = [];
  let xff: string | undefined;
  let proto: string | undefined;
  let fhost: string | undefined;
  let host: string | undefined;
  let authority: string | undefined;
  let conn: string | undefined;
  const trusted = info.trusted;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    if (name.charCodeAt(0) === 58 /* : */) {
      if (name === ":authority") authority = raw[i + 1];
      continue;
    }
    const kind = SPECIAL.get(name) ?? SPECIAL.get(name.toLowerCase());
    if (kind !== undefined) {
      const value = raw[i + 1];
      switch (kind) {
        case XFF:
          if (trusted) xff = xff === undefined ? value : `${xff}, ${value}`;
          continue;
        case XFP:
          if (trusted && proto === undefined) proto = value;
          continue;
        case XFH:
          if (trusted && fhost === undefined) fhost = value;
          continue;
        case HOST:
          // one Host only (a second would make the upstream request invalid)
          if (host === undefined) {
            host = value;
            out.push(name, value);
          }
          continue;
        case CONNECTION:
          conn = conn === undefined ? value : `${conn},${value}`;
          continue;
        default:
          continue;
      }
    }
    out.push(name, raw[i + 1]);
  }
  if (conn !== undefined) out = dropNamed(out, connectionTokens(conn));
  if (host === undefined && authority !== undefined) {
    host = authority;
    out.push("host", authority);
  }
  if (info.hide === true) {
    if (upgrade !== undefined) out.push("connection", "upgrade", "upgrade", upgrade);
    return withoutForwarded(out);
  }
  const peer = stripMapped(req.socket?.remoteAddress ?? "");
  out.push(
    "x-forwarded-for",
    xff === undefined ? peer : `${xff}, ${peer}`,
    "x-forwarded-proto",
    proto ?? ((req.socket as TLSSocket | undefined)?.encrypted === true ? "https" : "http"),
  );
  if (fhost !== undefined) out.push("x-forwarded-host", fhost);
  else if (host !== undefined) out.push("x-forwarded-host", host);
  out.push("x-real-ip", info.clientIp || peer);
  if (upgrade !== undefined) out.push("connection", "upgrade", "upgrade", upgrade);
  return out;
}

/** Drops Forwarded, X-Forwarded-* (any) and X-Real-IP (the X-Forwarded-For/-Proto/-Host lines were never added). */
function withoutForwarded(list: string[]): string[] {
  let w = 0;
  for (let r = 0; r < list.length; r += 2) {
    const n = list[r].toLowerCase();
    if (n === "forwarded" || n.startsWith("x-forwarded-")) continue;
    list[w++] = list[r];
    list[w++] = list[r + 1];
  }
  list.length = w;
  return list;
}

function stripMapped(a: string): string {
  return a.length > 7 && a.charCodeAt(0) === 58 && a.startsWith("::ffff:") && a.includes(".")
    ? a.slice(7)
    : a;
}

/** Lower-cased hop-by-hop names by length, to test raw response header names without lower-casing most. */
const HOP_LENGTHS: ReadonlySet<number> = new Set([...HOP_BY_HOP].map((h) => h.length));

/**
 * Response headers for the client from a parser's [name, value, ...] list (latin1 strings, so
 * byte-transparent): hop-by-hop headers and those named in Connection removed; with `upgrade`,
 * Connection and Upgrade are kept (a 101 answer needs them).
 */
export function downstreamHeaders(raw: readonly string[], upgrade = false): string[] {
  const out: string[] = [];
  let conn: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    if (HOP_LENGTHS.has(name.length)) {
      const lower = name.toLowerCase();
      if (HOP_BY_HOP.has(lower)) {
        if (lower === "connection") conn = conn === undefined ? raw[i + 1] : `${conn},${raw[i + 1]}`;
        if (!(upgrade && (lower === "connection" || lower === "upgrade"))) continue;
      }
    }
    out.push(name, raw[i + 1]);
  }
  return conn === undefined ? out : dropNamed(out, connectionTokens(conn));
}
