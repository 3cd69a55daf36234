/**
 * The request and response a handler of the proxy gets — the front (`http1/`), the router and
 * middlewares (`server/`, `middleware/`), `lb.handle` and the forwarder (`proxy/`) — described by
 * what they use of them, not as node:http's classes. Three kinds of object satisfy them, checked
 * by the compiler (src/http-types.test.ts and the call sites): node:http's IncomingMessage and
 * ServerResponse (a library user's server, the fallback front), http2's compatibility
 * Http2ServerRequest and Http2ServerResponse (TLS listeners that chose h2), and switchyard's own
 * HTTP/1 front's H1Request and H1Response (src/http1/request.ts, response.ts), which are plain
 * objects rather than streams: the body of such a request is `req[kRequestBody]`.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import type { Socket } from "node:net";
import { type Duplex, Readable } from "node:stream";

/**
 * Where a request's body is read from when the request object is not itself the stream (the
 * HTTP/1 front's requests); node:http's and http2's requests are the stream and do not have it.
 */
export const kRequestBody: unique symbol = Symbol("switchyard.requestBody");

/** A client's request as the proxy reads it. */
export interface ProxyRequest {
  readonly method?: string | undefined;
  /** Rewritten by a path route that strips its prefix. */
  url?: string | undefined;
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
  /** Lower-case names, duplicates joined, as node:http builds them (replaced by `request_headers`). */
  headers: IncomingHttpHeaders;
  /** [name, value, ...] as received (HTTP/2: pseudo-headers first). */
  readonly rawHeaders: string[];
  /** The connection: its peer address, `encrypted` on TLS. */
  readonly socket: Socket;
  /** The whole body has been received. */
  readonly complete: boolean;
  readonly readableEnded: boolean;
  readonly destroyed?: boolean;
  /** Trailer fields of a chunked body, once it ended. */
  readonly rawTrailers: string[];
  /** HTTP/2: the stream, which says whether the request ended with its head. */
  readonly stream?: { readonly endAfterHeaders?: boolean };
  /** The body when the request object is not itself a Readable (null: none). */
  readonly [kRequestBody]?: Readable | null;
}

/** Listeners of a response's 'close' (sent or the client left), 'finish' (sent) and 'drain'. */
type ResponseEvent = "close" | "finish" | "drain";

/** The response to a client's request, as the proxy writes it. */
export interface ProxyResponse {
  /** The request this answers. */
  readonly req: ProxyRequest;
  statusCode: number;
  readonly headersSent: boolean;
  readonly writableEnded: boolean;
  readonly writableFinished: boolean;
  readonly destroyed: boolean;
  /** HTTP/1: false closes the connection after this response (http2 has none; setting it is harmless). */
  shouldKeepAlive?: boolean;
  readonly socket: Socket | null;

  setHeader(name: string, value: number | string | readonly string[]): void;
  getHeader(name: string): number | string | string[] | undefined;
  getHeaderNames(): string[];
  hasHeader(name: string): boolean;
  removeHeader(name: string): void;
  writeHead(status: number, headers?: OutgoingHttpHeaders | string[]): void;
  /** `text` undefined: the status's standard reason phrase (HTTP/2 sends none). */
  writeHead(status: number, text: string | undefined, headers?: OutgoingHttpHeaders | string[]): void;
  write(chunk: string | Uint8Array): boolean;
  end(chunk?: string | Uint8Array): void;
  destroy(err?: Error): void;
  /**
   * Trailer fields, sent after a chunked (HTTP/1.1) or HTTP/2 body: http2's compatibility
   * response takes only an object; node:http's and the front's also take [name, value] pairs,
   * which keep repeated fields apart.
   */
  addTrailers(trailers: OutgoingHttpHeaders | ReadonlyArray<[string, string]>): void;
  writeContinue(): void;

  on(event: ResponseEvent, listener: () => void): void;
  once(event: ResponseEvent, listener: () => void): void;
  off(event: ResponseEvent, listener: () => void): void;
  emit(event: ResponseEvent): void;

  // what only some responses have
  /** node:http: 103 Early Hints. */
  writeEarlyHints?(hints: Record<string, string | string[]>): void;
  /** node:http: 102 Processing. */
  writeProcessing?(): void;
  /** The HTTP/1 front: any 1xx interim response, written ahead of the final head. */
  writeInterim?(status: number, text: string, headers: readonly string[]): void;
  /** The HTTP/1 front: takes back a head whose bytes have not left yet (false: too late). */
  retractHead?(): boolean;
  /** HTTP/2: the stream, for interim HEADERS frames and to see a reset by the client. */
  readonly stream?: {
    readonly destroyed: boolean;
    readonly closed: boolean;
    additionalHeaders(headers: OutgoingHttpHeaders): void;
  };
}

/** The connection an upgrade request (WebSocket) hands over, with the bytes after its head. */
export type UpgradeSocket = Duplex;

/** The request's body stream: its own (the HTTP/1 front), or the request itself (node:http, http2). */
export function bodyStream(req: ProxyRequest): Readable | null {
  const own = req[kRequestBody];
  if (own !== undefined) return own;
  return req instanceof Readable ? req : null;
}
