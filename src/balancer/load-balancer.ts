import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import type { BalancingConfig } from "../config/types.ts";
import { formatDuration, toMs } from "../duration.ts";
import { InvalidArgumentError } from "../errors.ts";
import type { HealthStatus } from "../health/status.ts";
import { acceptsHtml, sendLoadingAsset, sendLoadingPage } from "../idle/loading-page.ts";
import type { Logger } from "../log.ts";
import { silentLogger } from "../log.ts";
import { createForwarder, type Forwarder, type ForwarderOptions } from "../proxy/forward.ts";
import { endWithError, sendError } from "../proxy/respond.ts";
import {
  createSelector,
  type PickContext,
  parseMode,
  readCookie,
  type Selector,
  STICKY_COOKIE,
  StickySelector,
} from "../selectors/index.ts";
import { type RealIpOptions, RealIpResolver } from "./realip.ts";
import { Server } from "./server.ts";
import { STICKY_PATHS, streamWakeEvents, WAKE_EVENTS_PATH } from "./wake.ts";
import { effectiveWeights, rebalance } from "./weights.ts";

export interface LoadBalancerOptions {
  /** The service's name. */
  link: string;
  mode?: string;
  sticky?: boolean;
  /** ms or duration string; default 24h. */
  stickyMaxAge?: number | string;
  stickySecret?: string;
  options?: RealIpOptions;
  /** Upstream timeouts (ms or duration strings). */
  timeouts?: { connect?: number | string; responseHeader?: number | string; idle?: number | string };
  /** How long a passively ejected server without an active checker stays out (default 10s). */
  passiveCooldown?: number | string;
  logger?: Logger;
}

/** The resolved, immutable view of a balancer's configuration. */
export interface BalancerConfig extends BalancingConfig {
  readonly link: string;
  readonly timeouts: { readonly connect: number; readonly responseHeader: number; readonly idle: number };
  readonly passiveCooldown: number;
}

export type ServiceJSON = {
  name: string;
  status: HealthStatus;
  detail: string;
  started: string;
  uptime: string;
  latency: string;
  extra: { config: Record<string, unknown>; pool: Record<string, Record<string, unknown>> };
};

interface Member {
  server: Server;
  controller: AbortController | undefined;
  unsubscribe: (() => void) | undefined;
  cooldown: NodeJS.Timeout | undefined;
}

/** A per-request pick context the balancer reuses: picks are synchronous. */
interface Ctx extends PickContext {
  cookie: string | undefined;
}

/**
 * One service: a pool of servers, a selector for its mode (wrapped for sticky), health
 * aggregation and the request handler `handle` that picks and proxies.
 */
export class LoadBalancer {
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
  #forwarder: Forwarder;
  #logger: Logger;
  #ctx: Ctx = { ip: "", tried: null, cookie: undefined };
  /** Some server has an idle watcher: the loading page's assets are served here. */
  #hasIdle = false;
  #cookieTail = "";
  #cookieTailSecure = "";
  #onAvailability = (s: Server) => this.#availabilityChanged(s);
  #onLoad = (s: Server) => this.#inner.loadChanged!(s);

  constructor(options: LoadBalancerOptions) {
    if (!options || typeof options.link !== "string" || options.link === "") {
      throw new InvalidArgumentError("LoadBalancer: options.link (the service name) is required");
    }
    this.#logger = (options.logger ?? silentLogger).child({ service: options.link });
    this.#config = resolveConfig(options);
    this.#forwarder = createForwarder(this.#forwarderOptions());
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
  /** The servers in the order they were added, each with its rebalanced weight. */
  get servers(): readonly Server[] {
    if (this.#dirty) this.#rebuild();
    return this.#servers;
  }
  /** Resolves client addresses for this service (used by forwarded headers and logs). */
  get realIp(): RealIpResolver {
    return this.#realIp;
  }

  #forwarderOptions(): ForwarderOptions {
    const t = this.#config.timeouts;
    return { connectTimeout: t.connect, responseHeaderTimeout: t.responseHeader, idleTimeout: t.idle };
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
        void this.#forwarder.close();
      },
      { once: true },
    );
  }

  addServer(server: Server): void {
    if (!(server instanceof Server)) throw new InvalidArgumentError("addServer: expected a Server");
    const existing = this.#members.findIndex((m) => m.server.key === server.key);
    const member: Member = { server, controller: undefined, unsubscribe: undefined, cooldown: undefined };
    if (existing >= 0) {
      const old = this.#members[existing];
      this.#stopMember(old);
      this.#members[existing] = member;
      if (old.server !== server) {
        old.server.onAvailabilityChange = undefined;
        old.server.onLoadChange = undefined;
        this.#forwarder.release(old.server);
      }
      this.#logger.warn(
        { server: server.name, key: server.key },
        "server replaced a server with the same key",
      );
    } else {
      this.#members.push(member);
    }
    server.onAvailabilityChange = this.#onAvailability;
    if (this.#signal && !this.#signal.aborted) this.#startMember(member);
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
    this.#dirty = true;
    this.#forwarder.release(m.server);
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
    });
    const timeoutsChanged = JSON.stringify(next.timeouts) !== JSON.stringify(cur.timeouts);
    this.#config = next;
    if (timeoutsChanged) {
      const old = this.#forwarder;
      this.#forwarder = createForwarder(this.#forwarderOptions());
      void old.close();
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
        if (changed) {
          this.#logger.info(
            { server: server.name, status, detail: server.detail() || undefined },
            `server ${server.name} is ${status}`,
          );
        }
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
    const configured = servers.map((s) => s.configuredWeight);
    const weights = rebalance(configured);
    const eff = effectiveWeights(configured);
    for (let i = 0; i < servers.length; i++) {
      servers[i].weight = weights[i];
      servers[i].effectiveWeight = eff[i];
      servers[i].index = i;
    }
    this.#servers = servers;
    this.#hasIdle = servers.some((s) => s.idle !== undefined);
    this.#polled = servers.filter((s) => s.health !== undefined && s.health.subscribe === undefined);
    const onLoad = this.#inner.loadChanged ? this.#onLoad : undefined;
    for (const s of servers) {
      // the pool is being rebuilt anyway: no change notification
      s.available = s.canTakeRequests();
      s.onLoadChange = onLoad;
    }
    // #sticky wraps the mode's selector and rebuilds it; #selector is one of the two
    this.#sticky.rebuild({ servers });
  }

  #availabilityChanged(server: Server): void {
    // a dirty pool recomputes every server's availability when it rebuilds
    if (this.#dirty || server.index < 0 || this.#servers[server.index] !== server) return;
    this.#sticky.rebuild({ servers: this.#servers });
  }

  /** Passive health: called by the forwarder when a server refused or reset a connection. */
  reportFailure(server: Server, err: unknown): void {
    if (server.passiveDown) return;
    this.#logger.warn(
      { server: server.name, err },
      `server ${server.name} failed; taken out until a check succeeds`,
    );
    server.markDown();
    const m = this.#members.find((x) => x.server === server);
    // without a running active checker that reports successes nothing would ever bring it back:
    // use a cooldown like nginx's fail_timeout
    if (m && !(server.health?.checkNow && m.unsubscribe && m.controller)) {
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
  #prepare(req: IncomingMessage, sticky: boolean): Ctx {
    const ctx = this.#ctx;
    ctx.tried = null;
    ctx.ip = this.#needsIp ? this.clientIp(req) : "";
    ctx.cookie = sticky ? readCookie(req.headers.cookie, STICKY_COOKIE) : undefined;
    return ctx;
  }

  /** The client address after real-IP resolution. */
  clientIp(req: IncomingMessage): string {
    return this.#realIp.resolve(req.socket.remoteAddress, req.headers);
  }

  /** The server `req` would go to, or undefined when none is good. */
  pick(req: IncomingMessage): Server | undefined {
    const sticky = this.#config.sticky || isStickyPath(req.url);
    return this.#pickWith(this.#prepare(req, sticky), sticky);
  }

  #pickWith(ctx: Ctx, sticky: boolean): Server | undefined {
    if (this.#dirty) this.#rebuild();
    if (this.#polled.length) this.#refreshPolled();
    return sticky ? this.#sticky.pick(ctx) : this.#selector.pick(ctx);
  }

  /** Another server for a retry of a request that already tried `tried`. */
  pickRetry(req: IncomingMessage, tried: readonly Server[]): Server | undefined {
    const sticky = this.#config.sticky || isStickyPath(req.url);
    const ctx: Ctx = {
      ip: this.#needsIp ? this.clientIp(req) : "",
      tried,
      cookie: sticky ? readCookie(req.headers.cookie, STICKY_COOKIE) : undefined,
    };
    return this.#pickWith(ctx, sticky);
  }

  /** A `(req, res)` listener for node:http: picks a server and serves or proxies the request. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    if (badTarget(req)) {
      sendError(res, 400, "Bad Request");
      return;
    }
    const url = req.url ?? "/";
    const stickyPath = isStickyPath(url);
    const sticky = this.#config.sticky || stickyPath;
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
    if (server.wake !== undefined) {
      const st = server.status();
      if (st === "napping" || st === "starting") {
        this.#handleSleeping(req, res, ctx, sticky, server);
        return;
      }
    }
    if (sticky && this.#sticky.lookup(ctx.cookie) !== server) this.setStickyCookie(req, res, server);
    if (server.idle !== undefined) server.idle.touch();
    this.dispatch(req, res, server);
  }

  /**
   * A pick that landed on a napping or starting server. A ready server of the service answers
   * instead (the sleeping one is woken in the background) unless the sticky cookie names the
   * sleeping one; otherwise: 403 off the start endpoint, the loading page for a browser, or the
   * request held (body unread) until the wake ends, then proxied, 504 or 502.
   */
  #handleSleeping(
    req: IncomingMessage,
    res: ServerResponse,
    ctx: Ctx,
    sticky: boolean,
    server: Server,
  ): void {
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
        const code = (err as Error)?.cause && ((err as Error).cause as { code?: string }).code;
        this.#logger.error({ err, server: server.name }, "wake failed");
        if (code === "ERR_SWITCHYARD_WAKE_TIMEOUT") {
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
  dispatch(req: IncomingMessage, res: ServerResponse, server: Server): void {
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
    this.#forwarder.forward(this, req, res, server);
  }

  /** An `upgrade` listener for node:http: picks a server and pipes the upgraded connection (WebSocket). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (badTarget(req)) {
      endWithError(socket, 400, "Bad Request");
      return;
    }
    const sticky = this.#config.sticky || isStickyPath(req.url);
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
    this.#forwarder.upgrade(this, req, socket, head, server);
  }

  /** An upgrade (WebSocket) to a napping server waits for the wake; no loading page here. */
  #upgradeAfterWake(req: IncomingMessage, socket: Duplex, head: Buffer, server: Server): void {
    const start = server.idle?.startEndpoint;
    if (start !== undefined && pathOf(req.url ?? "/") !== start) {
      endWithError(socket, 403, "Forbidden");
      return;
    }
    server.tryWake().then(
      () => {
        if (socket.destroyed) return;
        server.idle?.touch();
        this.#forwarder.upgrade(this, req, socket, head, server);
      },
      (err) => {
        this.#logger.error({ err, server: server.name }, "wake failed");
        const code = (err as Error)?.cause && ((err as Error).cause as { code?: string }).code;
        if (code === "ERR_SWITCHYARD_WAKE_TIMEOUT") endWithError(socket, 504, "Gateway Timeout");
        else endWithError(socket, 502, "Bad Gateway");
      },
    );
  }

  setStickyCookie(req: IncomingMessage, res: ServerResponse, server: Server): void {
    if (this.#dirty) this.#rebuild();
    const secure = (req.socket as TLSSocket).encrypted === true || this.#forwardedHttps(req);
    const value = `${STICKY_COOKIE}=${this.#sticky.valueFor(server)}${secure ? this.#cookieTailSecure : this.#cookieTail}`;
    const prev = res.getHeader("set-cookie");
    if (prev === undefined) res.setHeader("set-cookie", value);
    else res.setHeader("set-cookie", [...(Array.isArray(prev) ? prev : [String(prev)]), value]);
  }

  #forwardedHttps(req: IncomingMessage): boolean {
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
    // read each server's health now: a custom health object need not notify
    return servers.some((s) => s.canTakeRequests()) ? "healthy" : "unhealthy";
  }

  detail(): string {
    const servers = this.servers;
    const good = servers.filter((s) => s.canTakeRequests()).length;
    return `${good}/${servers.length} servers are healthy`;
  }

  /** ms since start (0 before start). */
  uptime(): number {
    return this.#started ? Date.now() - this.#started : 0;
  }

  /** Mean latency (ms) over good servers. */
  latency(): number {
    const good = this.servers.filter((s) => s.canTakeRequests());
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
        },
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
function badTarget(req: IncomingMessage): boolean {
  const raw = req.rawHeaders;
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === 4 && raw[i].toLowerCase() === "host" && ++hosts > 1) return true;
  }
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
    }),
    passiveCooldown: toMs(o.passiveCooldown, 10000, "passiveCooldown"),
  };
  return Object.freeze(config);
}
