import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import type { TLSSocket } from "node:tls";

/** RFC 9110 §7.6.1 connection-specific headers, plus the legacy ones proxies drop. */
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

/** Headers named in `Connection` are hop-by-hop too. */
export function connectionTokens(value: string | string[] | undefined): Set<string> | null {
  if (value === undefined) return null;
  const text = Array.isArray(value) ? value.join(",") : value;
  let set: Set<string> | null = null;
  for (const t of text.split(",")) {
    const name = t.trim().toLowerCase();
    if (name === "" || name === "close" || name === "keep-alive") continue;
    if (set === null) set = new Set();
    set.add(name);
  }
  return set;
}

export interface ForwardedInfo {
  /** Resolved client address. */
  clientIp: string;
  /** Whether the TCP peer is trusted (inside options.from). */
  trusted: boolean;
}

/**
 * Builds the upstream request headers as a flat [name, value, ...] list from rawHeaders:
 * hop-by-hop headers dropped, X-Forwarded-* appended for trusted peers and replaced for
 * everyone else, X-Real-IP set to the resolved client.
 */
export function upstreamHeaders(req: IncomingMessage, info: ForwardedInfo): string[] {
  const raw = req.rawHeaders;
  const conn = connectionTokens(req.headers.connection);
  const out: string[] = [];
  let xff: string | undefined;
  let proto: string | undefined;
  let host: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || (conn !== null && conn.has(lower))) continue;
    switch (lower) {
      case "x-forwarded-for":
        if (info.trusted) xff = xff === undefined ? raw[i + 1] : `${xff}, ${raw[i + 1]}`;
        continue;
      case "x-forwarded-proto":
        if (info.trusted && proto === undefined) proto = raw[i + 1];
        continue;
      case "x-forwarded-host":
        if (info.trusted && host === undefined) host = raw[i + 1];
        continue;
      case "x-real-ip":
        continue;
    }
    out.push(name, raw[i + 1]);
  }
  const peer = stripMapped(req.socket.remoteAddress ?? "");
  out.push("x-forwarded-for", xff === undefined ? peer : `${xff}, ${peer}`);
  out.push("x-forwarded-proto", proto ?? ((req.socket as TLSSocket).encrypted ? "https" : "http"));
  const ownHost = req.headers.host ?? req.headers[":authority" as keyof IncomingHttpHeaders];
  if (host !== undefined) out.push("x-forwarded-host", host);
  else if (typeof ownHost === "string") out.push("x-forwarded-host", ownHost);
  out.push("x-real-ip", info.clientIp || peer);
  return out;
}

function stripMapped(a: string): string {
  return a.startsWith("::ffff:") && a.includes(".") ? a.slice(7) : a;
}

/** Response headers for the client: hop-by-hop (and Connection-named) removed, as a flat list. */
export function downstreamHeaders(headers: IncomingHttpHeaders): string[] {
  const conn = connectionTokens(headers.connection);
  const out: string[] = [];
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || (conn !== null && conn.has(name))) continue;
    const v = headers[name];
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) out.push(name, x);
    else out.push(name, v);
  }
  return out;
}
