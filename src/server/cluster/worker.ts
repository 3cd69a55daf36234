/** A `--workers N` proxy worker: health and wakes come from the primary (see ./primary.ts). */
import cluster from "node:cluster";
import { AdminWorker } from "../../admin/ipc.ts";
import type { Server, WakeProgress } from "../../balancer/server.ts";
import type { ServerConfig, ServiceConfig, SwitchyardConfig } from "../../config/types.ts";
import { IdleError } from "../../errors.ts";
import { type HealthStatus, ReportedHealth } from "../../health/status.ts";
import { createLogger, errFields, type Logger } from "../../log.ts";
import { setRemoteTokens } from "../../middleware/index.ts";
import { Runtime } from "../runtime.ts";
import { type HealthFactory, keyOf, type RemoteIdle } from "../services.ts";
import { isMessage, type ToPrimary, type ToWorker } from "./messages.ts";

/** A server's health as the primary reports it. */
class RemoteHealth extends ReportedHealth {
  readonly #service: string;
  readonly #key: string;

  constructor(service: string, key: string) {
    super();
    this.#service = service;
    this.#key = key;
  }
  /** A passive failure here: ask the primary to probe now. */
  checkNow(): void {
    const m: ToPrimary = { sy: "checkNow", service: this.#service, key: this.#key };
    if (process.connected) process.send?.(m);
  }
  /** Live updates always notify (a probe after a passive failure confirms "healthy"); snapshots only on change. */
  update(status: HealthStatus, latency: number, detail: string, snapshot: boolean): void {
    this.setLatency(latency);
    this.setDetail(detail);
    this.setStatus(status, snapshot);
  }
}

/** How often a worker tells the primary which idle servers it is using (requests, WebSockets). */
const BUSY_REPORT = 1000;

/**
 * An idle server in a worker: its status comes from the primary's watcher (health messages), a
 * wake asks the primary (which runs one wake whatever the number of workers), progress frames
 * are the primary's, relayed. Use reaches the primary's idle timer as one message per server
 * and second at most.
 */
class RemoteIdleHealth extends RemoteHealth implements RemoteIdle {
  readonly startEndpoint: string | undefined;
  readonly noLoadingPage: boolean;
  readonly service: string;
  readonly name: string;
  server: Server | undefined;
  #used = false;
  #history: WakeProgress[] = [];
  readonly #listeners = new Set<(e: WakeProgress) => void>();
  readonly #wake: (service: string, server: string) => Promise<void>;

  constructor(
    service: ServiceConfig,
    server: ServerConfig,
    wake: (service: string, server: string) => Promise<void>,
  ) {
    super(service.name, keyOf(server.url));
    this.service = service.name;
    this.name = server.name;
    this.startEndpoint = server.idle?.startEndpoint;
    this.noLoadingPage = server.idle?.noLoadingPage === true;
    this.#wake = wake;
    // napping until the primary says otherwise
    this.update("napping", 0, "", true);
  }
  attach(server: Server): void {
    this.server = server;
  }
  wake(): Promise<void> {
    return this.#wake(this.service, this.name);
  }
  touch(): void {
    this.#used = true;
  }
  /** Whether it was used (or is in use) since the last report; resets the flag. */
  takeUsed(): boolean {
    const used = this.#used || (this.server?.inflight ?? 0) > 0;
    this.#used = false;
    return used;
  }
  watchProgress(listener: (e: WakeProgress) => void): () => void {
    for (const e of this.#history) listener(e);
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }
  progress(e: WakeProgress): void {
    if (e.action === "starting") this.#history = [];
    this.#history.push(e);
    for (const l of this.#listeners) l(e);
    if (e.action === "ready") this.#history = [];
  }
}

export async function runWorker(): Promise<void> {
  const idles = new Map<string, RemoteIdleHealth>();
  const wakes = new Map<number, { ok: () => void; fail: (e: Error) => void }>();
  let wakeId = 0;
  const grants = new Map<number, (g: { granted: number; retryAfter: number }) => void>();
  let grantId = 0;
  setRemoteTokens(
    (limiter, client, want) =>
      new Promise((ok, fail) => {
        if (!process.connected) return fail(new Error("no cluster primary"));
        const id = ++grantId;
        grants.set(id, ok);
        reply({ sy: "tokens", id, limiter, client, want });
      }),
  );
  const askWake = (service: string, server: string) =>
    new Promise<void>((ok, fail) => {
      const id = ++wakeId;
      wakes.set(id, { ok, fail });
      reply({ sy: "wake", id, service, server });
    });
  const busyTimer = setInterval(() => {
    for (const r of idles.values()) {
      if (r.takeUsed()) reply({ sy: "busy", service: r.service, server: r.name, ms: 2 * BUSY_REPORT });
    }
  }, BUSY_REPORT);
  busyTimer.unref();
  const remotes = new Map<string, RemoteHealth>();
  /** The last status the primary reported per server, also for servers not built yet. */
  const known = new Map<string, { status: HealthStatus; latency: number; detail: string }>();
  const remoteIdle = (svc: ServiceConfig, srv: ServerConfig): RemoteIdle => {
    const key = keyOf(srv.url);
    const id = `${svc.name}\n${key}`;
    const h = new RemoteIdleHealth(svc, srv, askWake);
    const k = known.get(id);
    if (k) h.update(k.status, k.latency, k.detail, true);
    remotes.set(id, h);
    idles.set(`${svc.name}/${srv.name}`, h);
    return h;
  };
  const remoteHealth: HealthFactory = (svc, srv) => {
    if (!svc.healthcheck.enabled) return undefined;
    const key = keyOf(srv.url);
    const id = `${svc.name}\n${key}`;
    const h = new RemoteHealth(svc.name, key);
    const k = known.get(id);
    if (k) h.update(k.status, k.latency, k.detail, true);
    remotes.set(id, h);
    return h;
  };
  let runtime: Runtime | undefined;
  let logger: Logger | undefined;
  let stopping: Promise<void> | undefined;
  const reply = (m: ToPrimary) => {
    if (process.connected) process.send?.(m);
  };
  const admin = new AdminWorker((m) => {
    if (process.connected) process.send?.(m);
  });

  const shutdown = () => {
    stopping ??= (async () => {
      await runtime?.shutdown();
      process.exit(0);
    })();
  };
  // a terminal's Ctrl-C or systemd signals the whole group: drain like the primary asks us to
  process.on("SIGINT", shutdown);
  process.on("SIGTERM", shutdown);
  process.on("SIGHUP", () => {});
  process.on("disconnect", () => {
    // the primary is gone: nobody feeds health or sends reloads; stop gracefully
    shutdown();
  });

  process.on("message", (m: unknown) => {
    if (admin.onMessage(m) || !isMessage<ToWorker>(m)) return;
    switch (m.sy) {
      case "config":
        if (runtime === undefined) {
          void startWorker(m.config);
        } else if (stopping === undefined) {
          void runtime.applyLoaded(m.config, true).then(() => reply({ sy: "applied" }));
        }
        break;
      case "progress":
        idles.get(`${m.service}/${m.server}`)?.progress(m.event);
        break;
      case "woke": {
        const w = wakes.get(m.id);
        if (w) {
          wakes.delete(m.id);
          if (m.error === undefined) w.ok();
          else w.fail(new IdleError(m.error, m.code ?? "ERR_SWITCHYARD_WAKE_FAILED"));
        }
        break;
      }
      case "granted": {
        const g = grants.get(m.id);
        grants.delete(m.id);
        g?.({ granted: m.granted, retryAfter: m.retryAfter });
        break;
      }
      case "health": {
        const id = `${m.service}\n${m.key}`;
        known.set(id, { status: m.status, latency: m.latency, detail: m.detail });
        remotes.get(id)?.update(m.status, m.latency, m.detail, m.snapshot);
        break;
      }
      case "metrics":
        if (runtime) {
          void runtime.metrics.registry.getMetricsAsJSON().then(
            (data) => reply({ sy: "metrics", id: m.id, data }),
            () => reply({ sy: "metrics", id: m.id, data: [] }),
          );
        } else reply({ sy: "metrics", id: m.id, data: [] });
        break;
      case "shutdown":
        shutdown();
        break;
    }
  });

  const startWorker = async (config: SwitchyardConfig) => {
    const base = createLogger({ level: config.logLevel }).child({ worker: cluster.worker?.id });
    logger = base;
    // the primary logs health transitions once; workers log only what is theirs (warnings, errors, debug)
    const quiet = base.isLevelEnabled("info") ? base.child({}, { level: "warn" }) : base;
    const rt = new Runtime({
      logger: base,
      balancerLogger: quiet,
      proxy: true,
      admin: false,
      ownsHealth: false,
      health: remoteHealth,
      idleEnv: { watchers: new Map(), remote: remoteIdle },
    });
    runtime = rt;
    try {
      await rt.start(config);
    } catch (err) {
      logger.error(errFields(logger, err), "worker cannot start");
      reply({ sy: "failed", error: (err as Error).message });
      setTimeout(() => process.exit(1), 100);
      return;
    }
    admin.started(rt);
    reply({ sy: "ready", addresses: rt.listeners!.addresses() });
  };

  reply({ sy: "hello" });
}
