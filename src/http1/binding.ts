/**
 * Node's own llhttp binding (`_http_common`'s HTTPParser: the parser node:http uses, client and
 * server), shared by the upstream client and the server's HTTP/1 front. It is not a public API;
 * this module is the one place that reaches for it, so a Node release that moves it fails here,
 * at startup, not in the middle of a request.
 *
 * Each message starts from nothing. The binding hands a head over in pieces when it is long or
 * split across reads (`kOnHeaders` before `kOnHeadersComplete`), and it hands trailer fields over
 * the same way, after the body, with the request URL again; once that happened it keeps using the
 * piecewise form for every later message on the parser. The pieces are collected here, per
 * message: reset when a message begins, joined into the head at headers-complete, and whatever
 * arrives after the head (trailers) is dropped at message-complete instead of being carried into
 * the next message's head. Callers see one whole header list and URL per message.
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

const common = createRequire(import.meta.url)("_http_common") as {
  HTTPParser: ParserClass;
  methods: string[];
};
const HTTPParser = common.HTTPParser;

/** Request method names by llhttp's method index. */
export const METHODS: readonly string[] = common.methods;

function onMessageBegin(this: Parser<unknown>): void {
  this.pieces = null;
  this.urlPiece = "";
  this.inBody = false;
  this.callbacks.begin?.call(this);
}

function onHeaders(this: Parser<unknown>, headers: string[], url: string): void {
  // after the head: trailer fields (with the request URL once more); dropped at message-complete
  if (this.inBody) return;
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
  // trailers (if any) were not kept; nothing of this message reaches the next
  this.pieces = null;
  this.urlPiece = "";
  this.inBody = false;
  this.callbacks.complete.call(this);
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
  const parser = new HTTPParser() as Parser<C>;
  parser.initialize(type === "request" ? HTTPParser.REQUEST : HTTPParser.RESPONSE, resource, 0, 0);
  parser.conn = conn;
  parser.pieces = null;
  parser.urlPiece = "";
  parser.inBody = false;
  parser.callbacks = callbacks;
  parser[HTTPParser.kOnMessageBegin] = onMessageBegin;
  parser[HTTPParser.kOnHeaders] = onHeaders;
  parser[HTTPParser.kOnHeadersComplete] = onHeadersComplete;
  parser[HTTPParser.kOnBody] = callbacks.body;
  parser[HTTPParser.kOnMessageComplete] = onMessageComplete;
  return parser;
}

/** The body piece llhttp handed over, whichever calling convention this Node uses. */
export function bodyPiece(chunk: Buffer, start?: number, length?: number): Buffer {
  return start === undefined ? chunk : chunk.subarray(start, start + (length ?? 0));
}
