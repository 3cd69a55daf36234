export {
  type BalancerConfig,
  type BalancerEvent,
  LoadBalancer,
  type LoadBalancerOptions,
  type ServiceJSON,
} from "./balancer/load-balancer.ts";
export { type RealIpOptions, RealIpResolver } from "./balancer/realip.ts";
export {
  ADMIN_STATES,
  type AdminState,
  type RequestHandler,
  Server,
  type ServerOptions,
} from "./balancer/server.ts";
export { rebalance } from "./balancer/weights.ts";
export { formatDuration, parseDuration } from "./duration.ts";
export { ConfigError, InvalidArgumentError, UpstreamError } from "./errors.ts";
export { HttpHealthMonitor, type HttpHealthMonitorOptions } from "./health/http-monitor.ts";
export { type HealthSource, type HealthStatus, isGood, STATUSES } from "./health/status.ts";
export { MODES, type Mode, normalizeMode, parseMode, STICKY_COOKIE, stickyValue } from "./selectors/index.ts";
