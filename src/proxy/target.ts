import type { Transport } from "../upstream-tls.ts";

/**
 * What the proxy needs of the server it forwards to. The balancer's `Server` is one; the proxy
 * never imports the balancer (docs/architecture.md).
 */
export interface Target {
  readonly name: string;
  readonly url: URL;
  /** Requests in flight to this target: the proxy counts its attempts in and out. */
  inflight: number;
  /** Protocol (http1.1, h2, h2c) and TLS settings, resolved once. */
  readonly transport: Transport;
  /** The proxy's pool for this target, kept here for introspection (HTTP/2 session counts). */
  upstream: unknown;
}
