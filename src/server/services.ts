/**
 * One running service: a LoadBalancer built from its ServiceConfig, its health sources and its
 * request stats; plus applying a changed ServiceConfig to it in place (hot reload).
 */

import { isIP } from "node:net";
import { isDeepStrictEqual } from "node:util";
import type { EventAction, EventSink } from "../admin/events.ts";
import { Server, type ServerIdle } from "../balancer/server.ts";
import type { HealthcheckConfig, ServerConfig, ServiceConfig, TimeoutsConfig } from "../config/types.ts";
import { tlsOptionsOf } from "../config/upstream.ts";
import { IdleError } from "../errors.ts";
import { HttpHealthMonitor } from "../health/http-monitor.ts";
import type { HealthSource } from "../health/status.ts";
import type { ProxyRequest, ProxyResponse } from "../http-types.ts";
import { createProvider } from "../idle/providers.ts";
import { type IdleMetricsSink, IdleWatcher } from "../idle/watcher.ts";
import { LoadBalancer } from "../load-balancer.ts";
import type { Logger } from "../log.ts";
import { type Chain, createChain, hidesForwarded } from "../middleware/index.ts";
import { resolveTransport, tlsConnectOptions } from "../upstream-tls.ts";
import { ServiceStats } from "./metrics.ts";

/**
 * What the idle watchers of every service share: the registry `depends_on` resolves against
 * ("service/server" → watcher), and where wakes and idle stops are counted and logged.
 */
export interface IdleEnv {
  readonly watchers: Map<string, IdleWatcher>;
  events?: EventSink;
  metrics?: IdleMetricsSink;
  /** The readiness-after-wake monitor of an idle server (default: the service's health factory). */
  healthFor?: HealthFactory;
  /** Told of every watcher made (cluster primary: broadcast its status and progress). */
  onWatcher?: (watcher: IdleWatcher, key: string) => void;
  /**
   * Cluster workers: no watchers here; an idle server's health and wakes come from the primary
   * through this (one wake per server across all workers).
   */
  remote?: (service: ServiceConfig, server: ServerConfig) => RemoteIdle;
}

/** A worker's stand-in for a watcher in the primary. */
export interface RemoteIdle extends HealthSource, ServerIdle {
  /** The Server it belongs to (for its in-flight count). */
  attach(server: Server): void;
}

export function newIdleEnv(): IdleEnv {
  return { watchers: new Map() };
}

/** The property under which a request remembers the server it was (last) sent to. */
export const kServer: unique symbol = Symbol("switchyard.server");
/** ... and how many servers it was sent to, once it was retried (absent: 1, or none without kServer). */
export const kTries: unique symbol = Symbol("switchyard.tries");
export type TaggedRequest = ProxyRequest & { [kServer]?: Server; [kTries]?: number };

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
    protocol: server.protocol,
    tls: tlsOptionsOf(server.tls),
  });
};

/** The library's balancer, tagging each request with its server and counting retries for metrics. */
export class ServiceBalancer extends LoadBalancer {
  readonly stats: ServiceStats;

  constructor(options: ConstructorParameters<typeof LoadBalancer>[0], stats: ServiceStats) {
    super(options);
    this.stats = stats;
  }

  override dispatch(req: ProxyRequest, res: ProxyResponse, server: Server): void {
    (req as TaggedRequest)[kServer] = server;
    super.dispatch(req, res, server);
  }

  override pickRetry(req: ProxyRequest, tried: readonly Server[]): Server | undefined {
    const next = super.pickRetry(req, tried);
    if (next !== undefined) {
      (req as TaggedRequest)[kServer] = next;
      (req as TaggedRequest)[kTries] = ((req as TaggedRequest)[kTries] ?? 1) + 1;
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
  /** Writes this service's access lines (set by the Front); undefined when its access log is off. */
  accessLine: ((fields: string) => void) | undefined = undefined;
  /** The access line's service field as JSON text (`,"service":"name"`), built once. */
  readonly accessName: string;
  timeouts: TimeoutsConfig;
  /** The middlewares between routing and the balancer; undefined when the service has none. */
  chain: Chain | undefined;
  readonly #health: HealthFactory;
  readonly #idle: IdleEnv;
  readonly #logger: Logger;

  constructor(
    config: ServiceConfig,
    timeouts: TimeoutsConfig,
    logger: Logger,
    health: HealthFactory,
    /** Shared by the idle watchers of every service; its `events` also takes the balancer's events. */
    idle: IdleEnv = newIdleEnv(),
  ) {
    this.name = config.name;
    this.accessName = `,"service":${JSON.stringify(config.name)}`;
    this.#idle = idle;
    this.#logger = logger;
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
        onEvent: (e) => idle.events?.({ ...e, action: e.action as EventAction, service: this.name }),
      },
      this.stats,
    );
    for (const s of config.servers) this.lb.addServer(this.#server(s, undefined));
    this.chain = this.#chain(config);
  }

  #chain(config: ServiceConfig): Chain | undefined {
    return createChain(
      config.middlewares,
      {
        service: this.name,
        logger: this.#logger.child({ service: this.name }),
        realIp: () => this.lb.realIp,
      },
      (middleware, status) => this.stats.answered(middleware, status),
    );
  }

  start(): void {
    this.lb.start(this.controller.signal);
  }

  #server(s: ServerConfig, health: HealthSource | undefined): Server {
    if (s.provider && s.idle) {
      if (this.#idle.remote) {
        const r = isRemoteIdle(health) ? health : this.#idle.remote(this.config, s);
        const server = new Server({
          name: s.name,
          url: s.url,
          weight: s.weight,
          backup: s.backup,
          health: r,
          idle: r,
          protocol: s.protocol,
          tls: tlsOptionsOf(s.tls),
        });
        r.attach(server);
        return server;
      }
      const watcher = health instanceof IdleWatcher ? health : this.#watcher(s);
      return new Server({
        name: s.name,
        url: s.url,
        weight: s.weight,
        backup: s.backup,
        health: watcher,
        idle: watcher,
        protocol: s.protocol,
        tls: tlsOptionsOf(s.tls),
      });
    }
    return new Server({
      name: s.name,
      url: s.url,
      weight: s.weight,
      backup: s.backup,
      health: health ?? this.#health(this.config, s),
      protocol: s.protocol,
      tls: tlsOptionsOf(s.tls),
    });
  }

  /** A new idle watcher for `s` (its provider built), registered for depends_on and started. */
  #watcher(s: ServerConfig): IdleWatcher {
    const idle = s.idle!;
    const env = this.#idle;
    const id = `${this.name}/${s.name}`;
    const logger = this.#logger.child({ service: this.name, server: s.name });
    const hc = this.config.healthcheck;
    const resolve = (target: string) => {
      const slash = target.indexOf("/");
      if (slash >= 0) {
        const w = env.watchers.get(target);
        return w ? [w] : [];
      }
      return [...env.watchers.values()].filter((w) => w.service === target);
    };
    let server: Server | undefined;
    const watcher: IdleWatcher = new IdleWatcher({
      service: this.name,
      server: s.name,
      url: s.url,
      provider: createProvider(s.provider!, logger, { signal: idle.stopSignal, timeout: idle.stopTimeout }),
      idleTimeout: idle.idleTimeout,
      wakeTimeout: idle.wakeTimeout,
      stopTimeout: idle.stopTimeout,
      stopMethod: idle.stopMethod,
      stopSignal: idle.stopSignal,
      startEndpoint: idle.startEndpoint,
      noLoadingPage: idle.noLoadingPage,
      // an HTTP/1.1 probe, verified as the proxy connects; an h2/h2c server is ready once it accepts
      // connections (its health monitor, which speaks HTTP/2, takes over from there)
      readiness:
        hc.enabled && s.protocol === undefined
          ? { path: hc.path, useGet: hc.useGet, tls: readinessTls(s) }
          : undefined,
      health: (env.healthFor ?? this.#health)(this.config, s),
      dependsOn: () => idle.dependsOn.flatMap(resolve),
      dependents: (): IdleWatcher[] =>
        [...env.watchers.values()].filter(
          (w) => w !== watcher && w.dependsOnTargets().some((t) => t === id || t === this.name),
        ),
      inflight: () => {
        server ??= this.lb.servers.find((x) => x.idle === watcher);
        return server?.inflight ?? 0;
      },
      logger: this.#logger,
      events: (e) => env.events?.(e),
      metrics: {
        wake: (...a) => env.metrics?.wake(...a),
        idleStop: (...a) => env.metrics?.idleStop(...a),
      },
    });
    watcher.dependsOnTargets = () => idle.dependsOn;
    env.watchers.set(id, watcher);
    env.onWatcher?.(watcher, keyOf(s.url));
    watcher.start(this.controller.signal);
    return watcher;
  }

  /** Stops and forgets the watcher of a server leaving the pool (its process is stopped). */
  #dropWatcher(server: Server | undefined): void {
    const w = server?.idle;
    if (!(w instanceof IdleWatcher)) return;
    const id = `${this.name}/${w.server}`;
    if (this.#idle.watchers.get(id) === w) this.#idle.watchers.delete(id);
    void w.close();
  }

  /** Admin actions on an idle server: wake it, or stop it now. Throws IdleError without a provider. */
  async idleAction(serverName: string, action: "wake" | "stop"): Promise<void> {
    const server = this.lb.servers.find((s) => s.name === serverName);
    if (!server)
      throw new IdleError(`service ${this.name} has no server "${serverName}"`, "ERR_SWITCHYARD_NO_PROVIDER");
    const w = server.idle;
    if (!(w instanceof IdleWatcher)) {
      throw new IdleError(
        `server ${serverName} of service ${this.name} has no idle provider`,
        "ERR_SWITCHYARD_NO_PROVIDER",
      );
    }
    if (action === "wake") await w.wake();
    else await w.stop("admin");
  }

  /** Stops every process or container this service's watchers started (shutdown, removal). */
  async closeIdle(): Promise<void> {
    const all: Promise<void>[] = [];
    for (const s of this.lb.servers) {
      if (s.idle instanceof IdleWatcher) {
        const id = `${this.name}/${s.name}`;
        if (this.#idle.watchers.get(id) === s.idle) this.#idle.watchers.delete(id);
        all.push(s.idle.close());
      }
    }
    await Promise.all(all);
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
      } else {
        const idleSame = sameIdle(was, s);
        const transportSame = sameTransport(was, s);
        const renamed = was.name !== s.name;
        // the file's entry for this server: when it changed, what the operator set is reset
        const entryChanged =
          !idleSame ||
          !transportSame ||
          renamed ||
          was.url !== s.url ||
          was.weight !== s.weight ||
          was.backup !== s.backup;
        if (!entryChanged && !hcChanged) continue;
        const idleChanged = !idleSame || (hcChanged && s.provider !== undefined);
        // a provider or idle settings changed (or a renamed server): a new watcher (the old one stops what it started)
        if (idleChanged || renamed) this.#dropWatcher(running);
        // same key: addServer replaces in place; an unchanged healthcheck keeps its monitor (and status)
        const keepHealth = !idleChanged && !hcChanged && !renamed && transportSame;
        const fresh = this.#server(s, keepHealth ? running.health : undefined);
        // an entry the file did not change keeps what the operator set (admin state, runtime weight)
        if (!entryChanged) fresh.inherit(running);
        this.lb.addServer(fresh);
        if (!idleSame) changes.push(`~${s.name} idle`);
        if (was.backup !== s.backup) changes.push(`${s.name} backup ${was.backup}→${s.backup}`);
        if (!transportSame) changes.push(`~${s.name} protocol/tls`);
        if (was.weight !== s.weight) changes.push(`${s.name} weight ${was.weight}→${s.weight}`);
        else if (renamed || was.url !== s.url) changes.push(`~${s.name}`);
      }
    }
    for (const [key, s] of oldByKey) {
      if (!nextKeys.has(key)) {
        this.lb.removeServer(key);
        this.#dropWatcher(s);
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
    if ((prev.paths ?? []).join(",") !== (next.paths ?? []).join(",")) changes.push("paths");
    if (prev.stripPrefix !== next.stripPrefix) changes.push("strip_prefix");
    if (!isDeepStrictEqual(prev.middlewares, next.middlewares)) {
      this.chain?.close();
      this.chain = this.#chain(next);
      changes.push("middlewares");
    }
    if (prev.accessLog !== next.accessLog) changes.push(`access_log ${prev.accessLog}→${next.accessLog}`);
    return changes;
  }

  /** Stops monitors and upstream pools once the in-flight requests are done (bounded by `grace` ms). */
  async retire(grace: number): Promise<void> {
    const deadline = Date.now() + grace;
    while (this.stats.inflight > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    this.controller.abort();
    this.chain?.close();
    await this.closeIdle();
  }
}

function isRemoteIdle(h: HealthSource | undefined): h is RemoteIdle {
  return h !== undefined && typeof (h as Partial<RemoteIdle>).attach === "function";
}

/** The TLS connect options of an https:// server's readiness probe (undefined for http://). */
function readinessTls(s: ServerConfig) {
  const url = new URL(s.url);
  if (url.protocol !== "https:") return undefined;
  const t = resolveTransport(`server ${s.name}`, url, s.protocol, tlsOptionsOf(s.tls)).tls;
  const host = url.hostname.replace(/^\[|\]$/g, "");
  return t === undefined ? undefined : tlsConnectOptions(t, host, isIP(host) !== 0);
}

function sameTransport(a: ServerConfig, b: ServerConfig): boolean {
  return a.protocol === b.protocol && isDeepStrictEqual(a.tls, b.tls);
}

function sameIdle(a: ServerConfig, b: ServerConfig): boolean {
  return isDeepStrictEqual(a.provider, b.provider) && isDeepStrictEqual(a.idle, b.idle);
}

function balancerOptions(c: ServiceConfig, top: TimeoutsConfig) {
  const t = c.timeouts === undefined ? top : { ...top, ...c.timeouts };
  return {
    mode: c.mode,
    sticky: c.sticky,
    stickyMaxAge: c.stickyMaxAge,
    stickySecret: c.stickySecret,
    options: { header: c.options.header, from: [...c.options.from], recursive: c.options.recursive },
    timeouts: { connect: t.connect, responseHeader: t.responseHeader, idle: t.idle, tunnel: t.tunnel },
    slowStart: c.slowStart,
    panicThreshold: c.panicThreshold,
    passiveCooldown: c.passiveCooldown,
    hideForwarded: hidesForwarded(c.middlewares),
    allowH2cUpgrade: c.allowH2cUpgrade === true,
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
  if (a.passiveCooldown !== b.passiveCooldown) out.push("passive_cooldown");
  if (hidesForwarded(a.middlewares) !== hidesForwarded(b.middlewares)) out.push("hide_forwarded");
  if ((a.allowH2cUpgrade === true) !== (b.allowH2cUpgrade === true))
    out.push(`allow_h2c_upgrade ${a.allowH2cUpgrade === true}→${b.allowH2cUpgrade === true}`);
  if (
    a.options.header !== b.options.header ||
    a.options.recursive !== b.options.recursive ||
    a.options.from.join(",") !== b.options.from.join(",")
  )
    out.push("options");
  if (
    ta.connect !== tb.connect ||
    ta.responseHeader !== tb.responseHeader ||
    ta.idle !== tb.idle ||
    ta.tunnel !== tb.tunnel ||
    !isDeepStrictEqual(a.timeouts, b.timeouts)
  )
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
