/**
 * The idle policy of one server: single-flight wakes (dependencies first), readiness polling
 * after a start, the idle timer, stopping with the configured method, the error back-off, and
 * the server's health status while it naps (`napping` / `starting` / `healthy` / `error`).
 *
 * It is the server's `health` (a HealthSource) and its `idle` (the balancer's ServerIdle): the
 * balancer reads the status like any monitor's, and wakes, touches and follows progress through it.
 * Providers (run, exec, docker) only start, stop and report; every decision is made here.
 */
import * as net from "node:net";
import type * as tls from "node:tls";
import type { EventSink } from "../admin/events.ts";
import type { ServerIdle, WakeProgress } from "../balancer/server.ts";
import { formatDuration, toMs } from "../duration.ts";
import { IdleError, InvalidArgumentError } from "../errors.ts";
import type { HealthSource, HealthStatus } from "../health/status.ts";
import { type Logger, silentLogger } from "../log.ts";
import type { IdleProvider, ProviderState, StopMethod } from "./provider.ts";

// node:http taken with getBuiltinModule, not an ES import: importing it as an ES module reads
// every export, and its lazy ones (WebSocket & co.) load undici, tls, http2 and zlib: ~13 MB of RSS
const nodeHttp = process.getBuiltinModule("node:http");

type ReadinessTls = Pick<tls.ConnectionOptions, "secureContext" | "servername" | "rejectUnauthorized">;

export const STOP_METHODS: readonly StopMethod[] = ["stop", "pause", "kill"];
/** A failed wake is not retried before this many ms. */
export const ERROR_BACKOFF = 5_000;
/** Readiness poll period after a start. */
export const READY_POLL = 200;

/** Counts for the wake/stop metrics; the server's Metrics implements it. */
export interface IdleMetricsSink {
  wake(service: string, server: string, result: "ok" | "error" | "timeout", seconds: number): void;
  idleStop(service: string, server: string): void;
}

export interface IdleWatcherOptions {
  /** The service's name (logs, events, metrics, depends_on). */
  service: string;
  /** The server's name. */
  server: string;
  /** The server's URL: readiness is probed there. */
  url: string | URL;
  provider: IdleProvider;
  /** ms or duration; 0 (default) = never stopped for idleness (and started with the watcher). */
  idleTimeout?: number | string;
  /** ms or duration; start + ready must take at most this (default 3m). */
  wakeTimeout?: number | string;
  /** ms or duration; a stop may take this long before the target is killed (default 1m). */
  stopTimeout?: number | string;
  stopMethod?: StopMethod;
  stopSignal?: string;
  /** Only a request for this path may wake. */
  startEndpoint?: string;
  noLoadingPage?: boolean;
  /** Readiness probe after a start: HEAD (GET with useGet) on `path`, 2xx/3xx = ready; without it a TCP connect. */
  readiness?: {
    path: string;
    useGet?: boolean;
    /**
     * TLS connect options for an https:// url, as the proxy connects (src/upstream-tls.ts
     * `tlsConnectOptions`); without them certificates are not checked by this probe.
     */
    tls?: ReadinessTls;
  };
  /** The normal health check, run while the server is up (and stopped while it naps). */
  health?: HealthSource;
  /** Watchers woken first (each ready before this one starts) and stopped after it. */
  dependsOn?: () => readonly IdleWatcher[];
  /** Watchers that depend on this one (a dependency is not stopped while one of them is up). */
  dependents?: () => readonly IdleWatcher[];
  /** Requests in flight to the server (WebSockets included): never stopped while > 0. */
  inflight?: () => number;
  logger?: Logger;
  events?: EventSink;
  metrics?: IdleMetricsSink;
  /** ms a failed wake blocks the next (default 5 s). */
  errorBackoff?: number;
  /** ms between readiness probes (default 200). */
  pollInterval?: number;
}

type Phase = "napping" | "starting" | "ready" | "stopping" | "error";

const SIGNALS = new Set(["SIGINT", "SIGTERM", "SIGKILL", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2"]);

/** "TERM", "sigterm", "SIGTERM" → "SIGTERM"; undefined when not a signal a stop can send. */
export function normalizeSignal(name: string): string | undefined {
  const up = name.trim().toUpperCase();
  const full = up.startsWith("SIG") ? up : `SIG${up}`;
  return SIGNALS.has(full) ? full : undefined;
}
export const SIGNAL_NAMES: readonly string[] = [...SIGNALS];

export class IdleWatcher implements HealthSource, ServerIdle {
  readonly service: string;
  readonly server: string;
  readonly url: URL;
  readonly provider: IdleProvider;
  readonly idleTimeout: number;
  readonly wakeTimeout: number;
  readonly stopTimeout: number;
  readonly stopMethod: StopMethod;
  readonly stopSignal: string | undefined;
  readonly startEndpoint: string | undefined;
  readonly noLoadingPage: boolean;
  readonly #readiness: { path: string; useGet: boolean; tls: ReadinessTls | undefined } | undefined;
  readonly #health: HealthSource | undefined;
  readonly #opts: IdleWatcherOptions;
  readonly #logger: Logger;
  readonly #errorBackoff: number;
  readonly #poll: number;

  #phase: Phase = "napping";
  #detail = "";
  #errorUntil = 0;
  #lastActivity = 0;
  #readySince = 0;
  #busyUntil = 0;
  #wake: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  #backoffTimer: NodeJS.Timeout | undefined;
  #restartTimer: NodeJS.Timeout | undefined;
  #restarts = 0;
  #healthAbort: AbortController | undefined;
  #healthUnsub: (() => void) | undefined;
  #signal: AbortSignal | undefined;
  #closed = false;
  readonly #listeners = new Set<(s: HealthStatus, changed: boolean) => void>();
  readonly #progress = new Set<(e: WakeProgress) => void>();
  /** The current (or last failed) wake's frames, replayed to late subscribers. */
  #history: WakeProgress[] = [];
  #lastStatus: HealthStatus = "napping";
  /** Ends the current wait between readiness probes early (the target printed something). */
  #kick: (() => void) | undefined;
  /** Output arrived while a probe ran: the next wait is short. */
  #kicked = false;
  /**
   * During a wake: the target was found running or its start was asked for. Until then a
   * stopped state reported by the provider is the very state being woken from, not news.
   */
  #startAsked = false;

  constructor(options: IdleWatcherOptions) {
    if (!options?.provider) throw new InvalidArgumentError("IdleWatcher: options.provider is required");
    this.#opts = options;
    this.service = options.service;
    this.server = options.server;
    this.url = new URL(options.url);
    this.provider = options.provider;
    this.idleTimeout = nonNegative(options.idleTimeout, 0, "idleTimeout");
    this.wakeTimeout = nonNegative(options.wakeTimeout, 180_000, "wakeTimeout");
    this.stopTimeout = nonNegative(options.stopTimeout, 60_000, "stopTimeout");
    this.stopMethod = options.stopMethod ?? "stop";
    if (!STOP_METHODS.includes(this.stopMethod)) {
      throw new InvalidArgumentError(`IdleWatcher: stopMethod must be one of ${STOP_METHODS.join(", ")}`);
    }
    if (options.stopSignal !== undefined) {
      const sig = normalizeSignal(options.stopSignal);
      if (!sig) throw new InvalidArgumentError(`IdleWatcher: unknown stopSignal "${options.stopSignal}"`);
      this.stopSignal = sig;
    }
    this.startEndpoint = options.startEndpoint;
    this.noLoadingPage = options.noLoadingPage === true;
    this.#readiness = options.readiness
      ? {
          path: options.readiness.path,
          useGet: options.readiness.useGet === true,
          tls: options.readiness.tls,
        }
      : undefined;
    this.#health = options.health;
    this.#logger = (options.logger ?? silentLogger).child({ service: this.service, server: this.server });
    this.#errorBackoff = options.errorBackoff ?? ERROR_BACKOFF;
    this.#poll = options.pollInterval ?? READY_POLL;
  }

  /** The depends_on entries as configured ("service" or "service/server"); set by whoever builds it. */
  dependsOnTargets: () => readonly string[] = () => [];

  get phase(): Phase {
    return this.#phase;
  }

  // ---- HealthSource ----

  status(): HealthStatus {
    switch (this.#phase) {
      case "ready":
        return this.#health ? this.#health.status() : "healthy";
      case "starting":
        return "starting";
      case "error":
        // after the back-off the next request may try again
        return Date.now() < this.#errorUntil ? "error" : "napping";
      default:
        return "napping";
    }
  }
  latency(): number {
    return this.#phase === "ready" ? (this.#health?.latency?.() ?? 0) : 0;
  }
  detail(): string {
    if (this.#phase === "ready") return this.#health?.detail?.() ?? "";
    return this.#detail;
  }
  subscribe(listener: (s: HealthStatus, changed: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }
  checkNow(): void {
    if (this.#phase === "ready") this.#health?.checkNow?.();
  }
  toJSON(): unknown {
    return { status: this.status(), detail: this.detail(), provider: this.provider.kind };
  }

  #notify(force = false): void {
    const s = this.status();
    const changed = s !== this.#lastStatus;
    this.#lastStatus = s;
    if (changed || force) for (const l of this.#listeners) l(s, changed);
  }

  #setPhase(phase: Phase, detail = ""): void {
    this.#phase = phase;
    this.#detail = detail;
    this.#notify();
  }

  /**
   * Follows the provider's state and, with `idle_timeout` 0, starts the target at once. Aborting
   * `signal` clears every timer; `close()` also stops the target.
   */
  start(signal: AbortSignal): void {
    // the first start owns the watcher's life (a balancer replacing its Server calls it again)
    if (this.#signal && !this.#signal.aborted) return;
    if (this.#closed) return;
    this.#signal = signal;
    signal.addEventListener("abort", () => this.#clearTimers(), { once: true });
    this.provider.watch?.((state, detail) => this.#external(state, detail), signal);
    this.provider.onActivity?.(() => {
      if (this.#kick) this.#kick();
      else if (this.#phase === "starting") this.#kicked = true;
    }, signal);
    void this.provider.state(signal).then(
      (state) => {
        if (signal.aborted || this.#closed) return;
        if (state === "running" && this.#phase === "napping" && !this.#wake) {
          this.#logger.info(`server ${this.server} is already running; checking readiness`);
          void this.wake().catch(() => {});
        } else if (this.idleTimeout === 0 && !this.#wake) {
          void this.wake().catch(() => {});
        }
      },
      (err) => this.#logger.warn({ err }, "could not read the provider's state at start-up"),
    );
  }

  /** A state change seen by the provider (a process exited, a container started elsewhere). */
  #external(state: ProviderState, detail: string): void {
    if (this.#closed) return;
    if (state === "running") {
      if (this.#phase === "napping" || this.#phase === "error") {
        this.#logger.info({ detail }, `server ${this.server} started outside switchyard`);
        void this.wake().catch(() => {});
      }
      return;
    }
    if (this.#phase === "stopping" || this.#phase === "napping" || this.#phase === "error") return;
    if (this.#phase === "starting" && !this.#startAsked) {
      // a read that began before this wake (the provider's first read on connecting, say)
      // reporting the state the wake starts from: the start has not even been asked for
      this.#logger.debug({ state, detail }, `server ${this.server}: ${state} before its start; not news`);
      return;
    }
    const was = this.#phase;
    this.#toNapping(detail);
    if (was === "ready") {
      this.#logger.warn({ detail }, `server ${this.server} stopped by itself: ${detail}`);
      // a process that ran a while before exiting starts its back-off over
      if (Date.now() - this.#readySince > 10_000) this.#restarts = 0;
      if (this.idleTimeout === 0) this.#scheduleRestart();
    }
  }

  #scheduleRestart(): void {
    if (this.#closed || this.#signal?.aborted) return;
    const delay = Math.min(30_000, 500 * 2 ** Math.min(this.#restarts, 6));
    this.#restarts++;
    this.#logger.info(`restarting server ${this.server} in ${formatDuration(delay)}`);
    clearTimeout(this.#restartTimer);
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      if (this.#phase !== "ready") void this.wake().catch(() => {});
    }, delay);
    this.#restartTimer.unref();
  }

  #toNapping(detail: string): void {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    this.#stopHealth();
    this.#setPhase("napping", detail);
  }

  // ---- ServerIdle ----

  touch(): void {
    this.#lastActivity = Date.now();
  }

  /** A cluster worker has requests or WebSockets open on this server: not idle for `ms`. */
  busyFor(ms: number): void {
    this.#lastActivity = Date.now();
    this.#busyUntil = Math.max(this.#busyUntil, this.#lastActivity + ms);
  }

  watchProgress(listener: (event: WakeProgress) => void): () => void {
    for (const e of this.#history) listener(e);
    this.#progress.add(listener);
    return () => {
      this.#progress.delete(listener);
    };
  }

  #emit(action: string, message: string, error?: string): void {
    const e: WakeProgress = {
      server: this.server,
      action,
      level: error === undefined ? "info" : "error",
      message,
      timestamp: new Date().toISOString(),
      ...(error === undefined ? {} : { error }),
    };
    this.#history.push(e);
    for (const l of this.#progress) l(e);
    // a finished wake is nothing to replay; a failed one is (until the next wake starts)
    if (action === "ready") this.#history = [];
  }

  /** Wakes the server (single-flight) and resolves once it is ready. */
  wake(): Promise<void> {
    if (this.#closed)
      return Promise.reject(
        new IdleError(`server ${this.server} is shut down`, "ERR_SWITCHYARD_WAKE_FAILED"),
      );
    if (this.#phase === "ready") return Promise.resolve();
    if (this.#wake) return this.#wake;
    if (this.#phase === "error" && Date.now() < this.#errorUntil) {
      return Promise.reject(
        new IdleError(
          `server ${this.server} failed to wake less than ${formatDuration(this.#errorBackoff)} ago: ${this.#detail}`,
          "ERR_SWITCHYARD_WAKE_BACKOFF",
        ),
      );
    }
    const p = this.#doWake().finally(() => {
      if (this.#wake === p) this.#wake = undefined;
    });
    this.#wake = p;
    return p;
  }

  async #doWake(): Promise<void> {
    const t0 = performance.now();
    const controller = new AbortController();
    const timer = setTimeout(
      () =>
        controller.abort(
          new IdleError(
            `server ${this.server} was not ready within wake_timeout ${formatDuration(this.wakeTimeout)}`,
            "ERR_SWITCHYARD_WAKE_TIMEOUT",
          ),
        ),
      this.wakeTimeout,
    );
    const onAbort = () =>
      controller.abort(new IdleError("switchyard is shutting down", "ERR_SWITCHYARD_WAKE_FAILED"));
    this.#signal?.addEventListener("abort", onAbort, { once: true });
    const signal = controller.signal;
    let started = false;
    try {
      if (this.#stopping) await this.#stopping;
      clearTimeout(this.#backoffTimer);
      const external = this.#phase === "starting";
      this.#startAsked = external;
      this.#history = [];
      this.#setPhase("starting");
      this.#emit("starting", `${this.server} is starting`);
      const deps = this.#opts.dependsOn?.() ?? [];
      await Promise.all(
        deps.map(async (d) => {
          this.#emit("waking_dep", `waking ${d.service}/${d.server}`);
          await raceAbort(d.wake(), signal);
          this.#emit("dep_ready", `${d.service}/${d.server} is ready`);
        }),
      );
      if (!external) {
        const state = await raceAbort(this.provider.state(signal), signal);
        this.#startAsked = true;
        if (state !== "running") {
          started = true;
          await raceAbort(this.provider.start(signal), signal);
        }
      }
      this.#emit("waiting_ready", `${this.server} started; waiting until it is ready`);
      await this.#waitReady(signal);
      const seconds = (performance.now() - t0) / 1000;
      this.#errorUntil = 0;
      this.#lastActivity = this.#readySince = Date.now();
      this.#startHealth();
      this.#setPhase("ready");
      this.#armIdle(this.idleTimeout);
      this.#emit("ready", `${this.server} is ready`);
      this.#logger.info({ seconds }, `server ${this.server} woke in ${Math.round(seconds * 1000)}ms`);
      this.#opts.metrics?.wake(this.service, this.server, "ok", seconds);
      this.#opts.events?.({
        action: "wake",
        service: this.service,
        server: this.server,
        message: `${this.server} woke in ${Math.round(seconds * 1000)}ms`,
      });
    } catch (e) {
      const err = signal.aborted && signal.reason instanceof IdleError ? signal.reason : e;
      const reason = messageOf(err);
      const timeout = err instanceof IdleError && err.code === "ERR_SWITCHYARD_WAKE_TIMEOUT";
      const seconds = (performance.now() - t0) / 1000;
      this.#errorUntil = Date.now() + this.#errorBackoff;
      this.#setPhase("error", `wake failed: ${reason}`);
      this.#emit("error", `${this.server} failed to wake`, reason);
      this.#logger.error({ err }, `server ${this.server} failed to wake: ${reason}`);
      this.#opts.metrics?.wake(this.service, this.server, timeout ? "timeout" : "error", seconds);
      this.#opts.events?.({
        action: "wake",
        level: "error",
        service: this.service,
        server: this.server,
        message: `${this.server} failed to wake: ${reason}`,
      });
      clearTimeout(this.#backoffTimer);
      this.#backoffTimer = setTimeout(() => {
        this.#backoffTimer = undefined;
        this.#notify();
        if (this.idleTimeout === 0 && !this.#closed) void this.wake().catch(() => {});
      }, this.#errorBackoff);
      this.#backoffTimer.unref();
      // a target that was started but never became ready is not left running
      if (started && !this.#closed) {
        this.provider
          .stop({ method: "kill", signal: undefined, timeout: this.stopTimeout })
          .catch((stopErr) => this.#logger.warn({ err: stopErr }, "could not stop the failed start"));
      }
      throw err instanceof IdleError
        ? err
        : new IdleError(`server ${this.server} failed to wake: ${reason}`, "ERR_SWITCHYARD_WAKE_FAILED", {
            cause: err,
          });
    } finally {
      clearTimeout(timer);
      this.#signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Probes every poll interval until ready; a provider that reports the target stopped fails at once. */
  async #waitReady(signal: AbortSignal): Promise<void> {
    let last = "";
    for (;;) {
      signal.throwIfAborted();
      if (this.#phase !== "starting") {
        throw new IdleError(
          `server ${this.server} stopped while starting${this.#detail ? `: ${this.#detail}` : ""}`,
          "ERR_SWITCHYARD_WAKE_FAILED",
        );
      }
      const problem = await this.#probe(signal);
      // the provider said "stopped" while the probe ran: the loop head fails the wake with its
      // words ("process exited with code 3"), not with this probe's "not ready yet: ECONNREFUSED"
      if (this.#phase !== "starting") continue;
      if (problem === undefined) return;
      last = problem;
      this.#detail = `not ready yet: ${last}`;
      await new Promise<void>((resolve, reject) => {
        const done = () => {
          clearTimeout(t);
          signal.removeEventListener("abort", onAbort);
          this.#kick = undefined;
          resolve();
        };
        const onAbort = () => {
          clearTimeout(t);
          this.#kick = undefined;
          reject(signal.reason);
        };
        // output seen during the probe: probe again soon (20 ms floor against a chatty process)
        const t = setTimeout(done, this.#kicked ? 20 : this.#poll);
        signal.addEventListener("abort", onAbort, { once: true });
        this.#kick = this.#kicked ? undefined : done;
        this.#kicked = false;
      });
    }
  }

  /** One readiness probe; undefined when ready, else why not (never with the address in it). */
  #probe(signal: AbortSignal): Promise<string | undefined> {
    const u = this.url;
    const port = Number(u.port) || (u.protocol === "https:" ? 443 : 80);
    const host = u.hostname.replace(/^\[|\]$/g, "");
    return new Promise((resolve) => {
      const timeout = Math.max(100, Math.min(2_000, this.wakeTimeout));
      if (!this.#readiness) {
        const sock = net.connect({ host, port });
        const done = (r: string | undefined) => {
          sock.destroy();
          clearTimeout(t);
          resolve(r);
        };
        const t = setTimeout(() => done("connect timed out"), timeout);
        sock.once("connect", () => done(undefined));
        sock.once("error", (e: NodeJS.ErrnoException) => done(e.code ?? "connect failed"));
        return;
      }
      const mod = u.protocol === "https:" ? process.getBuiltinModule("node:https") : nodeHttp;
      const req = mod.request({
        host,
        port,
        path: this.#readiness.path,
        method: this.#readiness.useGet ? "GET" : "HEAD",
        agent: false,
        timeout,
        signal,
        rejectUnauthorized: false,
        ...this.#readiness.tls,
        headers: { host: u.host, "user-agent": "switchyard-idle" },
      });
      req.once("response", (res) => {
        res.resume();
        const code = res.statusCode ?? 0;
        resolve(code >= 200 && code < 400 ? undefined : `HTTP ${code}`);
      });
      req.once("timeout", () => req.destroy(new Error("timed out")));
      req.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      req.end();
    });
  }

  #startHealth(): void {
    const h = this.#health;
    if (!h) return;
    this.#stopHealth();
    const ac = new AbortController();
    this.#healthAbort = ac;
    this.#healthUnsub = h.subscribe?.(() => this.#notify(true));
    try {
      h.start?.(ac.signal);
    } catch (err) {
      this.#logger.error({ err }, "health monitor failed to start");
    }
  }
  #stopHealth(): void {
    this.#healthAbort?.abort();
    this.#healthAbort = undefined;
    this.#healthUnsub?.();
    this.#healthUnsub = undefined;
  }

  // ---- idleness ----

  #armIdle(ms: number): void {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    if (this.idleTimeout <= 0 || this.#closed) return;
    this.#idleTimer = setTimeout(() => this.#idleCheck(), ms);
    this.#idleTimer.unref();
  }

  #idleCheck(): void {
    this.#idleTimer = undefined;
    if (this.#phase !== "ready") return;
    if ((this.#opts.inflight?.() ?? 0) > 0 || Date.now() < this.#busyUntil || this.#dependentUp()) {
      // a request (or WebSocket) is open, or a dependent runs: idle counts again from now
      this.#lastActivity = Date.now();
      this.#armIdle(this.idleTimeout);
      return;
    }
    const left = this.#lastActivity + this.idleTimeout - Date.now();
    if (left > 0) {
      this.#armIdle(left);
      return;
    }
    void this.stop("idle").catch(() => {});
  }

  #dependentUp(): boolean {
    const list = this.#opts.dependents?.() ?? [];
    return list.some((w) => w.phase === "ready" || w.phase === "starting");
  }

  /**
   * Stops the target with the configured method (`reason` "idle" counts as an idle stop), then
   * the dependencies nobody else needs. Resolves when stopped.
   */
  stop(reason: "idle" | "admin" | "dependency" = "admin"): Promise<void> {
    if (this.#stopping) return this.#stopping;
    const p = this.#doStop(reason).finally(() => {
      if (this.#stopping === p) this.#stopping = undefined;
    });
    this.#stopping = p;
    return p;
  }

  async #doStop(reason: "idle" | "admin" | "dependency"): Promise<void> {
    if (this.#wake) await this.#wake.catch(() => {});
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    clearTimeout(this.#restartTimer);
    this.#stopHealth();
    this.#phase = "stopping";
    const method = this.stopMethod;
    try {
      await this.provider.stop({ method, signal: this.stopSignal, timeout: this.stopTimeout });
    } catch (err) {
      this.#logger.error(
        { err },
        `server ${this.server} did not stop cleanly: ${messageOf(err)} (raise stop_timeout?)`,
      );
    }
    this.#setPhase(
      "napping",
      reason === "idle" ? `stopped after ${formatDuration(this.idleTimeout)} idle` : `stopped (${reason})`,
    );
    this.#logger.info(
      { method, reason },
      `server ${this.server} ${method === "pause" ? "paused" : "stopped"} (${reason})`,
    );
    if (reason === "idle") {
      this.#opts.metrics?.idleStop(this.service, this.server);
      this.#opts.events?.({
        action: "idle_stop",
        service: this.service,
        server: this.server,
        message: `${this.server} ${method === "pause" ? "paused" : "stopped"} after ${formatDuration(this.idleTimeout)} idle`,
      });
    }
    for (const d of this.#opts.dependsOn?.() ?? []) {
      // an always-on dependency (idle_timeout 0) stays up
      if (d.phase === "ready" && d.idleTimeout > 0 && !d.#dependentUp()) await d.stop("dependency");
    }
  }

  #clearTimers(): void {
    clearTimeout(this.#idleTimer);
    clearTimeout(this.#backoffTimer);
    clearTimeout(this.#restartTimer);
    this.#idleTimer = this.#backoffTimer = this.#restartTimer = undefined;
    this.#stopHealth();
  }

  /** Stops the target if switchyard started it, clears every timer and closes the provider. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#clearTimers();
    try {
      await this.provider.close();
    } catch (err) {
      this.#logger.warn({ err }, "closing the idle provider failed");
    }
  }
}

function nonNegative(v: number | string | undefined, fallback: number, what: string): number {
  const ms = toMs(v, fallback, what);
  if (ms < 0) throw new InvalidArgumentError(`IdleWatcher: ${what} must be >= 0`);
  return ms;
}

function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}

export function messageOf(err: unknown): string {
  if (err instanceof Error) {
    const cause =
      err.cause instanceof Error && !err.message.includes(err.cause.message)
        ? `: ${messageOf(err.cause)}`
        : "";
    return `${err.message}${cause}`;
  }
  return String(err);
}
