/**
 * One client connection of the HTTP/1.1 front: the parser, the queue of pipelined requests and
 * their responses in order, keep-alive, upgrades, lingering close and the timeouts the server's
 * sweep checks.
 */

import type * as net from "node:net";
import { createParser, type Parser as LlParser, methodName } from "./binding.ts";
import { nameIs } from "./raw-headers.ts";
import { H1Request } from "./request.ts";
import { endWithError, sendError } from "./respond.ts";
import { H1Response } from "./response.ts";
import type { H1Server, Http1Timeouts } from "./server.ts";
import { attachSocket, detachSocket, dispatchNext, PARSER_CALLBACKS } from "./server-events.ts";
import { isH2cUpgrade, overflowStatus, requestProblem } from "./validate.ts";

type Parser = LlParser<H1Connection>;
const PARSER_RESOURCE = Object.freeze({ type: "switchyard.http1" });

const DEFAULT_SEND_TIMEOUT = 60_000;
/** How long a closing connection reads and drops what the client still sends (nginx: 5 s). */
const LINGER_MS = 5_000;

// connection reading states
const IDLE = 0; // between requests
const HEAD = 1; // a request head is arriving
const BODY = 2; // a request body is arriving
const TAKEN = 3; // upgraded or closing: the parser is done

export class H1Connection {
  readonly server: H1Server;
  readonly socket: net.Socket;
  readonly parser: Parser;
  /** Requests parsed and not yet answered; the first is being answered. */
  readonly queue: H1Request[] = [];
  readonly responses: H1Response[] = [];
  /** Ended responses whose bytes are still being flushed, oldest first. */
  readonly flushing: H1Response[] = [];
  /** The request whose body the parser is reading. */
  reading: H1Request | null = null;
  state = IDLE;
  /** When the current state began (Date.now()), for the timeout sweep. */
  since: number;
  /** Start of the request being read, for requestTimeout. */
  requestStart = 0;
  /** The next response ends the connection (Connection: close, HTTP/1.0, a parse error). */
  closing = false;
  /** No request has begun yet: an idle new connection gets headersTimeout, as in node:http. */
  fresh = true;
  /**
   * The front itself stopped reading: pipelined requests wait for their turn, or the client is not
   * taking its answers. Head and body timeouts do not run then: the wait is not the client's.
   */
  held = false;
  /** Closing: our FIN is sent (or queued), the client's last bytes are read and dropped. */
  lingering = false;
  /** An answer ended while the client was not reading: go on at 'drain'. */
  waitingDrain = false;
  /**
   * Bytes the client has taken (whole writes: the proxy writes pieces of at most one upstream
   * read), and since when that figure has not moved (send timeout).
   */
  taken = -1;
  stalledSince = Date.now();
  clientEnded = false;
  upgradeHead: Buffer | null = null;
  readonly onFlushed: (err?: Error | null) => void;

  constructor(server: H1Server, socket: net.Socket) {
    this.server = server;
    this.socket = socket;
    this.since = Date.now();
    this.parser = createParser("request", this, PARSER_CALLBACKS, PARSER_RESOURCE);
    this.onFlushed = (err?: Error | null) => {
      // a write that failed (the client left) did not deliver the response: no 'finish'
      this.flushing.shift()?.settle(err == null);
      // keep-alive idle time counts from the last byte taken, not from end()
      if (this.flushing.length === 0 && this.state === IDLE && this.queue.length === 0)
        this.since = Date.now();
    };
    attachSocket(socket, this);
    socket.setNoDelay(true);
  }

  data(chunk: Buffer): void {
    for (;;) {
      if (this.state === TAKEN) return;
      let r: ReturnType<Parser["execute"]>;
      try {
        r = this.parser.execute(chunk);
      } catch (err) {
        // a throw from what the parser's callbacks ran (a body reader): this connection only
        this.server.handler.handlerError?.(err);
        this.state = TAKEN;
        this.socket.destroy();
        return;
      }
      if (typeof r !== "number") {
        this.#parseError(r, chunk);
        return;
      }
      if (this.upgradeHead === null && r < chunk.length && this.state !== TAKEN) {
        // the parser stopped after a request it took for an upgrade that is served as a plain one
        // (h2c): it goes on with the bytes that follow. A parser that takes nothing more (an HTTP/2
        // preface after such a request pauses it for good) fails the connection: 400, closed (it
        // recursed on the same bytes until the stack overflowed and took the process down)
        if (r === 0) {
          this.#parseError(STALLED, chunk);
          return;
        }
        chunk = chunk.subarray(r);
        continue;
      }
      if (this.upgradeHead !== null) {
        // the bytes after an upgrade request's head belong to the new protocol
        this.upgradeHead = chunk.subarray(r);
        this.state = TAKEN;
        this.socket.pause();
        this.#maybeUpgrade();
      }
      return;
    }
  }

  messageBegin(): void {
    this.fresh = false;
    this.state = HEAD;
    this.since = Date.now();
    this.requestStart = this.since;
  }

  headersComplete(
    major: number,
    minor: number,
    raw: string[],
    method: number,
    target: string,
    upgrade: boolean,
    keepAlive: boolean,
  ): number {
    const name = methodName(method) ?? "GET";
    if (
      upgrade &&
      name !== "CONNECT" &&
      isH2cUpgrade(upgradeValue(raw)) &&
      this.server.handler.h2cUpgrade?.(raw, target) !== true
    )
      upgrade = false;
    const req = new H1Request(this, name, target, major, minor, raw, upgrade);
    // a Connection: close request ends the connection after its own answer (responseEnded); the
    // requests pipelined before it are answered first
    const res = new H1Response(this, req, keepAlive && !this.closing);
    req.response = res;
    if (req.complete) this.state = IDLE;
    else {
      this.state = BODY;
      this.reading = req;
    }
    this.since = Date.now();
    if (name === "CONNECT") {
      // a proxy with no tunnel to offer: 405 (as nginx), then the connection closes
      this.#fail(405, "Method Not Allowed", this.responses.length > 0);
      return 1;
    }
    if (upgrade) {
      this.upgradeHead = EMPTY;
      this.queue.push(req);
      this.responses.push(res);
      // 2: no body; every byte after the head belongs to the new protocol (as node:http)
      return 2;
    }
    this.queue.push(req);
    this.responses.push(res);
    if (this.queue.length === 1 && !this.waitingDrain) this.#dispatch(req, res);
    else this.#hold(); // pipelined: read on once the queue is answered
    return 0;
  }

  #hold(): void {
    if (this.held) return;
    this.held = true;
    this.socket.pause();
  }

  /** Reads on, unless requests are queued or the client is not taking its answers. */
  #readOn(): void {
    if (this.state === TAKEN || this.queue.length > 1 || this.waitingDrain) return;
    if (this.held) {
      this.held = false;
      // a head or body that waited on us gets its whole allowance from now
      this.since = Date.now();
      this.requestStart = this.since;
    }
    this.socket.resume();
  }

  #dispatch(req: H1Request, res: H1Response): void {
    req.dispatched = true;
    const problem = requestProblem(req);
    if (problem !== null) {
      answerAndClose(res, problem[0], problem[1]);
      return;
    }
    if (req.httpVersionMajor === 1 && req.httpVersionMinor === 1) {
      const raw = req.rawHeaders;
      let host = false;
      let expect: string | undefined;
      for (let i = 0; i < raw.length; i += 2) {
        const n = raw[i];
        if (nameIs(n, "host")) host = true;
        else if (nameIs(n, "expect")) expect = raw[i + 1];
      }
      if (!host) {
        answerAndClose(res, 400, "Bad Request: no Host header");
        return;
      }
      if (expect !== undefined) {
        if (!/^100-continue$/i.test(expect.trim())) {
          answerAndClose(res, 417, "Expectation Failed");
          return;
        }
        // no 100 before the body is wanted: the proxy sends the expectation on and relays the
        // backend's 100 (or its final answer, and the body is never read), RFC 9110 §10.1.1
        if (!req.complete) req.expectContinue = true;
      }
    }
    try {
      this.server.handler.request(req, res);
    } catch (err) {
      this.server.handler.handlerError?.(err);
      answerAndClose(res, 500, "Internal Server Error");
    }
  }

  body(chunk: Buffer): void {
    const req = this.reading;
    if (req === null || req.dumping || req.body === null || this.state === TAKEN) return;
    if (!req.body.push(chunk)) this.socket.pause();
  }

  /** The body's reader wants more. */
  bodyWanted(): void {
    this.#readOn();
  }

  messageComplete(): void {
    const req = this.reading;
    this.reading = null;
    if (this.state === BODY || this.state === HEAD) {
      this.state = IDLE;
      this.since = Date.now();
    }
    if (req === null) return;
    req.complete = true;
    // its own trailers, read by whoever forwards the body when it ends
    const t = this.parser.trailers;
    if (t !== null) req.rawTrailers = t;
    if (req.body !== null && !req.dumping) req.body.push(null);
  }

  responseEnded(res: H1Response): void {
    const i = this.responses.indexOf(res);
    if (i !== 0) {
      // only the first queued response is dispatched; anything else is a handler's mistake
      if (i > 0) this.socket.destroy();
      return;
    }
    this.responses.shift();
    const req = this.queue.shift()!;
    if (!res.shouldKeepAlive) this.closing = true;
    if (this.closing) {
      const uploading = !req.complete || this.state === HEAD || this.state === BODY;
      this.state = TAKEN;
      this.queue.length = 0;
      this.responses.length = 0;
      if (!req.complete) {
        req.dumping = true;
        req.body?.destroy();
      }
      if (uploading) this.#linger();
      else this.socket.destroySoon();
      return;
    }
    if (!req.complete) {
      // nobody will read the rest of the upload: discard it so the connection stays usable
      req.dumping = true;
      req.body?.destroy();
    }
    this.#continue();
  }

  /**
   * After an answer: the next pipelined request, the upgrade, or reading on — once the client has
   * taken what was written (a client that pipelines and never reads must not make us buffer).
   */
  #continue(): void {
    if (this.socket.writableNeedDrain) {
      this.waitingDrain = true;
      this.#hold();
      return;
    }
    if (this.queue.length > 0) {
      process.nextTick(dispatchNext, this);
      return;
    }
    if (this.upgradeHead !== null) {
      this.#maybeUpgrade();
      return;
    }
    if (this.clientEnded) {
      this.socket.destroySoon();
      return;
    }
    if (this.state === IDLE) this.since = Date.now();
    this.#readOn();
  }

  next(): void {
    if (this.state === TAKEN && this.upgradeHead === null) return;
    const req = this.queue[0];
    const res = this.responses[0];
    if (req === undefined || res === undefined || req.dispatched) return;
    if (req.upgrade) {
      this.#maybeUpgrade();
      return;
    }
    this.#dispatch(req, res);
    if (this.upgradeHead === null) this.#readOn();
  }

  /** Hands the socket to the upgrade handler once every earlier response has been sent. */
  #maybeUpgrade(): void {
    if (this.queue.length !== 1 || this.upgradeHead === null) return;
    const req = this.queue[0];
    const head = this.upgradeHead;
    this.upgradeHead = null;
    this.queue.length = 0;
    this.responses.length = 0;
    this.state = TAKEN;
    const s = this.socket;
    detachSocket(s);
    s.pause();
    // as node:http hands it over: a 'data' listener (ws) starts the flow without an explicit resume()
    (s as { readableFlowing: boolean | null }).readableFlowing = null;
    this.server.forget(this);
    this.parser.conn = null;
    this.parser.close();
    try {
      this.server.handler.upgrade(req, s, head);
    } catch (err) {
      this.server.handler.handlerError?.(err);
      s.destroy();
    }
  }

  #parseError(err: Error & { code?: string; bytesParsed?: number }, chunk: Buffer): void {
    const wasReading = this.state === BODY ? this.reading : null;
    this.state = TAKEN;
    this.server.handler.clientError?.(err, this.socket);
    const [status, text] =
      err.code === "HPE_HEADER_OVERFLOW"
        ? overflowStatus(chunk.subarray(0, err.bytesParsed ?? chunk.length))
        : err.code === "HPE_INVALID_VERSION"
          ? [505, "HTTP Version Not Supported"]
          : [400, "Bad Request"];
    // behind a request still being answered, an error answer would be taken for that one's; but a
    // body that breaks its framing (a bad chunk) is its own request's error: it gets the 400 when
    // its answer has not begun (the backend's attempt is abandoned)
    const own =
      wasReading !== null &&
      this.responses.length === 1 &&
      this.queue[0] === wasReading &&
      !this.responses[0].headersSent;
    if (own) {
      this.reading = null;
      wasReading.dumping = true;
      wasReading.body?.destroy(Object.assign(new Error("bad request body framing"), { code: err.code }));
    }
    this.#fail(status, text, this.responses.length > 0 && !own);
  }

  /** Ends the connection with an error status, or without a word when `cut`. */
  #fail(status: number, text: string, cut: boolean): void {
    this.state = TAKEN;
    this.closing = true;
    const busy = cut || (this.responses.length > 0 && this.responses[0].headersSent);
    this.queue.length = 0;
    // a handler may hold the first one: it gets its 'close' (and its late end() writes nothing)
    for (const r of this.responses.splice(0)) r.settle(false);
    if (busy || this.socket.destroyed) {
      this.socket.destroy();
      return;
    }
    endWithError(this.socket, status, text);
    this.#linger();
  }

  /**
   * Closes after the answer while the client may still be sending (an upload answered early, a
   * request cut short): as nginx's lingering close, its bytes are read and dropped for up to
   * LINGER_MS after our FIN — closing with unread data would reset the connection, and a reset can
   * destroy the answer before the client has read it.
   */
  #linger(): void {
    this.lingering = true;
    this.since = Date.now();
    this.socket.end();
    this.socket.resume();
  }

  /** Called by the server's sweep. */
  check(now: number, t: Http1Timeouts): void {
    const socket = this.socket;
    if (socket.writableLength > 0) {
      const taken = socket.bytesWritten - socket.writableLength;
      if (taken !== this.taken) {
        this.taken = taken;
        this.stalledSince = now;
      } else if (now - this.stalledSince > (t.sendTimeout ?? DEFAULT_SEND_TIMEOUT)) {
        socket.destroy();
        return;
      }
    } else this.stalledSince = now;
    if (this.lingering) {
      if (now - this.since > LINGER_MS) socket.destroy();
      return;
    }
    const state = this.state;
    if (this.held) return;
    if (state === HEAD) {
      if (now - this.since > t.headersTimeout) this.#timedOut();
    } else if (state === BODY) {
      if (now - this.requestStart > t.requestTimeout) this.#timedOut();
    } else if (state === IDLE && this.queue.length === 0) {
      if (this.fresh) {
        if (now - this.since > t.headersTimeout) this.#timedOut();
      } else if (now - this.since > t.keepAliveTimeout && this.flushing.length === 0) this.socket.destroy();
    }
  }

  #timedOut(): void {
    const err = Object.assign(new Error("request timed out"), { code: "ERR_HTTP_REQUEST_TIMEOUT" });
    this.server.handler.clientError?.(err, this.socket);
    if (this.responses.length > 0 && this.responses[0].headersSent) {
      // an upload too slow while its answer is under way: the answer cannot be finished cleanly
      this.state = TAKEN;
      this.socket.destroy();
      return;
    }
    this.#fail(408, "Request Timeout", false);
  }

  /** No request in progress or queued and nothing left to flush: safe to close. */
  get idle(): boolean {
    return this.state === IDLE && this.queue.length === 0 && this.flushing.length === 0;
  }

  /**
   * The client sent FIN. Requests it has not been answered yet are aborted, as node:http and nginx
   * (499) do: a client that left must free its backend request, and a FIN is how most clients leave.
   * Answers already written are flushed before the connection closes.
   */
  ended(): void {
    this.clientEnded = true;
    if (this.state === HEAD || this.state === BODY || this.queue.length > 0) this.socket.destroy();
    else this.socket.destroySoon();
  }

  closed(): void {
    this.state = TAKEN;
    this.server.forget(this);
    const reading = this.reading;
    this.reading = null;
    if (reading !== null && !reading.complete && reading.body !== null && !reading.dumping) {
      reading.body.destroy(
        Object.assign(new Error("aborted"), { code: "ECONNRESET" }) as NodeJS.ErrnoException,
      );
    }
    for (const r of this.flushing.splice(0)) r.settle(false);
    for (const r of this.responses.splice(0)) r.settle(false);
    this.queue.length = 0;
    this.parser.conn = null;
    this.parser.close();
  }

  drained(): void {
    this.responses[0]?.emit("drain");
    if (this.waitingDrain) {
      this.waitingDrain = false;
      this.#continue();
    }
  }
}

const EMPTY = Buffer.alloc(0);

/** The parser takes no more bytes of a connection (paused after an upgrade that was not taken). */
const STALLED: Error & { code: string } = Object.assign(
  new Error("the HTTP/1 parser takes no more bytes on this connection (an HTTP/2 preface?)"),
  { code: "ERR_SWITCHYARD_PARSER_STALLED" },
);

function upgradeValue(raw: readonly string[]): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === 7 && raw[i].toLowerCase() === "upgrade") return raw[i + 1];
  }
  return undefined;
}

/** The proxy's short error answer (respond.ts), on a connection that closes after it. */
function answerAndClose(res: H1Response, status: number, text: string): void {
  res.shouldKeepAlive = false;
  sendError(res, status, text);
}
