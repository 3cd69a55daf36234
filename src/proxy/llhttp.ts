/**
 * Node's own llhttp binding (`_http_common`'s HTTPParser: the parser node:http uses, client and
 * server), shared by the upstream client and the server's HTTP/1 front. It is not a public API;
 * this module is the one place that reaches for it, so a Node release that moves it fails here,
 * at startup, not in the middle of a request.
 */
import { createRequire } from "node:module";

/** A parser whose callbacks see the object it serves as `this.conn`. */
export interface Parser<C> {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(data: Buffer): number | (Error & { code?: string });
  finish(): number | Error | undefined;
  close(): void;
  conn: C | null;
  [key: number]: unknown;
}

/** Shared functions (not closures per connection); `this` is the parser. */
export interface ParserCallbacks<C> {
  begin?: (this: Parser<C>) => void;
  /** Header pieces of a head longer than one read (llhttp hands them over in batches). */
  headers: (this: Parser<C>, headers: string[], url: string) => void;
  /** 0: go on; 1: no body follows; 2: no body, and the rest belongs to an upgrade. */
  headersComplete: (
    this: Parser<C>,
    major: number,
    minor: number,
    headers: string[] | undefined,
    method: number,
    url: string | undefined,
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
  if (callbacks.begin !== undefined) parser[HTTPParser.kOnMessageBegin] = callbacks.begin;
  parser[HTTPParser.kOnHeaders] = callbacks.headers;
  parser[HTTPParser.kOnHeadersComplete] = callbacks.headersComplete;
  parser[HTTPParser.kOnBody] = callbacks.body;
  parser[HTTPParser.kOnMessageComplete] = callbacks.complete;
  return parser;
}

/** The body piece llhttp handed over, whichever calling convention this Node uses. */
export function bodyPiece(chunk: Buffer, start?: number, length?: number): Buffer {
  return start === undefined ? chunk : chunk.subarray(start, start + (length ?? 0));
}
