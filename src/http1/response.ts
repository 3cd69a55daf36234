/**
 * The front's response object: node:http's ServerResponse surface the proxy and handlers use
 * (writeHead, write, end, setHeader and friends, 'finish', 'close', 'drain'), written straight to
 * the connection's socket, its head joined with the first body bytes.
 */
import { EventEmitter } from "node:events";
import type { OutgoingHttpHeaders } from "node:http";
import type * as net from "node:net";
import type { H1Request } from "./request.ts";
import type { H1Connection } from "./server-connection.ts";

// node:http taken with getBuiltinModule, not an ES import: importing it as an ES module reads
// every export, and its lazy ones (WebSocket & co.) load undici, tls, http2 and zlib: ~13 MB of RSS
const { STATUS_CODES } = process.getBuiltinModule("node:http");

const EMPTY = Buffer.alloc(0);

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

// process-wide: the Date header of the current second is the same for every server and connection
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
  /** Body bytes written so far (the access log's `bytes`, nginx's `$body_bytes_sent`). */
  bytesSent = 0;
  /** Headers set with setHeader before writeHead: lower-case name → [name, value]. */
  #preset: Map<string, [string, number | string | readonly string[]]> | null = null;
  /** The head, built by writeHead and written with the first body bytes. */
  #head: string | null = null;
  #chunked = false;
  #noBody = false;
  /** Trailer fields for the last chunk, as written ("Name: value\r\n" each); "" when none. */
  #trailers = "";

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
    this.bytesSent += data.length;
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
    if (data !== null && !this.#noBody) this.bytesSent += data.length;
    if (this.#noBody || (data === null && !this.#chunked)) {
      socket.write(head ?? EMPTY, "latin1", done);
    } else if (head !== null && data !== null && data.length <= ONE_WRITE_MAX) {
      // a small answer leaves as one latin1 string (bytes survive latin1 unchanged): one plain
      // write instead of a writev of its pieces, as node:http joins a head and a string body
      const body = Buffer.prototype.latin1Slice.call(data, 0, data.length);
      socket.write(
        this.#chunked
          ? `${head}${data.length.toString(16)}\r\n${body}\r\n${this.#lastChunk()}`
          : `${head}${body}`,
        "latin1",
        done,
      );
    } else {
      if (head !== null) socket.write(head, "latin1");
      if (this.#chunked) {
        if (data !== null) {
          socket.write(`${data.length.toString(16)}\r\n`, "latin1");
          socket.write(data);
          socket.write(`\r\n${this.#lastChunk()}`, "latin1", done);
        } else socket.write(this.#lastChunk(), "latin1", done);
      } else socket.write(data!, done);
    }
    conn.responseEnded(this);
    socket.uncork();
    return this;
  }

  #lastChunk(): string {
    return this.#trailers === "" ? LAST_CHUNK : `0\r\n${this.#trailers}\r\n`;
  }

  /**
   * Trailer fields sent with the last chunk, as node:http's addTrailers: only a chunked response
   * carries them (a response framed by its length, or to an HTTP/1.0 client, goes without).
   */
  addTrailers(headers: OutgoingHttpHeaders | ReadonlyArray<readonly [string, string]>): void {
    let out = "";
    if (isPairs(headers)) {
      for (const [name, value] of headers) {
        checkHeader(name, value);
        out += `${name}: ${value}\r\n`;
      }
    } else {
      for (const [name, value] of Object.entries(headers)) {
        if (value === undefined) continue;
        for (const v of Array.isArray(value) ? value : [value]) {
          checkHeader(name, String(v));
          out += `${name}: ${v}\r\n`;
        }
      }
    }
    this.#trailers = out;
  }

  /**
   * An interim (1xx) response before this one: written now, ahead of the final head. Only the
   * response being answered (the first in the connection's queue) is dispatched, so nothing else
   * can be on the wire between them.
   */
  writeInterim(status: number, text: string, headers: readonly string[]): void {
    if (this.headersSent || this.destroyed || this.writableEnded) return;
    if (status < 100 || status > 199 || status === 101) return;
    // RFC 9110 §15.2: no 1xx to an HTTP/1.0 client
    if (this.req.httpVersionMajor === 1 && this.req.httpVersionMinor === 0) return;
    if (status === 100) {
      // one 100 per request, and only to a client that asked for it
      if (!this.req.expectContinue) return;
      this.req.expectContinue = false;
    }
    for (let i = 0; i < headers.length; i += 2) checkHeader(headers[i], headers[i + 1]);
    if (/[\r\n]/.test(text)) text = "";
    let head = `HTTP/1.1 ${status} ${text || STATUS_CODES[status] || "Interim"}\r\n`;
    for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    this.conn.socket.write(`${head}\r\n`, "latin1");
  }

  /**
   * Takes back a head given to writeHead whose bytes have not left yet (nothing was written after
   * it): the response can still become an error answer. False when it is too late.
   */
  retractHead(): boolean {
    if (!this.headersSent || this.#head === null || this.writableEnded || this.destroyed) return false;
    this.#head = null;
    this.headersSent = false;
    this.#chunked = false;
    this.#noBody = false;
    this.#trailers = "";
    return true;
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
    if (this.headersSent || this.destroyed || this.writableEnded) return;
    this.conn.socket.write("HTTP/1.1 100 Continue\r\n\r\n", "latin1");
  }
}

type WriteCallback = (err?: Error | null) => void;

function isPairs(
  h: OutgoingHttpHeaders | ReadonlyArray<readonly [string, string]>,
): h is ReadonlyArray<readonly [string, string]> {
  return Array.isArray(h);
}

function writeAfterEnd(): Error {
  return Object.assign(new Error("write after end"), { code: "ERR_STREAM_WRITE_AFTER_END" });
}

function headersSentError(what: string): Error {
  return Object.assign(new Error(`Cannot ${what} headers after they are sent to the client`), {
    code: "ERR_HTTP_HEADERS_SENT",
  });
}
