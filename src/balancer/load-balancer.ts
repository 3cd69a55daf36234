import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import type { BalancingConfig } from "../config/types.ts";
import { formatDuration, toMs } from "../duration.ts";
import { gatewayStatus, InvalidArgumentError } from "../errors.ts";
import type { HealthStatus } from "../health/status.ts";
import type { ProxyRequest, ProxyResponse } from "../http-types.ts";
import { rawHeader, rawHeaderCount } from "../http1/raw-headers.ts";
import { endWithError, sendError } from "../http1/respond.ts";
import { acceptsHtml, sendLoadingAsset, sendLoadingPage } from "../idle/loading-page.ts";
import type { Logger } from "../log.ts";
import { silentLogger } from "../log.ts";
import {
  createSelector,
  IpHashSelector,
  type PickContext,
  parseMode,
  readCookie,
  type Selector,
  STICKY_COOKIE,
  StickySelector,
} from "../selectors/index.ts";
import { type RealIpOptions, RealIpResolver } from "./realip.ts";
import { ADMIN_STATES, type AdminState, Server } from "./server.ts";
import { STICKY_PATHS, streamWakeEvents, WAKE_EVENTS_PATH } from "./wake.ts";
import { effectiveWeights, rebalance } from "./weights.ts";

/** The upstream timeouts a forwarder is built with (ms). */
export interface ForwardTimeouts {
  connectTimeout: number;
  responseHeaderTimeout: number;
  idleTimeout: number;
}

/**
 * What the balancer needs of the proxy: it picks a server, the forwarder sends the request there
 * and reports back through the balancer's callbacks (`reportFailure`, `pickRetry`, `retried`).
 * The balancer does not import the proxy; src/load-balancer.ts composes the two.
 */
export interface ForwardPort {
  forward(host: Balancer, req: ProxyRequest, res: ProxyResponse, server: Server): void;
  upgrade(host: Balancer, req: ProxyRequest, socket: Duplex, head: Buffer, server: Server): void;
  release(server: Server): void;
  close(): Promise<void>;
}

export type ForwarderFactory = (timeouts: ForwardTimeouts) => ForwardPort;

const STICKY_PREFIX = `${STICKY_COOKIE}=`;

export interface LoadBalancerOptions {
  /** The service's name. */
  link: string;
  mode?: string;
  sticky?: boolean;
  /** ms or duration string; default 24h. */
  stickyMaxAge?: number | string;
  stickySecret?: string;
  options?: RealIpOptions;
  /**
   * Upstream timeouts (ms or duration strings). `tunnel` (default 1h, 0 = never): an upgraded
   * connection (WebSocket, h2c) with no byte either way this long is closed on both sides; a change
   * applies to tunnels opened after it.
   */
  timeouts?: {
    connect?: number | string;
    responseHeader?: number | string;
    idle?: number | string;
    tunnel?: number | string;
  };
  /**
   * How long a server taken out by a failed request stays out when no active health check can
   * bring it back (ms or duration string; default 10s, nginx's fail_timeout).
   */
  passiveCooldown?: number | string;
  /**
   * Slow start (ms or duration string; default 0 = off): a server that becomes good (added to a
   * started balancer, recovered, woken, back from maint) ramps from ~0 to its weight over this time.
   */
  slowStart?: number | string;
  /**
   * Panic mode (percent 0..100, or a string like "25%"; default 0 = off): when the share of good
   * servers falls below it, requests go to every server as if all were good (Envoy's panic mode).
   */
  panicThreshold?: number | string;
  /**
   * The backend gets no Forwarded, X-Forwarded-* or X-Real-IP header: the client's are dropped
   * and none are added (GoDoxy's `hide_x_forwarded`). Default false.
   */
  hideForwarded?: boolean;
  /**
   * Tunnel `Upgrade: h2c` requests to HTTP/1.1 servers (default false: refused with 400 by
   * `handleUpgrade`). An h2c tunnel carries HTTP/2 requests the proxy never sees: only for backends
   * where every path may be reached (h2c smuggling, docs/edge.md).
   */
  allowH2cUpgrade?: boolean;
  /** Told about operator-relevant changes: health, ejected, drain, maint, ready, weight, drained. */
  onEvent?: (e: BalancerEvent) => void;
  /**
   * Decision introspection: a request whose `switchyard-debug` header equals this token gets a
   * `switchyard-decision` response header. Without a token, only loopback clients get it.
   */
  debugToken?: string;
  /** The clock slow start reads (ms); for tests. Default Date.now. */
  now?: () => number;
  logger?: Logger;
}

/** An event for the operator's log (the server adds the service name). */
export interface BalancerEvent {
  action: string;
  level?: "info" | "warn" | "error";
  server?: string;
  message: string;
}

/** The resolved, immutable view of a balancer's configuration. */
export interface BalancerConfig extends BalancingConfig {
  readonly link: string;
  readonly timeouts: {
    readonly connect: number;
    readonly responseHeader: number;
    readonly idle: number;
    readonly tunnel: number;
  };
  readonly passiveCooldown: number;
  /** No forwarded headers to the backend (LoadBalancerOptions.hideForwarded). */
  readonly hideForwarded: boolean;
  readonly allowH2cUpgrade: boolean;
}

type DrainResult = { drained: boolean; inflight: number };

export type ServiceJSON = {
  name: string;
  status: HealthStatus;
  detail: string;
  started: string;
  uptime: string;
  latency: string;
  extra: {
    config: Record<string, unknown>;
    /** Panic mode: too few good servers, every server takes requests. */
    panic: boolean;
    pool: Record<string, Record<string, unknown>>;
  };
};

interface Member {
  server: Server;
  controller: AbortController | undefined;
  unsubscribe: (() => void) | undefined;
  cooldown: NodeJS.Timeout | undefined;
  /** The status last reported as a `health` event. */
  lastStatus: HealthStatus;
  /** When its slow-start ramp began (clock ms). */
  rampSince: number;
}

/** A per-request pick context the balancer reuses: picks are synchronous. */
interface Ctx extends PickContext {
  cookie: string | undefined;
}

/**
 * One service: a pool of servers, a selector for its mode (wrapped for sticky), health
 * aggregation and the request handler `handle` that picks and proxies.
 */
/**
 * The balancing half of `LoadBalancer` (src/load-balancer.ts): servers, health, selectors, admin
 * states, sticky cookies, wakes. Forwarding is the injected ForwardPort's, built at the first
 * request that needs it (a `pick()`-only user never starts the HTTP/1 client).
 */
export class Balancer {
  #config: BalancerConfig;
  #members: Member[] = [];
  #servers: Server[] = [];
  /** Membership changed since the last rebuild. */
  #dirty = false;
  /** Servers whose health cannot notify; refreshed before each pick. */
  #polled: Server[] = [];
  #selector!: Selector;
  /** The mode's selector (inside #sticky); told about inflight changes when it orders by load. */
  #inner!: Selector;
  #sticky!: StickySelector;
  #realIp!: RealIpResolver;
  #needsIp = false;
  #signal: AbortSignal | undefined;
  #started = 0;
  #forwarder: ForwardPort | undefined;
  readonly #forwarders: ForwarderFactory;
  #logger: Logger;
  #ctx: Ctx = { ip: "", tried: null, cookie: undefined };
  /** Some server has an idle watcher: the loading page's assets are served here. */
  #hasIdle = false;
  /** Some server can be woken: the idle-wake paths take the sticky path. */
  #hasWake = false;
  #cookieTail = "";
  #cookieTailSecure = "";
  #onAvailability = (s: Server) => this.#availabilityChanged(s);
  #onLoad = (s: Server) => this.#inner.loadChanged!(s);
  #onLoadDraining = (s: Server) => this.#drainingLoadChanged(s);
  /** Draining servers with requests still in flight, and who waits for them to reach 0. */
  #drainWatch = new Map<Server, { resolve: (r: DrainResult) => void; timer: NodeJS.Timeout }[]>();
  #onEvent: ((e: BalancerEvent) => void) | undefined;
  #debugToken: Buffer | undefined;
  #now: () => number;
  /** Clock time of the next slow-start step; 0 when no server ramps. */
  #rampNext = 0;
  #panic = false;
  #warnedInsecure = false;

  constructor(options: LoadBalancerOptions, forwarders: ForwarderFactory) {
    if (!options || typeof options.link !== "string" || options.link === "") {
      throw new InvalidArgumentError("LoadBalancer: options.link (the service name) is required");
    }
    this.#logger = (options.logger ?? silentLogger).child({ service: options.link });
    this.#onEvent = options.onEvent;
    this.#now = options.now ?? Date.now;
    this.#debugToken = options.debugToken ? tokenDigest(options.debugToken) : undefined;
    this.#config = resolveConfig(options);
    this.#forwarders = forwarders;
    this.#applyConfig();
    this.handle = this.handle.bind(this);
    this.handleUpgrade = this.handleUpgrade.bind(this);
  }

  get config(): BalancerConfig {
    return this.#config;
  }
  get link(): string {
    return this.#config.link;
  }
  get logger(): Logger {
    return this.#logger;
  }
  /** Whether an `Upgrade: h2c` may be tunnelled (the forwarder asks). */
  get allowH2cUpgrade(): boolean {
    return this.#config.allowH2cUpgrade;
  }
  /** Inactivity (ms, 0 = never) after which a tunnel is closed: read as each tunnel opens. */
  get tunnelTimeout(): number {
    return this.#config.timeouts.tunnel;
  }
  /** The servers in the order they were added, each with its rebalanced weight. */
  get servers(): readonly Server[] {
    if (this.#dirty) this.#rebuild();
    return this.#servers;
  }
  /** Resolves client addresses for this service (used by forwarded headers and logs). */
  get realIp(): RealIpResolver {
    return this.#realIp;
  }
  /** The backend gets no forwarded headers (read by the forwarder per request). */
  get hideForwarded(): boolean {
    return this.#config.hideForwarded;
  }

  /** The forwarder, built at first use with the current timeouts. */
  #fw(): ForwardPort {
    if (this.#forwarder !== undefined) return this.#forwarder;
    const t = this.#config.timeouts;
    this.#forwarder = this.#forwarders({
      connectTimeout: t.connect,
      responseHeaderTimeout: t.responseHeader,
      idleTimeout: t.idle,
    });
    return this.#forwarder;
  }

  #applyConfig(): void {
    const c = this.#config;
    const inner = createSelector(c.mode);
    this.#inner = inner;
    this.#sticky = new StickySelector(inner, c.stickySecret);
    // sticky is always available for the wake paths; only used generally when configured
    this.#selector = c.sticky ? this.#sticky : inner;
    this.#realIp = new RealIpResolver(c.options);
    this.#needsIp = c.mode === "ip_hash";
    const maxAge = Math.max(0, Math.floor(c.stickyMaxAge / 1000));
    this.#cookieTail = `; Path=/; Max-Age=${maxAge}; HttpOnly; SameSite=Lax`;
    this.#cookieTailSecure = `${this.#cookieTail}; Secure`;
    this.#rebuild();
  }

  /** Starts the monitors of every server; aborting `signal` stops them and all timers. */
  start(signal?: AbortSignal): void {
    if (this.#signal && !this.#signal.aborted) return;
    if (signal?.aborted) return;
    const s = signal ?? new AbortController().signal;
    this.#signal = s;
    this.#started = Date.now();
    for (const m of this.#members) this.#startMember(m);
    s.addEventListener(
      "abort",
      () => {
        for (const m of this.#members) this.#stopMember(m);
        void this.#forwarder?.close();
      },
      { once: true },
    );
  }

  addServer(server: Server): void {
    if (!(server instanceof Server)) throw new InvalidArgumentError("addServer: expected a Server");
    const existing = this.#members.findIndex((m) => m.server.key === server.key);
    server.refresh(false);
    const member: Member = {
      server,
      controller: undefined,
      unsubscribe: undefined,
      cooldown: undefined,
      lastStatus: server.status(),
      rampSince: 0,
    };
    if (existing >= 0) {
      const old = this.#members[existing];
      // the same backend under a new entry (weight, name, monitor): it keeps its slow-start ramp
      member.rampSince = old.rampSince;
      if (old.server !== server) server.ramp = old.server.ramp;
      this.#stopMember(old);
      this.#members[existing] = member;
      if (old.server !== server) {
        old.server.onAvailabilityChange = undefined;
        old.server.onLoadChange = undefined;
        this.#unwatchDrain(old.server);
        this.#forwarder?.release(old.server);
      }
      this.#logger.warn(
        { server: server.name, key: server.key },
        "server replaced a server with the same key",
      );
    } else {
      this.#members.push(member);
    }
    server.onAvailabilityChange = this.#onAvailability;
    if (server.insecure && !this.#warnedInsecure) {
      // once per service: the operator chose this, but it must not go unnoticed
      this.#warnedInsecure = true;
      this.#logger.warn(
        { server: server.name },
        `service ${this.link}: backend certificates are not verified (insecure_skip_verify)`,
      );
    }
    if (this.#signal && !this.#signal.aborted) {
      this.#startMember(member);
      // a server added to a running pool ramps up like one that recovered
      if (existing < 0 && server.ready && server.adminState !== "maint") this.#startRamp(member);
    }
    if (server.adminState === "draining") this.#watchDrain(server);
    this.#dirty = true;
    this.#logger.debug({ server: server.name, servers: this.#members.length }, "server added");
  }

  /**
   * Removes that server (or the server with that key); in-flight requests to it finish. A server
   * that was already replaced by another with its key is not in the pool: false, nothing removed.
   */
  removeServer(serverOrKey: Server | string): boolean {
    const i =
      typeof serverOrKey === "string"
        ? this.#members.findIndex((m) => m.server.key === serverOrKey)
        : this.#members.findIndex((m) => m.server === serverOrKey);
    if (i < 0) return false;
    const [m] = this.#members.splice(i, 1);
    this.#stopMember(m);
    m.server.onAvailabilityChange = undefined;
    m.server.onLoadChange = undefined;
    this.#unwatchDrain(m.server);
    this.#dirty = true;
    this.#forwarder?.release(m.server);
    this.#logger.debug({ server: m.server.name, servers: this.#members.length }, "server removed");
    return true;
  }

  /** Changes mode, sticky, real-IP options or timeouts; servers and their state stay. */
  updateConfig(partial: Partial<Omit<LoadBalancerOptions, "logger">>): void {
    const cur = this.#config;
    const next = resolveConfig({
      link: partial.link ?? cur.link,
      mode: partial.mode ?? cur.mode,
      sticky: partial.sticky ?? cur.sticky,
      stickyMaxAge: partial.stickyMaxAge ?? cur.stickyMaxAge,
      stickySecret: "stickySecret" in partial ? partial.stickySecret : cur.stickySecret,
      options: partial.options ?? cur.options,
      timeouts: partial.timeouts ?? cur.timeouts,
      passiveCooldown: partial.passiveCooldown ?? cur.passiveCooldown,
      slowStart: partial.slowStart ?? cur.slowStart,
      panicThreshold: partial.panicThreshold ?? cur.panicThreshold,
      hideForwarded: partial.hideForwarded ?? cur.hideForwarded,
      allowH2cUpgrade: partial.allowH2cUpgrade ?? cur.allowH2cUpgrade,
    });
    if ("debugToken" in partial) {
      this.#debugToken = partial.debugToken ? tokenDigest(partial.debugToken) : undefined;
    }
    if ("onEvent" in partial) this.#onEvent = partial.onEvent;
    // the tunnel timeout is read as each tunnel opens: no new forwarder for it
    const a = cur.timeouts;
    const b = next.timeouts;
    const timeoutsChanged =
      a.connect !== b.connect || a.responseHeader !== b.responseHeader || a.idle !== b.idle;
    this.#config = next;
    if (timeoutsChanged) {
      // the next request builds a forwarder with the new timeouts
      void this.#forwarder?.close();
      this.#forwarder = undefined;
    }
    this.#applyConfig();
  }

  #startMember(m: Member): void {
    const { server } = m;
    const health = server.health;
    if (!health) return;
    const controller = new AbortController();
    m.controller = controller;
    if (health.subscribe) {
      m.unsubscribe = health.subscribe((status, changed) => {
        // a napping server refuses connections by design: a wake, not an ejection, brings it back
        if (status === "healthy" || status === "napping") server.clearPassive();
        server.refresh();
        if (changed) this.#noteStatus(m);
      });
    }
    try {
      health.start?.(controller.signal);
    } catch (err) {
      this.#logger.error({ err, server: server.name }, "health monitor failed to start");
    }
    server.refresh();
  }

  #stopMember(m: Member): void {
    m.controller?.abort();
    m.controller = undefined;
    m.unsubscribe?.();
    m.unsubscribe = undefined;
    clearTimeout(m.cooldown);
    m.cooldown = undefined;
  }

  /**
   * Rebalances weights and rebuilds the selectors. Membership changes only mark the pool dirty
   * and the next read (a pick, `servers`, health) rebuilds, so adding n servers costs O(n), not O(n²).
   */
  #rebuild(): void {
    this.#dirty = false;
    const servers = this.#members.map((m) => m.server);
    const configured = servers.map((s) => s.baseWeight);
    const weights = rebalance(configured);
    const eff = effectiveWeights(configured);
    for (let i = 0; i < servers.length; i++) {
      servers[i].weight = weights[i];
      servers[i].effectiveWeight = eff[i];
      servers[i].index = i;
    }
    this.#servers = servers;
    this.#hasIdle = servers.some((s) => s.idle !== undefined);
    this.#hasWake = servers.some((s) => s.wake !== undefined);
    this.#polled = servers.filter((s) => s.health !== undefined && s.health.subscribe === undefined);
    const onLoad = this.#inner.loadChanged ? this.#onLoad : undefined;
    for (const s of servers) {
      // the pool is being rebuilt anyway: no change notification
      s.refresh(false);
      s.onLoadChange = this.#drainWatch.has(s) ? this.#onLoadDraining : onLoad;
    }
    this.#recompute();
    // #sticky wraps the mode's selector and rebuilds it; #selector is one of the two
    this.#sticky.rebuild({ servers });
  }

  /**
   * Turns health, admin state, backup and panic into each server's `available` (new clients) and
   * `pinnable` (sticky clients of a draining server). New clients go to the primaries while one of
   * them is good and ready, else to the backups; panic mode (below the threshold's share of good
   * servers in that tier) treats every server of the tier as good.
   */
  #recompute(): void {
    const servers = this.#servers;
    let primaryReady = false;
    let backupReady = false;
    for (let i = 0; i < servers.length; i++) {
      const s = servers[i];
      if (s.good && s.adminState === "ready") {
        if (s.backup) backupReady = true;
        else primaryReady = true;
      }
    }
    const tierBackup = !primaryReady && backupReady;
    let panic = false;
    const threshold = this.#config.panicThreshold;
    let total = 0;
    let good = 0;
    if (threshold > 0) {
      for (const s of servers) {
        if (s.backup !== tierBackup || s.adminState === "maint") continue;
        total++;
        if (s.good) good++;
      }
      panic = total > 0 && good * 100 < threshold * total;
    }
    for (let i = 0; i < servers.length; i++) {
      const s = servers[i];
      const inTier = s.backup === tierBackup;
      const ok = inTier && (s.good || panic);
      s.available = ok && s.adminState === "ready";
      s.pinnable = s.adminState === "draining" && (s.backup ? ok : s.good || (panic && inTier));
    }
    if (panic !== this.#panic) {
      this.#panic = panic;
      const message = panic
        ? `panic mode: ${good}/${total} servers are good, below ${threshold}%; routing to every server`
        : "panic mode over";
      this.#emit("health", panic ? "warn" : "info", undefined, message);
    }
  }

  /** Whether the service is in panic mode (too few good servers: every server takes requests). */
  get panic(): boolean {
    if (this.#dirty) this.#rebuild();
    return this.#panic;
  }

  #memberOf(server: Server): Member | undefined {
    if (!this.#dirty && server.index >= 0 && this.#servers[server.index] === server) {
      return this.#members[server.index];
    }
    return this.#members.find((m) => m.server === server);
  }

  #availabilityChanged(server: Server): void {
    const m = this.#memberOf(server);
    if (m === undefined) return;
    this.#noteStatus(m);
    // became ready (recovered, woken, back from a passive ejection): slow start from ~0
    if (server.ready && server.adminState !== "maint") this.#startRamp(m);
    // a dirty pool recomputes every server's availability when it rebuilds
    if (this.#dirty) return;
    this.#recompute();
    this.#sticky.rebuild({ servers: this.#servers });
  }

  /** A `health` event when the server's status differs from the last one reported. */
  #noteStatus(m: Member): void {
    const status = m.server.status();
    if (status === m.lastStatus) return;
    m.lastStatus = status;
    const detail = m.server.detail() || undefined;
    // logged at info as a status transition always was; the event carries warn for a bad status
    this.#emit(
      "health",
      isGoodStatus(status) ? "info" : "warn",
      m.server,
      `server ${m.server.name} is ${status}`,
      { status, detail },
      "info",
    );
  }

  #emit(
    action: string,
    level: "info" | "warn" | "error",
    server: Server | undefined,
    message: string,
    fields?: Record<string, unknown>,
    logLevel: "info" | "warn" | "error" = level,
  ): void {
    this.#logger[logLevel]({ action, server: server?.name, ...fields }, message);
    const on = this.#onEvent;
    if (on === undefined) return;
    try {
      on({ action, level, server: server?.name, message });
    } catch (err) {
      this.#logger.error({ err }, "onEvent listener threw");
    }
  }

  // ---- slow start ----

  #startRamp(m: Member): void {
    const window = this.#config.slowStart;
    if (window <= 0) return;
    const now = this.#now();
    m.rampSince = now;
    m.server.ramp = 0;
    const next = now + rampStep(window);
    if (this.#rampNext === 0 || next < this.#rampNext) this.#rampNext = next;
  }

  /** Moves every ramping server to its share of the window elapsed so far; selectors re-read weights. */
  #rampStep(now: number): void {
    if (this.#dirty) this.#rebuild();
    const window = this.#config.slowStart;
    let ramping = false;
    for (const m of this.#members) {
      const s = m.server;
      if (s.ramp >= 1) continue;
      const f = window <= 0 ? 1 : (now - m.rampSince) / window;
      if (f >= 1) s.ramp = 1;
      else {
        s.ramp = Math.max(f, 0);
        ramping = true;
      }
    }
    this.#rampNext = ramping ? now + rampStep(window) : 0;
    this.#sticky.rebuild({ servers: this.#servers, step: true });
  }

  // ---- operator actions ----

  /** The server `target` names: a Server of this pool, its key (host:port) or its name. */
  find(target: Server | string): Server | undefined {
    if (typeof target !== "string") return this.#members.find((m) => m.server === target)?.server;
    return (
      this.#members.find((m) => m.server.key === target)?.server ??
      this.#members.find((m) => m.server.name === target)?.server
    );
  }

  /**
   * Sets a server's admin state: `ready`; `draining` (no new clients; requests whose sticky cookie
   * names it still go there, in-flight ones finish); `maint` (no requests at all; sticky clients get
   * a fresh pick and a new cookie). Returns the server, or undefined when `target` names none.
   */
  setAdminState(target: Server | string, state: AdminState): Server | undefined {
    if (!ADMIN_STATES.includes(state)) {
      throw new InvalidArgumentError(
        `setAdminState: state must be one of ${ADMIN_STATES.join(", ")}, got ${JSON.stringify(state)}`,
      );
    }
    const server = this.find(target);
    if (server === undefined) return undefined;
    const prev = server.adminState;
    server.applyAdminState(state);
    if (prev === state) return server;
    const m = this.#memberOf(server)!;
    if (prev === "maint" && server.ready) this.#startRamp(m);
    const messages: Record<AdminState, string> = {
      ready: `server ${server.name} is ready (was ${prev})`,
      draining: `server ${server.name} is draining: no new clients, ${server.inflight} in flight`,
      maint: `server ${server.name} is in maintenance: no requests`,
    };
    this.#emit(state === "draining" ? "drain" : state, "info", server, messages[state]);
    // after the drain event: an idle server is drained at once, and `drained` must follow `drain`
    if (state === "draining") this.#watchDrain(server);
    else this.#unwatchDrain(server);
    if (!this.#dirty) {
      this.#recompute();
      this.#sticky.rebuild({ servers: this.#servers });
    }
    return server;
  }

  /**
   * Sets a server's weight at run time (an integer ≥ 0, with the configured weight's rules: 0 = an
   * equal share), or restores the configured one with undefined. The pool is rebalanced to 100.
   */
  setWeight(target: Server | string, weight: number | undefined): Server | undefined {
    if (weight !== undefined && (!Number.isInteger(weight) || weight < 0)) {
      throw new InvalidArgumentError(`setWeight: weight must be an integer >= 0, got ${weight}`);
    }
    const server = this.find(target);
    if (server === undefined) return undefined;
    const prev = server.runtimeWeight;
    server.applyRuntimeWeight(weight);
    if (prev === weight) return server;
    this.#dirty = true;
    this.#rebuild();
    this.#emit(
      "weight",
      "info",
      server,
      weight === undefined
        ? `server ${server.name} weight back to the configured ${server.configuredWeight} (${server.weight} of 100)`
        : `server ${server.name} weight set to ${weight} (${server.weight} of 100)`,
    );
    return server;
  }

  /**
   * Puts a server in `draining`. Without `waitMs` resolves at once; with it, when the server's
   * in-flight count reaches 0 (`drained: true`) or at the deadline (`drained: false`).
   */
  drain(target: Server | string, waitMs?: number): Promise<DrainResult> {
    const server = this.find(target);
    if (server === undefined) {
      return Promise.reject(
        new InvalidArgumentError(
          `drain: service ${this.link} has no server ${JSON.stringify(String(target))}`,
        ),
      );
    }
    this.setAdminState(server, "draining");
    const waiters = this.#drainWatch.get(server);
    if (waitMs === undefined || waiters === undefined || server.adminState !== "draining") {
      return Promise.resolve({ drained: server.inflight === 0, inflight: server.inflight });
    }
    return new Promise((resolve) => {
      const waiter = {
        resolve,
        timer: setTimeout(
          () => {
            const list = this.#drainWatch.get(server);
            const i = list ? list.indexOf(waiter) : -1;
            if (list && i >= 0) list.splice(i, 1);
            resolve({ drained: server.inflight === 0, inflight: server.inflight });
          },
          Math.max(0, waitMs),
        ),
      };
      waiters.push(waiter);
    });
  }

  /** Watches a draining server's in-flight count; `drained` when it is (or reaches) 0. */
  #watchDrain(server: Server): void {
    if (this.#drainWatch.has(server)) return;
    if (server.inflight === 0) {
      this.#emit("drained", "info", server, `server ${server.name} is drained: nothing in flight`);
      return;
    }
    this.#drainWatch.set(server, []);
    server.onLoadChange = this.#onLoadDraining;
  }

  #unwatchDrain(server: Server): void {
    const waiters = this.#drainWatch.get(server);
    if (waiters === undefined) return;
    this.#drainWatch.delete(server);
    if (server.onLoadChange === this.#onLoadDraining) {
      server.onLoadChange = this.#inner.loadChanged ? this.#onLoad : undefined;
    }
    for (const w of waiters) {
      clearTimeout(w.timer);
      w.resolve({ drained: server.inflight === 0, inflight: server.inflight });
    }
  }

  #drainingLoadChanged(server: Server): void {
    if (this.#inner.loadChanged !== undefined) this.#inner.loadChanged(server);
    if (server.inflight !== 0) return;
    this.#unwatchDrain(server);
    this.#emit("drained", "info", server, `server ${server.name} is drained: nothing in flight`);
  }

  /** Passive health: called by the forwarder when a server refused or reset a connection. */
  reportFailure(server: Server, err: unknown): void {
    if (server.passiveDown) return;
    const m = this.#members.find((x) => x.server === server);
    // without a running active checker that reports successes nothing would ever bring it back:
    // use a cooldown like nginx's fail_timeout
    const cooldown = m !== undefined && !(server.health?.checkNow && m.unsubscribe && m.controller);
    const back = cooldown
      ? `back in ${formatDuration(this.#config.passiveCooldown)} (no active health check; passive_cooldown)`
      : "until a health check succeeds";
    this.#emit(
      "ejected",
      "warn",
      server,
      `server ${server.name} failed (${errorText(err)}); taken out ${back}`,
      { err },
    );
    server.markDown();
    if (cooldown) {
      clearTimeout(m.cooldown);
      m.cooldown = setTimeout(() => server.clearPassive(), this.#config.passiveCooldown);
      m.cooldown.unref();
    }
  }

  #refreshPolled(): void {
    const p = this.#polled;
    for (let i = 0; i < p.length; i++) p[i].refresh();
  }

  /** Prepares the reusable pick context for `req`. */
  #prepare(req: ProxyRequest, sticky: boolean): Ctx {
    const ctx = this.#ctx;
    ctx.tried = null;
    ctx.ip = this.#needsIp ? this.clientIp(req) : "";
    ctx.cookie = sticky ? readCookie(req.headers.cookie, STICKY_COOKIE) : undefined;
    return ctx;
  }

  /**
   * Whether a request for `url` takes the sticky path: every request with `sticky`, else only the
   * idle-wake paths, and those only on a service with a server that can be woken (so that the
   * loading page's own requests reach the server being woken); elsewhere they get no cookie.
   */
  #stickyFor(url: string | undefined): boolean {
    return this.#config.sticky || (isStickyPath(url) && this.#wakeable());
  }

  /** Some server of the service has a way to wake it (a library `wake` or an idle provider). */
  #wakeable(): boolean {
    if (this.#dirty) this.#rebuild();
    return this.#hasWake;
  }

  /** The client address after real-IP resolution. */
  clientIp(req: ProxyRequest): string {
    return this.#realIp.resolveRequest(req);
  }

  /** The server `req` would go to, or undefined when none is good. */
  pick(req: ProxyRequest): Server | undefined {
    const sticky = this.#stickyFor(req.url);
    return this.#pickWith(this.#prepare(req, sticky), sticky);
  }

  #pickWith(ctx: Ctx, sticky: boolean): Server | undefined {
    if (this.#dirty) this.#rebuild();
    if (this.#polled.length) this.#refreshPolled();
    if (this.#rampNext !== 0) {
      const now = this.#now();
      if (now >= this.#rampNext) this.#rampStep(now);
    }
    return sticky ? this.#sticky.pick(ctx) : this.#selector.pick(ctx);
  }

  /** Another server for a retry of a request that already tried `tried`. */
  pickRetry(req: ProxyRequest, tried: readonly Server[]): Server | undefined {
    const sticky = this.#stickyFor(req.url);
    const ctx: Ctx = {
      ip: this.#needsIp ? this.clientIp(req) : "",
      tried,
      cookie: sticky ? readCookie(req.headers.cookie, STICKY_COOKIE) : undefined,
    };
    const next = this.#pickWith(ctx, sticky);
    const res = (req as DebugReq)[kDebugRes];
    if (res !== undefined && next !== undefined && !res.headersSent) {
      const last = tried[tried.length - 1];
      const why = `retry after ${last?.passiveDown ? "refused connection" : "failed attempt"}`;
      res.setHeader(DECISION_HEADER, this.#decision(next, why, tried.length + 1));
    }
    return next;
  }

  // ---- decision introspection ----

  /**
   * The token a `switchyard-debug` request header must carry to get `switchyard-decision`;
   * undefined: loopback clients only, with any value.
   */
  set debugToken(token: string | undefined) {
    this.#debugToken = token ? tokenDigest(token) : undefined;
  }

  /** With a debug token: the header must equal it (constant time); without one: loopback clients only. */
  #debugAllowed(value: string, req: ProxyRequest): boolean {
    const token = this.#debugToken;
    if (token !== undefined)
      return process.getBuiltinModule("node:crypto").timingSafeEqual(tokenDigest(value), token);
    return isLoopbackAddress(req.socket.remoteAddress);
  }

  #decision(server: Server, why: string, tries: number): string {
    return `service=${headerSafe(this.link)}; server=${headerSafe(server.name)}; mode=${this.#config.mode}; why="${headerSafe(why).replace(/"/g, "'")}"; tries=${tries}`;
  }

  /** Why `server` was picked: the cookie, or the mode's reason; then backup, panic, slow start. */
  #why(ip: string, server: Server, pinned: boolean): string {
    let why: string;
    if (pinned) why = "sticky cookie";
    else if (this.#inner instanceof IpHashSelector) {
      why = `hash ${ip} -> ${ordinal(this.#inner.rank(ip, server))} choice`;
    } else if (this.#config.mode === "least_conn") why = `least_conn ${server.inflight}/${server.weight}`;
    else why = "round robin";
    if (server.backup) why += ", backup";
    if (this.#panic) why += ", panic";
    if (server.ramp < 1) why += `, slow start ${Math.floor(server.ramp * 100)}%`;
    return why;
  }

  /** A `(req, res)` listener for node:http: picks a server and serves or proxies the request. */
  handle(req: ProxyRequest, res: ProxyResponse): void {
    if (badTarget(req)) {
      sendError(res, 400, "Bad Request");
      return;
    }
    const url = req.url ?? "/";
    const stickyPath = isStickyPath(url);
    const sticky = this.#config.sticky || (stickyPath && this.#wakeable());
    if (stickyPath && pathOf(url) === WAKE_EVENTS_PATH) {
      void streamWakeEvents(this.servers, res).catch((err) => {
        this.#logger.error({ err }, "wake events failed");
        res.destroy();
      });
      return;
    }
    if (stickyPath) {
      if (this.#dirty) this.#rebuild();
      if (this.#hasIdle && sendLoadingAsset(res, pathOf(url))) return;
    }
    const ctx = this.#prepare(req, sticky);
    const server = this.#pickWith(ctx, sticky);
    if (server === undefined) {
      sendError(res, 503, "Service Unavailable");
      return;
    }
    const pinned = sticky && this.#sticky.lookup(ctx.cookie) === server;
    if (server.wake !== undefined) {
      const st = server.status();
      if (st === "napping" || st === "starting") {
        this.#handleSleeping(req, res, ctx, sticky, server);
        return;
      }
    }
    if (sticky && !pinned) this.setStickyCookie(req, res, server);
    // decision introspection: a scan of the raw header names (lengths compared first), which
    // does not build req.headers (lazy in node:http and in the server's own front)
    const debug = rawHeader(req.rawHeaders, DEBUG_HEADER);
    if (debug !== undefined && this.#debugAllowed(debug, req)) {
      (req as DebugReq)[kDebugRes] = res;
      res.setHeader(DECISION_HEADER, this.#decision(server, this.#why(ctx.ip, server, pinned), 1));
    }
    if (server.idle !== undefined) server.idle.touch();
    this.dispatch(req, res, server);
  }

  /**
   * A pick that landed on a napping or starting server. A ready server of the service answers
   * instead (the sleeping one is woken in the background) unless the sticky cookie names the
   * sleeping one; otherwise: 403 off the start endpoint, the loading page for a browser, or the
   * request held (body unread) until the wake ends, then proxied, 504 or 502.
   */
  #handleSleeping(req: ProxyRequest, res: ProxyResponse, ctx: Ctx, sticky: boolean, server: Server): void {
    const named = ctx.cookie !== undefined && this.#sticky.lookup(ctx.cookie) === server;
    if (!named) {
      const ready = this.#readyOther(ctx, sticky, server);
      if (ready !== undefined) {
        server
          .tryWake()
          .catch((err) => this.#logger.warn({ err, server: server.name }, "background wake failed"));
        if (sticky && this.#sticky.lookup(ctx.cookie) !== ready) this.setStickyCookie(req, res, ready);
        ready.idle?.touch();
        this.dispatch(req, res, ready);
        return;
      }
    }
    const idle = server.idle;
    const url = req.url ?? "/";
    if (idle !== undefined) {
      if (idle.startEndpoint !== undefined && pathOf(url) !== idle.startEndpoint) {
        sendError(res, 403, `Forbidden: server ${server.name} can only be woken through its start endpoint`);
        return;
      }
      // idle services take the sticky path on wake so the page's own requests find this server
      if (this.#sticky.lookup(ctx.cookie) !== server) this.setStickyCookie(req, res, server);
      if (!idle.noLoadingPage && acceptsHtml(req.method, url, req.headers.accept)) {
        server.tryWake().catch((err) => this.#logger.warn({ err, server: server.name }, "wake failed"));
        sendLoadingPage(res, this.#config.link, server.name);
        return;
      }
    } else if (sticky && this.#sticky.lookup(ctx.cookie) !== server) {
      this.setStickyCookie(req, res, server);
    }
    let gone = false;
    const onClose = () => {
      gone = true;
    };
    res.once("close", onClose);
    server.tryWake().then(
      () => {
        res.off("close", onClose);
        // a client that left while its server woke is not forwarded
        if (gone || res.destroyed || req.destroyed) return;
        server.idle?.touch();
        this.dispatch(req, res, server);
      },
      (err) => {
        res.off("close", onClose);
        if (gone || res.destroyed) return;
        this.#logger.error({ err, server: server.name }, "wake failed");
        // tryWake's error carries the watcher's IdleError as its cause
        if (gatewayStatus((err as Error)?.cause) === 504) {
          sendError(res, 504, `Gateway Timeout: server ${server.name} did not wake in time`);
        } else {
          sendError(
            res,
            502,
            `Bad Gateway: server ${server.name} failed to wake: ${publicReason(err, server)}`,
          );
        }
      },
    );
  }

  /** A good server other than `sleeping` that is ready (not napping or starting), by the mode's choice. */
  #readyOther(ctx: Ctx, sticky: boolean, sleeping: Server): Server | undefined {
    const tried: Server[] = [sleeping];
    const servers = this.#servers;
    for (let i = 0; i < servers.length; i++) {
      ctx.tried = tried;
      // a sticky cookie already named someone else; pick by the mode alone
      const next = (sticky ? this.#inner : this.#selector).pick(ctx);
      if (next === undefined) return undefined;
      const st = next.status();
      if (st !== "napping" && st !== "starting") return next;
      tried.push(next);
    }
    return undefined;
  }

  /** Sends `req` to `server`: its own handler, or the proxy (with retries and passive health). */
  dispatch(req: ProxyRequest, res: ProxyResponse, server: Server): void {
    if (server.handler) {
      server.inflight++;
      res.once("close", () => server.inflight--);
      try {
        server.handler(req, res);
      } catch (err) {
        this.#logger.error({ err, server: server.name }, "server handler threw");
        sendError(res, 500, "Internal Server Error");
      }
      return;
    }
    this.#fw().forward(this, req, res, server);
  }

  /** An `upgrade` listener for node:http: picks a server and pipes the upgraded connection (WebSocket). */
  handleUpgrade(req: ProxyRequest, socket: Duplex, head: Buffer): void {
    if (badTarget(req)) {
      endWithError(socket, 400, "Bad Request");
      return;
    }
    const sticky = this.#stickyFor(req.url);
    const ctx = this.#prepare(req, sticky);
    let server = this.#pickWith(ctx, sticky);
    if (server === undefined || server.handler) {
      endWithError(socket, 503, "Service Unavailable");
      return;
    }
    if (server.wake !== undefined) {
      const st = server.status();
      if (st === "napping" || st === "starting") {
        const sleeping = server;
        const named = ctx.cookie !== undefined && this.#sticky.lookup(ctx.cookie) === sleeping;
        const ready = named ? undefined : this.#readyOther(ctx, sticky, sleeping);
        if (ready === undefined || ready.handler) {
          this.#upgradeAfterWake(req, socket, head, sleeping);
          return;
        }
        sleeping
          .tryWake()
          .catch((err) => this.#logger.warn({ err, server: sleeping.name }, "background wake failed"));
        server = ready;
      }
    }
    if (server.idle !== undefined) server.idle.touch();
    this.#fw().upgrade(this, req, socket, head, server);
  }

  /** An upgrade (WebSocket) to a napping server waits for the wake; no loading page here. */
  #upgradeAfterWake(req: ProxyRequest, socket: Duplex, head: Buffer, server: Server): void {
    const start = server.idle?.startEndpoint;
    if (start !== undefined && pathOf(req.url ?? "/") !== start) {
      endWithError(socket, 403, "Forbidden");
      return;
    }
    server.tryWake().then(
      () => {
        if (socket.destroyed) return;
        server.idle?.touch();
        this.#fw().upgrade(this, req, socket, head, server);
      },
      (err) => {
        this.#logger.error({ err, server: server.name }, "wake failed");
        if (gatewayStatus((err as Error)?.cause) === 504) endWithError(socket, 504, "Gateway Timeout");
        else endWithError(socket, 502, "Bad Gateway");
      },
    );
  }

  setStickyCookie(req: ProxyRequest, res: ProxyResponse, server: Server): void {
    if (this.#dirty) this.#rebuild();
    const secure = (req.socket as TLSSocket).encrypted === true || this.#forwardedHttps(req);
    const value = `${STICKY_COOKIE}=${this.#sticky.valueFor(server)}${secure ? this.#cookieTailSecure : this.#cookieTail}`;
    const prev = res.getHeader("set-cookie");
    if (prev === undefined) res.setHeader("set-cookie", value);
    else res.setHeader("set-cookie", [...(Array.isArray(prev) ? prev : [String(prev)]), value]);
  }

  /** The forwarder retried on `next`: a sticky cookie set for the failed server now names `next`. */
  retried(req: ProxyRequest, res: ProxyResponse, next: Server): void {
    const prev = res.getHeader("set-cookie");
    if (prev === undefined) return;
    const list = Array.isArray(prev) ? prev : [String(prev)];
    const kept = list.filter((c) => !c.startsWith(STICKY_PREFIX));
    if (kept.length === list.length) return;
    if (kept.length > 0) res.setHeader("set-cookie", kept);
    else res.removeHeader("set-cookie");
    this.setStickyCookie(req, res, next);
  }

  #forwardedHttps(req: ProxyRequest): boolean {
    const proto = req.headers["x-forwarded-proto"];
    if (typeof proto !== "string") return false;
    // a chain of proxies may send a list; the first entry is what the client used
    const comma = proto.indexOf(",");
    if ((comma < 0 ? proto : proto.slice(0, comma)).trim().toLowerCase() !== "https") return false;
    return this.#realIp.isTrusted(req.socket.remoteAddress);
  }

  // ---- health aggregation ----

  status(): HealthStatus {
    const servers = this.servers;
    if (servers.length === 0) return "unknown";
    return servers.some(inService) ? "healthy" : "unhealthy";
  }

  detail(): string {
    const servers = this.servers;
    const good = servers.filter(inService).length;
    return `${good}/${servers.length} servers are healthy`;
  }

  /** ms since start (0 before start). */
  uptime(): number {
    return this.#started ? Date.now() - this.#started : 0;
  }

  /** Mean latency (ms) over good servers. */
  latency(): number {
    const good = this.servers.filter(inService);
    if (good.length === 0) return 0;
    return good.reduce((a, s) => a + s.latency(), 0) / good.length;
  }

  toJSON(): ServiceJSON {
    const c = this.#config;
    const pool: Record<string, Record<string, unknown>> = {};
    for (const s of this.servers) {
      pool[s.key] = {
        name: s.name,
        url: s.url.href.replace(/\/$/, ""),
        weight: s.weight,
        configured_weight: s.configuredWeight,
        runtime_weight: s.runtimeWeight ?? null,
        backup: s.backup,
        admin_state: s.adminState,
        // idle-managed (started on demand, stopped when idle): the admin wake/stop apply
        idle: s.idle !== undefined,
        slow_start: s.ramp < 1 ? `${Math.floor(s.ramp * 100)}%` : null,
        status: s.status(),
        available: s.canTakeRequests(),
        detail: s.detail(),
        latency: formatDuration(Math.round(s.latency())),
        inflight: s.inflight,
      };
    }
    return {
      name: c.link,
      status: this.status(),
      detail: this.detail(),
      started: new Date(this.#started || Date.now()).toISOString(),
      uptime: formatDuration(Math.floor(this.uptime() / 1000) * 1000),
      latency: formatDuration(Math.round(this.latency())),
      extra: {
        config: {
          link: c.link,
          mode: c.mode,
          sticky: c.sticky,
          sticky_max_age: formatDuration(c.stickyMaxAge),
          sticky_secret: c.stickySecret ? "(set)" : undefined,
          options: { header: c.options.header, from: c.options.from, recursive: c.options.recursive },
          slow_start: formatDuration(c.slowStart),
          panic_threshold: `${c.panicThreshold}%`,
          allow_h2c_upgrade: c.allowH2cUpgrade,
        },
        panic: this.panic,
        pool,
      },
    };
  }
}

/**
 * RFC 9112 §3.2: more than one Host line is a 400 (a backend might read the other one), and so
 * is an absolute-form target naming another host than Host (HAProxy's rule). An absolute-form
 * target that agrees is rewritten to origin-form, which is what backends expect.
 */
function badTarget(req: ProxyRequest): boolean {
  if (rawHeaderCount(req.rawHeaders, "host") > 1) return true;
  const url = req.url;
  if (url === undefined || url.charCodeAt(0) === 47 /* / */ || url === "*") return false;
  let target: URL;
  try {
    target = new URL(url);
    const host = req.headers.host;
    if (host === undefined || new URL(`http://${host}`).hostname !== target.hostname) return true;
  } catch {
    return true;
  }
  if (target.protocol !== "http:" && target.protocol !== "https:") return true;
  req.url = target.pathname + target.search;
  return false;
}

/** A wake error's reason for a client: never the server's address. */
function publicReason(err: unknown, server: Server): string {
  // the deepest error of switchyard's own (an IdleError) says it best; else the first cause
  let e: unknown = err instanceof Error && err.cause !== undefined ? err.cause : err;
  for (let c: unknown = e; c instanceof Error; c = c.cause) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === "string" && code.startsWith("ERR_SWITCHYARD")) e = c;
  }
  let text = e instanceof Error ? e.message : String(e);
  for (const secret of [server.key, server.url.host, server.url.hostname]) {
    if (secret) text = text.split(secret).join(server.name);
  }
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

function pathOf(url: string): string {
  const q = url.indexOf("?");
  return q < 0 ? url : url.slice(0, q);
}

/** Whether `url` is one of the idle-wake paths (cheap first-character test before the lookup). */
function isStickyPath(url: string | undefined): boolean {
  if (url === undefined || url.length < 2) return false;
  const c = url.charCodeAt(1);
  return (c === 36 /* $ */ || c === 102) /* f */ && STICKY_PATHS.has(pathOf(url));
}

function resolveConfig(o: LoadBalancerOptions): BalancerConfig {
  const opts = o.options ?? {};
  const realIp = new RealIpResolver(opts); // validates `from`
  const stickyMaxAge = toMs(o.stickyMaxAge, 24 * 3600 * 1000, "stickyMaxAge");
  if (stickyMaxAge < 0) throw new InvalidArgumentError("stickyMaxAge must be >= 0");
  if (o.stickySecret !== undefined && typeof o.stickySecret !== "string") {
    throw new InvalidArgumentError("stickySecret must be a string");
  }
  const t = o.timeouts ?? {};
  const config: BalancerConfig = {
    link: o.link,
    mode: parseMode(o.mode),
    sticky: o.sticky === true,
    stickyMaxAge,
    stickySecret: o.stickySecret || undefined,
    options: Object.freeze({
      header: opts.header ?? "X-Real-IP",
      from: Object.freeze([...realIp.from]),
      recursive: realIp.recursive,
    }),
    timeouts: Object.freeze({
      connect: toMs(t.connect, 5000, "timeouts.connect"),
      responseHeader: toMs(t.responseHeader, 60000, "timeouts.responseHeader"),
      idle: toMs(t.idle, 60000, "timeouts.idle"),
      tunnel: toMs(t.tunnel, 3_600_000, "timeouts.tunnel"),
    }),
    passiveCooldown: toMs(o.passiveCooldown, 10000, "passiveCooldown"),
    slowStart: toMs(o.slowStart, 0, "slowStart"),
    panicThreshold: parsePercent(o.panicThreshold),
    hideForwarded: o.hideForwarded === true,
    allowH2cUpgrade: o.allowH2cUpgrade === true,
  };
  if (config.slowStart < 0) throw new InvalidArgumentError("slowStart must be >= 0");
  if (config.timeouts.tunnel < 0) throw new InvalidArgumentError("timeouts.tunnel must be >= 0");
  return Object.freeze(config);
}

/** A percentage 0..100 from a number or a string like "25%" (or "25"). */
export function parsePercent(v: number | string | undefined): number {
  if (v === undefined) return 0;
  const n = typeof v === "number" ? v : Number(String(v).trim().replace(/%$/, ""));
  if (typeof v === "string" && String(v).trim() === "") return 0;
  if (!Number.isFinite(n) || n < 0 || n > 100) {
    throw new InvalidArgumentError(
      `panicThreshold must be a percentage from 0 to 100, got ${JSON.stringify(v)}`,
    );
  }
  return n;
}

/** How often a slow-start ramp moves on: 50 steps over the window, at most every 20 ms. */
function rampStep(window: number): number {
  return Math.max(window / 50, 20);
}

/** Good and not in maintenance: counts for the service's status and detail. */
/** Good now (health read at call time: a custom health object need not notify) and not in maint. */
function inService(s: Server): boolean {
  return s.canTakeRequests() && s.adminState !== "maint";
}

function isGoodStatus(s: HealthStatus): boolean {
  return s === "healthy" || s === "napping" || s === "starting";
}

function errorText(err: unknown): string {
  if (err instanceof Error) return (err as { code?: string }).code ?? err.message;
  return String(err);
}

const DECISION_HEADER = "switchyard-decision";
const DEBUG_HEADER = "switchyard-debug";

/** The response of a request that asked for its decision (read by retries to update the header). */
const kDebugRes: unique symbol = Symbol("switchyard.debugRes");
type DebugReq = ProxyRequest & { [kDebugRes]?: ProxyResponse };

function isLoopbackAddress(a: string | undefined): boolean {
  if (a === undefined) return false;
  return a === "::1" || a.startsWith("127.") || a.startsWith("::ffff:127.");
}

/** Drops what a header value cannot carry (control characters). */
function headerSafe(s: string): string {
  return s.replace(/[\x00-\x1f\x7f]/g, "?");
}

function ordinal(n: number): string {
  const t = n % 100;
  if (t >= 11 && t <= 13) return `${n}th`;
  return `${n}${["th", "st", "nd", "rd"][n % 10] ?? "th"}`;
}

/** Tokens are compared as SHA-256 digests with timingSafeEqual: constant time whatever the lengths. */
function tokenDigest(token: string): Buffer {
  return process.getBuiltinModule("node:crypto").createHash("sha256").update(token).digest();
}
