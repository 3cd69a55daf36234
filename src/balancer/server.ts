import { InvalidArgumentError } from "../errors.ts";
import { type HealthSource, type HealthStatus, isGood } from "../health/status.ts";
import type { ProxyRequest, ProxyResponse } from "../http-types.ts";
import {
  resolveTransport,
  type Transport,
  type UpstreamProtocol,
  type UpstreamTlsOptions,
} from "../upstream-tls.ts";

/**
 * A server's own answer instead of a proxied backend. It gets the objects given to `lb.handle`: a
 * handler written for node:http's (or http2's) request and response types is accepted as one
 * (a method's parameters, which TypeScript compares both ways).
 */
export type RequestHandler = { handle(req: ProxyRequest, res: ProxyResponse): void }["handle"];

/**
 * An operator's state for a server: `ready` takes requests; `draining` takes no new clients (requests
 * whose sticky cookie names it still go there, in-flight ones finish); `maint` takes no requests at all.
 */
export type AdminState = "ready" | "draining" | "maint";
export const ADMIN_STATES: readonly AdminState[] = ["ready", "draining", "maint"];

/** One progress frame of a wake, as `/$switchyard/wake-events` sends it. */
export interface WakeProgress {
  readonly server: string;
  /** `starting`, `waking_dep`, `dep_ready`, `waiting_ready`, then `ready` or `error`. */
  readonly action: string;
  readonly level: "info" | "error";
  readonly message: string;
  /** ISO 8601. */
  readonly timestamp: string;
  readonly error?: string;
}

/**
 * What the balancer needs of an idle watcher (src/idle/watcher.ts): how to wake, which requests
 * may wake, and the progress of a wake. Its status reaches the balancer through `health`.
 */
export interface ServerIdle {
  /** Only a request for this path may wake a napping server; others get 403. */
  readonly startEndpoint: string | undefined;
  /** Requests wait instead of getting the loading page. */
  readonly noLoadingPage: boolean;
  /** Starts (single-flight) and resolves once ready; rejects with an `IdleError`. */
  wake(): Promise<void>;
  /** A request reached the server: the idle timer restarts. */
  touch(): void;
  /** The current wake's progress so far, then live frames; returns the unsubscribe function. */
  watchProgress(listener: (event: WakeProgress) => void): () => void;
}

export interface ServerOptions {
  name: string;
  /** Where requests are proxied; its host:port is the server's key. */
  url: string | URL;
  /** Integer ≥ 0; 0 or absent = an equal share. */
  weight?: number;
  /** Serve requests yourself instead of proxying to `url`. */
  handler?: RequestHandler;
  /** Any object with status(); without it the server is always healthy. */
  health?: HealthSource;
  /** Wakes a napping server; used by tryWake(). */
  wake?: () => Promise<void>;
  /** Used only while no non-backup server of the pool is good. */
  backup?: boolean;
  /** An idle watcher (server side, or the library's `IdleWatcher`): wakes, progress, idle timer. */
  idle?: ServerIdle;
  /** How requests reach `url`: `http1.1` (default), `h2` (https, ALPN) or `h2c` (http, prior knowledge). */
  protocol?: UpstreamProtocol;
  /** TLS towards an `https://` url: extra CA, SNI name, client certificate, or no verification. */
  tls?: UpstreamTlsOptions;
}

/**
 * One backend. `available` is the single property selectors read: whether the server may take a
 * new client now. Health monitors and passive health decide `good` (through `refresh()` /
 * `markDown()`); the owning pool turns good, admin state, backup and panic into `available`.
 */
export class Server {
  readonly name: string;
  readonly url: URL;
  readonly key: string;
  /** Weight as configured (0 = equal share). */
  readonly configuredWeight: number;
  /** Weight after the pool's rebalance to 100; written by the balancer when it is next read (`lb.servers`, a pick). */
  weight = 0;
  /** configuredWeight with 0 replaced by the pool's mean; what ip_hash uses (ratios survive rebalancing). */
  effectiveWeight = 0;
  readonly handler: RequestHandler | undefined;
  readonly health: HealthSource | undefined;
  readonly wake: (() => Promise<void>) | undefined;
  /** Used only while no non-backup server of the pool is good. */
  readonly backup: boolean;
  readonly idle: ServerIdle | undefined;
  /** Protocol and TLS settings the proxy and the health checks connect with. */
  readonly transport: Transport;
  /** Certificates are not verified (`tls.insecureSkipVerify`). */
  readonly insecure: boolean;

  #inflight = 0;
  #admin: AdminState = "ready";
  #runtimeWeight: number | undefined = undefined;
  /** Status healthy and not passively ejected (napping/starting are good but not ready). */
  #ready = true;
  /** May take new clients now (written by the pool; by refresh() for a server outside a pool). Read by selectors on every pick. */
  available = true;
  /** Health says it can take requests: good status and not passively ejected. */
  good = true;
  /** Takes requests whose sticky cookie names it though not new clients (draining); written by the pool. */
  pinnable = false;
  /** Slow start: the share of its weight it gets now, 0..1 (1 = not ramping); written by the pool. */
  ramp = 1;
  /** Set by passive health (refused/reset); cleared when an active check succeeds. */
  passiveDown = false;
  /** Position in the pool, assigned by the balancer; selectors may index arrays with it. */
  index = -1;
  /** The proxy's connection pool for this server (set by the proxy, read for introspection). */
  upstream: unknown = undefined;
  /** Notified when `available` flips; set by the pool that owns this server. */
  onAvailabilityChange: ((server: Server) => void) | undefined;
  /** Notified when `inflight` changes (least_conn keeps an ordered structure); set by the pool. */
  onLoadChange: ((server: Server) => void) | undefined;

  constructor(options: ServerOptions) {
    if (!options || typeof options !== "object")
      throw new InvalidArgumentError("Server: options object required");
    const { name, url, weight = 0, handler, wake, idle, backup = false } = options;
    // an idle watcher is a health source too: it says napping / starting / healthy / error
    const health =
      options.health ??
      (idle !== undefined && typeof (idle as Partial<HealthSource>).status === "function"
        ? (idle as unknown as HealthSource)
        : undefined);
    if (typeof name !== "string" || name === "")
      throw new InvalidArgumentError("Server: name must be a non-empty string");
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch (err) {
      throw new InvalidArgumentError(`Server ${name}: invalid url ${JSON.stringify(String(url))}`, {
        cause: err,
      });
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      throw new InvalidArgumentError(`Server ${name}: url must be http: or https:, got ${parsed.protocol}`);
    }
    if (!Number.isInteger(weight) || weight < 0) {
      throw new InvalidArgumentError(`Server ${name}: weight must be an integer >= 0, got ${weight}`);
    }
    if (health !== undefined && typeof health?.status !== "function") {
      throw new InvalidArgumentError(`Server ${name}: health must have a status() method`);
    }
    this.name = name;
    this.url = parsed;
    this.key = parsed.port ? parsed.host : `${parsed.hostname}:${parsed.protocol === "https:" ? 443 : 80}`;
    this.configuredWeight = weight;
    this.handler = handler;
    this.health = health;
    this.idle = idle;
    this.wake = wake ?? (idle ? () => idle.wake() : undefined);
    if (typeof backup !== "boolean")
      throw new InvalidArgumentError(`Server ${name}: backup must be a boolean`);
    this.backup = backup;
    this.transport = resolveTransport(`Server ${name}`, parsed, options.protocol, options.tls);
    this.insecure = this.transport.tls?.rejectUnauthorized === false;
    const st = this.#healthStatus();
    this.good = isGood(st);
    this.#ready = st === "healthy";
    this.available = this.good;
  }

  /** The operator's state (`lb.setAdminState`); `ready` unless set. */
  get adminState(): AdminState {
    return this.#admin;
  }
  /** The weight set at run time (`lb.setWeight`), or undefined for the configured one. */
  get runtimeWeight(): number | undefined {
    return this.#runtimeWeight;
  }
  /** The weight the pool rebalances: the runtime one when set, else the configured one. */
  get baseWeight(): number {
    return this.#runtimeWeight ?? this.configuredWeight;
  }
  /** Status healthy and not passively ejected (good and not napping/starting). */
  get ready(): boolean {
    return this.#ready;
  }

  /** @internal Written by the owning pool: use `lb.setAdminState`. */
  applyAdminState(state: AdminState): void {
    this.#admin = state;
    if (this.onAvailabilityChange === undefined) this.available = this.good && state === "ready";
  }
  /** @internal Written by the owning pool: use `lb.setWeight`. */
  applyRuntimeWeight(weight: number | undefined): void {
    this.#runtimeWeight = weight;
  }
  /** Takes over another server's admin state and runtime weight (a hot reload of an unchanged entry). */
  inherit(from: Server): void {
    this.#admin = from.#admin;
    this.#runtimeWeight = from.#runtimeWeight;
  }

  /**
   * Requests in flight (least_conn, metrics, drain). Whoever sends a request increments it and
   * decrements it when the request ends; the owning pool is told so least_conn stays O(log n).
   */
  get inflight(): number {
    return this.#inflight;
  }
  set inflight(n: number) {
    this.#inflight = n;
    if (this.onLoadChange !== undefined) this.onLoadChange(this);
  }

  #healthStatus(): HealthStatus {
    return this.health ? this.health.status() : "healthy";
  }

  /** The server's status: the monitor's, or unhealthy while passively ejected. */
  status(): HealthStatus {
    if (this.passiveDown) return "unhealthy";
    return this.#healthStatus();
  }

  latency(): number {
    return this.health?.latency?.() ?? 0;
  }

  detail(): string {
    if (this.passiveDown) return "connection failed; out until a health check succeeds";
    return this.health?.detail?.() ?? "";
  }

  /** Whether health and passive state let this server take requests now. */
  canTakeRequests(): boolean {
    return !this.passiveDown && isGood(this.#healthStatus());
  }

  /**
   * Recomputes `good` (and readiness) from health and passive state and tells the pool when either
   * changed; returns true when `good` changed.
   */
  refresh(notify = true): boolean {
    const st = this.status();
    const good = isGood(st);
    const ready = st === "healthy";
    if (good === this.good && ready === this.#ready) return false;
    const flipped = good !== this.good;
    this.good = good;
    this.#ready = ready;
    if (this.onAvailabilityChange !== undefined) {
      if (notify) this.onAvailabilityChange(this);
    } else this.available = good && this.#admin === "ready";
    return flipped;
  }

  /**
   * Passive health: a refused or reset connection takes the server out at once.
   * It comes back when an active check succeeds (or at once if it has no active checker).
   */
  markDown(): void {
    if (this.passiveDown) return;
    this.passiveDown = true;
    this.refresh();
    this.health?.checkNow?.();
  }

  /** Called when the active checker reports healthy. */
  clearPassive(): void {
    if (!this.passiveDown) return;
    this.passiveDown = false;
    this.refresh();
  }

  /** Wakes a napping/starting server with its `wake` function; a no-op for others. */
  async tryWake(): Promise<void> {
    if (!this.wake) return;
    const s = this.status();
    if (s !== "napping" && s !== "starting") return;
    try {
      await this.wake();
    } catch (err) {
      throw new Error(`failed to wake server "${this.name}"`, { cause: err });
    }
    this.refresh();
  }
}
