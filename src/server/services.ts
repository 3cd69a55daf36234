/**
 * One running service: a LoadBalancer built from its ServiceConfig, its health sources and its
 * request stats; plus applying a changed ServiceConfig to it in place (hot reload).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { EventAction, EventSink } from "../admin/events.ts";
import { LoadBalancer } from "../balancer/load-balancer.ts";
import { Server } from "../balancer/server.ts";
import type { HealthcheckConfig, ServerConfig, ServiceConfig, TimeoutsConfig } from "../config/types.ts";
import { HttpHealthMonitor } from "../health/http-monitor.ts";
import type { HealthSource } from "../health/status.ts";
import type { Logger } from "../log.ts";
import { ServiceStats } from "./metrics.ts";

/** The property under which a request remembers the server it was (last) sent to. */
export const kServer: unique symbol = Symbol("switchyard.server");
export type TaggedRequest = IncomingMessage & { [kServer]?: Server };

/** Makes the health source of one server (an HTTP monitor, or a feed from the cluster primary). */
export type HealthFactory = (service: ServiceConfig, server: ServerConfig) => HealthSource | undefined;

export const httpHealth: HealthFactory = (service, server) => {
  const hc = service.healthcheck;
  if (!hc.enabled) return undefined;
  return new HttpHealthMonitor(server.url, {
    path: hc.path,
    useGet: hc.useGet,
    interval: hc.interval,
    timeout: hc.timeout,
    retries: hc.retries,
  });
};

/** The library's balancer, tagging each request with its server and counting retries for metrics. */
export class ServiceBalancer extends LoadBalancer {
  readonly stats: ServiceStats;

  constructor(options: ConstructorParameters<typeof LoadBalancer>[0], stats: ServiceStats) {
    super(options);
    this.stats = stats;
  }

  override dispatch(req: IncomingMessage, res: ServerResponse, server: Server): void {
    (req as TaggedRequest)[kServer] = server;
    super.dispatch(req, res, server);
  }

  override pickRetry(req: IncomingMessage, tried: readonly Server[]): Server | undefined {
    const next = super.pickRetry(req, tried);
    if (next !== undefined) {
      (req as TaggedRequest)[kServer] = next;
      this.stats.retries++;
    }
    return next;
  }
}

export class Service {
  readonly name: string;
  readonly lb: ServiceBalancer;
  readonly stats: ServiceStats;
  readonly controller = new AbortController();
  config: ServiceConfig;
  timeouts: TimeoutsConfig;
  readonly #health: HealthFactory;

  constructor(
    config: ServiceConfig,
    timeouts: TimeoutsConfig,
    logger: Logger,
    health: HealthFactory,
    /** Where events go (read at each event; the same field as the idle work's IdleEnv.events). */
    env: { events?: EventSink } = {},
  ) {
    this.name = config.name;
    this.config = config;
    this.timeouts = timeouts;
    this.#health = health;
    this.stats = new ServiceStats(config.name);
    this.lb = new ServiceBalancer(
      {
        ...balancerOptions(config, timeouts),
        link: config.name,
        logger,
        // the balancer's events, named with this service
        onEvent: (e) => env.events?.({ ...e, action: e.action as EventAction, service: this.name }),
      },
      this.stats,
    );
    for (const s of config.servers) this.lb.addServer(this.#server(s, undefined));
  }

  start(): void {
    this.lb.start(this.controller.signal);
  }

  #server(s: ServerConfig, health: HealthSource | undefined): Server {
    return new Server({
      name: s.name,
      url: s.url,
      weight: s.weight,
      backup: s.backup,
      health: health ?? this.#health(this.config, s),
    });
  }

  /**
   * Applies a new config for this service: servers added, removed or replaced (same key,
   * keeping their health state), balancer settings updated. Returns what changed, for the log.
   */
  apply(next: ServiceConfig, timeouts: TimeoutsConfig): string[] {
    const prev = this.config;
    const changes: string[] = [];
    const hcChanged = !sameHealthcheck(prev.healthcheck, next.healthcheck);
    this.config = next;
    const oldByKey = new Map<string, Server>();
    for (const s of this.lb.servers) oldByKey.set(s.key, s);
    const prevByKey = new Map<string, ServerConfig>();
    for (const s of prev.servers) prevByKey.set(keyOf(s.url), s);
    const nextKeys = new Set<string>();
    for (const s of next.servers) {
      const key = keyOf(s.url);
      nextKeys.add(key);
      const was = prevByKey.get(key);
      const running = oldByKey.get(key);
      if (was === undefined || running === undefined) {
        this.lb.addServer(this.#server(s, undefined));
        changes.push(`+${s.name}`);
      } else if (
        hcChanged ||
        was.url !== s.url ||
        was.name !== s.name ||
        was.weight !== s.weight ||
        was.backup !== s.backup
      ) {
        // same key: addServer replaces in place; an unchanged healthcheck keeps its monitor (and status)
        const fresh = this.#server(s, hcChanged ? undefined : running.health);
        // an entry the file did not change keeps what the operator set (admin state, runtime weight)
        const entryChanged =
          was.url !== s.url || was.name !== s.name || was.weight !== s.weight || was.backup !== s.backup;
        if (!entryChanged) fresh.inherit(running);
        this.lb.addServer(fresh);
        if (was.backup !== s.backup) changes.push(`${s.name} backup ${was.backup}→${s.backup}`);
        if (was.weight !== s.weight) changes.push(`${s.name} weight ${was.weight}→${s.weight}`);
        else if (was.name !== s.name || was.url !== s.url) changes.push(`~${s.name}`);
      }
    }
    for (const [key, s] of oldByKey) {
      if (!nextKeys.has(key)) {
        this.lb.removeServer(key);
        changes.push(`-${s.name}`);
      }
    }
    if (hcChanged) changes.push("healthcheck");
    const settings = changedSettings(prev, next, this.timeouts, timeouts);
    this.timeouts = timeouts;
    if (settings.length) {
      this.lb.updateConfig(balancerOptions(next, timeouts));
      changes.push(...settings);
    }
    if (prev.hosts.join(",") !== next.hosts.join(",")) changes.push("hosts");
    return changes;
  }

  /** Stops monitors and upstream pools once the in-flight requests are done (bounded by `grace` ms). */
  async retire(grace: number): Promise<void> {
    const deadline = Date.now() + grace;
    while (this.stats.inflight > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    this.controller.abort();
  }
}

function balancerOptions(c: ServiceConfig, t: TimeoutsConfig) {
  return {
    mode: c.mode,
    sticky: c.sticky,
    stickyMaxAge: c.stickyMaxAge,
    stickySecret: c.stickySecret,
    options: { header: c.options.header, from: [...c.options.from], recursive: c.options.recursive },
    timeouts: { connect: t.connect, responseHeader: t.responseHeader, idle: t.idle },
    slowStart: c.slowStart,
    panicThreshold: c.panicThreshold,
  };
}

function changedSettings(
  a: ServiceConfig,
  b: ServiceConfig,
  ta: TimeoutsConfig,
  tb: TimeoutsConfig,
): string[] {
  const out: string[] = [];
  if (a.mode !== b.mode) out.push(`mode ${a.mode}→${b.mode}`);
  if (a.sticky !== b.sticky) out.push(`sticky ${a.sticky}→${b.sticky}`);
  if (a.stickyMaxAge !== b.stickyMaxAge) out.push("sticky_max_age");
  if (a.stickySecret !== b.stickySecret) out.push("sticky_secret");
  if (a.slowStart !== b.slowStart) out.push("slow_start");
  if (a.panicThreshold !== b.panicThreshold) out.push("panic_threshold");
  if (
    a.options.header !== b.options.header ||
    a.options.recursive !== b.options.recursive ||
    a.options.from.join(",") !== b.options.from.join(",")
  )
    out.push("options");
  if (ta.connect !== tb.connect || ta.responseHeader !== tb.responseHeader || ta.idle !== tb.idle)
    out.push("timeouts");
  return out;
}

function sameHealthcheck(a: HealthcheckConfig, b: HealthcheckConfig): boolean {
  return (
    a.enabled === b.enabled &&
    a.path === b.path &&
    a.useGet === b.useGet &&
    a.interval === b.interval &&
    a.timeout === b.timeout &&
    a.retries === b.retries
  );
}

/** The server key (host:port) of a URL, as `Server` computes it. */
export function keyOf(url: string): string {
  const u = new URL(url);
  return u.port ? u.host : `${u.hostname}:${u.protocol === "https:" ? 443 : 80}`;
}
