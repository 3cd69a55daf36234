/**
 * What the proxy needs of the server it forwards to. The balancer's `Server` is one; the proxy
 * never imports the balancer (docs/architecture.md).
 */
export interface Target {
  readonly name: string;
  readonly url: URL;
  /** Requests in flight to this target: the proxy counts its attempts in and out. */
  inflight: number;
}
