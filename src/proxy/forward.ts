import type { IncomingMessage, ServerResponse } from "node:http";
import * as http from "node:http";
import * as https from "node:https";
import { isIP, type Socket } from "node:net";
import { type Duplex, Readable } from "node:stream";
import { buildConnector, type Dispatcher, Pool } from "undici";
import type { Server } from "../balancer/server.ts";
import { STICKY_COOKIE } from "../selectors/index.ts";
import { downstreamHeaders, downstreamRawHeaders, upstreamHeaders } from "./headers.ts";
import { endWithError, sendError } from "./respond.ts";

export interface ForwarderOptions {
  connectTimeout: number;
  responseHeaderTimeout: number;
  idleTimeout: number;
  /** Attempts per request including the first (default 3). */
  maxAttempts?: number;
  /**
   * Verify `https://` backends' certificates (default false, as nginx's `proxy_ssl_verify off`:
   * backends behind a balancer commonly use self-signed certificates).
   */
  verifyTls?: boolean;
}

/** What the forwarder needs from a balancer: retries and passive health. */
export interface ForwardHost {
  readonly logger: { warn(obj: object, msg: string): void; debug(obj: object, msg: string): void };
  clientIp(req: IncomingMessage): string;
  readonly realIp: { isTrusted(addr: string | undefined): boolean };
  pickRetry(req: IncomingMessage, tried: readonly Server[]): Server | undefined;
  reportFailure(server: Server, err: unknown): void;
  /** Sets the sticky cookie for `server`; used to re-point a cookie set for a server that failed. */
  setStickyCookie?(req: IncomingMessage, res: ServerResponse, server: Server): void;
}

export interface Forwarder {
  forward(host: ForwardHost, req: IncomingMessage, res: ServerResponse, server: Server): void;
  /** Proxies an HTTP upgrade (WebSocket) and pipes both sockets. */
  upgrade(host: ForwardHost, req: IncomingMessage, socket: Duplex, head: Buffer, server: Server): void;
  /** Closes the upstream pool of a removed server once its requests finish. */
  release(server: Server): void;
  close(): Promise<void>;
}

/**
 * How an upstream attempt failed:
 * - `connect`: no connection was made (refused, unreachable, DNS, connect timeout, TLS handshake);
 * - `reset`: the connection broke before a response (reset, closed, EPIPE);
 * - `timeout`: no response head within timeouts.responseHeader;
 * - `invalid`: undici refused the request itself (a header it does not accept): no server would;
 * - `other`: anything else (invalid response, aborted, ...).
 */
export type FailureKind = "connect" | "reset" | "timeout" | "invalid" | "other";

const CONNECT_CODES: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "UND_ERR_CONNECT_TIMEOUT",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EHOSTDOWN",
  "EADDRNOTAVAIL",
  "ETIMEDOUT",
]);
const RESET_CODES: ReadonlySet<string> = new Set(["ECONNRESET", "EPIPE", "UND_ERR_SOCKET", "UND_ERR_CLOSED"]);

export function classify(err: unknown): FailureKind {
  const e = err as { code?: unknown; cause?: { code?: unknown } } | undefined;
  const code = typeof e?.code === "string" ? e.code : "";
  const cause = typeof e?.cause?.code === "string" ? e.cause.code : "";
  if (CONNECT_CODES.has(code) || CONNECT_CODES.has(cause)) return "connect";
  if (code.startsWith("ERR_TLS") || code.startsWith("ERR_SSL") || /CERT|SELF_SIGNED/.test(code))
    return "connect";
  if (code === "UND_ERR_HEADERS_TIMEOUT") return "timeout";
  if (code === "UND_ERR_INVALID_ARG" || code === "UND_ERR_NOT_SUPPORTED") return "invalid";
  if (RESET_CODES.has(code) || RESET_CODES.has(cause)) return "reset";
  return "other";
}

function isConnectTimeout(err: unknown): boolean {
  return (err as { code?: unknown } | undefined)?.code === "UND_ERR_CONNECT_TIMEOUT";
}

/** Methods that may be replayed on another server after a broken connection (when bodiless). */
const REPLAYABLE: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS"]);

const STICKY_PREFIX = `${STICKY_COOKIE}=`;
const BAD_GATEWAY = "Bad Gateway";
const CLOSE_GRACE = 30_000;
const GATEWAY_TIMEOUT = "Gateway Timeout";

export function createForwarder(options: ForwarderOptions): Forwarder {
  return new UndiciForwarder(options);
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

class UndiciForwarder implements Forwarder {
  readonly opts: ForwarderOptions;
  readonly maxAttempts: number;
  readonly #pools = new Map<Server, Pool>();
  #closed = false;

  constructor(opts: ForwarderOptions) {
    this.opts = opts;
    this.maxAttempts = Math.max(1, opts.maxAttempts ?? 3);
  }

  /** Sends one upstream attempt through the server's pool. */
  dispatch(server: Server, opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): void {
    if (this.#closed) {
      // a retry of a request that outlived its forwarder (config change): a one-off pool
      const pool = this.#newPool(server);
      pool.dispatch(opts, handler);
      pool.close().catch(noop);
      return;
    }
    let pool = this.#pools.get(server);
    if (pool === undefined) {
      pool = this.#newPool(server);
      this.#pools.set(server, pool);
    }
    pool.dispatch(opts, handler);
  }

  #newPool(server: Server): Pool {
    const url = server.url;
    const tls = url.protocol === "https:";
    // SNI from the backend URL (not the client's Host); none for IP addresses
    const servername = tls && isIP(url.hostname.replace(/^\[|\]$/g, "")) === 0 ? url.hostname : undefined;
    const base = buildConnector({
      timeout: this.opts.connectTimeout,
      rejectUnauthorized: this.opts.verifyTls === true,
      ...(servername ? { servername } : {}),
    });
    const connect: buildConnector.connector = tls ? (o, cb) => base({ ...o, servername }, cb) : base;
    return new Pool(url.origin, {
      connect,
      headersTimeout: this.opts.responseHeaderTimeout,
      bodyTimeout: this.opts.idleTimeout,
      keepAliveTimeout: 4000,
      pipelining: 1,
    });
  }

  release(server: Server): void {
    const pool = this.#pools.get(server);
    if (!pool) return;
    this.#pools.delete(server);
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
    await Promise.allSettled(pools.map((p) => p.destroy()));
  }

  forward(host: ForwardHost, req: IncomingMessage, res: ServerResponse, server: Server): void {
    new Exchange(this, host, req, res).send(server);
  }

  upgrade(host: ForwardHost, req: IncomingMessage, socket: Duplex, head: Buffer, server: Server): void {
    new Tunnel(this, host, req, socket, head).send(server);
  }
}

// ---------------------------------------------------------------------------------------------
// Plain HTTP: one client request's journey through one or more upstream attempts.

const kExchange = Symbol("switchyard.exchange");
type ResWithExchange = ServerResponse & { [kExchange]?: Exchange };

/** res 'close' (shared listener, no per-request closure): the client went away or the response ended. */
function onResClose(this: ResWithExchange): void {
  this[kExchange]?.clientClosed();
}
function onResDrain(this: ResWithExchange): void {
  this[kExchange]?.drained();
}

/** Swallows errors that are handled elsewhere (socket errors end in 'close'). */
function noop(): void {}

/**
 * Uses undici's raw handler API (onConnect/onHeaders/onData/onComplete/onError): response headers
 * arrive as raw Buffers and go to the client without an intermediate object.
 */
class Exchange implements Dispatcher.DispatchHandler {
  readonly fw: UndiciForwarder;
  readonly host: ForwardHost;
  readonly req: IncomingMessage;
  readonly res: ResWithExchange;
  /** The server of the current attempt while it counts in server.inflight; null once released. */
  server: Server | null = null;
  tried: Server[] | null = null;
  headers: string[] | null = null;
  abort: ((err?: Error) => void) | null = null;
  resume: (() => void) | null = null;
  body: BodySource | null = null;
  /** undici started writing the current attempt (onConnect): something may have reached the server. */
  sent = false;
  /** Response head written to the client. */
  started = false;
  /** Response body bytes still expected by Content-Length (-1: unknown): the last chunk ends the response. */
  contentLength = -1;
  done = false;
  readonly hasBody: boolean;

  constructor(fw: UndiciForwarder, host: ForwardHost, req: IncomingMessage, res: ServerResponse) {
    this.fw = fw;
    this.host = host;
    this.req = req;
    this.res = res;
    this.hasBody = requestHasBody(req);
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
    this.abort = null;
    if (this.headers === null) {
      const trusted = peerTrusted(this.host, req.socket);
      // an untrusted peer is its own client: skip the resolver
      this.headers = upstreamHeaders(req, { clientIp: trusted ? this.host.clientIp(req) : "", trusted });
    }
    let body: BodySource | null = null;
    if (this.hasBody) {
      body = new BodySource(req);
      this.body = body;
    }
    try {
      this.fw.dispatch(
        server,
        { path: originForm(req.url), method: req.method || "GET", headers: this.headers, body },
        this,
      );
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
    const err = new Error("client closed the connection");
    if (this.abort !== null) this.abort(err);
    this.body?.destroy();
  }

  drained(): void {
    if (this.resume !== null && !this.done) this.resume();
  }

  onConnect(abort: (err?: Error) => void): void {
    if (this.done) {
      abort(new Error("client closed the connection"));
      return;
    }
    this.abort = abort;
    this.sent = true;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (this.done) return false;
    if (statusCode < 200) return true; // 1xx interim responses are not relayed
    const res = this.res;
    const headers = downstreamHeaders(rawHeaders, this);
    // writeHead replaces headers set before with same-named ones: a Set-Cookie set before (the sticky
    // cookie) must be sent next to the backend's own
    const preset = res.getHeader("set-cookie");
    if (preset !== undefined) {
      res.removeHeader("set-cookie");
      if (Array.isArray(preset)) for (const v of preset) headers.push("set-cookie", v);
      else headers.push("set-cookie", String(preset));
    }
    this.resume = resume;
    // throws on a header value node:http refuses: onError then answers 502
    res.writeHead(statusCode, this.req.httpVersionMajor === 2 ? undefined : statusText || undefined, headers);
    this.started = true;
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.done) return false;
    if (this.contentLength > 0) {
      this.contentLength -= chunk.length;
      if (this.contentLength === 0) {
        // head and body leave in one write; undici's onComplete follows and finds the exchange done
        this.#finish();
        this.res.end(chunk);
        return true;
      }
    }
    if (this.res.write(chunk)) return true;
    this.res.once("drain", onResDrain);
    return false;
  }

  onComplete(): void {
    if (this.done) return;
    this.#finish();
    this.res.end();
  }

  onError(err: Error): void {
    if (this.done) return;
    const server = this.server;
    this.#release();
    const res = this.res;
    if (this.started || res.headersSent) {
      // mid-response (idle timeout, reset): the client cannot be told otherwise; abort its connection
      this.#finish();
      res.destroy();
      return;
    }
    const kind = classify(err);
    if (server !== null && (kind === "connect" || kind === "reset")) this.host.reportFailure(server, err);
    if (this.#retryable(kind) && this.tried!.length < this.fw.maxAttempts) {
      const next = this.host.pickRetry(this.req, this.tried!);
      if (next !== undefined) {
        this.host.logger.debug({ server: server?.name, next: next.name, err }, "retrying on another server");
        this.body?.destroy();
        if (this.host.setStickyCookie !== undefined) restick(this.host, this.req, res, next);
        this.send(next);
        return;
      }
    }
    this.host.logger.warn({ server: server?.name, err }, "upstream request failed");
    this.#finish();
    this.body?.destroy();
    // a timeout while connecting is a timeout too (as nginx answers it)
    if (kind === "timeout" || isConnectTimeout(err)) sendError(res, 504, GATEWAY_TIMEOUT);
    else sendError(res, 502, BAD_GATEWAY);
  }

  /**
   * A retry is safe when the request provably did not reach the server: undici never started
   * writing it (no onConnect) and none of the client's body was taken; or, for a replayable
   * method without a body, when the connection broke before any response.
   */
  #retryable(kind: FailureKind): boolean {
    const pulled = this.body !== null && this.body.pulled;
    if (!this.sent && !pulled && kind !== "timeout" && kind !== "invalid") return true;
    return kind === "reset" && !this.hasBody && REPLAYABLE.has(this.req.method || "GET");
  }
}

/** A sticky cookie already set for the failed server now names the server the request went to. */
function restick(host: ForwardHost, req: IncomingMessage, res: ServerResponse, next: Server): void {
  const prev = res.getHeader("set-cookie");
  if (prev === undefined) return;
  const list = Array.isArray(prev) ? prev : [String(prev)];
  const kept = list.filter((c) => !c.startsWith(STICKY_PREFIX));
  if (kept.length === list.length) return;
  if (kept.length > 0) res.setHeader("set-cookie", kept);
  else res.removeHeader("set-cookie");
  host.setStickyCookie?.(req, res, next);
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

function requestHasBody(req: IncomingMessage): boolean {
  if (req.httpVersionMajor === 2) {
    // HTTP/2 has no framing headers for bodies: a body exists unless the stream already ended
    const stream = (req as unknown as { stream?: { readableEnded?: boolean; endAfterHeaders?: boolean } })
      .stream;
    return !(stream?.endAfterHeaders === true || req.readableEnded);
  }
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i];
    if (n.length === 14 && n.toLowerCase() === "content-length") return raw[i + 1] !== "0";
    if (n.length === 17 && n.toLowerCase() === "transfer-encoding") return true;
  }
  return false;
}

/**
 * The client's request body as undici sees it, one per attempt. It takes nothing from the client
 * until undici starts writing (after the connection is made), so a connect failure leaves the body
 * untouched for a retry; and undici destroying it on an upstream error does not destroy the client
 * request.
 */
class BodySource extends Readable {
  readonly req: IncomingMessage;
  /** Some of the client's body was taken: a retry could not send it whole. */
  pulled = false;
  #attached = false;

  constructor(req: IncomingMessage) {
    super({ highWaterMark: 64 * 1024 });
    this.req = req;
  }

  override _read(): void {
    const req = this.req;
    if (!this.#attached) {
      this.#attached = true;
      (req as IncomingMessage & { [kSource]?: BodySource })[kSource] = this;
      req.on("data", onBodyData);
      req.on("end", onBodyEnd);
      req.on("error", onBodyError);
      req.on("aborted", onBodyAborted);
    }
    req.resume();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#detach();
    cb(err);
  }

  #detach(): void {
    if (!this.#attached) return;
    this.#attached = false;
    const req = this.req as IncomingMessage & { [kSource]?: BodySource };
    if (req[kSource] === this) req[kSource] = undefined;
    req.off("data", onBodyData);
    req.off("end", onBodyEnd);
    req.off("error", onBodyError);
    req.off("aborted", onBodyAborted);
    req.pause();
  }
}

const kSource = Symbol("switchyard.body");
type ReqWithSource = IncomingMessage & { [kSource]?: BodySource };

function onBodyData(this: ReqWithSource, chunk: Buffer): void {
  const src = this[kSource];
  if (src === undefined) return;
  src.pulled = true;
  if (!src.push(chunk)) this.pause();
}
function onBodyEnd(this: ReqWithSource): void {
  this[kSource]?.push(null);
}
function onBodyError(this: ReqWithSource, err: Error): void {
  this[kSource]?.destroy(err);
}
function onBodyAborted(this: ReqWithSource): void {
  this[kSource]?.destroy(new Error("client aborted the request body"));
}

// ---------------------------------------------------------------------------------------------
// Upgrades (WebSocket): node's own client, which reports both a 101 ('upgrade') and a refusal with
// an ordinary response ('response') so the latter can be relayed as is.

const STATUS_TEXT = http.STATUS_CODES;

class Tunnel {
  readonly fw: UndiciForwarder;
  readonly host: ForwardHost;
  readonly req: IncomingMessage;
  readonly socket: Duplex;
  readonly head: Buffer;
  readonly upgradeTo: string;
  tried: Server[] = [];
  server: Server | null = null;
  upstream: http.ClientRequest | null = null;
  timer: NodeJS.Timeout | undefined;
  done = false;
  headers: string[] | null = null;

  constructor(fw: UndiciForwarder, host: ForwardHost, req: IncomingMessage, socket: Duplex, head: Buffer) {
    this.fw = fw;
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
        { clientIp: trusted ? this.host.clientIp(req) : "", trusted },
        this.upgradeTo,
      );
    }
    const url = server.url;
    const tls = url.protocol === "https:";
    const hostname = url.hostname.replace(/^\[|\]$/g, "");
    const options: https.RequestOptions = {
      host: hostname,
      port: url.port || (tls ? 443 : 80),
      method: req.method || "GET",
      path: originForm(req.url),
      headers: this.headers as unknown as http.OutgoingHttpHeaders,
      setHost: false,
      agent: false,
    };
    if (tls) {
      options.rejectUnauthorized = this.fw.opts.verifyTls === true;
      if (isIP(hostname) === 0) options.servername = hostname;
    }
    const up = (tls ? https : http).request(options);
    this.upstream = up;
    up.on("error", (err: Error) => this.#failed(server, up, err));
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
    this.#release();
  }

  #failed(server: Server, up: http.ClientRequest, err: Error & { kind?: FailureKind }): void {
    if (this.done || this.upstream !== up) return;
    clearTimeout(this.timer);
    this.#release();
    const kind = err.kind ?? classify(err);
    if (kind === "connect" || kind === "reset") this.host.reportFailure(server, err);
    // nothing of an upgrade request but its head was sent, and it is a bodiless GET
    if ((kind === "connect" || kind === "reset") && this.tried.length < this.fw.maxAttempts) {
      const next = this.host.pickRetry(this.req, this.tried);
      if (next !== undefined) {
        this.send(next);
        return;
      }
    }
    this.host.logger.warn({ server: server.name, err }, "upstream upgrade failed");
    this.done = true;
    const timedOut = kind === "timeout" || isConnectTimeout(err);
    endWithError(this.socket, timedOut ? 504 : 502, timedOut ? GATEWAY_TIMEOUT : BAD_GATEWAY);
  }

  #upgraded(up: http.ClientRequest, res: IncomingMessage, upSocket: Duplex, upHead: Buffer): void {
    clearTimeout(this.timer);
    const client = this.socket;
    if (this.done || this.upstream !== up) {
      upSocket.destroy();
      return;
    }
    let head = `HTTP/1.1 101 ${res.statusMessage || "Switching Protocols"}\r\n`;
    const h = downstreamRawHeaders(res.rawHeaders, true);
    for (let i = 0; i < h.length; i += 2) head += `${h[i]}: ${h[i + 1]}\r\n`;
    client.write(`${head}\r\n`);
    if (upHead.length) client.write(upHead);
    if (this.head.length) upSocket.write(this.head);
    upSocket.on("error", noop);
    // from now on the pipes own the lifecycle: the server's in-flight count is held until both
    // sides are gone
    this.done = true;
    this.upstream = null;
    let open = 2;
    const closed = () => {
      if (--open === 0) this.#release();
    };
    upSocket.once("close", () => {
      client.destroy();
      closed();
    });
    client.once("close", () => {
      upSocket.destroy();
      closed();
    });
    if (client.destroyed) upSocket.destroy();
    upSocket.pipe(client);
    client.pipe(upSocket);
  }

  #refused(up: http.ClientRequest, res: IncomingMessage): void {
    clearTimeout(this.timer);
    if (this.done || this.upstream !== up) {
      res.destroy();
      return;
    }
    this.done = true;
    const client = this.socket;
    const status = res.statusCode ?? 502;
    let head = `HTTP/1.1 ${status} ${res.statusMessage || STATUS_TEXT[status] || ""}\r\n`;
    const h = downstreamRawHeaders(res.rawHeaders);
    for (let i = 0; i < h.length; i += 2) head += `${h[i]}: ${h[i + 1]}\r\n`;
    // the body is relayed as it comes and delimited by closing the connection
    client.write(`${head}connection: close\r\n\r\n`);
    res.on("error", () => client.destroy());
    res.on("end", () => {
      client.end();
      this.#release();
    });
    res.on("close", () => {
      if (!res.complete) client.destroy();
      this.#release();
    });
    client.once("close", () => res.destroy());
    res.pipe(client, { end: false });
  }
}

function timeoutError(phase: "connect" | "response"): Error & { kind: FailureKind } {
  const err = new Error(
    phase === "connect" ? "upstream connect timeout" : "upstream response header timeout",
  ) as Error & { kind: FailureKind; code: string };
  err.kind = phase === "connect" ? "connect" : "timeout";
  err.code = phase === "connect" ? "UND_ERR_CONNECT_TIMEOUT" : "UND_ERR_HEADERS_TIMEOUT";
  return err;
}
