/**
 * WebSockets from HTTP/2 clients (RFC 8441) on the TLS listener's h2 front. The listener advertises
 * SETTINGS_ENABLE_CONNECT_PROTOCOL, so browsers open WebSockets as extended CONNECT streams
 * (`:method: CONNECT`, `:protocol: websocket`) on their HTTP/2 connection. Such a stream is handed
 * to the same upgrade path as an HTTP/1.1 upgrade (routing, middlewares, the balancer, the
 * forwarder's tunnel to HTTP/1.1 or HTTP/2 backends) as:
 * - a request that reads as the equivalent HTTP/1.1 handshake: `GET`, `Host` from `:authority`,
 *   `Connection: Upgrade`, `Upgrade: websocket` and a fresh `Sec-WebSocket-Key` (RFC 8441 §5: the
 *   client sends none, an HTTP/1.1 backend needs one);
 * - a socket whose first bytes written (the HTTP/1.1 answer the upgrade path writes: the 101, a
 *   middleware's 401, a 502) become the stream's response — `101` → `200` without the handshake's
 *   own fields, anything else as it is — and whose other bytes are the stream's DATA both ways.
 */
import type { IncomingHttpHeaders } from "node:http";
import type * as http2 from "node:http2";
import { Duplex } from "node:stream";
import type { ProxyRequest } from "../http-types.ts";

/** Response fields an HTTP/2 answer does not carry, and the HTTP/1.1 handshake's own. */
const NOT_FORWARDED: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "sec-websocket-accept",
]);
/** A response head larger than this is not one the upgrade path writes. */
const MAX_HEAD = 64 * 1024;

/** Open WebSocket streams of a client's HTTP/2 session. */
const kWebSockets: unique symbol = Symbol("switchyard.websockets");
/** Set when the session's timeout passed while WebSockets were open: arms it again after them. */
const kRearm: unique symbol = Symbol("switchyard.rearm");
type Counted = { [kWebSockets]?: number; [kRearm]?: () => void };

/**
 * The h2 front's 'timeout' listener for sessions without traffic for `ms`: the session is closed,
 * as node does without a listener, unless a WebSocket is open on it — a quiet WebSocket is not
 * idleness (its own limit is `timeouts.tunnel`, run by the forwarder's tunnel on the upstream side,
 * as for HTTP/1.1). Node's timeout fires once per session, so a
 * session kept for its WebSockets gets a timeout of its own again when the last one closes.
 */
export function sessionTimeout(ms: number): (session: http2.Http2Session) => void {
  const onTimeout = (session: http2.Http2Session): void => {
    const s = session as http2.Http2Session & Counted;
    if ((s[kWebSockets] ?? 0) > 0) {
      s[kRearm] = () => {
        if (!session.destroyed && !session.closed) session.setTimeout(ms, () => onTimeout(session));
      };
      return;
    }
    if (!session.destroyed) session.destroy();
  };
  return onTimeout;
}

/** The `:protocol` of an extended CONNECT, or undefined for a plain CONNECT. */
export function extendedProtocol(req: ProxyRequest): string | undefined {
  const p = req.headers[":protocol"];
  return typeof p === "string" && p !== "" ? p : undefined;
}

/**
 * The HTTP/1.1-shaped request and the socket of an extended CONNECT stream (see above). `req` is
 * node:http2's compatibility request of the stream.
 */
export function websocketOverH2(req: ProxyRequest): { req: ProxyRequest; socket: Duplex } {
  const stream = (req as unknown as { stream: http2.ServerHttp2Stream }).stream;
  const raw: string[] = [];
  let host = false;
  let authority: string | undefined;
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i];
    if (name.charCodeAt(0) === 58 /* : */) {
      if (name === ":authority") authority = req.rawHeaders[i + 1];
      continue;
    }
    const lower = name.toLowerCase();
    if (lower === "host") host = true;
    else if (lower === "connection" || lower === "upgrade" || lower === "sec-websocket-key") continue;
    raw.push(name, req.rawHeaders[i + 1]);
  }
  if (!host && authority !== undefined) raw.push("host", authority);
  raw.push(
    "connection",
    "Upgrade",
    "upgrade",
    "websocket",
    "sec-websocket-key",
    process.getBuiltinModule("node:crypto").randomBytes(16).toString("base64"),
  );
  const headers: IncomingHttpHeaders = {};
  const h = headers as Record<string, string | string[] | undefined>;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i].toLowerCase();
    const prev = h[n];
    if (n === "set-cookie") h[n] = [...((prev as string[] | undefined) ?? []), raw[i + 1]];
    else h[n] = prev === undefined ? raw[i + 1] : `${prev}, ${raw[i + 1]}`;
  }
  const socket = new H2StreamSocket(stream, req.socket);
  const upgrade: ProxyRequest = {
    method: "GET",
    url: req.url,
    httpVersionMajor: 1,
    httpVersionMinor: 1,
    headers,
    rawHeaders: raw,
    rawTrailers: [],
    // the client's connection (its address, TLS): what forwarded headers and real-IP read
    socket: req.socket,
    complete: true,
    readableEnded: true,
  };
  return { req: upgrade, socket };
}

/** An extended CONNECT stream as the socket of an HTTP/1.1 upgrade (see the top of the file). */
class H2StreamSocket extends Duplex {
  readonly stream: http2.ServerHttp2Stream;
  /** The client's connection, for those that read the socket's address. */
  readonly remoteAddress: string | undefined;
  readonly encrypted: boolean;
  /** The HTTP/1.1 response head being written; null once the stream has responded. */
  #head: Buffer | null = Buffer.alloc(0);
  /** The stream's writable side was ended by us (the tunnel's end, not a cut). */
  #ended = false;

  constructor(stream: http2.ServerHttp2Stream, conn: { remoteAddress?: string; encrypted?: boolean }) {
    super({ allowHalfOpen: true });
    this.stream = stream;
    this.remoteAddress = conn.remoteAddress;
    this.encrypted = conn.encrypted === true;
    // the listener's timeouts are for requests; a WebSocket's silence is bounded by timeouts.tunnel
    stream.setTimeout(0);
    const session = stream.session as (http2.ServerHttp2Session & Counted) | undefined;
    if (session !== undefined) {
      session[kWebSockets] = (session[kWebSockets] ?? 0) + 1;
      stream.once("close", () => {
        const left = (session[kWebSockets] ?? 1) - 1;
        session[kWebSockets] = left;
        const rearm = session[kRearm];
        if (left === 0 && rearm !== undefined) {
          session[kRearm] = undefined;
          rearm();
        }
      });
    }
    stream.on("error", noop);
    stream.on("data", (chunk: Buffer) => {
      if (!this.push(chunk)) stream.pause();
    });
    stream.on("end", () => this.push(null));
    stream.once("close", () => {
      if (!this.destroyed) this.destroy();
    });
  }

  override _read(): void {
    this.stream.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const stream = this.stream;
    if (this.#head === null) {
      if (stream.destroyed) cb();
      else stream.write(chunk, cb);
      return;
    }
    const buf = this.#head.length === 0 ? chunk : Buffer.concat([this.#head, chunk]);
    const end = buf.indexOf("\r\n\r\n");
    if (end < 0) {
      if (buf.length > MAX_HEAD) {
        cb(new Error("upgrade answer head too large"));
        return;
      }
      this.#head = buf;
      cb();
      return;
    }
    this.#head = null;
    if (!this.#respond(buf.toString("latin1", 0, end))) {
      cb();
      return;
    }
    const rest = buf.subarray(end + 4);
    if (rest.length) stream.write(rest, cb);
    else cb();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.#ended = true;
    if (!this.stream.destroyed) this.stream.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    const stream = this.stream;
    // after our end the client is told to stop sending (RFC 9113 §8.1); before it, the tunnel was cut
    if (!stream.closed && !stream.destroyed)
      stream.close(
        err === null && this.#ended
          ? process.getBuiltinModule("node:http2").constants.NGHTTP2_NO_ERROR
          : process.getBuiltinModule("node:http2").constants.NGHTTP2_CANCEL,
      );
    cb(err);
  }

  /** The HTTP/1.1 head as the stream's response; false when the stream is gone. */
  #respond(head: string): boolean {
    const stream = this.stream;
    if (stream.destroyed || stream.closed || stream.headersSent) return false;
    const lines = head.split("\r\n");
    const status = Number(lines[0].split(" ")[1]);
    const out: http2.OutgoingHttpHeaders = { ":status": status === 101 ? 200 : status };
    for (let i = 1; i < lines.length; i++) {
      const colon = lines[i].indexOf(":");
      if (colon <= 0) continue;
      const name = lines[i].slice(0, colon).trim().toLowerCase();
      if (NOT_FORWARDED.has(name)) continue;
      const value = lines[i].slice(colon + 1).trim();
      const prev = out[name];
      if (prev === undefined) out[name] = value;
      else if (Array.isArray(prev)) prev.push(value);
      else out[name] = [String(prev), value];
    }
    try {
      stream.respond(out);
    } catch {
      stream.close(process.getBuiltinModule("node:http2").constants.NGHTTP2_INTERNAL_ERROR);
      return false;
    }
    return true;
  }
}

function noop(): void {}
