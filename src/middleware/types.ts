/**
 * The one interface every middleware implements (SPEC "Paths and middlewares"). A middleware
 * may act on the request (answer it instead of the backend, or edit it) and on the response
 * head (edit headers, and filter the body through a `Sink`). Instances are built once per
 * service config; per-request state lives only in what a request phase or a body filter needs.
 */

import type { RealIpResolver } from "../balancer/realip.ts";
import type { MiddlewareKind } from "../config/types.ts";
import type { ProxyRequest, ProxyResponse } from "../http-types.ts";
import type { Logger } from "../log.ts";

/** An answer that replaces the backend's (403, 308, 401, 429, …). */
export interface Answer {
  readonly status: number;
  /** Flat [name, value, …]. */
  readonly headers: readonly string[];
  readonly body: string;
}

/**
 * An outcome that hands the request to another service of the same configuration (GoDoxy's
 * `route NAME`): the chain dispatches it to the target the server bound at config time.
 */
export class Reroute {
  readonly service: string;
  constructor(service: string) {
    this.service = service;
  }
}

/** How many times a request was handed on by `Reroute` (set on the request by the chain). */
export const kRerouted: unique symbol = Symbol("switchyard.rerouted");
export type ReroutedRequest = ProxyRequest & { [kRerouted]?: number };

/** What a request phase sees besides the request. */
export interface RequestInfo {
  /** The resolved client address (real-IP rules of the service applied). */
  readonly client: string;
}

/** Where a body goes: the next filter out, or the client. */
export interface Sink {
  write(chunk: Buffer): boolean;
  end(chunk: Buffer | undefined): void;
}

/** A per-response body transform; `next` is set before the first write. */
export interface BodyFilter extends Sink {
  next: Sink;
  /** The client went away: free what the filter holds. */
  abort?(): void;
}

export interface Middleware {
  readonly kind: MiddlewareKind;
  /** Needs `RequestInfo.client` (resolving it costs a header read; skipped when nobody needs it). */
  readonly needsClient?: boolean;
  /**
   * Before a server is picked. Returns an answer to send instead, a `Reroute` to hand the
   * request to another service, or undefined to go on (the request may have been edited).
   * When the decision is asynchronous (the cluster rate limiter, a bcrypt check): return PENDING,
   * then call `resume(outcome)` exactly once (an Error: the middleware failed, as if it had thrown).
   */
  request?(
    req: ProxyRequest,
    info: RequestInfo,
    resume: (outcome: Answer | Reroute | Error | undefined) => void,
  ): Answer | Reroute | undefined | typeof PENDING;
  /**
   * When the response head is written (the backend's, or switchyard's own error). May edit
   * `headers` (flat [name, value, …], names as sent) in place and return a body filter; returns
   * the status to send (usually `status`).
   */
  head?(req: ProxyRequest, res: ProxyResponse, status: number, headers: string[]): BodyFilter | undefined;
  /** The service is gone or reconfigured. */
  close?(): void;
}

export const PENDING: unique symbol = Symbol("switchyard.pending");

/** What a middleware factory gets besides its config. */
export interface MiddlewareEnv {
  readonly service: string;
  readonly logger: Logger;
  /** The service's real-IP rules (trust for X-Forwarded-Proto). */
  readonly realIp: () => RealIpResolver;
}

/** Asks the cluster primary for up to `want` tokens of a limiter; resolves how many it gave and when to retry. */
export type RemoteTokens = (
  limiter: string,
  client: string,
  want: number,
) => Promise<{ granted: number; retryAfter: number }>;

/** Case-insensitive index of a header name in a flat list, from `from`; -1 when absent. */
export function findHeader(headers: readonly string[], lower: string, from = 0): number {
  for (let i = from; i < headers.length; i += 2) {
    const n = headers[i];
    if (n.length === lower.length && n.toLowerCase() === lower) return i;
  }
  return -1;
}

/** Removes every line of a header (lower-cased name) from a flat list. */
export function removeHeader(headers: string[], lower: string): void {
  let w = 0;
  for (let r = 0; r < headers.length; r += 2) {
    const n = headers[r];
    if (n.length === lower.length && n.toLowerCase() === lower) continue;
    headers[w++] = n;
    headers[w++] = headers[r + 1];
  }
  headers.length = w;
}

/** A short plain-text answer. */
export function plainAnswer(status: number, text: string, extra: readonly string[] = []): Answer {
  const body = `${text}\n`;
  return {
    status,
    headers: [
      ...extra,
      "content-type",
      "text/plain; charset=utf-8",
      "content-length",
      String(Buffer.byteLength(body)),
      "cache-control",
      "no-store",
    ],
    body,
  };
}
