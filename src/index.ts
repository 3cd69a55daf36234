export { type RealIpOptions, RealIpResolver } from "./balancer/realip.ts";
export {
  ADMIN_STATES,
  type AdminState,
  type RequestHandler,
  Server,
  type ServerIdle,
  type ServerOptions,
  type WakeProgress,
} from "./balancer/server.ts";
export { rebalance } from "./balancer/weights.ts";
export { formatDuration, parseDuration } from "./duration.ts";
export { ConfigError, IdleError, InvalidArgumentError, UpstreamError } from "./errors.ts";
export { HttpHealthMonitor, type HttpHealthMonitorOptions } from "./health/http-monitor.ts";
export { type HealthSource, type HealthStatus, isGood, STATUSES } from "./health/status.ts";
export type { ProxyRequest, ProxyResponse, UpgradeSocket } from "./http-types.ts";
export { DockerProvider, type DockerProviderOptions } from "./idle/docker.ts";
export { ExecProvider, type ExecProviderOptions } from "./idle/exec.ts";
export type { IdleProvider, ProviderState, StopMethod, StopOptions } from "./idle/provider.ts";
export { RunProvider, type RunProviderOptions } from "./idle/run.ts";
export { type IdleMetricsSink, IdleWatcher, type IdleWatcherOptions } from "./idle/watcher.ts";
export {
  type BalancerConfig,
  type BalancerEvent,
  LoadBalancer,
  type LoadBalancerOptions,
  type ServiceJSON,
} from "./load-balancer.ts";
export type { LogFn, Logger } from "./log.ts";
export { MODES, type Mode, normalizeMode, parseMode, STICKY_COOKIE, stickyValue } from "./selectors/index.ts";
export type { UpstreamProtocol, UpstreamTlsOptions } from "./upstream-tls.ts";
