/**
 * The fallback upstream client, for a Node whose llhttp binding is missing or misbehaves (or when
 * SWITCHYARD_HTTP1=fallback): node:http's keep-alive Agent, one per backend, behind the same
 * UpstreamClient interface and rules as the native pool — the handler hears onSent only once the
 * connection is up (a refused connection stays retryable), header and body timeouts, Host added
 * when missing, chunked uploads without a length, length 0 for a bodiless POST/PUT/PATCH, a
 * connection whose upload was cut short by an early answer is not reused.
 *
 * node:http rather than undici: undici measured faster (~1.35x req/s, ~20% less CPU per request,
 * docs/http1.md), but undici 7 crashes the process with an uncatchable assertion when a backend
 * closes the connection while a slow client holds the response paused (nodejs/undici#5360, fixed
 * only in undici 8, which needs Node >= 22.19), and the fallback exists to keep running on any Node.
 */

import type * as http from "node:http";
import type * as https from "node:https";
import type { Socket } from "node:net";
import type { Readable } from "node:stream";
import { UpstreamError } from "../errors.ts";
import { backendAddress } from "./client.ts";
import { CloseWaiters } from "./close-waiters.ts";
import { nameIs } from "./raw-headers.ts";
import { relayableTrailers } from "./trailers.ts";
import {
  EXPECT_WAIT_MS,
  UPSTREAM_CODES,
  type UpstreamClient,
  type UpstreamConnection,
  type UpstreamHandler,
  type UpstreamPoolOptions,
  type UpstreamRequest,
} from "./upstream.ts";

// node:http taken with getBuiltinModule, not an ES import: importing it as an ES module reads
// every export, and its lazy ones (WebSocket & co.) load undici, tls, http2 and zlib: ~13 MB of RSS
const nodeHttp = process.getBuiltinModule("node:http");

const DEFAULT_KEEP_ALIVE = 4_000;

export class AgentPool implements UpstreamClient {
  readonly origin: string;
  readonly opts: UpstreamPoolOptions;
  readonly agent: http.Agent;
  readonly address: ReturnType<typeof backendAddress>;
  readonly defaultHost: string;
  readonly live = new Set<AgentExchange>();
  #closed = false;
  readonly #closing = new CloseWaiters();

  constructor(url: URL, opts: UpstreamPoolOptions) {
    this.origin = url.origin;
    this.opts = opts;
    this.address = backendAddress(url);
    this.defaultHost = url.host;
    // `timeout` closes sockets idle in the agent's free list; the backend's Keep-Alive: timeout
    // hint shortens it (node's agent honours it, less a second)
    const options = {
      keepAlive: true,
      timeout: opts.keepAliveTimeout ?? DEFAULT_KEEP_ALIVE,
      scheduling: "lifo",
    };
    this.agent = this.address.tls
      ? new (process.getBuiltinModule("node:https").Agent)({
          ...options,
          rejectUnauthorized: opts.tls === undefined || opts.tls.rejectUnauthorized,
          secureContext: opts.tls?.secureContext,
        } as https.AgentOptions)
      : new nodeHttp.Agent(options as http.AgentOptions);
  }

  get closed(): boolean {
    return this.#closed;
  }

  request(req: UpstreamRequest, handler: UpstreamHandler): void {
    if (this.#closed) {
      handler.onError(new UpstreamError("upstream pool is closed", UPSTREAM_CODES.destroyed));
      return;
    }
    const ex = new AgentExchange(this, handler, req.body, req);
    this.live.add(ex);
    ex.start(req);
  }

  forget(ex: AgentExchange): void {
    this.live.delete(ex);
    if (this.live.size === 0 && this.#closing.waiting) {
      this.agent.destroy();
      this.#closing.settle();
    }
  }

  close(): Promise<void> {
    this.#closed = true;
    if (this.live.size === 0) {
      this.agent.destroy();
      return Promise.resolve();
    }
    return this.#closing.wait();
  }

  destroy(): void {
    this.#closed = true;
    const err = new UpstreamError("upstream pool destroyed", UPSTREAM_CODES.destroyed);
    for (const ex of [...this.live]) ex.fail(err);
    this.agent.destroy();
  }
}

/** One request through the agent: the UpstreamConnection its handler sees. */
class AgentExchange implements UpstreamConnection {
  readonly pool: AgentPool;
  readonly handler: UpstreamHandler;
  readonly body: Readable | null;
  readonly request: UpstreamRequest;
  req: http.ClientRequest | null = null;
  res: http.IncomingMessage | null = null;
  #done = false;
  #paused = false;
  #timer: NodeJS.Timeout | undefined;
  /** What the timer is timing: the connect, the response head, or the body. */
  #phase: "connect" | "head" | "body" = "connect";

  /** The body waits for the backend's 100 (Expect: 100-continue). */
  #awaiting = false;
  #expectTimer: NodeJS.Timeout | undefined;

  constructor(pool: AgentPool, handler: UpstreamHandler, body: Readable | null, request: UpstreamRequest) {
    this.pool = pool;
    this.handler = handler;
    this.body = body;
    this.request = request;
  }

  start(r: UpstreamRequest): void {
    const { address, opts } = this.pool;
    const headers: string[] = [];
    let hasHost = false;
    let hasLength = false;
    for (let i = 0; i < r.headers.length; i += 2) {
      const name = r.headers[i];
      if (nameIs(name, "host")) hasHost = true;
      else if (nameIs(name, "content-length")) hasLength = true;
      headers.push(name, r.headers[i + 1]);
    }
    if (!hasHost) headers.push("host", this.pool.defaultHost);
    if (this.body !== null && !hasLength) headers.push("transfer-encoding", "chunked");
    else if (this.body === null && !hasLength && expectsBody(r.method)) headers.push("content-length", "0");
    const request = address.tls ? process.getBuiltinModule("node:https").request : nodeHttp.request;
    let req: http.ClientRequest;
    try {
      req = request({
        host: address.host,
        port: address.port,
        servername: opts.tls?.servername ?? address.servername,
        method: r.method,
        path: r.path,
        headers,
        setHost: false,
        agent: this.pool.agent,
      } as https.RequestOptions);
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    this.req = req;
    req.on("error", (err) => this.fail(err));
    req.on("response", (res) => this.#response(res));
    // a 101 to a plain request (an h2c switch, say) is never tunnelled: a broken answer
    req.on("upgrade", (_res: http.IncomingMessage, socket: Socket) => {
      socket.destroy();
      this.fail(new UpstreamError("backend switched protocols on a plain request", UPSTREAM_CODES.protocol));
    });
    // node:http reports 100 as 'continue' and the other 1xx (but 101) as 'information'
    req.on("continue", () => {
      if (this.#done) return;
      this.handler.onInterim?.(100, [], "Continue");
      this.#startBody();
    });
    req.on("information", (info: http.InformationEvent) => {
      if (this.#done || info.statusCode === 100) return;
      this.handler.onInterim?.(info.statusCode, info.rawHeaders, info.statusMessage);
    });
    req.once("socket", (socket: Socket) => {
      socket.setNoDelay(true);
      if (!socket.connecting) return this.#send();
      this.#arm("connect", opts.connectTimeout);
      socket.once(address.tls ? "secureConnect" : "connect", () => this.#send());
    });
  }

  /** The connection is up: from now on the request may reach the backend. */
  #send(): void {
    if (this.#done) return;
    if (!this.handler.onSent(this)) {
      this.#done = true;
      this.#settle();
      this.req?.destroy();
      return;
    }
    this.#arm("head", this.pool.opts.responseHeaderTimeout);
    const req = this.req!;
    const body = this.body;
    if (body === null) {
      req.end();
      return;
    }
    if (this.request.expectContinue === true) {
      // RFC 9110 §10.1.1: the body waits for the backend's 100, a final answer (never sent then),
      // or EXPECT_WAIT_MS
      this.#awaiting = true;
      req.flushHeaders();
      this.#expectTimer = setTimeout(onExpectTimer, EXPECT_WAIT_MS, this);
      this.#expectTimer.unref();
      return;
    }
    this.#pump(req, body);
  }

  /** The backend said 100 Continue, or did not answer in time. */
  #startBody(): void {
    if (!this.#awaiting || this.#done || this.res !== null) return;
    this.#awaiting = false;
    clearTimeout(this.#expectTimer);
    this.#pump(this.req!, this.body!);
  }

  expectTimedOut(): void {
    this.#startBody();
  }

  #pump(req: http.ClientRequest, body: Readable): void {
    body.on("data", (chunk: Buffer) => {
      if (this.#done) return;
      this.handler.bodyTaken = true;
      if (this.#phase === "head") this.#timer?.refresh();
      if (!req.write(chunk)) body.pause();
    });
    req.on("drain", () => body.resume());
    body.once("end", () => {
      const t = relayableTrailers(this.request.trailersFrom?.rawTrailers);
      if (t !== null && req.chunkedEncoding) {
        const pairs: [string, string][] = [];
        for (let i = 0; i < t.length; i += 2) pairs.push([t[i], t[i + 1]]);
        req.addTrailers(pairs);
      }
      req.end();
    });
    const cut = () =>
      this.fail(new UpstreamError("the client's request body was cut short", UPSTREAM_CODES.clientAborted));
    body.once("error", cut);
    body.once("aborted", cut);
    body.resume();
  }

  #response(res: http.IncomingMessage): void {
    if (this.#done) {
      res.destroy();
      return;
    }
    this.res = res;
    if (this.#awaiting) {
      // a final answer to Expect: 100-continue: the body is never sent, the connection not reused
      this.#awaiting = false;
      clearTimeout(this.#expectTimer);
    }
    const status = res.statusCode ?? 0;
    if (!this.handler.onHeaders(status, res.rawHeaders, res.statusMessage ?? "")) {
      this.abort();
      return;
    }
    this.#arm("body", this.pool.opts.idleTimeout);
    res.on("data", (chunk: Buffer) => {
      if (this.#done) return;
      this.#timer?.refresh();
      if (!this.handler.onData(chunk) && !this.#done) {
        this.#paused = true;
        res.pause();
      }
    });
    res.once("end", () => this.#complete());
    res.once("aborted", () => this.fail(closed()));
    res.once("error", (err) => this.fail(err));
    res.once("close", () => {
      if (!res.complete) this.fail(closed());
    });
  }

  #complete(): void {
    if (this.#done) return;
    this.#done = true;
    this.#settle();
    // an upload still under way (the answer came early): the connection cannot carry another request
    if (this.body !== null && !this.body.readableEnded) this.req?.destroy();
    this.handler.onComplete(
      null,
      this.res !== null && this.res.rawTrailers.length > 0 ? this.res.rawTrailers : null,
    );
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#timer?.refresh();
    this.res?.resume();
  }

  abort(): void {
    if (this.#done) return;
    this.#done = true;
    this.#settle();
    this.req?.destroy();
  }

  /** The request fails with `err` (the handler hears it once) and its connection closes. */
  fail(err: Error): void {
    if (this.#done) return;
    this.#done = true;
    this.#settle();
    this.req?.destroy();
    this.handler.onError(err);
  }

  #arm(phase: "connect" | "head" | "body", ms: number): void {
    this.#phase = phase;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(onTimer, ms, this);
    this.#timer.unref();
  }

  timedOut(): void {
    const o = this.pool.opts;
    if (this.#phase === "body" && this.#paused) {
      this.#timer?.refresh();
      return;
    }
    if (this.#phase === "connect") {
      this.fail(
        new UpstreamError(
          `connect to ${this.pool.origin} timed out after ${o.connectTimeout}ms`,
          UPSTREAM_CODES.connectTimeout,
        ),
      );
    } else if (this.#phase === "head") {
      this.fail(
        new UpstreamError(
          `no response head within ${o.responseHeaderTimeout}ms`,
          UPSTREAM_CODES.headersTimeout,
        ),
      );
    } else {
      this.fail(new UpstreamError(`no response data for ${o.idleTimeout}ms`, UPSTREAM_CODES.bodyTimeout));
    }
  }

  #settle(): void {
    clearTimeout(this.#timer);
    clearTimeout(this.#expectTimer);
    this.pool.forget(this);
  }
}

function onExpectTimer(ex: AgentExchange): void {
  ex.expectTimedOut();
}

function onTimer(ex: AgentExchange): void {
  ex.timedOut();
}

function closed(): UpstreamError {
  return new UpstreamError("upstream closed the connection", UPSTREAM_CODES.closed);
}

function expectsBody(method: string): boolean {
  return method === "POST" || method === "PUT" || method === "PATCH";
}
