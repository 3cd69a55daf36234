/**
 * Node's own llhttp binding (`_http_common`'s HTTPParser: the parser node:http uses, client and
 * server), shared by the upstream client and the server's HTTP/1 front. It is not a public API;
 * this module is the one place that reaches for it, so a Node release that moves it fails here,
 * at startup, not in the middle of a request.
 *
 * Each message starts from nothing. The binding hands a head over in pieces when it is long or
 * split across reads (`kOnHeaders` before `kOnHeadersComplete`), and it hands trailer fields over
 * the same way, after the body, with the request URL again; once that happened it keeps using the
 * piecewise form for every later message on the parser. The pieces are collected here, per message: reset when a
 * message begins, joined into the head at headers-complete; whatever arrives after the head
 * (trailers) is kept apart, in `trailers`, for the `complete` callback only, and cleared right
 * after it instead of being carried into the next message's head. Callers see one whole header
 * list and URL per message, and its own trailers.
 */
import { createRequire } from "node:module";

/** A parser whose callbacks see the object it serves as `this.conn`. */
export interface Parser<C> {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(data: Buffer): number | (Error & { code?: string });
  finish(): number | Error | undefined;
  close(): void;
  conn: C | null;
  /** Head pieces of the current message (null: none yet). */
  pieces: string[] | null;
  /** URL pieces of the current request's head. */
  urlPiece: string;
  /** The current message's head is complete: header pieces from now on are trailers. */
  inBody: boolean;
  /** The current message's trailer fields (null: none), while its `complete` callback runs. */
  trailers: string[] | null;
  callbacks: ParserCallbacks<C>;
  [key: number]: unknown;
}

/** Shared functions (not closures per connection); `this` is the parser. */
export interface ParserCallbacks<C> {
  begin?: (this: Parser<C>) => void;
  /**
   * The whole head of a message: `headers` is its complete [name, value, ...] list and `url` its
   * request target ("" for a response). 0: go on; 1: no body follows; 2: no body, and the rest
   * belongs to an upgrade.
   */
  headersComplete: (
    this: Parser<C>,
    major: number,
    minor: number,
    headers: string[],
    method: number,
    url: string,
    status: number,
    statusText: string,
    upgrade: boolean,
    keepAlive: boolean,
  ) => number;
  /** Node passes a copy of each body piece; older releases passed (buffer, start, length). */
  body: (this: Parser<C>, chunk: Buffer, start?: number, length?: number) => void;
  complete: (this: Parser<C>) => void;
}

interface ParserClass {
  new (): Parser<unknown>;
  REQUEST: number;
  RESPONSE: number;
  kOnMessageBegin: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
}

// process-wide: the Node binary has one binding; every parser of every server and pool uses it
let HTTPParser: ParserClass | undefined;
let methodNames: readonly string[] = [];

const PARSER_KEYS = [
  "REQUEST",
  "RESPONSE",
  "kOnMessageBegin",
  "kOnHeaders",
  "kOnHeadersComplete",
  "kOnBody",
  "kOnMessageComplete",
] as const;

/** Loads the binding on first use; throws, saying what is missing, when this Node has none. */
function load(): ParserClass {
  if (HTTPParser !== undefined) return HTTPParser;
  const common = createRequire(import.meta.url)("_http_common") as
    | { HTTPParser?: ParserClass; methods?: string[] }
    | undefined;
  const P = common?.HTTPParser;
  if (typeof P !== "function") throw new Error("require('_http_common').HTTPParser is not a class");
  for (const k of PARSER_KEYS) {
    if (typeof P[k] !== "number") throw new Error(`require('_http_common').HTTPParser.${k} is not a number`);
  }
  if (!Array.isArray(common?.methods)) throw new Error("require('_http_common').methods is not a list");
  methodNames = common.methods;
  HTTPParser = P;
  return P;
}

/** The request method name for llhttp's method index. */
export function methodName(index: number): string | undefined {
  return methodNames[index];
}

function onMessageBegin(this: Parser<unknown>): void {
  this.pieces = null;
  this.urlPiece = "";
  this.inBody = false;
  this.trailers = null;
  this.callbacks.begin?.call(this);
}

function onHeaders(this: Parser<unknown>, headers: string[], url: string): void {
  // after the head: trailer fields (with the request URL once more), this message's only
  if (this.inBody) {
    if (this.trailers === null) this.trailers = headers;
    else for (let i = 0; i < headers.length; i++) this.trailers.push(headers[i]);
    return;
  }
  if (this.pieces === null) this.pieces = headers;
  else for (let i = 0; i < headers.length; i++) this.pieces.push(headers[i]);
  this.urlPiece += url;
}

function onHeadersComplete(
  this: Parser<unknown>,
  major: number,
  minor: number,
  headers: string[] | undefined,
  method: number,
  url: string | undefined,
  status: number,
  statusText: string,
  upgrade: boolean,
  keepAlive: boolean,
): number {
  const pieces = this.pieces;
  // the slow form (a long or split head, or any head once trailers came): pieces first, then
  // whatever the binding still held
  const list = pieces === null ? (headers ?? []) : headers === undefined ? pieces : pieces.concat(headers);
  const target = this.urlPiece + (url ?? "");
  this.pieces = null;
  this.urlPiece = "";
  this.inBody = true;
  return this.callbacks.headersComplete.call(
    this,
    major,
    minor,
    list,
    method,
    target,
    status,
    statusText,
    upgrade,
    keepAlive,
  );
}

function onMessageComplete(this: Parser<unknown>): void {
  // the trailers are this message's: seen by its complete callback, then gone
  this.pieces = null;
  this.urlPiece = "";
  this.inBody = false;
  try {
    this.callbacks.complete.call(this);
  } finally {
    this.trailers = null;
  }
}

/**
 * A parser with node:http's strict settings (no lenient flags) and its head size limit
 * (`--max-http-header-size`, 16 KiB by default).
 */
export function createParser<C>(
  type: "request" | "response",
  conn: C,
  callbacks: ParserCallbacks<C>,
  resource: object,
): Parser<C> {
  const P = HTTPParser ?? load();
  const parser = new P() as Parser<C>;
  parser.initialize(type === "request" ? P.REQUEST : P.RESPONSE, resource, 0, 0);
  parser.conn = conn;
  parser.pieces = null;
  parser.urlPiece = "";
  parser.inBody = false;
  parser.trailers = null;
  parser.callbacks = callbacks;
  parser[P.kOnMessageBegin] = onMessageBegin;
  parser[P.kOnHeaders] = onHeaders;
  parser[P.kOnHeadersComplete] = onHeadersComplete;
  parser[P.kOnBody] = callbacks.body;
  parser[P.kOnMessageComplete] = onMessageComplete;
  return parser;
}

/** The body piece llhttp handed over, whichever calling convention this Node uses. */
export function bodyPiece(chunk: Buffer, start?: number, length?: number): Buffer {
  return start === undefined ? chunk : chunk.subarray(start, start + (length ?? 0));
}

// -- the start-up check -------------------------------------------------------------------------

interface ProbeLog {
  out: string[];
}

const PROBE_CALLBACKS: ParserCallbacks<ProbeLog> = {
  headersComplete(major, minor, headers, method, url, status, statusText, upgrade, keepAlive) {
    const name = status > 0 ? `${status} ${statusText}` : `${methodName(method)} ${url}`;
    this.conn!.out.push(`${name} ${major}.${minor} [${headers.join("|")}] ${upgrade} ${keepAlive}`);
    return 0;
  },
  body(chunk, start, length) {
    const out = this.conn!.out;
    const piece = bodyPiece(chunk, start, length).toString("latin1");
    // pieces as they came: joined, so that any split gives the same log
    if (out[out.length - 1]?.startsWith("body ")) out[out.length - 1] += piece;
    else out.push(`body ${piece}`);
  },
  complete() {
    const t = this.trailers;
    this.conn!.out.push(t === null ? "end" : `end [${t.join("|")}]`);
  },
};

const PROBES = [
  {
    type: "request",
    bytes:
      "POST /probe HTTP/1.1\r\nHost: probe\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n" +
      "GET /next HTTP/1.1\r\nHost: probe\r\n\r\n",
    expected: [
      "POST /probe 1.1 [Host|probe|Transfer-Encoding|chunked] false true",
      "body abc",
      "end [X-Trailer|1]",
      "GET /next 1.1 [Host|probe] false true",
      "end",
    ],
  },
  {
    type: "response",
    bytes:
      "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" +
      "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
    expected: [
      "103 Early Hints 1.1 [Link|</a>] false true",
      "end",
      "200 OK 1.1 [Content-Length|2] false true",
      "body ok",
      "end",
      "204 No Content 1.1 [X-A|1] false true",
      "end",
    ],
  },
] as const;

/**
 * The start-up capability check: loads the binding and parses a known request sequence (a chunked
 * body with a trailer, then a pipelined request) and response sequence (1xx, a body, 204), whole
 * and fed in small pieces. null when everything came out as expected, else what went wrong.
 */
export function probeBinding(): string | null {
  try {
    load();
    for (const probe of PROBES) {
      for (const step of [0, 7]) {
        const log: ProbeLog = { out: [] };
        const parser = createParser(probe.type, log, PROBE_CALLBACKS, PROBE_RESOURCE);
        const data = Buffer.from(probe.bytes, "latin1");
        const size = step === 0 ? data.length : step;
        try {
          for (let i = 0; i < data.length; i += size) {
            const r = parser.execute(data.subarray(i, i + size));
            if (typeof r !== "number")
              throw new Error(`${probe.type} parse failed: ${String(r?.message ?? r)}`);
          }
        } finally {
          parser.conn = null;
          parser.close();
        }
        const got = JSON.stringify(log.out);
        const want = JSON.stringify(probe.expected);
        if (got !== want) throw new Error(`${probe.type} parsed as ${got}, expected ${want}`);
      }
    }
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

const PROBE_RESOURCE = Object.freeze({ type: "switchyard.probe" });
