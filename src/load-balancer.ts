/**
 * `LoadBalancer`: the composition of the balancer (src/balancer/: picks a server) and the proxy
 * (src/proxy/: forwards to the server it is given and reports the outcome through the balancer's
 * callbacks). The only module that knows both; see docs/architecture.md.
 */
import { Balancer, type LoadBalancerOptions } from "./balancer/load-balancer.ts";
import { createForwarder, type ForwardHost } from "./proxy/forward.ts";

export * from "./balancer/load-balancer.ts";

export class LoadBalancer extends Balancer implements ForwardHost {
  constructor(options: LoadBalancerOptions) {
    super(options, createForwarder);
  }
}
