/**
 * What the proxy and an upstream HTTP/1.1 client say to each other, whichever client serves it:
 * the native one on Node's llhttp binding (client.ts) or the fallback on node:http (fallback-client.ts).
 */
import type { Readable } from "node:stream";
import type { SecureContext } from "node:tls";
import type { UpstreamError } from "../errors.ts";

/** The connection a request went out on, as its handler sees it. */
export interface UpstreamConnection {
  /** The handler is ready for more body after onData returned false. */
  resume(): void;
  /** The caller gave up on the request (the client left): the connection cannot be reused. */
  abort(): void;
}

/** A pool of connections to one backend. */
export interface UpstreamClient {
  readonly closed: boolean;
  request(req: UpstreamRequest, handler: UpstreamHandler): void;
  /** No new requests; idle connections close now, busy ones once their response is complete. */
  close(): Promise<void>;
  /** Closes every connection now; requests under way fail. */
  destroy(): void;
}

/** What a request's caller hears back; the same object serves every attempt of a client request. */
export interface UpstreamHandler {
  /** Some of the request body was read from its source: a retry could not send it whole. */
  bodyTaken: boolean;
  /**
   * The request is about to be written on `conn`: from now on something may reach the server.
   * Return false when it is no longer wanted (the client left): nothing is written and the
   * connection goes back to the pool.
   */
  onSent(conn: UpstreamConnection): boolean;
  /** The response head (final: 1xx go to onInterim). Return false to abort. */
  onHeaders(status: number, headers: string[], statusText: string): boolean;
  /** An interim response (1xx other than 101): `100 Continue`, `103 Early Hints`, ... */
  onInterim?(status: number, headers: string[], statusText: string): void;
  /** A piece of the response body. Return false to pause the upstream until `conn.resume()`. */
  onData(chunk: Buffer): boolean;
  /**
   * The response is complete; `last` is its final piece of body, held back so both leave in one
   * write; `trailers` its trailer fields as received (null: none), this response's only.
   */
  onComplete(last: Buffer | null, trailers: readonly string[] | null): void;
  /** The attempt failed; the connection is already closed. Not called after onComplete. */
  onError(err: Error): void;
}

export interface UpstreamRequest {
  method: string;
  /** Origin-form target. */
  path: string;
  /** Flat [name, value, ...] list, already without hop-by-hop headers; must not contain a body framing other than Content-Length. */
  headers: readonly string[];
  /** The request body, read only once the request is being written (null: none). */
  body: Readable | null;
  /**
   * Where the request's trailer fields are once its body has ended (the client's request): sent
   * with the last chunk, those a trailer may carry (trailers.ts).
   */
  trailersFrom?: { readonly rawTrailers: readonly string[] } | null;
  /**
   * The client sent `Expect: 100-continue` (and the header is in `headers`): the body is read only
   * once the backend answers 100, or a final status (then never), or after EXPECT_WAIT_MS without
   * an answer (as a client does, RFC 9110 §10.1.1).
   */
  expectContinue?: boolean;
}

/** How long an upload waits for the backend's 100 before it is sent anyway (curl waits 1 s). */
export const EXPECT_WAIT_MS = 1000;

export interface UpstreamPoolOptions {
  connectTimeout: number;
  /** Time allowed without progress until the response head arrives. */
  responseHeaderTimeout: number;
  /** Time allowed between two pieces of the response body. */
  idleTimeout: number;
  /** How long an unused connection is kept (shortened by the backend's Keep-Alive: timeout). */
  keepAliveTimeout?: number;
  /**
   * TLS towards an https backend (src/upstream-tls.ts builds it); absent: verified against
   * Node's CA store, SNI from the URL's host.
   */
  tls?: {
    readonly secureContext: SecureContext | undefined;
    /** SNI and the name checked, instead of the URL's host. */
    readonly servername: string | undefined;
    readonly rejectUnauthorized: boolean;
  };
}

/** The codes of the errors this client makes itself (socket errors keep Node's own). */
export const UPSTREAM_CODES = {
  connectTimeout: "ERR_SWITCHYARD_UPSTREAM_CONNECT_TIMEOUT",
  headersTimeout: "ERR_SWITCHYARD_UPSTREAM_HEADERS_TIMEOUT",
  bodyTimeout: "ERR_SWITCHYARD_UPSTREAM_BODY_TIMEOUT",
  /** The connection closed (or was reset) before the response was complete. */
  closed: "ERR_SWITCHYARD_UPSTREAM_CLOSED",
  /** The pool was closed or destroyed. */
  destroyed: "ERR_SWITCHYARD_UPSTREAM_DESTROYED",
  /** The backend answered 101 to a plain request, or sent a response nobody asked for. */
  protocol: "ERR_SWITCHYARD_UPSTREAM_PROTOCOL",
  /** The client's request body broke off: not the backend's fault. */
  clientAborted: "ERR_SWITCHYARD_CLIENT_ABORTED",
} as const satisfies Record<string, UpstreamError["code"]>;
