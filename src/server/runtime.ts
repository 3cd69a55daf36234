/**
 * The running server of one process: services (balancers), the proxy listeners, the admin
 * listener and metrics, and applying a new config to all of them (hot reload). In cluster mode
 * the primary runs one with health and admin but no proxy, each worker one with the proxy only.
 */
import { type AdminOp, answerOf, applyLocal } from "../admin/actions.ts";
import { serveDashboard } from "../admin/dashboard.ts";
import { EventLog, type EventSink } from "../admin/events.ts";
import type { WorkerAdmin } from "../admin/ipc.ts";
import { AdminServer } from "../admin/server.ts";
import { mergeSnapshot, type StatsSnapshot } from "../admin/stats.ts";
import { type ConfigOverrides, loadConfig } from "../config/load.ts";
import type { SwitchyardConfig } from "../config/types.ts";
import { formatDuration } from "../duration.ts";
import { ConfigError, IdleError } from "../errors.ts";
import { http1Path } from "../http1/mode.ts";
import type { LoadBalancer } from "../load-balancer.ts";
import { errFields, type Logger } from "../log.ts";
import { Front } from "./front.ts";
import { Listeners } from "./listeners.ts";
import { Metrics } from "./metrics.ts";
import { type HealthFactory, httpHealth, type IdleEnv, newIdleEnv, Service } from "./services.ts";

export interface RuntimeOptions {
  logger: Logger;
  /** Serve the proxy listeners in this process. */
  proxy: boolean;
  /** Serve the admin API in this process. */
  admin: boolean;
  /** Owns health (runs monitors, exports server health and reload metrics). */
  ownsHealth: boolean;
  health?: HealthFactory;
  /** Logger for the balancers (default: `logger`). */
  balancerLogger?: Logger;
  /** Extra metrics to merge (cluster primary: the workers'). */
  workerMetrics?: () => Promise<object[]>;
  /** Idle watchers for this process's services (cluster workers: remote ones that ask the primary). */
  idleEnv?: IdleEnv;
  /** Called after services were added, changed or removed (cluster primary: re-sync workers). */
  onServicesChanged?: () => void;
  /** The workers' side of the admin API (cluster primary): their stats and actions. */
  workerAdmin?: WorkerAdmin;
}

export class Runtime {
  readonly logger: Logger;
  readonly services = new Map<string, Service>();
  /** The idle watchers of every service (depends_on resolves here), their metrics and events. */
  readonly idle: IdleEnv = newIdleEnv();
  readonly metrics: Metrics;
  readonly front: Front | undefined;
  readonly listeners: Listeners | undefined;
  readonly admin: AdminServer | undefined;
  /** What happened to services and servers, for `GET /api/events` (and the idle watcher's sink). */
  readonly events = new EventLog();
  #config: SwitchyardConfig | undefined;
  readonly #options: RuntimeOptions;
  get #idleEnv(): IdleEnv {
    return this.#options.idleEnv ?? this.idle;
  }
  readonly #retiring = new Set<Service>();
  #reloading: Promise<boolean> | undefined;
  #reloadAgain = false;

  constructor(options: RuntimeOptions) {
    this.#options = options;
    this.logger = options.logger;
    const self = this;
    this.metrics = new Metrics(
      {
        *stats() {
          for (const s of self.services.values()) yield s.stats;
          for (const s of self.#retiring) yield s.stats;
        },
        *balancers(): Iterable<LoadBalancer> {
          for (const s of self.services.values()) yield s.lb;
        },
      },
      { requests: options.proxy, health: options.ownsHealth, process: true },
    );
    this.idle.metrics = this.metrics.idle;
    // the balancers' events go through the same sink (Service reads `events` from its IdleEnv)
    this.idle.events = this.eventSink;
    if (options.idleEnv) options.idleEnv.events ??= this.eventSink;
    if (options.proxy) {
      this.front = new Front(this.logger);
      this.listeners = new Listeners(this.logger, this.front, (reason) =>
        this.metrics.proxyProtocolErrors?.inc({ reason }),
      );
    }
    if (options.admin) {
      this.admin = new AdminServer(
        this.logger,
        {
          health: async () => {
            const out: Record<string, unknown> = {};
            for (const [name, s] of this.services) out[name] = { ...s.lb.toJSON(), ...routingJSON(s) };
            if (options.workerAdmin)
              sumInflight(out, (await options.workerAdmin.stats()).reduce(mergeSnapshot, {}));
            return out;
          },
          events: this.events,
          services: () => this.services,
          shutdownTimeout: () => this.#config?.timeouts.shutdown ?? 30_000,
          stats: async () => {
            const own = this.statsSnapshot();
            if (!options.workerAdmin) return own;
            return (await options.workerAdmin.stats()).reduce(mergeSnapshot, own);
          },
          act: (op, capped) => this.#act(op, capped),
          metrics: async () => {
            const registry = this.metrics.registry;
            if (!options.workerMetrics)
              return { contentType: registry.contentType, body: await registry.metrics() };
            const { AggregatorRegistry } = await import("prom-client");
            const all = [await registry.getMetricsAsJSON(), ...(await options.workerMetrics())];
            const merged = AggregatorRegistry.aggregate(all as never);
            return { contentType: registry.contentType, body: await merged.metrics() };
          },
        },
        serveDashboard,
      );
    }
  }

  /** The sink the balancers (and the idle watcher) send events to: service-scoped events into `events`. */
  get eventSink(): EventSink {
    // the cluster primary serves no requests: a drain completes in the workers, which report it
    return this.#options.proxy ? this.events.emit : (e) => e.action !== "drained" && this.events.emit(e);
  }

  /** The last minute of requests of this process, per service and server. */
  statsSnapshot(): StatsSnapshot {
    const now = performance.now();
    const out: StatsSnapshot = {};
    for (const [name, s] of this.services) out[name] = s.stats.summary(s.lb.servers, now);
    return out;
  }

  /** The ops that bring a fresh process to this one's admin states and runtime weights (a new cluster worker). */
  adminOps(): AdminOp[] {
    const ops: AdminOp[] = [];
    for (const [service, s] of this.services) {
      for (const srv of s.lb.servers) {
        const server = srv.name;
        if (srv.adminState === "maint") ops.push({ kind: "state", service, server, state: "maint" });
        else if (srv.adminState === "draining") ops.push({ kind: "drain", service, server, waitMs: 0 });
        if (srv.runtimeWeight !== undefined)
          ops.push({ kind: "weight", service, server, weight: srv.runtimeWeight });
      }
    }
    return ops;
  }

  async #act(op: AdminOp, capped: string | undefined) {
    // the primary serves no requests: it takes the state (health JSON), the workers do the waiting
    const own = await applyLocal(this.services, op, this.#options.proxy);
    if (own.error || !this.#options.workerAdmin || op.kind === "idle") return answerOf(op, [own], capped);
    const theirs = await this.#options.workerAdmin.act(op);
    return answerOf(op, [own, ...theirs], capped);
  }

  /** Admin action on an idle server; an IdleError (ERR_SWITCHYARD_NO_PROVIDER) for an unknown service or server. */
  idleAction(service: string, server: string, action: "wake" | "stop"): Promise<void> {
    const svc = this.services.get(service);
    if (!svc) return Promise.reject(new IdleError(`no service "${service}"`, "ERR_SWITCHYARD_NO_PROVIDER"));
    return svc.idleAction(server, action);
  }

  get config(): SwitchyardConfig | undefined {
    return this.#config;
  }

  /** Applies the first config: binds listeners and admin (throws if it cannot) and starts the services. */
  async start(config: SwitchyardConfig): Promise<void> {
    // the HTTP/1 path (native parser binding or node:http) is decided and told here
    http1Path(this.logger);
    await this.apply(config);
  }

  /**
   * Makes `next` the running config. Listeners and admin are bound first: when that fails,
   * nothing else changes and the error is thrown. Returns a description of what changed.
   */
  async apply(next: SwitchyardConfig): Promise<string[]> {
    const prev = this.#config;
    const changes: string[] = [];
    if (this.admin) changes.push(...(await this.admin.apply(next.admin)));
    if (this.listeners)
      changes.push(...(await this.listeners.apply(next.listen, next.file, next.timeouts.clientHeader)));
    const health = this.#options.health ?? httpHealth;
    const lbLogger = this.#options.balancerLogger ?? this.logger;
    const fresh: Service[] = [];
    try {
      for (const [name, sc] of Object.entries(next.services)) {
        if (!this.services.has(name))
          fresh.push(new Service(sc, next.timeouts, lbLogger, health, this.#idleEnv));
      }
    } catch (err) {
      for (const s of fresh) {
        s.controller.abort();
        void s.closeIdle();
      }
      throw err;
    }
    for (const s of fresh) {
      this.services.set(s.name, s);
      s.start();
      changes.push(`+service ${s.name}`);
    }
    for (const [name, svc] of this.services) {
      const sc = next.services[name];
      if (sc === undefined) {
        this.services.delete(name);
        this.#retiring.add(svc);
        changes.push(`-service ${name}`);
        void svc.retire(next.timeouts.shutdown).then(() => this.#retiring.delete(svc));
      } else if (prev !== undefined && !fresh.includes(svc)) {
        const c = svc.apply(sc, next.timeouts);
        if (c.length) changes.push(`${name}: ${c.join(", ")}`);
      }
    }
    this.#config = next;
    // decision introspection (switchyard-debug) is unlocked by the admin token, when there is one
    const debugToken = next.admin.token || process.env.SWITCHYARD_ADMIN_TOKEN || undefined;
    for (const svc of this.services.values()) svc.lb.debugToken = debugToken;
    this.front?.setServices(this.services.values(), next.accessLog);
    this.#options.onServicesChanged?.();
    return changes;
  }

  /**
   * Reloads the config file. A bad file is logged with every problem and the running config
   * stays. Concurrent calls coalesce. Resolves true when the new config is running.
   */
  reload(file: string, overrides: ConfigOverrides): Promise<boolean> {
    if (this.#reloading) {
      this.#reloadAgain = true;
      return this.#reloading;
    }
    this.#reloading = this.#reloadOnce(file, overrides).finally(() => {
      this.#reloading = undefined;
      if (this.#reloadAgain) {
        this.#reloadAgain = false;
        void this.reload(file, overrides);
      }
    });
    return this.#reloading;
  }

  async #reloadOnce(file: string, overrides: ConfigOverrides): Promise<boolean> {
    let next: SwitchyardConfig;
    try {
      next = await loadConfig(file, overrides);
    } catch (err) {
      this.metrics.reloads?.inc({ result: "error" });
      this.events.emit({
        action: "reload",
        level: "error",
        message: `config reload failed: ${(err as Error).message}`,
      });
      const problems = err instanceof ConfigError ? err.problems : undefined;
      this.logger.error(
        { ...errFields(this.logger, err), problems },
        "config reload failed; still serving the previous config",
      );
      return false;
    }
    return this.applyLoaded(next);
  }

  /**
   * Applies an already loaded config as a reload (logs and counts the result). `follower`: a
   * cluster worker applying the primary's reload, which the primary has logged already: its
   * success is a `debug` line (failures are its own and stay errors).
   */
  async applyLoaded(next: SwitchyardConfig, follower = false): Promise<boolean> {
    try {
      const changes = await this.apply(next);
      this.metrics.reloads?.inc({ result: "ok" });
      const message = changes.length
        ? `config reloaded: ${changes.join("; ")}`
        : "config reloaded: no changes";
      this.logger[follower ? "debug" : "info"]({ changes }, message);
      this.events.emit({ action: "reload", message });
      return true;
    } catch (err) {
      this.metrics.reloads?.inc({ result: "error" });
      this.logger.error(
        errFields(this.logger, err),
        "config reload failed; still serving the previous config",
      );
      this.events.emit({
        action: "reload",
        level: "error",
        message: `config reload failed: ${(err as Error).message}`,
      });
      return false;
    }
  }

  /**
   * Graceful stop: stop accepting, let in-flight requests finish (at most `timeouts.shutdown`),
   * close idle connections as they become idle, then close everything and stop monitors.
   */
  async shutdown(): Promise<void> {
    const grace = this.#config?.timeouts.shutdown ?? 30_000;
    const front = this.front;
    if (front && this.listeners) {
      front.drain();
      this.listeners.stopAccepting();
      const deadline = Date.now() + grace;
      if (front.inflight > 0) {
        this.logger.info(
          { inflight: front.inflight, grace },
          `draining ${front.inflight} in-flight request(s), at most ${grace}ms`,
        );
      }
      while (front.inflight > 0 && Date.now() < deadline) {
        this.listeners.closeIdle();
        await new Promise((r) => setTimeout(r, 50));
      }
      if (front.inflight > 0) {
        this.logger.warn({ inflight: front.inflight }, "grace period over; closing remaining connections");
      }
      this.listeners.destroyAll();
      for (const s of front.upgrades) s.destroy();
    }
    this.admin?.close();
    for (const s of this.services.values()) s.controller.abort();
    for (const s of this.#retiring) s.controller.abort();
    // every process or container an idle provider started is stopped before we exit
    await Promise.all([...this.services.values(), ...this.#retiring].map((s) => s.closeIdle()));
  }
}

/** A service's routing and middlewares, for the health JSON (only what it has). */
function routingJSON(s: Service): Record<string, unknown> {
  const c = s.config;
  const out: Record<string, unknown> = {};
  if (c.paths?.length) out.paths = c.paths;
  if (c.stripPrefix) out.strip_prefix = true;
  if (c.timeouts) {
    const t: Record<string, string> = {};
    if (c.timeouts.connect !== undefined) t.connect = formatDuration(c.timeouts.connect);
    if (c.timeouts.responseHeader !== undefined)
      t.response_header = formatDuration(c.timeouts.responseHeader);
    if (c.timeouts.idle !== undefined) t.idle = formatDuration(c.timeouts.idle);
    if (c.timeouts.tunnel !== undefined) t.tunnel = formatDuration(c.timeouts.tunnel);
    out.timeouts = t;
  }
  if (c.middlewares?.length) out.middlewares = c.middlewares.map((m) => m.kind);
  return out;
}

/** The cluster primary serves no requests: its health JSON takes each server's in-flight count from the workers. */
function sumInflight(health: Record<string, unknown>, workers: StatsSnapshot): void {
  for (const [name, json] of Object.entries(health)) {
    const servers = workers[name]?.servers;
    const pool = (json as { extra?: { pool?: Record<string, { name: string; inflight: number }> } }).extra
      ?.pool;
    if (servers === undefined || pool === undefined) continue;
    for (const entry of Object.values(pool)) {
      const s = servers[entry.name];
      if (s !== undefined) entry.inflight = s.inflight;
    }
  }
}
