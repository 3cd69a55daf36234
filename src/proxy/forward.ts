import type * as http from "node:http";
import type { IncomingMessage } from "node:http";
import type * as http2 from "node:http2";
import type * as https from "node:https";
import type { Socket } from "node:net";
import type { Duplex, Readable } from "node:stream";
import { gatewayStatus, UpstreamError } from "../errors.ts";
import { bodyStream, type ProxyRequest, type ProxyResponse } from "../http-types.ts";
import { backendAddress } from "../http1/client.ts";
import { createUpstreamClient, http1Path } from "../http1/mode.ts";
import { BAD_FRAMING, bodyFraming } from "../http1/raw-headers.ts";
import { endWithError, sendError } from "../http1/respond.ts";
import { relayableTrailers } from "../http1/trailers.ts";
import {
  UPSTREAM_CODES,
  type UpstreamClient,
  type UpstreamConnection,
  type UpstreamHandler,
  type UpstreamRequest,
} from "../http1/upstream.ts";
import { h2cTunnelable, isH2cUpgrade, requestProblem } from "../http1/validate.ts";
import { isTlsError, tlsConnectOptions, tlsReason } from "../upstream-tls.ts";
import { H2_CODES, type H2Connect, H2Pool, type H2TunnelHandler } from "./h2-client.ts";
import { downstreamHeaders, upstreamHeaders } from "./headers.ts";
import { addTrailers, expectsContinue, relayInterim } from "./interim.ts";
// the balancer's servers are targets here; the proxy does not import the balancer
import type { Target as Server } from "./target.ts";

// node:http taken with getBuiltinModule, not an ES import: importing it as an ES module reads
// every export, and its lazy ones (WebSocket & co.) load undici, tls, http2 and zlib: ~13 MB of RSS
const nodeHttp = process.getBuiltinModule("node:http");

export interface ForwarderOptions {
  connectTimeout: number;
  responseHeaderTimeout: number;
  idleTimeout: number;
  /** Attempts per request including the first (default 3). */
  maxAttempts?: number;
}

/** What the forwarder needs from a balancer: retries and passive health. */
export interface ForwardHost {
  readonly logger: { warn(obj: object, msg: string): void; debug(obj: object, msg: string): void };
  clientIp(req: ProxyRequest): string;
  readonly realIp: { isTrusted(addr: string | undefined): boolean };
  /** Send no Forwarded / X-Forwarded-* / X-Real-IP to the backend (a service setting). */
  readonly hideForwarded?: boolean;
  pickRetry(req: ProxyRequest, tried: readonly Server[]): Server | undefined;
  reportFailure(server: Server, err: unknown): void;
  /** `Upgrade: h2c` is tunnelled to HTTP/1.1 servers (absent or false: refused with 400). */
  readonly allowH2cUpgrade?: boolean;
  /**
   * A tunnel (WebSocket, h2c) with no byte either way for this long (ms) is closed on both sides;
   * absent or 0: never. Read as each tunnel opens.
   */
  readonly tunnelTimeout?: number;
  /**
   * A retry moved the request to `next`: a sticky cookie the host set for the failed server may
   * be re-pointed (headers not yet sent).
   */
  retried?(req: ProxyRequest, res: ProxyResponse, next: Server): void;
}

export interface Forwarder {
  forward(host: ForwardHost, req: ProxyRequest, res: ProxyResponse, server: Server): void;
  /** Proxies an HTTP upgrade (WebSocket) and pipes both sockets. */
  upgrade(host: ForwardHost, req: ProxyRequest, socket: Duplex, head: Buffer, server: Server): void;
  /** Closes the upstream pool of a removed server once its requests finish. */
  release(server: Server): void;
  close(): Promise<void>;
}

/**
 * How an upstream attempt failed:
 * - `connect`: the request was not processed: no connection was made (refused, unreachable, DNS,
 *   connect timeout, TLS handshake, a backend that does not speak the protocol), or an HTTP/2
 *   stream was refused;
 * - `reset`: the connection broke before a response (reset, closed, EPIPE);
 * - `timeout`: no response head within timeouts.responseHeader;
 * - `other`: anything else (an invalid response, a body timeout, ...).
 */
export type FailureKind = "connect" | "reset" | "timeout" | "other";

const CONNECT_CODES: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  UPSTREAM_CODES.connectTimeout,
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EHOSTDOWN",
  "EADDRNOTAVAIL",
  "ETIMEDOUT",
  H2_CODES.notH2,
  H2_CODES.refused,
]);
const RESET_CODES: ReadonlySet<string> = new Set(["ECONNRESET", "EPIPE", UPSTREAM_CODES.closed]);

export function classify(err: unknown): FailureKind {
  const e = err as { code?: unknown; cause?: { code?: unknown } } | undefined;
  const code = typeof e?.code === "string" ? e.code : "";
  const cause = typeof e?.cause?.code === "string" ? e.cause.code : "";
  if (CONNECT_CODES.has(code) || CONNECT_CODES.has(cause)) return "connect";
  if (code.startsWith("ERR_TLS") || code.startsWith("ERR_SSL") || /CERT|SELF_SIGNED/.test(code))
    return "connect";
  if (code === UPSTREAM_CODES.headersTimeout) return "timeout";
  if (RESET_CODES.has(code) || RESET_CODES.has(cause)) return "reset";
  return "other";
}

/** An HTTP/2 stream the backend refused (RFC 9113 §8.7: not processed), or a backend that is not HTTP/2. */
function isUnprocessed(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return code === H2_CODES.refused || code === H2_CODES.notH2;
}

/**
 * Whether a failed attempt may go to another server: when it provably did not reach this one
 * (`unsent`: never written, no body taken; not after a timeout, which may have reached it), or
 * when the connection broke before any response and the request can be replayed (bodiless GET,
 * HEAD, OPTIONS). Requests and upgrades both decide here; 502 vs 504 is errors.ts' gatewayStatus.
 */
export function mayRetry(kind: FailureKind, unsent: boolean, replayable: boolean): boolean {
  if (unsent && kind !== "timeout") return true;
  return kind === "reset" && replayable;
}

/** Methods that may be replayed on another server after a broken connection (when bodiless). */
const REPLAYABLE: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS"]);

const BAD_GATEWAY = "Bad Gateway";
const CLOSE_GRACE = 30_000;
const GATEWAY_TIMEOUT = "Gateway Timeout";

export function createForwarder(options: ForwarderOptions): Forwarder {
  return new PoolForwarder(options);
}

/** Per-connection cache of the trust decision (keyed by the resolver that made it). */
const kTrust = Symbol("switchyard.trust");
type TrustCache = { resolver: object; trusted: boolean };

function peerTrusted(host: ForwardHost, socket: Socket | undefined): boolean {
  if (socket === undefined || socket === null) return false;
  const s = socket as Socket & { [kTrust]?: TrustCache };
  const c = s[kTrust];
  const resolver = host.realIp;
  if (c !== undefined && c.resolver === resolver) return c.trusted;
  const trusted = resolver.isTrusted(socket.remoteAddress);
  // http2 compat sockets are proxies that refuse new properties; the lookup is then just not cached
  try {
    s[kTrust] = { resolver, trusted };
  } catch {}
  return trusted;
}

class PoolForwarder implements Forwarder {
  readonly opts: ForwarderOptions;
  readonly maxAttempts: number;
  readonly #pools = new Map<Server, UpstreamClient>();
  #closed = false;

  constructor(opts: ForwarderOptions) {
    this.opts = opts;
    this.maxAttempts = Math.max(1, opts.maxAttempts ?? 3);
    // the HTTP/1 path is decided (and the parser binding checked) now, not at the first request
    http1Path();
  }

  /** Sends one upstream attempt through the server's pool. */
  dispatch(server: Server, request: UpstreamRequest, handler: UpstreamHandler): void {
    if (this.#closed) {
      // a retry of a request that outlived its forwarder (config change): a one-off pool
      const pool = this.#newPool(server);
      pool.request(request, handler);
      pool.close().catch(noop);
      return;
    }
    this.#poolOf(server).request(request, handler);
  }

  /**
   * The HTTP/2 pool of an `h2`/`h2c` server (for a WebSocket's extended CONNECT); a one-off pool,
   * to be closed after its use, for an attempt that outlived its forwarder.
   */
  h2Pool(server: Server): { pool: H2Pool; oneOff: boolean } {
    const pool = this.#closed ? this.#newPool(server) : this.#poolOf(server);
    return { pool: pool as H2Pool, oneOff: this.#closed };
  }

  #poolOf(server: Server): UpstreamClient {
    let pool = this.#pools.get(server);
    if (pool === undefined) {
      pool = this.#newPool(server);
      this.#pools.set(server, pool);
      // for introspection (the HTTP/2 pool's counts of sessions, resets, refused streams)
      server.upstream = pool;
    }
    return pool;
  }

  #newPool(server: Server): UpstreamClient {
    const t = server.transport;
    const opts = {
      connectTimeout: this.opts.connectTimeout,
      responseHeaderTimeout: this.opts.responseHeaderTimeout,
      idleTimeout: this.opts.idleTimeout,
      tls: t.tls,
    };
    return t.protocol === "http1.1"
      ? createUpstreamClient(server.url, opts)
      : new H2Pool(server.url, t.protocol, opts);
  }

  release(server: Server): void {
    const pool = this.#pools.get(server);
    if (!pool) return;
    this.#pools.delete(server);
    if (server.upstream === pool) server.upstream = undefined;
    pool.close().catch(() => {});
  }

  /**
   * Lets in-flight requests finish (a config change must not drop them), then closes the pools;
   * whatever is still running after `CLOSE_GRACE` ms is destroyed. The timer does not hold the process.
   */
  async close(): Promise<void> {
    this.#closed = true;
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    if (pools.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, CLOSE_GRACE);
      timer.unref();
    });
    await Promise.race([Promise.allSettled(pools.map((p) => p.close())), deadline]);
    clearTimeout(timer);
    for (const p of pools) p.destroy();
  }

  forward(host: ForwardHost, req: ProxyRequest, res: ProxyResponse, server: Server): void {
    // the client left while the request waited (a server waking up): its 'close' has been heard
    if (res.destroyed) return;
    // what the fronts check already; here for a library user's node:http front
    const problem = requestProblem(req);
    if (problem !== null) {
      res.shouldKeepAlive = false;
      sendError(res, problem[0], problem[1]);
      return;
    }
    const body = requestBody(req);
    if (body === BAD_FRAMING) {
      res.shouldKeepAlive = false;
      sendError(res, 400, "Bad Request");
      return;
    }
    new Exchange(this, host, req, res, body !== 0).send(server);
  }

  upgrade(host: ForwardHost, req: ProxyRequest, socket: Duplex, head: Buffer, server: Server): void {
    // h2c is tunnelled only where the service allows it (h2c smuggling: the backend's HTTP/2 would
    // bypass the proxy's rules); switchyard's fronts serve such a request as a plain one, a
    // node:http front hands it here. It switches an HTTP/1.1 connection: HTTP/2 servers have none.
    const h2c = isH2cUpgrade(req.headers.upgrade);
    if (
      h2c &&
      (host.allowH2cUpgrade !== true ||
        server.transport.protocol !== "http1.1" ||
        !h2cTunnelable(req.rawHeaders))
    ) {
      endWithError(socket, 400, "Bad Request: h2c upgrade not supported");
      return;
    }
    new Tunnel(this, host, req, socket, head, h2c).send(server);
  }
}

// ---------------------------------------------------------------------------------------------
// Plain HTTP: one client request's journey through one or more upstream attempts.

const kExchange = Symbol("switchyard.exchange");
type ResWithExchange = ProxyResponse & { [kExchange]?: Exchange };

/** res 'close' (shared listener, no per-request closure): the client went away or the response ended. */
function onResClose(this: ResWithExchange): void {
  this[kExchange]?.clientClosed();
}
function onResDrain(this: ResWithExchange): void {
  this[kExchange]?.drained();
}

/** Swallows errors that are handled elsewhere (socket errors end in 'close'). */
function noop(): void {}

/** One client request, handler of each of its upstream attempts in turn. */
class Exchange implements UpstreamHandler {
  readonly fw: PoolForwarder;
  readonly host: ForwardHost;
  readonly req: ProxyRequest;
  readonly res: ResWithExchange;
  /** The server of the current attempt while it counts in server.inflight; null once released. */
  server: Server | null = null;
  tried: Server[] | null = null;
  /** What goes upstream, built at the first attempt and sent unchanged by every retry. */
  request: UpstreamRequest | null = null;
  /** The connection of the current attempt, once it is being written. */
  conn: UpstreamConnection | null = null;
  /** The current attempt is being written: something may have reached the server. */
  sent = false;
  bodyTaken = false;
  /** Response head written to the client. */
  started = false;
  done = false;
  readonly hasBody: boolean;

  constructor(fw: PoolForwarder, host: ForwardHost, req: ProxyRequest, res: ProxyResponse, hasBody: boolean) {
    this.fw = fw;
    this.host = host;
    this.req = req;
    this.res = res;
    this.hasBody = hasBody;
    this.res[kExchange] = this;
    res.on("close", onResClose);
  }

  send(server: Server): void {
    const req = this.req;
    if (this.tried === null) this.tried = [server];
    else this.tried.push(server);
    this.server = server;
    server.inflight++;
    this.sent = false;
    this.conn = null;
    if (this.request === null) {
      const trusted = peerTrusted(this.host, req.socket);
      // an untrusted peer is its own client: skip the resolver
      const headers = upstreamHeaders(req, {
        clientIp: trusted ? this.host.clientIp(req) : "",
        trusted,
        hide: this.host.hideForwarded === true,
      });
      // a node:http front without a 'checkContinue' listener (a library user's) said 100 itself:
      // the body is on its way, nothing to ask the backend
      const expectContinue =
        this.hasBody && expectsContinue(req) && (this.res as { _sent100?: boolean })._sent100 !== true;
      if (expectContinue) headers.push("expect", "100-continue");
      this.request = {
        method: req.method || "GET",
        path: originForm(req.url),
        headers,
        body: this.hasBody ? bodyStream(req) : null,
        trailersFrom: this.hasBody ? req : null,
        expectContinue,
      };
    }
    try {
      this.fw.dispatch(server, this.request, this);
    } catch (err) {
      this.onError(err as Error);
    }
  }

  #release(): void {
    const s = this.server;
    if (s !== null) {
      this.server = null;
      s.inflight--;
    }
  }

  #finish(): void {
    this.done = true;
    this.#release();
    this.res[kExchange] = undefined;
  }

  clientClosed(): void {
    if (this.done) return;
    this.#finish();
    const conn = this.conn;
    this.conn = null;
    conn?.abort();
  }

  drained(): void {
    if (this.conn !== null && !this.done) this.conn.resume();
  }

  onSent(conn: UpstreamConnection): boolean {
    if (this.done) return false;
    this.conn = conn;
    this.sent = true;
    return true;
  }

  onInterim(statusCode: number, rawHeaders: string[], statusText: string): void {
    if (this.done || this.started) return;
    relayInterim(this.res, this.req, statusCode, statusText, downstreamHeaders(rawHeaders));
  }

  onHeaders(statusCode: number, rawHeaders: string[], statusText: string): boolean {
    if (this.done) return false;
    if (statusCode < 200) return true;
    const res = this.res;
    const headers = downstreamHeaders(rawHeaders);
    // an answer before the whole upload (413, 401, ...)
    this.#closeIfUploadUnread();
    // writeHead replaces headers set before with same-named ones: a Set-Cookie set before (the sticky
    // cookie) must be sent next to the backend's own
    const preset = res.getHeader("set-cookie");
    if (preset !== undefined) {
      res.removeHeader("set-cookie");
      if (Array.isArray(preset)) for (const v of preset) headers.push("set-cookie", v);
      else headers.push("set-cookie", String(preset));
    }
    // throws on a header value node:http refuses: onError then answers 502
    try {
      res.writeHead(
        statusCode,
        this.req.httpVersionMajor === 2 ? undefined : statusText || undefined,
        headers,
      );
    } catch (err) {
      this.#failResponse(err as Error);
      return false;
    }
    this.started = true;
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.done) return false;
    if (this.res.write(chunk)) return true;
    this.res.once("drain", onResDrain);
    return false;
  }

  onComplete(last: Buffer | null, trailers: readonly string[] | null): void {
    if (this.done) return;
    this.conn = null;
    this.#finish();
    const t = trailers === null ? null : relayableTrailers(trailers);
    if (t !== null) addTrailers(this.res, t);
    // a small response leaves with its head in one write
    if (last === null) this.res.end();
    else this.res.end(last);
  }

  /**
   * The rest of an HTTP/1 upload will not be read: the client connection cannot carry another
   * request, so it closes after this response instead of waiting for the unread body.
   */
  #closeIfUploadUnread(): void {
    if (this.hasBody && !this.req.complete && this.req.httpVersionMajor !== 2)
      this.res.shouldKeepAlive = false;
  }

  /** The backend's response head cannot be relayed (a header value node:http refuses). */
  #failResponse(err: Error): void {
    this.host.logger.warn({ server: this.server?.name, err }, "upstream response refused");
    this.conn = null;
    this.#finish();
    sendError(this.res, 502, BAD_GATEWAY);
  }

  onError(err: Error): void {
    if (this.done) return;
    this.conn = null;
    const server = this.server;
    this.#release();
    const res = this.res;
    // a head not yet on the wire (nothing of the body written) can still become the 502
    if (this.started && res.retractHead?.() === true) this.started = false;
    if (this.started || res.headersSent) {
      // mid-response (idle timeout, reset): the client cannot be told otherwise; abort its connection
      this.#finish();
      res.destroy();
      return;
    }
    const kind = classify(err);
    if (server !== null && isTlsError(err)) {
      this.host.logger.warn({ server: server.name, tls: tlsReason(err) }, "backend TLS refused");
    }
    if (server !== null && (kind === "connect" || kind === "reset")) this.host.reportFailure(server, err);
    if (this.#retryable(kind, err) && this.tried!.length < this.fw.maxAttempts) {
      const next = this.host.pickRetry(this.req, this.tried!);
      if (next !== undefined) {
        this.host.logger.debug({ server: server?.name, next: next.name, err }, "retrying on another server");
        this.host.retried?.(this.req, res, next);
        this.send(next);
        return;
      }
    }
    this.host.logger.warn({ server: server?.name, err }, "upstream request failed");
    this.#finish();
    this.#closeIfUploadUnread();
    const status = gatewayStatus(err);
    sendError(res, status, status === 504 ? GATEWAY_TIMEOUT : BAD_GATEWAY);
  }

  /**
   * A retry is safe when the request provably did not reach the server: it was never written
   * (no connection) and none of the client's body was taken; or, for a replayable method without
   * a body, when the connection broke before any response.
   */
  #retryable(kind: FailureKind, err: Error): boolean {
    const replayable = !this.hasBody && REPLAYABLE.has(this.req.method || "GET");
    if (mayRetry(kind, !this.sent && !this.bodyTaken, replayable)) return true;
    // provably not processed though written (a refused HTTP/2 stream), nothing of the body read
    return !this.bodyTaken && isUnprocessed(err);
  }
}

/** The request target in origin form: an absolute-form target (`GET http://h/p`) becomes `/p`. */
function originForm(url: string | undefined): string {
  if (url === undefined || url === "") return "/";
  if (url.charCodeAt(0) === 47 /* / */) return url;
  const m = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*(.*)$/i.exec(url);
  if (m === null) return url;
  const rest = m[1];
  return rest === "" ? "/" : rest.charCodeAt(0) === 47 ? rest : `/${rest}`;
}

/**
 * 1 when the request has a body, 0 when not, BAD_FRAMING for a Transfer-Encoding whose last coding
 * is not chunked: RFC 9112 §6.3 says such a request's length cannot be known (400); node:http only
 * fails it when reading the body, which would be after its head went upstream.
 */
function requestBody(req: ProxyRequest): number {
  if (req.httpVersionMajor === 2) {
    // HTTP/2 has no framing headers for bodies: a body exists unless the stream already ended
    return req.stream?.endAfterHeaders === true || req.readableEnded ? 0 : 1;
  }
  return bodyFraming(req.rawHeaders);
}

// ---------------------------------------------------------------------------------------------
// Upgrades (WebSocket): node's own client, which reports both a 101 ('upgrade') and a refusal with
// an ordinary response ('response') so the latter can be relayed as is.

const STATUS_TEXT = nodeHttp.STATUS_CODES;

/** A tunnel's upstream side: the backend's socket, or its HTTP/2 stream (both have an inactivity timer). */
type TunnelEnd = Duplex & { setTimeout(ms: number, cb?: () => void): unknown };

class Tunnel implements H2TunnelHandler {
  readonly fw: PoolForwarder;
  readonly host: ForwardHost;
  readonly req: ProxyRequest;
  readonly socket: Duplex;
  readonly head: Buffer;
  readonly upgradeTo: string;
  /** An `Upgrade: h2c` (allowed by the service): HTTP2-Settings goes along. */
  readonly h2c: boolean;
  tried: Server[] = [];
  server: Server | null = null;
  upstream: http.ClientRequest | null = null;
  /** The current attempt's extended CONNECT to an HTTP/2 server (RFC 8441). */
  h2: H2Connect | null = null;
  timer: NodeJS.Timeout | undefined;
  done = false;
  headers: string[] | null = null;

  constructor(
    fw: PoolForwarder,
    host: ForwardHost,
    req: ProxyRequest,
    socket: Duplex,
    head: Buffer,
    h2c = false,
  ) {
    this.fw = fw;
    this.h2c = h2c;
    this.host = host;
    this.req = req;
    this.socket = socket;
    this.head = head;
    const up = req.headers.upgrade;
    this.upgradeTo = typeof up === "string" && up !== "" ? up : "websocket";
    socket.on("error", noop);
    socket.once("close", () => this.#clientGone());
  }

  send(server: Server): void {
    this.tried.push(server);
    this.server = server;
    server.inflight++;
    const req = this.req;
    if (this.headers === null) {
      const trusted = peerTrusted(this.host, req.socket as Socket);
      this.headers = upstreamHeaders(
        req,
        { clientIp: trusted ? this.host.clientIp(req) : "", trusted, hide: this.host.hideForwarded === true },
        this.upgradeTo,
      );
      if (this.h2c) h2cHeaders(this.headers, req.rawHeaders);
    }
    if (server.transport.protocol !== "http1.1") {
      this.#sendH2(server);
      return;
    }
    const { host, port, tls, servername } = backendAddress(server.url);
    const options: https.RequestOptions = {
      host,
      port,
      method: req.method || "GET",
      path: originForm(req.url),
      headers: this.headers,
      setHost: false,
      agent: false,
    };
    const t = server.transport.tls;
    if (tls && t !== undefined)
      Object.assign(options, tlsConnectOptions(t, servername ?? host, servername === undefined));
    const up = (tls ? process.getBuiltinModule("node:https") : nodeHttp).request(options);
    this.upstream = up;
    up.on("error", (err: Error) => {
      if (!this.done && this.upstream === up) this.#failed(server, err);
    });
    up.on("upgrade", (res: IncomingMessage, upSocket: Duplex, upHead: Buffer) =>
      this.#upgraded(up, res, upSocket, upHead),
    );
    up.on("response", (res: IncomingMessage) => this.#refused(up, res));
    // connect timeout, then the response-head timeout
    clearTimeout(this.timer);
    this.timer = setTimeout(() => up.destroy(timeoutError("connect")), this.fw.opts.connectTimeout);
    up.on("socket", (s: Socket) => {
      const armHead = () => {
        clearTimeout(this.timer);
        this.timer = setTimeout(
          () => up.destroy(timeoutError("response")),
          this.fw.opts.responseHeaderTimeout,
        );
      };
      if (s.connecting) s.once(tls ? "secureConnect" : "connect", armHead);
      else armHead();
    });
    up.end();
  }

  /**
   * A WebSocket to an HTTP/2 server: an extended CONNECT stream (RFC 8441) on its pooled session;
   * the session's SETTINGS, the stream's answer and its timeouts are the pool's (h2-client.ts).
   */
  #sendH2(server: Server): void {
    clearTimeout(this.timer);
    this.upstream = null;
    const key = this.req.headers["sec-websocket-key"];
    if (this.upgradeTo.toLowerCase() !== "websocket" || typeof key !== "string" || key === "") {
      this.host.logger.warn(
        { server: server.name, upgrade: this.upgradeTo },
        "upstream upgrade failed: an HTTP/2 server takes WebSocket upgrades only (RFC 8441)",
      );
      this.#release();
      this.done = true;
      endWithError(this.socket, 502, BAD_GATEWAY);
      return;
    }
    const { pool, oneOff } = this.fw.h2Pool(server);
    const attempt = pool.tunnel(originForm(this.req.url), "websocket", this.headers!, this);
    // one that failed at once has been handled (and maybe retried, with an attempt of its own)
    if (!attempt.finished) this.h2 = attempt;
    if (oneOff) pool.close().catch(noop);
  }

  /** H2TunnelHandler: the backend answered the extended CONNECT. */
  onTunnel(status: number, rawHeaders: string[], stream: http2.ClientHttp2Stream): void {
    this.h2 = null;
    if (this.done) {
      stream.close(process.getBuiltinModule("node:http2").constants.NGHTTP2_CANCEL);
      return;
    }
    if (status < 200 || status >= 300) {
      this.#relayRefusal(status, STATUS_TEXT[status] ?? "", downstreamHeaders(rawHeaders), stream);
      return;
    }
    // RFC 8441 §5: the HTTP/1.1 handshake's Sec-WebSocket-Accept is the proxy's to compute
    const key = String(this.req.headers["sec-websocket-key"]);
    let head = `HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${websocketAccept(key)}\r\n`;
    const h = downstreamHeaders(rawHeaders);
    for (let i = 0; i < h.length; i += 2) {
      const n = h[i].toLowerCase();
      if (n === "sec-websocket-accept" || n === "content-length") continue;
      head += `${h[i]}: ${h[i + 1]}\r\n`;
    }
    this.socket.write(`${head}\r\n`);
    this.#pipe(stream, EMPTY_BUFFER, true);
  }

  /** H2TunnelHandler: no answer from the HTTP/2 server (retried like an HTTP/1.1 upgrade). */
  onError(err: Error): void {
    this.h2 = null;
    const server = this.server;
    if (this.done || server === null) return;
    this.#failed(server, err);
  }

  #release(): void {
    const s = this.server;
    if (s !== null) {
      this.server = null;
      s.inflight--;
    }
  }

  #clientGone(): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    this.upstream?.destroy();
    this.h2?.cancel();
    this.h2 = null;
    this.#release();
  }

  #failed(server: Server, err: Error): void {
    clearTimeout(this.timer);
    this.#release();
    const kind = classify(err);
    if (kind === "connect" || kind === "reset") this.host.reportFailure(server, err);
    // nothing of an upgrade request but its head was sent, and it is a bodiless GET
    if (mayRetry(kind, kind === "connect", true) && this.tried.length < this.fw.maxAttempts) {
      const next = this.host.pickRetry(this.req, this.tried);
      if (next !== undefined) {
        this.send(next);
        return;
      }
    }
    this.host.logger.warn({ server: server.name, err }, "upstream upgrade failed");
    this.done = true;
    const status = gatewayStatus(err);
    endWithError(this.socket, status, status === 504 ? GATEWAY_TIMEOUT : BAD_GATEWAY);
  }

  #upgraded(up: http.ClientRequest, res: IncomingMessage, upSocket: Duplex, upHead: Buffer): void {
    clearTimeout(this.timer);
    if (this.done || this.upstream !== up) {
      upSocket.destroy();
      return;
    }
    let head = `HTTP/1.1 101 ${res.statusMessage || "Switching Protocols"}\r\n`;
    const h = downstreamHeaders(res.rawHeaders, true);
    for (let i = 0; i < h.length; i += 2) head += `${h[i]}: ${h[i + 1]}\r\n`;
    this.socket.write(`${head}\r\n`);
    upSocket.on("error", noop);
    this.#pipe(upSocket as Socket, upHead, false);
  }

  /**
   * Bytes both ways until either side closes. From now on the pipes own the lifecycle: the
   * server's in-flight count is held until both sides are gone. An HTTP/2 stream that ended
   * cleanly ends the client connection after what is still buffered; a reset cuts it.
   */
  #pipe(up: TunnelEnd, upHead: Buffer, h2: boolean): void {
    const client = this.socket;
    if (upHead.length) client.write(upHead);
    if (this.head.length) up.write(this.head);
    this.done = true;
    this.upstream = null;
    let open = 2;
    const closed = () => {
      if (--open > 0) return;
      clearTimeout(this.timer);
      this.#release();
    };
    // timeouts.tunnel: every byte either way passes through the upstream socket or stream (read
    // from it, or written to it), whose own inactivity timer both directions therefore restart
    const ms = this.host.tunnelTimeout ?? 0;
    if (ms > 0) up.setTimeout(ms, () => this.#expire(up, h2, ms));
    up.once("close", () => {
      if (
        h2 &&
        (up as http2.ClientHttp2Stream).rstCode ===
          process.getBuiltinModule("node:http2").constants.NGHTTP2_NO_ERROR
      )
        client.end();
      else client.destroy();
      closed();
    });
    client.once("close", () => {
      if (!h2) up.destroy();
      else if (!(up as http2.ClientHttp2Stream).closed)
        (up as http2.ClientHttp2Stream).close(
          process.getBuiltinModule("node:http2").constants.NGHTTP2_CANCEL,
        );
      closed();
    });
    if (client.destroyed) up.destroy();
    up.pipe(client);
    client.pipe(up);
  }

  /**
   * No byte either way for `ms`: both sides are ended as a closing peer would end them (FIN, TLS
   * close_notify, HTTP/2 END_STREAM; the backend's HTTP/2 stream closed with NO_ERROR), and cut
   * if they have not closed `TUNNEL_LINGER` ms later. The pipes' 'close' listeners then release
   * the in-flight count. Nothing is wrong: a debug line, no warning.
   */
  #expire(up: TunnelEnd, h2: boolean, ms: number): void {
    const client = this.socket;
    if (client.destroyed || up.destroyed) return;
    up.setTimeout(0);
    this.host.logger.debug(
      { server: this.server?.name, timeout: ms },
      "tunnel closed: no byte either way for timeouts.tunnel",
    );
    const stream = up as http2.ClientHttp2Stream;
    if (h2) {
      if (!stream.closed) stream.close(process.getBuiltinModule("node:http2").constants.NGHTTP2_NO_ERROR);
    } else up.end();
    client.end();
    this.timer = setTimeout(() => {
      up.destroy();
      client.destroy();
    }, TUNNEL_LINGER);
    this.timer.unref();
  }

  #refused(up: http.ClientRequest, res: IncomingMessage): void {
    clearTimeout(this.timer);
    if (this.done || this.upstream !== up) {
      res.destroy();
      return;
    }
    const status = res.statusCode ?? 502;
    this.#relayRefusal(
      status,
      res.statusMessage || STATUS_TEXT[status] || "",
      downstreamHeaders(res.rawHeaders),
      res,
    );
  }

  /** A backend's answer other than the switch, relayed as is; its body is delimited by closing. */
  #relayRefusal(status: number, text: string, headers: string[], body: Readable): void {
    this.done = true;
    this.upstream = null;
    const client = this.socket;
    let head = `HTTP/1.1 ${status} ${text}\r\n`;
    for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    client.write(`${head}connection: close\r\n\r\n`);
    let ended = false;
    body.on("error", () => client.destroy());
    body.on("end", () => {
      ended = true;
      client.end();
      this.#release();
    });
    body.on("close", () => {
      if (!ended) client.destroy();
      this.#release();
    });
    client.once("close", () => body.destroy());
    body.pipe(client, { end: false });
  }
}

const EMPTY_BUFFER = Buffer.alloc(0);
/** How long an expired tunnel's sides may take to close after being ended (then they are cut). */
const TUNNEL_LINGER = 1_000;
const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** RFC 6455 §4.2.2: the Sec-WebSocket-Accept of a client's Sec-WebSocket-Key. */
export function websocketAccept(key: string): string {
  return process
    .getBuiltinModule("node:crypto")
    .createHash("sha1")
    .update(key + WEBSOCKET_GUID)
    .digest("base64");
}

/**
 * The h2c parts upstreamHeaders drops as hop-by-hop: the client's one `HTTP2-Settings` (the
 * front checked there is exactly one) and `Connection: Upgrade, HTTP2-Settings` naming it (RFC 7540 §3.2).
 */
function h2cHeaders(out: string[], raw: readonly string[]): void {
  for (let i = out.length - 2; i >= 0; i -= 2) {
    if (out[i] === "connection") {
      out[i + 1] = "Upgrade, HTTP2-Settings";
      break;
    }
  }
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].toLowerCase() === "http2-settings") {
      out.push("http2-settings", raw[i + 1]);
      return;
    }
  }
}

function timeoutError(phase: "connect" | "response"): UpstreamError {
  return phase === "connect"
    ? new UpstreamError("upstream connect timeout", UPSTREAM_CODES.connectTimeout)
    : new UpstreamError("upstream response header timeout", UPSTREAM_CODES.headersTimeout);
}
