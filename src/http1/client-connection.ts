/**
 * One connection of the native upstream client (client.ts): the request written with one write of
 * a pre-joined head, the request body pumped with backpressure, the response parsed by Node's own
 * llhttp binding and handed to the request's handler, and the timeouts of each phase.
 */

import type * as net from "node:net";
import { UpstreamError } from "../errors.ts";
import { createParser, type Parser as LlParser } from "./binding.ts";
import type { UpstreamPool } from "./client.ts";
import {
  attachSocket,
  CONNECTED,
  kPump,
  onBodyData,
  onBodyEnd,
  onBodyError,
  onBodyTimeout,
  onConnectTimeout,
  onHeadTimeout,
  PARSER_CALLBACKS,
  READ,
  type Source,
} from "./client-events.ts";
import { nameIs } from "./raw-headers.ts";
import { relayableTrailers } from "./trailers.ts";
import {
  EXPECT_WAIT_MS,
  UPSTREAM_CODES,
  type UpstreamConnection,
  type UpstreamHandler,
  type UpstreamRequest,
} from "./upstream.ts";

type Parser = LlParser<Connection>;
const PARSER_RESOURCE = Object.freeze({ type: "switchyard.upstream" });

// Connection states
const CONNECTING = 0;
export const IDLE = 1;
const WAITING = 2; // request written (or being written), no response head yet
const BODY = 3; // response head relayed, body under way
const CLOSED = 4;

/** Read buffer of every plain-TCP upstream socket: reads are handled one at a time, to completion. */
export const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/** One upstream connection and the request it serves (one at a time: no pipelining). */
export class Connection implements UpstreamConnection {
  readonly pool: UpstreamPool;
  readonly socket: net.Socket;
  readonly parser: Parser;
  state = CONNECTING;
  handler: UpstreamHandler | null = null;
  /** The request waiting for the connection to be established. */
  pending: UpstreamRequest | null = null;
  expires = 0;
  /** The current response may be followed by another on this connection. */
  reusable = false;
  keepAlive: number;
  skipBody = false;
  /** Paused by the handler (the client is slow): the body timer waits too. */
  paused = false;
  /** A 1xx response is being parsed: its completion is not the response's. */
  interim = false;
  /** The request body is still being written. */
  body: Source | null = null;
  /** A body held back until the backend answers `100 Continue` (Expect: 100-continue). */
  awaiting: Source | null = null;
  /** The request whose trailers go with the last chunk. */
  trailersFrom: UpstreamRequest["trailersFrom"] = null;
  chunked = false;
  /** The latest body piece, passed on once more follows or the read ends (the last one goes with onComplete). */
  held: Buffer | null = null;
  /** The last Keep-Alive header value seen and what it allows (backends repeat the same one). */
  #hint = "";
  #hintMs = -1;
  error: Error | null = null;
  /** Reads so far, and the read in which the last response completed. */
  reads = 0;
  completedIn = -1;
  #connectTimer: NodeJS.Timeout | undefined;
  #headTimer: NodeJS.Timeout | undefined;
  #bodyTimer: NodeJS.Timeout | undefined;
  #expectTimer: NodeJS.Timeout | undefined;

  constructor(pool: UpstreamPool, socket: net.Socket) {
    this.pool = pool;
    this.socket = socket;
    this.keepAlive = pool.keepAlive;
    this.parser = createParser("response", this, PARSER_CALLBACKS, PARSER_RESOURCE);
    socket.setNoDelay(true);
    attachSocket(socket, this);
    this.#connectTimer = setTimeout(onConnectTimeout, pool.opts.connectTimeout, this);
    this.#connectTimer.unref();
  }

  /** Runs a socket event's work; a throw (from the caller's handler) fails the request. */
  guarded(event: number, data?: Buffer): void {
    try {
      if (event === READ) this.#read(data!);
      else if (event === CONNECTED) this.#connected();
      else this.#ended();
    } catch (err) {
      this.destroy(err as Error);
    }
  }

  #read(data: Buffer): void {
    this.reads++;
    const r = this.parser.execute(data);
    if (r instanceof Error) this.destroy(r);
    else if (this.state === BODY) this.readDone();
  }

  #connected(): void {
    clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    this.socket.setKeepAlive(true, 60_000);
    const req = this.pending;
    const handler = this.handler;
    this.pending = null;
    if (req !== null && handler !== null) this.send(req, handler);
  }

  send(req: UpstreamRequest, handler: UpstreamHandler): void {
    this.handler = handler;
    this.state = WAITING;
    this.skipBody = req.method === "HEAD";
    this.keepAlive = this.pool.keepAlive;
    this.paused = false;
    this.interim = false;
    if (!handler.onSent(this)) {
      this.handler = null;
      this.state = IDLE;
      this.pool.release(this);
      return;
    }
    let head = `${req.method} ${req.path} HTTP/1.1\r\n`;
    const h = req.headers;
    let hasHost = false;
    let hasLength = false;
    for (let i = 0; i < h.length; i += 2) {
      const name = h[i];
      const n = name.length;
      if (n === 4 && !hasHost && name.toLowerCase() === "host") hasHost = true;
      else if (n === 14 && name.toLowerCase() === "content-length") hasLength = true;
      head += `${name}: ${h[i + 1]}\r\n`;
    }
    if (!hasHost) head += `host: ${this.pool.defaultHost}\r\n`;
    const body = req.body as Source | null;
    this.chunked = body !== null && !hasLength;
    if (this.chunked) head += "transfer-encoding: chunked\r\n";
    else if (body === null && !hasLength && expectsBody(req.method)) head += "content-length: 0\r\n";
    this.socket.write(`${head}\r\n`, "latin1");
    this.#armHeadTimer();
    this.trailersFrom = this.chunked ? (req.trailersFrom ?? null) : null;
    if (body === null) return;
    if (req.expectContinue === true) {
      // RFC 9110 §10.1.1: the body waits for the backend's 100 (or a final answer: then it is never sent)
      this.awaiting = body;
      // a new timer each time (a cleared one does not come back with refresh()); Expect is rare
      this.#expectTimer = setTimeout(onExpectTimeout, EXPECT_WAIT_MS, this);
      this.#expectTimer.unref();
    } else this.#pump(body);
  }

  /** The backend said 100 Continue, or did not answer in time: the held body goes now. */
  continueBody(): void {
    const body = this.awaiting;
    if (body === null) return;
    this.awaiting = null;
    clearTimeout(this.#expectTimer);
    if (this.state === WAITING) this.#pump(body);
  }

  #armHeadTimer(): void {
    if (this.#headTimer === undefined) {
      this.#headTimer = setTimeout(onHeadTimeout, this.pool.opts.responseHeaderTimeout, this);
      this.#headTimer.unref();
    } else this.#headTimer.refresh();
  }

  #armBodyTimer(): void {
    if (this.#bodyTimer === undefined) {
      this.#bodyTimer = setTimeout(onBodyTimeout, this.pool.opts.idleTimeout, this);
      this.#bodyTimer.unref();
    } else this.#bodyTimer.refresh();
  }

  headTimedOut(): void {
    if (this.state !== WAITING) return;
    this.destroy(
      new UpstreamError(
        `no response head within ${this.pool.opts.responseHeaderTimeout}ms`,
        UPSTREAM_CODES.headersTimeout,
      ),
    );
  }

  bodyTimedOut(): void {
    if (this.state !== BODY) return;
    if (this.paused) {
      this.#bodyTimer?.refresh();
      return;
    }
    this.destroy(
      new UpstreamError(`no response data for ${this.pool.opts.idleTimeout}ms`, UPSTREAM_CODES.bodyTimeout),
    );
  }

  connectTimedOut(): void {
    if (this.state !== CONNECTING) return;
    this.destroy(
      new UpstreamError(
        `connect to ${this.pool.origin} timed out after ${this.pool.opts.connectTimeout}ms`,
        UPSTREAM_CODES.connectTimeout,
      ),
    );
  }

  // -- request body ------------------------------------------------------------------------------

  #pump(body: Source): void {
    this.body = body;
    body[kPump] = this;
    body.on("data", onBodyData);
    body.on("end", onBodyEnd);
    body.on("error", onBodyError);
    body.on("aborted", onBodyError);
    body.resume();
  }

  bodyData(chunk: Buffer): void {
    const handler = this.handler;
    if (handler !== null) handler.bodyTaken = true;
    const s = this.socket;
    let ok: boolean;
    if (this.chunked) {
      if (chunk.length === 0) return;
      s.cork();
      s.write(`${chunk.length.toString(16)}\r\n`, "latin1");
      s.write(chunk);
      ok = s.write("\r\n", "latin1");
      s.uncork();
    } else ok = s.write(chunk);
    if (this.state === WAITING) this.#armHeadTimer();
    if (!ok) this.body?.pause();
  }

  bodyEnd(): void {
    if (this.chunked) {
      const t = relayableTrailers(this.trailersFrom?.rawTrailers);
      if (t === null) this.socket.write("0\r\n\r\n", "latin1");
      else {
        let last = "0\r\n";
        for (let i = 0; i < t.length; i += 2) last += `${t[i]}: ${t[i + 1]}\r\n`;
        this.socket.write(`${last}\r\n`, "latin1");
      }
    }
    this.trailersFrom = null;
    this.#detachBody(false);
  }

  /** Stops reading the client's body; `pause` leaves what is unread in place for someone else. */
  #detachBody(pause: boolean): void {
    const body = this.body;
    if (body === null) return;
    this.body = null;
    if (body[kPump] === this) body[kPump] = undefined;
    body.off("data", onBodyData);
    body.off("end", onBodyEnd);
    body.off("error", onBodyError);
    body.off("aborted", onBodyError);
    if (pause) body.pause();
  }

  drained(): void {
    if (this.body !== null) this.body.resume();
  }

  // -- response ----------------------------------------------------------------------------------

  /**
   * A response begins. With no request waiting for one (the connection idle in the pool, or the
   * previous response complete) it is nobody's: the backend is out of step, and whatever it sends
   * must not become the answer to the next request put on this connection.
   */
  messageBegin(): void {
    // bytes after a complete response in the same read are no answer to a later request either,
    // even if one was put on this connection from inside the completion
    if (this.state !== WAITING || this.handler === null || this.completedIn === this.reads) {
      this.destroy(new UpstreamError("unsolicited response from the backend", UPSTREAM_CODES.protocol));
    }
  }

  headersComplete(
    list: string[],
    status: number,
    statusText: string,
    upgrade: boolean,
    keepAlive: boolean,
  ): number {
    const handler = this.handler;
    if (handler === null || this.state !== WAITING) {
      this.destroy(new UpstreamError("unsolicited response from the backend", UPSTREAM_CODES.protocol));
      return 1;
    }
    if (status < 200) {
      if (status === 101 || upgrade) {
        this.destroy(
          new UpstreamError("backend switched protocols on a plain request", UPSTREAM_CODES.protocol),
        );
        return 1;
      }
      this.interim = true;
      if (status === 100) this.continueBody();
      handler.onInterim?.(status, list, statusText);
      return 0;
    }
    this.state = BODY;
    if (this.awaiting !== null) {
      // a final answer to an Expect: 100-continue request: its body is never sent (and the
      // connection, whose request is unfinished, is not reused)
      this.awaiting = null;
      clearTimeout(this.#expectTimer);
      this.reusable = false;
      keepAlive = false;
    }
    this.reusable = keepAlive;
    if (keepAlive) {
      for (let i = 0; i < list.length; i += 2) {
        if (nameIs(list[i], "keep-alive")) this.#keepAliveHint(list[i + 1]);
      }
    }
    if (!handler.onHeaders(status, list, statusText)) {
      if (this.handler === handler) this.destroy(null);
      return 1;
    }
    return this.skipBody ? 1 : 0;
  }

  /** `Keep-Alive: timeout=N`: reuse only for a second less than the backend keeps the connection. */
  #keepAliveHint(value: string): void {
    if (value !== this.#hint) {
      const m = /(?:^|[,;\s])timeout\s*=\s*(\d+)/i.exec(value);
      this.#hint = value;
      this.#hintMs = m === null ? -1 : Number(m[1]) * 1000 - 1000;
    }
    const ms = this.#hintMs;
    if (ms === -1) return;
    if (ms <= 0) this.reusable = false;
    else if (ms < this.keepAlive) this.keepAlive = ms;
  }

  bodyChunk(chunk: Buffer): void {
    if (this.handler === null) return;
    const held = this.held;
    this.held = chunk;
    if (held !== null) this.deliver(held);
  }

  /**
   * A read ended with the response incomplete: passes on the held piece and (re)starts the body
   * timer — a response that arrives whole in one read never touches it.
   */
  readDone(): void {
    this.#armBodyTimer();
    const held = this.held;
    if (held === null) return;
    this.held = null;
    this.deliver(held);
  }

  deliver(chunk: Buffer): void {
    const handler = this.handler;
    if (handler === null) return;
    if (!handler.onData(chunk) && this.handler === handler) {
      this.paused = true;
      this.socket.pause();
    }
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.#bodyTimer?.refresh();
    this.socket.resume();
  }

  messageComplete(): void {
    if (this.interim) {
      this.interim = false;
      return;
    }
    const handler = this.handler;
    if (handler === null) return;
    const last = this.held;
    const trailers = this.parser.trailers;
    this.held = null;
    this.handler = null;
    this.state = IDLE;
    this.completedIn = this.reads;
    this.paused = false;
    const reuse = this.reusable && this.body === null && !this.socket.destroyed;
    if (this.body !== null) this.#detachBody(true);
    if (reuse) {
      this.socket.resume();
      this.pool.release(this);
    } else this.destroy(null);
    handler.onComplete(last, trailers);
  }

  /** The caller gave up on the request (the client left): the connection cannot be reused. */
  abort(): void {
    this.handler = null;
    this.destroy(null);
  }

  /** Closes the connection; a request under way hears `err` (or a generic "closed" error). */
  destroy(err: Error | null): void {
    if (this.state === CLOSED) return;
    const wasConnecting = this.state === CONNECTING;
    this.state = CLOSED;
    clearTimeout(this.#connectTimer);
    clearTimeout(this.#headTimer);
    clearTimeout(this.#bodyTimer);
    clearTimeout(this.#expectTimer);
    this.awaiting = null;
    this.trailersFrom = null;
    this.#detachBody(true);
    this.socket.destroy();
    this.pool.forget(this);
    const handler = this.handler;
    this.handler = null;
    this.pending = null;
    this.held = null;
    if (handler !== null) {
      handler.onError(
        err ??
          this.error ??
          new UpstreamError(
            wasConnecting ? "upstream connection closed while connecting" : "upstream closed the connection",
            UPSTREAM_CODES.closed,
          ),
      );
    }
  }

  #ended(): void {
    if (this.state === BODY) {
      // a body delimited by the end of the connection completes here
      const r = this.parser.finish();
      if (r instanceof Error) this.error = r;
    }
    this.destroy(null);
  }

  socketClosed(): void {
    this.destroy(null);
    // not from inside execute(): 'close' is emitted on a later tick
    this.parser.conn = null;
    this.parser.close();
  }
}

function onExpectTimeout(conn: Connection): void {
  conn.continueBody();
}

function expectsBody(method: string): boolean {
  return method === "POST" || method === "PUT" || method === "PATCH";
}
