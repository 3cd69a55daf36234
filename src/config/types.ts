/**
 * The typed, frozen configuration the server runs on. The YAML loader, GoDoxy route files
 * and command-line flags all produce this one type; durations are milliseconds here.
 */
import type { Mode } from "../selectors/selector.ts";

export interface TlsConfig {
  /** Absolute paths (relative ones in the file are resolved against the config file's folder). */
  readonly cert: string;
  readonly key: string;
}

export interface ListenConfig {
  /** host:port, e.g. "0.0.0.0:8080", "[::1]:8443", "127.0.0.1:0". */
  readonly address: string;
  readonly host: string;
  readonly port: number;
  readonly tls: TlsConfig | undefined;
}

export interface HealthcheckConfig {
  readonly path: string;
  readonly useGet: boolean;
  readonly interval: number;
  readonly timeout: number;
  /** 0 = default (max(1, 15s/interval)); negative = at once. */
  readonly retries: number;
  /** false when healthchecks are disabled for the service. */
  readonly enabled: boolean;
}

export interface ServerConfig {
  readonly name: string;
  readonly url: string;
  /** ≥ 0; 0 = equal share. */
  readonly weight: number;
  /** Used only while no non-backup server is good. */
  readonly backup: boolean;
  /** Started on demand and stopped when idle by this provider (with `idle`). */
  readonly provider?: ProviderConfig;
  /** Set exactly when `provider` is. */
  readonly idle?: IdleConfig;
}

/** A service's balancing settings, resolved: the config holds them and a running LoadBalancer reports them. */
export interface BalancingConfig {
  readonly mode: Mode;
  readonly sticky: boolean;
  readonly stickyMaxAge: number;
  readonly stickySecret: string | undefined;
  readonly options: {
    readonly header: string;
    readonly from: readonly string[];
    readonly recursive: boolean;
  };
  /** Slow-start window (ms); 0 = off. */
  readonly slowStart: number;
  /** Panic threshold, percent of good servers (0..100); 0 = off. */
  readonly panicThreshold: number;
}

export interface ServiceConfig extends BalancingConfig {
  /** The service name (also the `link`). */
  readonly name: string;
  /** Host patterns; empty = matched by the first label of Host. */
  readonly hosts: readonly string[];
  readonly healthcheck: HealthcheckConfig;
  readonly servers: readonly ServerConfig[];
  /** How long a server ejected by a failed request stays out when no active health check runs (ms). */
  readonly passiveCooldown: number;
  /** One `info` line per request (the service's own `access_log`, else the top-level one). */
  readonly accessLog: boolean;
}

export interface TimeoutsConfig {
  readonly connect: number;
  readonly responseHeader: number;
  readonly idle: number;
  /** Time a client may take to send a request's headers (slowloris bound); 408 after it. */
  readonly clientHeader: number;
  /** Grace period for in-flight requests on SIGTERM. */
  readonly shutdown: number;
}

export interface AdminConfig {
  readonly address: string;
  readonly host: string;
  readonly port: number;
  /** Bearer token required when bound to a non-loopback address. */
  readonly token: string | undefined;
}

export interface SwitchyardConfig {
  /** The file it came from (undefined for the embedded demo / flags only). */
  readonly file: string | undefined;
  readonly listen: readonly ListenConfig[];
  readonly admin: AdminConfig;
  readonly timeouts: TimeoutsConfig;
  readonly services: Readonly<Record<string, ServiceConfig>>;
  /** Worker processes (1 = no cluster). */
  readonly workers: number;
  readonly logLevel: string;
  /** Top-level `access_log` (default true): requests no service matched, and the services' default. */
  readonly accessLog: boolean;
}

/** A server's idle settings, resolved (service `idle:` block, then the server's own, then defaults). */
export interface IdleConfig {
  /** ms; 0 = never stopped for idleness (started with switchyard, restarted on exit). */
  readonly idleTimeout: number;
  readonly wakeTimeout: number;
  readonly stopTimeout: number;
  readonly stopMethod: "stop" | "pause" | "kill";
  /** Canonical (SIGTERM …); undefined = the provider's default. */
  readonly stopSignal: string | undefined;
  readonly startEndpoint: string | undefined;
  /** "service" (every server of it) or "service/server". */
  readonly dependsOn: readonly string[];
  readonly noLoadingPage: boolean;
}

/** How a server is started and stopped (section "Idle providers" of the SPEC). */
export type ProviderConfig =
  | {
      readonly kind: "run";
      /** argv list (no shell) or a string for /bin/sh -c. */
      readonly command: readonly string[] | string;
      readonly cwd: string | undefined;
      readonly env: Readonly<Record<string, string>>;
    }
  | {
      readonly kind: "exec";
      readonly start: string;
      readonly stop: string;
      readonly pause: string | undefined;
      readonly resume: string | undefined;
      readonly status: string | undefined;
    }
  | { readonly kind: "docker"; readonly container: string; readonly socketPath: string | undefined };
