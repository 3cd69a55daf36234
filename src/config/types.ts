/**
 * The typed, frozen configuration the server runs on. The YAML loader, GoDoxy route files
 * and command-line flags all produce this one type; durations are milliseconds here.
 */

import type { Mode } from "../selectors/selector.ts";
import type { UpstreamProtocol } from "../upstream-tls.ts";

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
  /** PROXY protocol v1/v2 expected first on each connection, from these peers only. */
  readonly proxyProtocol?: ProxyProtocolConfig;
}

export interface ProxyProtocolConfig {
  /** Addresses or CIDRs of the balancers that send the header; anyone else is refused. */
  readonly trusted: readonly string[];
  /** ms the header may take to arrive (default 5 s). */
  readonly timeout: number;
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
  /** `h2` / `h2c`; absent: HTTP/1.1. The server's own setting, else the service's. */
  readonly protocol?: UpstreamProtocol;
  /** TLS towards an https:// server (the service's `tls` merged under the server's own). */
  readonly tls?: UpstreamTlsConfig;
}

/** Backend TLS settings; files are absolute paths (relative ones resolved against the config file's folder). */
export interface UpstreamTlsConfig {
  readonly ca: string | undefined;
  readonly servername: string | undefined;
  readonly cert: string | undefined;
  readonly key: string | undefined;
  readonly insecureSkipVerify: boolean;
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
  /**
   * Path prefixes this service answers (normalized: start with "/", no query); absent or empty =
   * every path. Among services that share a host the longest matching prefix wins; `/api/` also
   * matches `/api`.
   */
  readonly paths?: readonly string[];
  /** Forward `/api/users` as `/users` (the matched prefix removed, "/" kept). */
  readonly stripPrefix?: boolean;
  /** Per-service timeouts over the top-level ones (ms). */
  readonly timeouts?: ServiceTimeouts;
  /** Run in this order between routing and the balancer; absent or empty = none (and no cost). */
  readonly middlewares?: readonly MiddlewareConfig[];
  /** How long a server ejected by a failed request stays out when no active health check runs (ms). */
  readonly passiveCooldown: number;
  /** One `info` line per request (the service's own `access_log`, else the top-level one). */
  readonly accessLog: boolean;
  /**
   * `allow_h2c_upgrade`: an `Upgrade: h2c` request is forwarded and the backend's 101 tunnelled
   * (HTTP/1.1 servers only). Absent or false: the Upgrade is dropped (h2c smuggling).
   */
  readonly allowH2cUpgrade?: boolean;
}

/** The top-level timeouts a service may override. */
export interface ServiceTimeouts {
  readonly connect?: number;
  readonly responseHeader?: number;
  readonly idle?: number;
  readonly tunnel?: number;
}

/** Header edits: `set` replaces, `add` appends another line, `remove` drops every line of a name. */
export interface HeaderEdits {
  /** Header name (as written) → value. */
  readonly set: Readonly<Record<string, string>>;
  readonly add: Readonly<Record<string, string>>;
  /** Header names. */
  readonly remove: readonly string[];
}

/**
 * One middleware of a service (SPEC "Paths and middlewares"), tagged by `kind` (the YAML key).
 * Durations are ms, file paths absolute.
 */
export type MiddlewareConfig =
  /** Only these addresses/CIDRs (resolved client address) get through; others get 403. */
  | { readonly kind: "allow"; readonly cidrs: readonly string[] }
  /** These addresses/CIDRs get 403; others get through. */
  | { readonly kind: "deny"; readonly cidrs: readonly string[] }
  /** A request that came over plain http gets `status` (308) to the same URL on https. */
  | {
      readonly kind: "redirect_https";
      readonly status: 301 | 302 | 307 | 308;
      /** Port of the https URL; undefined = the default (443, no port in the URL). */
      readonly port: number | undefined;
    }
  /** 401 + WWW-Authenticate unless the Basic credentials match a bcrypt hash. */
  | {
      readonly kind: "basic_auth";
      readonly realm: string;
      /** User name → bcrypt hash (`$2a$`/`$2b$`/`$2y$`). */
      readonly users: Readonly<Record<string, string>>;
    }
  /** Token bucket per client address: `limit` requests per `period` ms, up to `burst` at once; 429 + Retry-After. */
  | { readonly kind: "rate_limit"; readonly limit: number; readonly period: number; readonly burst: number }
  | ({ readonly kind: "request_headers" } & HeaderEdits)
  | ({ readonly kind: "response_headers" } & HeaderEdits)
  /** gzip or br per Accept-Encoding, for compressible types and bodies of at least `minLength` bytes. */
  | {
      readonly kind: "compress";
      readonly minLength: number;
      /** Preference order when the client weighs them equally. */
      readonly encodings: readonly ("br" | "gzip")[];
    }
  /** Status → absolute path of the page sent instead of the body (backend's or switchyard's own). */
  | { readonly kind: "error_pages"; readonly pages: Readonly<Record<number, string>> }
  /** GoDoxy-style rules: an ordered list of `on` → `do`, evaluated as GoDoxy does (src/middleware/rules.ts). */
  | { readonly kind: "rules"; readonly rules: readonly RuleConfig[] }
  /**
   * The backend gets no Forwarded, X-Forwarded-* or X-Real-IP header: the client's are dropped and
   * switchyard adds none (GoDoxy's `hide_x_forwarded`). A service setting, no request phase.
   */
  | { readonly kind: "hide_forwarded" };

export type MiddlewareKind = MiddlewareConfig["kind"];

/** A value a rule condition compares with: exact text, a glob or a regular expression; `!` negates. */
export interface RulePattern {
  readonly type: "string" | "glob" | "regex";
  readonly expr: string;
  readonly negate: boolean;
}

/** One condition of a rule (`!` in front negates it). */
export type RuleCondition = { readonly negate: boolean } & (
  | {
      readonly on: "header" | "query" | "cookie";
      readonly name: string;
      /** Undefined: the name is present with any value. */
      readonly value: RulePattern | undefined;
    }
  | { readonly on: "method"; readonly method: string }
  | { readonly on: "host" | "path"; readonly value: RulePattern }
  /** An address or CIDR, against the resolved client address. */
  | { readonly on: "remote"; readonly cidr: string }
  /** Basic credentials: the user and the bcrypt hash its password must match. */
  | { readonly on: "basic_auth"; readonly user: string; readonly hash: string }
  | { readonly on: "proto"; readonly proto: "http" | "https" | "h1" | "h2" | "h2c" | "h3" }
);

/** One command of a rule's `do`, in order; a terminating one (pass, error, redirect, route, require_basic_auth) is last. */
export type RuleCommand =
  | { readonly do: "pass" }
  | { readonly do: "error"; readonly status: number; readonly text: string }
  /** 307 to an absolute URL, or a path (relative ones resolved against the request path). */
  | { readonly do: "redirect"; readonly to: string }
  /** A path that starts with `from` gets `to` instead of that prefix. */
  | { readonly do: "rewrite"; readonly from: string; readonly to: string }
  /** Hands the request to another service (a service name of the same configuration). */
  | { readonly do: "route"; readonly service: string }
  | {
      readonly do: "set" | "add" | "remove";
      readonly field: "header" | "resp_header";
      readonly name: string;
      /** "" for remove. */
      readonly value: string;
    }
  | { readonly do: "require_basic_auth"; readonly realm: string };

export interface RuleConfig {
  /** As written, or `rules[i]`. */
  readonly name: string;
  /** The fallback rule: runs only when no other rule matched. */
  readonly default: boolean;
  /** All groups must match; within a group one condition is enough. Empty = every request. */
  readonly on: readonly (readonly RuleCondition[])[];
  readonly do: readonly RuleCommand[];
}

export interface TimeoutsConfig {
  readonly connect: number;
  readonly responseHeader: number;
  readonly idle: number;
  /** Time a client may take to send a request's headers (slowloris bound); 408 after it. */
  readonly clientHeader: number;
  /** Grace period for in-flight requests on SIGTERM. */
  readonly shutdown: number;
  /** An upgraded connection (WebSocket, h2c) with no byte either way this long is closed; 0 = never. */
  readonly tunnel: number;
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
