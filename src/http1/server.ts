/**
 * The HTTP/1.1 front end of plain proxy listeners. Requests are parsed by Node's own llhttp binding
 * (the parser node:http's server uses, with its strict settings and header size limit); what
 * node:http adds around it — an IncomingMessage stream and a ServerResponse stream per request,
 * their events and ticks — measured ~40% of the CPU of a proxied request, so requests and responses
 * here are plain objects that keep the part of node:http's API the balancer and proxy use
 * (`method`, `url`, `rawHeaders`, `headers`, `socket`; `writeHead`, `write`, `end`, `setHeader`,
 * 'close', 'drain'). Handlers see them as IncomingMessage/ServerResponse. TLS listeners stay on
 * node:http/http2 (ALPN); the library's `lb.handle` works with either.
 *
 * Behaviour follows node:http's server: keep-alive and pipelining (responses in order), 100-continue
 * and 417, 400 for a missing Host on HTTP/1.1, 431 for oversized heads, 408 when a head or body
 * arrives too slowly, chunked responses when the length is unknown (close-delimited for HTTP/1.0),
 * unread request bodies discarded after the response so the connection can carry the next one.
 */
import { EventEmitter } from "node:events";
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { STATUS_CODES } from "node:http";
import * as net from "node:net";
import { Readable } from "node:stream";
import { kRequestBody } from "../proxy/forward.ts";
import { endWithError, sendError } from "../proxy/respond.ts";
import {
  bodyPiece,
  createParser,
  type Parser as LlParser,
  METHODS,
  type ParserCallbacks,
} from "./binding.ts";

type Parser = LlParser<H1Connection>;
const PARSER_RESOURCE = Object.freeze({ type: "switchyard.http1" });

export interface Http1Handler {
  request(req: IncomingMessage, res: ServerResponse): void;
  upgrade(req: IncomingMessage, socket: net.Socket, head: Buffer): void;
  /** A request that could not be parsed (answered 400/408/431 here); for the debug log. */
  clientError?(err: Error, socket: net.Socket): void;
  /** A handler threw: the request was answered 500 (or its connection closed). */
  handlerError?(err: unknown): void;
}

export interface Http1Timeouts {
  /** From the first byte of a request head to its end (slowloris bound): 408. */
  headersTimeout: number;
  /** From the first byte of a request to its last (body included): 408. */
  requestTimeout: number;
  /** Idle time allowed between two requests on a connection. */
  keepAliveTimeout: number;
  /** How often the timeouts above are checked. */
  connectionsCheckingInterval: number;
  /**
   * Time an answer may wait for a client that does not read it (nginx's send_timeout); the
   * connection is closed then. Default 60 s.
   */
  sendTimeout?: number;
}

const DEFAULT_SEND_TIMEOUT = 60_000;
/** How long a closing connection reads and drops what the client still sends (nginx: 5 s). */
const LINGER_MS = 5_000;

// Headers of which node:http keeps only the first occurrence in `req.headers`.
const SINGLE: ReadonlySet<string> = new Set([
  "age",
  "authorization",
  "content-length",
  "content-type",
  "etag",
  "expires",
  "from",
  "host",
  "if-modified-since",
  "if-unmodified-since",
  "last-modified",
  "location",
  "max-forwards",
  "proxy-authorization",
  "referer",
  "retry-after",
  "server",
  "user-agent",
]);

/** `req.headers` as node:http builds it: lower-case names, duplicates joined (cookie with "; "). */
export function headersObject(raw: readonly string[]): IncomingHttpHeaders {
  const out: Record<string, string | string[]> = Object.create(null);
  for (let i = 0; i < raw.length; i += 2) {
    const key = raw[i].toLowerCase();
    const value = raw[i + 1];
    const prev = out[key];
    if (prev === undefined) out[key] = key === "set-cookie" ? [value] : value;
    else if (key === "set-cookie") (prev as string[]).push(value);
    else if (!SINGLE.has(key)) out[key] = `${prev}${key === "cookie" ? "; " : ", "}${value}`;
  }
  return out as IncomingHttpHeaders;
}

/** The request body, when there is one: a Readable fed by the parser, with backpressure on the socket. */
class Body extends Readable {
  readonly conn: H1Connection;
  constructor(conn: H1Connection) {
    super();
    this.conn = conn;
  }
  override _read(): void {
    this.conn.bodyWanted();
  }
  // as IncomingMessage: an aborted upload is an 'error' only for someone listening then (nobody may
  // be reading it yet, or the reader let go as the response closed); unheard it would be uncaught
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    process.nextTick(bodyDestroyed, this, err, cb);
  }
}
function bodyDestroyed(body: Body, err: Error | null, cb: (err?: Error | null) => void): void {
  cb(body.listenerCount("error") > 0 ? err : null);
}

export class H1Request {
  readonly method: string;
  url: string;
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
  readonly rawHeaders: string[];
  readonly socket: net.Socket;
  readonly upgrade: boolean;
  /** The request body stream (null: the request has none). */
  readonly body: Body | null;
  get [kRequestBody](): Body | null {
    return this.body;
  }
  complete: boolean;
  /** Body pieces are thrown away: the response is done and nobody will read them. */
  dumping = false;
  /** Handed to the handler (a pipelined request waits in the queue until its turn). */
  dispatched = false;
  #headers: IncomingHttpHeaders | undefined;

  constructor(
    conn: H1Connection,
    method: string,
    url: string,
    major: number,
    minor: number,
    raw: string[],
    upgrade: boolean,
  ) {
    this.method = method;
    this.url = url;
    this.httpVersionMajor = major;
    this.httpVersionMinor = minor;
    this.rawHeaders = raw;
    this.socket = conn.socket;
    this.upgrade = upgrade;
    const body = !upgrade && hasBody(raw);
    this.body = body ? new Body(conn) : null;
    this.complete = !body;
  }

  get httpVersion(): string {
    return `${this.httpVersionMajor}.${this.httpVersionMinor}`;
  }

  get headers(): IncomingHttpHeaders {
    if (this.#headers === undefined) this.#headers = headersObject(this.rawHeaders);
    return this.#headers;
  }

  get readableEnded(): boolean {
    return this.complete;
  }
}

/** Content-Length other than 0, or any Transfer-Encoding (llhttp rejects the ambiguous mixes). */
function hasBody(raw: readonly string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i];
    if (n.length === 14 && n.toLowerCase() === "content-length") {
      if (raw[i + 1] !== "0") return true;
    } else if (n.length === 17 && n.toLowerCase() === "transfer-encoding") return true;
  }
  return false;
}

const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const TOKEN = /^[\^_`a-zA-Z\-0-9!#$%&'*+.|~]+$/;

function checkHeader(name: string, value: string): void {
  if (!TOKEN.test(name)) {
    throw Object.assign(new TypeError(`Header name must be a valid HTTP token ["${name}"]`), {
      code: "ERR_INVALID_HTTP_TOKEN",
    });
  }
  if (INVALID_VALUE.test(value)) {
    throw Object.assign(new TypeError(`Invalid character in header content ["${name}"]`), {
      code: "ERR_INVALID_CHAR",
    });
  }
}

let dateSecond = 0;
let dateText = "";
function httpDate(): string {
  const now = Date.now();
  const s = Math.floor(now / 1000);
  if (s !== dateSecond) {
    dateSecond = s;
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}

const CRLF = "\r\n";
const ONE_WRITE_MAX = 8192;
const LAST_CHUNK = "0\r\n\r\n";

export class H1Response extends EventEmitter {
  readonly req: H1Request;
  readonly conn: H1Connection;
  statusCode = 200;
  statusMessage = "";
  shouldKeepAlive: boolean;
  sendDate = true;
  headersSent = false;
  writableEnded = false;
  writableFinished = false;
  destroyed = false;
  /** Headers set with setHeader before writeHead: lower-case name → [name, value]. */
  #preset: Map<string, [string, number | string | readonly string[]]> | null = null;
  /** The head, built by writeHead and written with the first body bytes. */
  #head: string | null = null;
  #chunked = false;
  #noBody = false;

  constructor(conn: H1Connection, req: H1Request, keepAlive: boolean) {
    super();
    this.conn = conn;
    this.req = req;
    this.shouldKeepAlive = keepAlive;
  }

  get socket(): net.Socket | null {
    return this.destroyed ? null : this.conn.socket;
  }

  get finished(): boolean {
    return this.writableEnded;
  }

  setHeader(name: string, value: number | string | readonly string[]): this {
    if (this.headersSent) throw headersSentError("set");
    for (const v of Array.isArray(value) ? value : [value]) checkHeader(name, String(v));
    if (this.#preset === null) this.#preset = new Map();
    this.#preset.set(name.toLowerCase(), [name, value]);
    return this;
  }

  getHeader(name: string): number | string | string[] | undefined {
    const v = this.#preset?.get(name.toLowerCase())?.[1];
    return Array.isArray(v) ? [...v] : (v as number | string | undefined);
  }

  hasHeader(name: string): boolean {
    return this.#preset?.has(name.toLowerCase()) === true;
  }

  getHeaderNames(): string[] {
    return this.#preset === null ? [] : [...this.#preset.keys()];
  }

  removeHeader(name: string): void {
    if (this.headersSent) throw headersSentError("remove");
    this.#preset?.delete(name.toLowerCase());
  }

  writeHead(
    status: number,
    textOrHeaders?: string | OutgoingHttpHeaders | readonly string[],
    headers?: OutgoingHttpHeaders | readonly string[],
  ): this {
    if (this.headersSent) throw headersSentError("write");
    if (!Number.isInteger(status) || status < 100 || status > 999) {
      throw Object.assign(new RangeError(`Invalid status code: ${status}`), {
        code: "ERR_HTTP_INVALID_STATUS_CODE",
      });
    }
    let text: string | undefined;
    if (typeof textOrHeaders === "string") text = textOrHeaders;
    else headers = textOrHeaders;
    text = text || this.statusMessage || STATUS_CODES[status] || "unknown";
    if (/[\r\n]/.test(text)) {
      throw Object.assign(new TypeError("Invalid character in statusMessage"), { code: "ERR_INVALID_CHAR" });
    }
    // pairs given here replace same-named ones set before, as in node:http; the proxy's own call (a
    // flat list of strings, nothing preset) is taken as it is
    const direct = this.#preset === null && Array.isArray(headers);
    const list: readonly string[] = direct ? (headers as readonly string[]) : this.#merged(headers);
    // a throw leaves the response as it was, for the error answer that follows
    for (let i = 0; i < list.length; i += 2) checkHeader(list[i], list[i + 1]);
    this.statusCode = status;
    this.statusMessage = text;
    const method = this.req.method;
    this.#noBody = method === "HEAD" || status === 204 || status === 304 || status < 200;
    let head = `HTTP/1.1 ${status} ${text}\r\n`;
    let length = false;
    let date = false;
    for (let i = 0; i < list.length; i += 2) {
      const name = list[i];
      const value = list[i + 1];
      const n = name.length;
      if (n === 14 && name.toLowerCase() === "content-length") length = true;
      else if (n === 4 && name.toLowerCase() === "date") date = true;
      else if (n === 10 && name.toLowerCase() === "connection") {
        // hop-by-hop: the front says itself whether the connection stays open
        if (/(?:^|,)\s*close\s*(?:,|$)/i.test(value)) this.shouldKeepAlive = false;
        continue;
      } else if (n === 10 && name.toLowerCase() === "keep-alive") continue;
      else if (n === 17 && name.toLowerCase() === "transfer-encoding") {
        if (/chunked/i.test(value)) this.#chunked = !this.#noBody;
        length = true;
      }
      head += `${name}: ${value}\r\n`;
    }
    if (!length && !this.#noBody) {
      if (this.req.httpVersionMinor >= 1 && this.req.httpVersionMajor >= 1) {
        this.#chunked = true;
        head += "transfer-encoding: chunked\r\n";
      } else this.shouldKeepAlive = false; // HTTP/1.0: the end of the connection ends the body
    }
    if (this.sendDate && !date) head += `date: ${httpDate()}\r\n`;
    if (this.conn.server.closing) this.shouldKeepAlive = false;
    head += this.shouldKeepAlive
      ? `connection: keep-alive\r\nkeep-alive: timeout=${this.conn.server.keepAliveSeconds}\r\n`
      : "connection: close\r\n";
    this.#head = `${head}\r\n`;
    this.headersSent = true;
    return this;
  }

  /** Headers given to writeHead plus those set before and not given again, as a flat list. */
  #merged(headers: OutgoingHttpHeaders | readonly string[] | undefined): string[] {
    const list: string[] = [];
    const given = new Set<string>();
    if (headers !== undefined) {
      if (Array.isArray(headers)) {
        for (let i = 0; i < headers.length; i += 2) {
          list.push(String(headers[i]), String(headers[i + 1]));
          given.add(String(headers[i]).toLowerCase());
        }
      } else {
        for (const [name, value] of Object.entries(headers as OutgoingHttpHeaders)) {
          if (value === undefined) continue;
          given.add(name.toLowerCase());
          if (Array.isArray(value)) for (const v of value) list.push(name, String(v));
          else list.push(name, String(value));
        }
      }
    }
    if (this.#preset !== null) {
      for (const [key, [name, value]] of this.#preset) {
        if (given.has(key)) continue;
        if (Array.isArray(value)) for (const v of value) list.push(name, String(v));
        else list.push(name, String(value));
      }
    }
    return list;
  }

  write(
    chunk: string | Uint8Array,
    encoding?: BufferEncoding | WriteCallback,
    callback?: WriteCallback,
  ): boolean {
    const cb = typeof encoding === "function" ? encoding : callback;
    if (this.writableEnded || this.destroyed) {
      if (cb !== undefined) process.nextTick(cb, writeAfterEnd());
      return false;
    }
    if (!this.headersSent) this.writeHead(this.statusCode);
    const socket = this.conn.socket;
    const enc = typeof encoding === "string" ? encoding : "utf8";
    if (this.#noBody || chunk.length === 0) {
      const head = this.#head;
      this.#head = null;
      if (head !== null) return socket.write(head, "latin1", cb);
      if (cb !== undefined) process.nextTick(cb, null);
      return socket.writableNeedDrain !== true;
    }
    const data = typeof chunk === "string" ? Buffer.from(chunk, enc) : chunk;
    socket.cork();
    if (this.#head !== null) {
      socket.write(this.#head, "latin1");
      this.#head = null;
    }
    let ok: boolean;
    if (this.#chunked) {
      socket.write(`${data.length.toString(16)}\r\n`, "latin1");
      socket.write(data);
      ok = socket.write(CRLF, "latin1", cb);
    } else ok = socket.write(data, cb);
    socket.uncork();
    return ok;
  }

  end(chunk?: string | Uint8Array | (() => void), encoding?: BufferEncoding | (() => void)): this {
    if (typeof chunk === "function") {
      encoding = chunk;
      chunk = undefined;
    }
    // as a Writable's end(cb): called on 'finish' (with an error when it cannot come)
    if (typeof encoding === "function") {
      if (this.destroyed) process.nextTick(encoding, writeAfterEnd());
      else this.once("finish", encoding);
    }
    if (this.writableEnded) return this;
    if (this.destroyed) {
      this.writableEnded = true;
      return this;
    }
    const enc = typeof encoding === "string" ? encoding : "utf8";
    let data: Uint8Array | null = null;
    if (chunk !== undefined && chunk !== null && chunk.length > 0)
      data = typeof chunk === "string" ? Buffer.from(chunk, enc) : chunk;
    if (!this.headersSent) {
      // node:http frames a body given whole to end() with its length (204 and 304 have none)
      const s = this.statusCode;
      if (
        s !== 204 &&
        s !== 304 &&
        this.req.method !== "HEAD" &&
        !this.hasHeader("content-length") &&
        !this.hasHeader("transfer-encoding")
      )
        this.setHeader("content-length", data === null ? 0 : data.length);
      this.writeHead(this.statusCode);
    }
    this.writableEnded = true;
    const conn = this.conn;
    const socket = conn.socket;
    // the callback of the last write runs once the whole response has been handed to the kernel
    const done = conn.onFlushed;
    conn.flushing.push(this);
    socket.cork();
    const head = this.#head;
    this.#head = null;
    if (this.#noBody || (data === null && !this.#chunked)) {
      socket.write(head ?? EMPTY, "latin1", done);
    } else if (head !== null && data !== null && data.length <= ONE_WRITE_MAX) {
      // a small answer leaves as one latin1 string (bytes survive latin1 unchanged): one plain
      // write instead of a writev of its pieces, as node:http joins a head and a string body
      const body = Buffer.prototype.latin1Slice.call(data, 0, data.length);
      socket.write(
        this.#chunked ? `${head}${data.length.toString(16)}\r\n${body}\r\n${LAST_CHUNK}` : `${head}${body}`,
        "latin1",
        done,
      );
    } else {
      if (head !== null) socket.write(head, "latin1");
      if (this.#chunked) {
        if (data !== null) {
          socket.write(`${data.length.toString(16)}\r\n`, "latin1");
          socket.write(data);
          socket.write(`\r\n${LAST_CHUNK}`, "latin1", done);
        } else socket.write(LAST_CHUNK, "latin1", done);
      } else socket.write(data!, done);
    }
    conn.responseEnded(this);
    socket.uncork();
    return this;
  }

  destroy(_err?: Error): this {
    // once ended, the connection may already carry the next request's answer
    if (!this.destroyed && !this.writableEnded) this.conn.socket.destroy();
    return this;
  }

  /** The response left (flushed) or its connection closed: 'finish' (if flushed) then 'close'. */
  settle(flushed: boolean): void {
    if (this.destroyed) return;
    this.destroyed = true;
    if (flushed) {
      this.writableFinished = true;
      this.emit("finish");
    }
    this.emit("close");
  }

  // a Writable's surface some handlers probe
  get writable(): boolean {
    return !this.writableEnded && !this.destroyed;
  }
  flushHeaders(): void {
    if (!this.headersSent) this.writeHead(this.statusCode);
    if (this.#head !== null) {
      this.conn.socket.write(this.#head, "latin1");
      this.#head = null;
    }
  }
  writeContinue(): void {
    this.conn.socket.write("HTTP/1.1 100 Continue\r\n\r\n", "latin1");
  }
}

type WriteCallback = (err?: Error | null) => void;

function writeAfterEnd(): Error {
  return Object.assign(new Error("write after end"), { code: "ERR_STREAM_WRITE_AFTER_END" });
}

function headersSentError(what: string): Error {
  return Object.assign(new Error(`Cannot ${what} headers after they are sent to the client`), {
    code: "ERR_HTTP_HEADERS_SENT",
  });
}

// connection reading states
const IDLE = 0; // between requests
const HEAD = 1; // a request head is arriving
const BODY = 2; // a request body is arriving
const TAKEN = 3; // upgraded or closing: the parser is done

const kConn = Symbol("switchyard.h1");
type H1Socket = net.Socket & { [kConn]?: H1Connection };

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
    const s = socket as H1Socket;
    s[kConn] = this;
    socket.setNoDelay(true);
    s.on("data", onSocketData);
    s.on("end", onSocketEnd);
    s.on("error", noop);
    s.on("close", onSocketClose);
    s.on("drain", onSocketDrain);
  }

  data(chunk: Buffer): void {
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
      this.#parseError(r);
      return;
    }
    if (this.upgradeHead !== null) {
      // the bytes after an upgrade request's head belong to the new protocol
      this.upgradeHead = chunk.subarray(r);
      this.state = TAKEN;
      this.socket.pause();
      this.#maybeUpgrade();
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
    const name = METHODS[method] ?? "GET";
    const req = new H1Request(this, name, target, major, minor, raw, upgrade);
    // a Connection: close request ends the connection after its own answer (responseEnded); the
    // requests pipelined before it are answered first
    const res = new H1Response(this, req, keepAlive && !this.closing);
    if (req.complete) this.state = IDLE;
    else {
      this.state = BODY;
      this.reading = req;
    }
    this.since = Date.now();
    if (name === "CONNECT") {
      // node:http without a 'connect' listener drops the connection; a proxy has no tunnel to offer
      this.state = TAKEN;
      this.socket.destroy();
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
    if (req.httpVersionMajor === 1 && req.httpVersionMinor === 1) {
      const raw = req.rawHeaders;
      let host = false;
      let expect: string | undefined;
      for (let i = 0; i < raw.length; i += 2) {
        const n = raw[i];
        if (n.length === 4 && n.toLowerCase() === "host") host = true;
        else if (n.length === 6 && n.toLowerCase() === "expect") expect = raw[i + 1];
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
        if (!req.complete) res.writeContinue();
      }
    }
    try {
      this.server.handler.request(req as unknown as IncomingMessage, res as unknown as ServerResponse);
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
    const s = this.socket as H1Socket;
    s.off("data", onSocketData);
    s.off("end", onSocketEnd);
    s.off("error", noop);
    s.off("close", onSocketClose);
    s.off("drain", onSocketDrain);
    s[kConn] = undefined;
    s.pause();
    // as node:http hands it over: a 'data' listener (ws) starts the flow without an explicit resume()
    (s as { readableFlowing: boolean | null }).readableFlowing = null;
    this.server.forget(this);
    this.parser.conn = null;
    this.parser.close();
    try {
      this.server.handler.upgrade(req as unknown as IncomingMessage, s, head);
    } catch (err) {
      this.server.handler.handlerError?.(err);
      s.destroy();
    }
  }

  #parseError(err: Error & { code?: string }): void {
    this.state = TAKEN;
    this.server.handler.clientError?.(err, this.socket);
    const [status, text] =
      err.code === "HPE_HEADER_OVERFLOW" ? [431, "Request Header Fields Too Large"] : [400, "Bad Request"];
    // behind a request still being answered, an error answer would be taken for that one's
    this.#fail(status, text, this.responses.length > 0);
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

/** The proxy's short error answer (respond.ts), on a connection that closes after it. */
function answerAndClose(res: H1Response, status: number, text: string): void {
  res.shouldKeepAlive = false;
  sendError(res as unknown as ServerResponse, status, text);
}

function dispatchNext(conn: H1Connection): void {
  conn.next();
}
function noop(): void {}

function onSocketData(this: H1Socket, chunk: Buffer): void {
  this[kConn]?.data(chunk);
}
function onSocketEnd(this: H1Socket): void {
  this[kConn]?.ended();
}
function onSocketClose(this: H1Socket): void {
  this[kConn]?.closed();
}
function onSocketDrain(this: H1Socket): void {
  this[kConn]?.drained();
}

function onMessageBegin(this: Parser): void {
  this.conn?.messageBegin();
}
function onHeadersComplete(
  this: Parser,
  major: number,
  minor: number,
  headers: string[],
  method: number,
  url: string,
  _status: unknown,
  _statusText: unknown,
  upgrade: boolean,
  keepAlive: boolean,
): number {
  const conn = this.conn;
  if (conn === null) return 1;
  return conn.headersComplete(major, minor, headers, method, url, upgrade, keepAlive);
}
function onBody(this: Parser, chunk: Buffer, start?: number, length?: number): void {
  this.conn?.body(bodyPiece(chunk, start, length));
}
function onMessageComplete(this: Parser): void {
  this.conn?.messageComplete();
}
const PARSER_CALLBACKS: ParserCallbacks<H1Connection> = {
  begin: onMessageBegin,
  headersComplete: onHeadersComplete,
  body: onBody,
  complete: onMessageComplete,
};

/**
 * A net.Server speaking HTTP/1.1 through `handler`; closeIdleConnections/closeAllConnections
 * as node:http's server has them.
 */
export class H1Server extends net.Server {
  readonly handler: Http1Handler;
  readonly timeouts: Http1Timeouts;
  readonly live = new Set<H1Connection>();
  closing = false;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(handler: Http1Handler, timeouts: Http1Timeouts) {
    super({ allowHalfOpen: true, noDelay: true });
    this.handler = handler;
    this.timeouts = { ...timeouts };
    this.on("connection", (socket: net.Socket) => {
      this.live.add(new H1Connection(this, socket));
      // started by the first connection: a TLS listener hands connections to a front that never listens
      if (this.#sweeper === undefined) {
        this.#sweeper = setInterval(sweep, this.timeouts.connectionsCheckingInterval, this);
        this.#sweeper.unref();
      }
    });
  }

  get keepAliveSeconds(): number {
    return Math.floor(this.timeouts.keepAliveTimeout / 1000);
  }

  /** Updates timeouts (reload); the checking interval is fixed at listen time. */
  setTimeouts(t: Partial<Http1Timeouts>): void {
    Object.assign(this.timeouts, t);
  }

  forget(conn: H1Connection): void {
    this.live.delete(conn);
    if (this.closing && this.live.size === 0) this.#stopSweeping();
  }

  #stopSweeping(): void {
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }

  override close(callback?: (err?: Error) => void): this {
    this.closing = true;
    super.close(callback);
    this.closeIdleConnections();
    // the sweep goes on while connections drain (timeouts still apply), then stops
    if (this.live.size === 0) this.#stopSweeping();
    return this;
  }

  closeIdleConnections(): void {
    for (const c of this.live) if (c.idle) c.socket.destroy();
  }

  closeAllConnections(): void {
    for (const c of this.live) c.socket.destroy();
  }
}

function sweep(server: H1Server): void {
  const now = Date.now();
  const t = server.timeouts;
  for (const c of server.live) c.check(now, t);
}
