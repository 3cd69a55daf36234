/**
 * The front's request object: a ProxyRequest (src/http-types.ts), the part of IncomingMessage the
 * balancer and proxy use, with the body stream beside it (`body`, `[kRequestBody]`).
 */

import type { IncomingHttpHeaders } from "node:http";
import type * as net from "node:net";
import { Readable } from "node:stream";
import { kRequestBody } from "../http-types.ts";
import { bodyFraming, NO_BODY } from "./raw-headers.ts";
import type { H1Connection } from "./server-connection.ts";

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
  readonly req: H1Request;
  constructor(conn: H1Connection, req: H1Request) {
    super();
    this.conn = conn;
    this.req = req;
  }
  override _read(): void {
    // Expect: 100-continue: the first read is when the client is told to send (RFC 9110 §10.1.1);
    // a handler that answers without reading never asks for the body
    if (this.req.expectContinue) {
      this.req.expectContinue = false;
      this.req.response?.writeContinue();
    }
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

const NO_TRAILERS: string[] = [];

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
  /** Trailer fields of a chunked body, once it ended (as IncomingMessage.rawTrailers). */
  rawTrailers: string[] = NO_TRAILERS;
  /** Body pieces are thrown away: the response is done and nobody will read them. */
  dumping = false;
  /** Handed to the handler (a pipelined request waits in the queue until its turn). */
  dispatched = false;
  /** Sent `Expect: 100-continue` and has not been told 100 yet. */
  expectContinue = false;
  response: { writeContinue(): void } | null = null;
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
    this.body = body ? new Body(conn, this) : null;
    this.complete = !body;
  }

  get httpVersion(): string {
    return `${this.httpVersionMajor}.${this.httpVersionMinor}`;
  }

  get headers(): IncomingHttpHeaders {
    if (this.#headers === undefined) this.#headers = headersObject(this.rawHeaders);
    return this.#headers;
  }

  /** As node:http's: replaces the object (request_headers rebuilds it after editing rawHeaders). */
  set headers(value: IncomingHttpHeaders) {
    this.#headers = value;
  }

  get readableEnded(): boolean {
    return this.complete;
  }
}

/** Content-Length other than 0, or any Transfer-Encoding (llhttp rejects the ambiguous mixes). */
function hasBody(raw: readonly string[]): boolean {
  return bodyFraming(raw) !== NO_BODY;
}
