/**
 * The upstream HTTP/2 client: `h2` (TLS, ALPN) and `h2c` (cleartext, prior knowledge) backends,
 * behind the same UpstreamClient seam as the HTTP/1.1 pools (src/http1/upstream.ts).
 *
 * - Sessions are pooled per backend; a session takes streams up to the peer's
 *   SETTINGS_MAX_CONCURRENT_STREAMS (100 until its SETTINGS arrive), then another session opens.
 * - Nothing is sent before the backend's SETTINGS frame: a backend that is not HTTP/2 (an HTTP/1.1
 *   server, ALPN without h2) fails the session before any request reached it, with an error that
 *   says so (a 502 and its log line; the request may go elsewhere).
 * - GOAWAY: the session takes no new streams; those under way finish; streams the backend refused
 *   (REFUSED_STREAM, which RFC 9113 §8.7 guarantees were not processed, as GOAWAY does for streams
 *   above its last id) are sent again on a fresh session while nothing of their body was read.
 * - Failures carry codes the forwarder classifies: refused streams and sessions that never came up
 *   are `connect` failures (retried elsewhere, counted by passive health), other resets `reset`.
 * - WebSockets (RFC 8441): `tunnel` opens an extended CONNECT stream (`:protocol: websocket`) on
 *   the same pooled sessions, once the backend's SETTINGS allowed it (SETTINGS_ENABLE_CONNECT_PROTOCOL);
 *   the stream then carries the WebSocket's bytes both ways. Such streams are not waited for by
 *   close() and survive destroy() (the session closes gracefully after them), as an HTTP/1.1
 *   WebSocket's own connection outlives its pool.
 */
import type * as http2 from "node:http2";
import * as net from "node:net";
import type * as tls from "node:tls";
import { UpstreamError } from "../errors.ts";
import { backendAddress } from "../http1/client.ts";
import { CloseWaiters } from "../http1/close-waiters.ts";
import {
  UPSTREAM_CODES,
  type UpstreamClient,
  type UpstreamConnection,
  type UpstreamHandler,
  type UpstreamPoolOptions,
  type UpstreamRequest,
} from "../http1/upstream.ts";

/** The END_STREAM flag of a HEADERS frame. */
const END_STREAM = 0x1;

// http2.constants' values, written out: reading them would load node:http2 (and TLS) in every
// process, where only h2 backends need it
const NGHTTP2_CANCEL = 0x8;
const NGHTTP2_NO_ERROR = 0x0;
const NGHTTP2_REFUSED_STREAM = 0x7;
const HTTP2_HEADER_AUTHORITY = ":authority";
const HTTP2_HEADER_METHOD = ":method";
const HTTP2_HEADER_PATH = ":path";
const HTTP2_HEADER_SCHEME = ":scheme";
/** RFC 8441's pseudo-header (node has no constant for it). */
const HTTP2_HEADER_PROTOCOL = ":protocol";

/** Streams a session takes before the peer's SETTINGS say how many it allows (RFC 9113 §6.5.2 suggests ≥ 100). */
const INITIAL_STREAM_LIMIT = 100;
/** How long a session without streams is kept. */
const SESSION_IDLE = 30_000;
/** Times one request is sent again after a refused stream (GOAWAY or REFUSED_STREAM). */
const MAX_REFUSED_RETRIES = 2;

/** Codes of this client's own failures (besides UPSTREAM_CODES). */
export const H2_CODES = {
  /** The backend does not speak HTTP/2 (no h2 by ALPN, or no HTTP/2 SETTINGS to the h2c preface). */
  notH2: "ERR_SWITCHYARD_UPSTREAM_NOT_H2",
  /** The backend refused the stream (REFUSED_STREAM): it was not processed. */
  refused: "ERR_SWITCHYARD_UPSTREAM_REFUSED_STREAM",
  /** The backend did not allow extended CONNECT (RFC 8441): no WebSockets over its HTTP/2. */
  noExtendedConnect: "ERR_SWITCHYARD_UPSTREAM_NO_EXTENDED_CONNECT",
} as const satisfies Record<string, UpstreamError["code"]>;

/** Request headers HTTP/2 forbids (RFC 9113 §8.2.2) or that become pseudo-headers. */
const DROPPED: ReadonlySet<string> = new Set([
  "host",
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "te",
  "http2-settings",
]);

/** What waits for a session's SETTINGS and then takes a stream: a request, or a tunnel. */
interface H2Work {
  /** Times this was sent again after a refused stream. */
  refusals: number;
  start(session: H2Session): void;
  fail(err: Error): void;
}

/** Told how an extended CONNECT (WebSocket, RFC 8441) went: the forwarder's tunnel. */
export interface H2TunnelHandler {
  /**
   * The backend's answer: 2xx opens the tunnel (`stream` carries the bytes both ways), anything
   * else is a refusal whose body follows on `stream`. `rawHeaders` has no pseudo-headers.
   */
  onTunnel(status: number, rawHeaders: string[], stream: http2.ClientHttp2Stream): void;
  /** No answer: the session failed, the stream was reset or refused (codes as for requests). */
  onError(err: Error): void;
}

export interface H2Stats {
  sessions: number;
  /** Streams the backend reset (any code but NO_ERROR/CANCEL) before completing a response. */
  resets: number;
  /** Streams refused (REFUSED_STREAM, or above a GOAWAY's last stream id). */
  refused: number;
  goaways: number;
}

export class H2Pool implements UpstreamClient {
  readonly url: URL;
  readonly protocol: "h2" | "h2c";
  readonly opts: UpstreamPoolOptions;
  readonly authority: string;
  readonly scheme: "https" | "http";
  readonly #address: ReturnType<typeof backendAddress>;
  readonly sessions = new Set<H2Session>();
  readonly stats: H2Stats = { sessions: 0, resets: 0, refused: 0, goaways: 0 };
  #closed = false;
  readonly #closing = new CloseWaiters();
  /** Streams under way (for close()). */
  live = 0;

  constructor(url: URL, protocol: "h2" | "h2c", opts: UpstreamPoolOptions) {
    this.url = url;
    this.protocol = protocol;
    this.opts = opts;
    this.#address = backendAddress(url);
    this.authority = url.host;
    this.scheme = protocol === "h2" ? "https" : "http";
  }

  get closed(): boolean {
    return this.#closed;
  }

  request(req: UpstreamRequest, handler: UpstreamHandler): void {
    if (this.#closed) {
      handler.onError(new UpstreamError("upstream pool is closed", UPSTREAM_CODES.destroyed));
      return;
    }
    this.live++;
    this.#acquire().add(new H2Exchange(this, req, handler));
  }

  /**
   * Opens an extended CONNECT stream for `protocol` (RFC 8441) to `path` with the client's
   * headers (a flat list; connection-specific ones and `Sec-WebSocket-Key` are dropped, `Host`
   * becomes `:authority`). Not counted in `live`: a WebSocket does not hold up close().
   */
  tunnel(path: string, protocol: string, headers: readonly string[], handler: H2TunnelHandler): H2Connect {
    const c = new H2Connect(this, path, protocol, headers, handler);
    if (this.#closed) {
      c.fail(new UpstreamError("upstream pool is closed", UPSTREAM_CODES.destroyed));
      return c;
    }
    this.#acquire().add(c);
    return c;
  }

  /** A request sent again after its stream was refused (not processed). */
  resend(ex: H2Work): void {
    if (this.#closed) {
      ex.fail(new UpstreamError("upstream pool is closed", UPSTREAM_CODES.destroyed));
      return;
    }
    this.#acquire().add(ex);
  }

  /** A session with room for one more stream, or a new one. */
  #acquire(): H2Session {
    for (const s of this.sessions) if (s.hasRoom()) return s;
    const { session, socket } = this.#connect();
    const s = new H2Session(this, session, socket);
    this.sessions.add(s);
    this.stats.sessions++;
    return s;
  }

  #connect(): { session: http2.ClientHttp2Session; socket: net.Socket } {
    const { host, port, servername } = this.#address;
    const t = this.opts.tls;
    const socket =
      this.protocol === "h2c"
        ? net.connect({ host, port, noDelay: true })
        : process.getBuiltinModule("node:tls").connect({
            host,
            port,
            servername: t?.servername ?? servername,
            rejectUnauthorized: t === undefined || t.rejectUnauthorized,
            secureContext: t?.secureContext,
            ALPNProtocols: ["h2"],
          });
    socket.setNoDelay(true);
    const session = process.getBuiltinModule("node:http2").connect(`${this.scheme}://${this.authority}`, {
      createConnection: () => socket,
      settings: { enablePush: false },
      // node's default (10 MB per session) is far below what many streams of a busy backend hold
      maxSessionMemory: 64,
    });
    return { session, socket };
  }

  /** A stream ended (completed or failed) for good. */
  done(): void {
    this.live--;
    this.#checkEmpty();
  }

  forget(s: H2Session): void {
    this.sessions.delete(s);
    this.#checkEmpty();
  }

  #checkEmpty(): void {
    if (!this.#closing.waiting || this.live !== 0) return;
    for (const s of this.sessions) s.close();
    this.#closing.settle();
  }

  close(): Promise<void> {
    this.#closed = true;
    for (const s of this.sessions) if (s.streams === 0) s.close();
    if (this.live === 0) return Promise.resolve();
    return this.#closing.wait();
  }

  destroy(): void {
    this.#closed = true;
    const err = new UpstreamError("upstream pool destroyed", UPSTREAM_CODES.destroyed);
    // a session carrying WebSockets closes gracefully after them (its other streams finish too)
    for (const s of [...this.sessions]) {
      if (s.tunnels > 0) s.close();
      else s.destroy(err);
    }
  }
}

/** One HTTP/2 connection to the backend. */
class H2Session {
  readonly pool: H2Pool;
  readonly session: http2.ClientHttp2Session;
  /** The backend's SETTINGS arrived: streams may be sent. */
  ready = false;
  /** GOAWAY received or closing: no new streams. */
  draining = false;
  goaway = false;
  /** Streams assigned (waiting or open). */
  streams = 0;
  /** Of which open extended CONNECT tunnels (WebSockets). */
  tunnels = 0;
  limit = INITIAL_STREAM_LIMIT;
  /** Exchanges waiting for the SETTINGS frame. */
  waiting: H2Work[] = [];
  /** Why the session failed, for the streams it takes down. */
  failure: Error | undefined;
  timer: NodeJS.Timeout | undefined;

  constructor(pool: H2Pool, session: http2.ClientHttp2Session, socket: net.Socket) {
    this.pool = pool;
    this.session = session;
    this.timer = setTimeout(() => {
      this.#fail(new UpstreamError("upstream connect timeout", UPSTREAM_CODES.connectTimeout));
    }, pool.opts.connectTimeout);
    session.on("remoteSettings", (settings) => this.#settings(settings));
    session.on("goaway", () => this.#goaway());
    session.on("error", (err: Error) => this.#fail(this.#explain(err)));
    session.on("close", () => this.#closed());
    // a listener of its own, not setTimeout's callback (a once listener): a session busy when the
    // timer first fired (a quiet WebSocket) is still closed after a later idle period
    session.setTimeout(SESSION_IDLE);
    session.on("timeout", () => {
      if (this.streams === 0) this.close();
    });
    if (pool.protocol === "h2") {
      socket.once("secureConnect", () => {
        const alpn = (socket as tls.TLSSocket).alpnProtocol;
        if (alpn !== "h2") {
          this.#fail(notH2(pool, `it chose ${alpn ? JSON.stringify(alpn) : "no protocol"} by ALPN, not h2`));
        }
      });
    }
  }

  hasRoom(): boolean {
    return !this.draining && !this.session.destroyed && !this.session.closed && this.streams < this.limit;
  }

  add(ex: H2Work): void {
    this.streams++;
    if (this.ready) ex.start(this);
    else this.waiting.push(ex);
  }

  /** A stream of this session ended. */
  release(): void {
    this.streams--;
    if (this.streams === 0 && (this.draining || this.pool.closed)) this.close();
  }

  #settings(settings: http2.Settings): void {
    const max = settings.maxConcurrentStreams;
    if (typeof max === "number") this.limit = Math.max(1, Math.min(max, 1 << 20));
    if (this.ready) return;
    this.ready = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    const waiting = this.waiting;
    this.waiting = [];
    for (const ex of waiting) {
      // a GOAWAY that came with the SETTINGS: these were never sent, they go to another session
      if (this.draining) {
        this.streams--;
        if (ex.refusals++ < MAX_REFUSED_RETRIES) this.pool.resend(ex);
        else
          ex.fail(
            new UpstreamError(
              `backend ${this.pool.url.host} keeps closing new sessions (GOAWAY)`,
              H2_CODES.refused,
            ),
          );
      } else ex.start(this);
    }
  }

  /** Node reports a GOAWAY more than once (on receipt, again as the session closes): counted once. */
  #goaway(): void {
    if (!this.goaway) {
      this.goaway = true;
      this.pool.stats.goaways++;
    }
    // no new streams; those above the GOAWAY's last id are closed by node as refused (sent again
    // elsewhere), the others finish here
    this.draining = true;
    if (this.streams === 0) this.close();
  }

  /** Node's words for a backend that is not HTTP/2, made plain. */
  #explain(err: Error): Error {
    const code = (err as { code?: string }).code ?? "";
    if (code === "ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL")
      return notH2(this.pool, "it offers no h2 by ALPN", err);
    if (!this.ready && (code === "ERR_HTTP2_ERROR" || code === "ERR_HTTP2_SESSION_ERROR"))
      return notH2(
        this.pool,
        this.pool.protocol === "h2c"
          ? "it did not answer the HTTP/2 preface (h2c prior knowledge) with SETTINGS: an HTTP/1.1 server?"
          : "it did not answer with HTTP/2 SETTINGS",
        err,
      );
    return err;
  }

  #fail(err: Error): void {
    if (this.failure === undefined) this.failure = err;
    this.draining = true;
    clearTimeout(this.timer);
    const waiting = this.waiting;
    this.waiting = [];
    for (const ex of waiting) {
      this.streams--;
      ex.fail(this.failure);
    }
    if (!this.session.destroyed) this.session.destroy();
  }

  #closed(): void {
    clearTimeout(this.timer);
    this.draining = true;
    const waiting = this.waiting;
    this.waiting = [];
    for (const ex of waiting) {
      this.streams--;
      ex.fail(this.failure ?? new UpstreamError("upstream session closed", UPSTREAM_CODES.closed));
    }
    this.pool.forget(this);
  }

  close(): void {
    this.draining = true;
    if (!this.session.closed && !this.session.destroyed) this.session.close();
  }

  destroy(err: Error): void {
    this.failure ??= err;
    this.#fail(err);
  }
}

function notH2(pool: H2Pool, why: string, cause?: unknown): UpstreamError {
  return new UpstreamError(
    `backend ${pool.url.host} is set to protocol ${pool.protocol} but does not speak HTTP/2: ${why}`,
    H2_CODES.notH2,
    cause === undefined ? undefined : { cause },
  );
}

/** One request on one stream (sent again on another session if the backend refused the stream). */
class H2Exchange implements UpstreamConnection {
  readonly pool: H2Pool;
  readonly req: UpstreamRequest;
  readonly handler: UpstreamHandler;
  session: H2Session | null = null;
  stream: http2.ClientHttp2Stream | null = null;
  responded = false;
  finished = false;
  /** The response's trailer fields (flat), handed over with onComplete. */
  trailers: string[] | null = null;
  refusals = 0;
  timer: NodeJS.Timeout | undefined;

  constructor(pool: H2Pool, req: UpstreamRequest, handler: UpstreamHandler) {
    this.pool = pool;
    this.req = req;
    this.handler = handler;
  }

  start(session: H2Session): void {
    if (this.finished) {
      session.release();
      return;
    }
    this.session = session;
    if (!this.handler.onSent(this)) {
      this.#end();
      return;
    }
    const r = this.req;
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.session.request(requestHeaders(this.pool, r), {
        endStream: r.body === null,
        waitForTrailers: false,
      });
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    this.stream = stream;
    this.timer = setTimeout(() => this.#timeout(stream, "headers"), this.pool.opts.responseHeaderTimeout);
    stream.on("response", (headers, flags: number, raw: string[]) =>
      this.#response(stream, headers, flags, raw),
    );
    stream.on("data", (chunk: Buffer) => {
      if (this.stream === stream && !this.finished && !this.handler.onData(chunk)) stream.pause();
    });
    stream.on("trailers", (_t, _f, raw: string[]) => {
      if (this.stream === stream && !this.finished) this.trailers = raw;
    });
    stream.on("end", () => this.#complete(stream));
    stream.on("error", noop);
    stream.on("close", () => this.#streamClosed(stream));
    if (r.body !== null) this.#upload(stream, r.body);
  }

  #upload(stream: http2.ClientHttp2Stream, body: NonNullable<UpstreamRequest["body"]>): void {
    this.handler.bodyTaken = true;
    const onError = () => {
      if (this.stream !== stream) return;
      this.fail(new UpstreamError("client request body broke off", UPSTREAM_CODES.clientAborted));
    };
    body.once("error", onError);
    body.once("aborted", onError);
    body.pipe(stream);
    stream.once("close", () => {
      body.off("error", onError);
      body.off("aborted", onError);
      body.unpipe(stream);
    });
  }

  #response(
    stream: http2.ClientHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    flags: number,
    raw: string[],
  ): void {
    if (this.stream !== stream || this.finished) return;
    this.responded = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    const status = Number(headers[":status"]);
    let list: string[] = [];
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i].charCodeAt(0) !== 58 /* : */) list.push(raw[i], raw[i + 1]);
    }
    // a gRPC "Trailers-Only" answer (status in the only HEADERS frame): node's HTTP/2 front cannot
    // send a lone HEADERS frame, so it goes on as headers (content-type) and trailers (the rest),
    // which the gRPC protocol allows as well
    let trailers: string[] | undefined;
    if ((flags & END_STREAM) !== 0 && headers["grpc-status"] !== undefined) {
      trailers = [];
      const head: string[] = [];
      for (let i = 0; i < list.length; i += 2) {
        if (list[i].toLowerCase() === "content-type") head.push(list[i], list[i + 1]);
        else trailers.push(list[i], list[i + 1]);
      }
      list = head;
    }
    if (!this.handler.onHeaders(status, list, "")) {
      this.abort();
      return;
    }
    if (trailers !== undefined) this.trailers = trailers;
    const idle = this.pool.opts.idleTimeout;
    if (idle > 0) stream.setTimeout(idle, () => this.#timeout(stream, "body"));
  }

  #complete(stream: http2.ClientHttp2Stream): void {
    if (this.stream !== stream || this.finished || !this.responded) return;
    this.#end();
    this.handler.onComplete(null, this.trailers);
  }

  #timeout(stream: http2.ClientHttp2Stream, phase: "headers" | "body"): void {
    if (this.stream !== stream || this.finished) return;
    stream.close(NGHTTP2_CANCEL);
    this.fail(
      phase === "headers"
        ? new UpstreamError("upstream response header timeout", UPSTREAM_CODES.headersTimeout)
        : new UpstreamError("upstream body timeout", UPSTREAM_CODES.bodyTimeout),
    );
  }

  #streamClosed(stream: http2.ClientHttp2Stream): void {
    if (this.stream !== stream || this.finished) return;
    const rst = stream.rstCode ?? NGHTTP2_NO_ERROR;
    const session = this.session;
    if (rst === NGHTTP2_REFUSED_STREAM && !this.responded) {
      this.pool.stats.refused++;
      // not processed: on a fresh session while the body is unread
      if (!this.handler.bodyTaken && this.refusals < MAX_REFUSED_RETRIES) {
        this.refusals++;
        this.#detach();
        this.pool.resend(this);
        return;
      }
      this.fail(
        new UpstreamError(
          `backend ${this.pool.url.host} refused the stream (REFUSED_STREAM)`,
          H2_CODES.refused,
        ),
      );
      return;
    }
    if (session?.failure !== undefined && !this.responded) {
      this.fail(session.failure);
      return;
    }
    if (rst !== NGHTTP2_NO_ERROR && rst !== NGHTTP2_CANCEL) {
      this.pool.stats.resets++;
      this.fail(
        new UpstreamError(
          `backend ${this.pool.url.host} reset the stream (HTTP/2 error code ${rst})`,
          UPSTREAM_CODES.closed,
        ),
      );
      return;
    }
    this.fail(
      new UpstreamError(
        rst === NGHTTP2_CANCEL
          ? `backend ${this.pool.url.host} cancelled the stream`
          : `backend ${this.pool.url.host} closed the stream before the response was complete`,
        // a backend's own cancel is a per-request choice, not a sign of ill health
        rst === NGHTTP2_CANCEL ? UPSTREAM_CODES.protocol : UPSTREAM_CODES.closed,
      ),
    );
  }

  /** Leaves the current stream and session (before a resend). */
  #detach(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.stream = null;
    const s = this.session;
    this.session = null;
    s?.release();
  }

  #end(): void {
    if (this.finished) return;
    this.finished = true;
    this.#detach();
    this.pool.done();
  }

  /** The attempt failed (before the session was up, or on its stream). */
  fail(err: Error): void {
    if (this.finished) return;
    const stream = this.stream;
    this.#end();
    if (stream !== null && !stream.closed) stream.close(NGHTTP2_CANCEL);
    this.handler.onError(err);
  }

  resume(): void {
    const s = this.stream;
    if (s !== null && !this.finished) s.resume();
  }

  abort(): void {
    if (this.finished) return;
    const stream = this.stream;
    this.#end();
    if (stream !== null && !stream.closed) stream.close(NGHTTP2_CANCEL);
  }
}

/**
 * One extended CONNECT (RFC 8441) attempt: sent once the session's SETTINGS allow it, then handed
 * to the tunnel with the backend's answer. Failures before an answer are those of a request (a
 * refused stream is sent again on a fresh session, a reset counts for passive health).
 */
export class H2Connect implements H2Work {
  readonly pool: H2Pool;
  readonly path: string;
  readonly protocol: string;
  readonly headers: readonly string[];
  readonly handler: H2TunnelHandler;
  session: H2Session | null = null;
  stream: http2.ClientHttp2Stream | null = null;
  refusals = 0;
  /** The backend answered: the stream is the tunnel's. */
  answered = false;
  /** Given up (failed, or cancelled by the client): no more calls to the handler. */
  finished = false;
  timer: NodeJS.Timeout | undefined;

  constructor(
    pool: H2Pool,
    path: string,
    protocol: string,
    headers: readonly string[],
    handler: H2TunnelHandler,
  ) {
    this.pool = pool;
    this.path = path;
    this.protocol = protocol;
    this.headers = headers;
    this.handler = handler;
  }

  start(session: H2Session): void {
    this.session = session;
    if (this.finished) {
      this.#detach();
      return;
    }
    if (session.session.remoteSettings.enableConnectProtocol !== true) {
      this.fail(
        new UpstreamError(
          `backend ${this.pool.url.host} (protocol ${this.pool.protocol}) does not accept WebSockets over HTTP/2: its SETTINGS do not enable extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL, RFC 8441)`,
          H2_CODES.noExtendedConnect,
        ),
      );
      return;
    }
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.session.request(tunnelHeaders(this.pool, this.path, this.protocol, this.headers), {
        endStream: false,
      });
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    this.stream = stream;
    session.tunnels++;
    this.timer = setTimeout(() => {
      if (this.stream !== stream || this.answered) return;
      this.fail(new UpstreamError("upstream response header timeout", UPSTREAM_CODES.headersTimeout));
    }, this.pool.opts.responseHeaderTimeout);
    stream.on("error", noop);
    stream.once("response", (headers, _flags, raw: string[]) => {
      if (this.stream !== stream || this.finished) return;
      this.answered = true;
      clearTimeout(this.timer);
      const list: string[] = [];
      for (let i = 0; i < raw.length; i += 2) {
        if (raw[i].charCodeAt(0) !== 58 /* : */) list.push(raw[i], raw[i + 1]);
      }
      this.handler.onTunnel(Number(headers[":status"]), list, stream);
    });
    stream.once("close", () => this.#closed(stream));
  }

  #closed(stream: http2.ClientHttp2Stream): void {
    if (this.stream !== stream) return;
    const answered = this.answered;
    const session = this.session;
    this.#detach();
    // once answered, the tunnel's own listeners on the stream see its end
    if (answered || this.finished) return;
    const rst = stream.rstCode ?? NGHTTP2_NO_ERROR;
    if (rst === NGHTTP2_REFUSED_STREAM) {
      this.pool.stats.refused++;
      if (this.refusals < MAX_REFUSED_RETRIES) {
        this.refusals++;
        this.pool.resend(this);
        return;
      }
      this.#give(
        new UpstreamError(
          `backend ${this.pool.url.host} refused the stream (REFUSED_STREAM)`,
          H2_CODES.refused,
        ),
      );
      return;
    }
    if (session?.failure !== undefined) {
      this.#give(session.failure);
      return;
    }
    if (rst !== NGHTTP2_NO_ERROR && rst !== NGHTTP2_CANCEL) this.pool.stats.resets++;
    this.#give(
      new UpstreamError(
        rst !== NGHTTP2_NO_ERROR && rst !== NGHTTP2_CANCEL
          ? `backend ${this.pool.url.host} reset the WebSocket stream (HTTP/2 error code ${rst})`
          : `backend ${this.pool.url.host} closed the WebSocket stream before answering`,
        rst === NGHTTP2_CANCEL ? UPSTREAM_CODES.protocol : UPSTREAM_CODES.closed,
      ),
    );
  }

  /** Leaves the stream and the session (the session's count goes down once). */
  #detach(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const s = this.session;
    this.session = null;
    if (s === null) return;
    if (this.stream !== null) s.tunnels--;
    this.stream = null;
    s.release();
  }

  #give(err: Error): void {
    if (this.finished) return;
    this.finished = true;
    this.handler.onError(err);
  }

  /** The attempt failed before an answer (before the session was up, or on its stream). */
  fail(err: Error): void {
    if (this.finished || this.answered) return;
    const stream = this.stream;
    if (stream !== null && !stream.closed) stream.close(NGHTTP2_CANCEL);
    this.#detach();
    this.#give(err);
  }

  /** The client left before the answer: the stream is cancelled, the handler hears nothing more. */
  cancel(): void {
    if (this.finished || this.answered) return;
    this.finished = true;
    const stream = this.stream;
    if (stream !== null && !stream.closed) stream.close(NGHTTP2_CANCEL);
    else if (stream === null && this.session !== null) this.#detach();
  }
}

/** Request headers HTTP/2 forbids, and the HTTP/1.1 WebSocket handshake's own (RFC 8441 §5). */
const TUNNEL_DROPPED: ReadonlySet<string> = new Set([
  ...DROPPED,
  "content-length",
  "sec-websocket-key",
  "sec-websocket-accept",
]);

/** The extended CONNECT's headers (RFC 8441 §4): `:method CONNECT`, `:protocol`, `:scheme`, `:path`, `:authority`. */
function tunnelHeaders(
  pool: H2Pool,
  path: string,
  protocol: string,
  h: readonly string[],
): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = {
    [HTTP2_HEADER_METHOD]: "CONNECT",
    [HTTP2_HEADER_PROTOCOL]: protocol,
    [HTTP2_HEADER_PATH]: path,
    [HTTP2_HEADER_SCHEME]: pool.scheme,
  };
  out[HTTP2_HEADER_AUTHORITY] = copyHeaders(out, h, TUNNEL_DROPPED) ?? pool.authority;
  return out;
}

/** Copies a flat header list into `out` less `dropped` (lower-case names); returns the first `Host`. */
function copyHeaders(
  out: http2.OutgoingHttpHeaders,
  h: readonly string[],
  dropped: ReadonlySet<string>,
): string | undefined {
  let authority: string | undefined;
  for (let i = 0; i < h.length; i += 2) {
    const name = h[i].toLowerCase();
    const value = h[i + 1];
    if (name === "host") {
      authority ??= value;
      continue;
    }
    if (dropped.has(name)) continue;
    const prev = out[name];
    if (prev === undefined) out[name] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else out[name] = [String(prev), value];
  }
  return authority;
}

function noop(): void {}

/** The request as HTTP/2 headers: pseudo-headers from the request, connection-specific ones dropped. */
function requestHeaders(pool: H2Pool, r: UpstreamRequest): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = {
    [HTTP2_HEADER_METHOD]: r.method,
    [HTTP2_HEADER_PATH]: r.path,
    [HTTP2_HEADER_SCHEME]: pool.scheme,
  };
  out[HTTP2_HEADER_AUTHORITY] = copyHeaders(out, r.headers, DROPPED) ?? pool.authority;
  // switchyard relays trailers over HTTP/2; gRPC servers look for this
  out.te = "trailers";
  return out;
}
