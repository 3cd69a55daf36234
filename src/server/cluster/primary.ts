/**
 * `--workers N`: a node:cluster primary and N proxy workers.
 *
 * The primary owns health: it runs every monitor once and broadcasts status changes, so all
 * workers see the same good and bad servers and no probe runs twice. Workers proxy; a passive
 * failure a worker sees goes to the primary, which probes at once and broadcasts. The primary
 * also serves the admin API (metrics aggregated from the workers), watches the config file,
 * handles SIGHUP/SIGTERM and forwards the result to the workers.
 *
 * Why cluster rather than SO_REUSEPORT (`net` `reusePort`, Node ≥ 22.12): with cluster's default
 * round-robin scheduling the primary accepts and hands each new connection to a worker — one
 * IPC hop per connection, none per request on a keep-alive connection — and spreads connections
 * evenly even when the kernel hash would not, keeps `:0` ports shared by all workers, and works
 * on every platform. reusePort would skip that hop but is Linux/FreeBSD only, hashes connections
 * without regard to load, and drops the queued connections of a worker that exits.
 */
import cluster, { type Worker } from "node:cluster";
import { AdminPrimary, type AdminToWorker, AdminWorker } from "../admin/ipc.ts";
import type { Server, WakeProgress } from "../balancer/server.ts";
import type { ConfigOverrides } from "../config/load.ts";
import type { ServerConfig, ServiceConfig, SwitchyardConfig } from "../config/types.ts";
import { IdleError } from "../errors.ts";
import { type HealthSource, type HealthStatus, ReportedHealth } from "../health/status.ts";
import { createLogger, type Logger } from "../log.ts";
import { reloadOnChange } from "./reload.ts";
import { Runtime } from "./runtime.ts";
import { announce, type Source, startRuntime, waitForStop } from "./serve.ts";
import { type HealthFactory, httpHealth, keyOf, type RemoteIdle } from "./services.ts";

type ToWorker =
  | { sy: "config"; config: SwitchyardConfig }
  | {
      sy: "health";
      service: string;
      key: string;
      status: HealthStatus;
      latency: number;
      detail: string;
      /** The primary's monitor reported a change (else: a success confirming "healthy"). */
      changed: boolean;
      snapshot: boolean;
    }
  | { sy: "metrics"; id: number }
  | { sy: "progress"; service: string; server: string; event: WakeProgress }
  | { sy: "woke"; id: number; error?: string; code?: IdleError["code"] }
  | { sy: "shutdown" }
  | AdminToWorker;

type ToPrimary =
  | { sy: "hello" }
  | { sy: "ready"; addresses: { address: string; tls: boolean }[] }
  | { sy: "failed"; error: string }
  | { sy: "applied" }
  | { sy: "checkNow"; service: string; key: string }
  | { sy: "wake"; id: number; service: string; server: string }
  | { sy: "busy"; service: string; server: string; ms: number }
  | { sy: "metrics"; id: number; data: object[] };

function isMessage<T extends { sy: string }>(m: unknown): m is T {
  return typeof m === "object" && m !== null && typeof (m as { sy?: unknown }).sy === "string";
}

// ---------------------------------------------------------------------------------------------
// primary

export async function runPrimary(
  source: Source,
  overrides: ConfigOverrides,
  logger: Logger,
): Promise<number> {
  const count = source.config.workers;
  let stopping = false;
  const ready = new Map<Worker, { address: string; tls: boolean }[]>();
  const metricWaits = new Map<number, { pending: Set<Worker>; data: object[]; done: () => void }>();
  let metricId = 0;

  const send = (w: Worker, m: ToWorker) => {
    if (w.isConnected()) w.send(m, (err: Error | null) => err && logger.debug({ err }, "IPC send failed"));
  };
  const broadcast = (m: ToWorker) => {
    for (const w of Object.values(cluster.workers ?? {})) if (w) send(w, m);
  };
  const healthMessage = (
    service: string,
    key: string,
    h: HealthSource,
    changed: boolean,
    snapshot: boolean,
  ): ToWorker => ({
    sy: "health",
    service,
    key,
    status: h.status(),
    latency: h.latency?.() ?? 0,
    detail: h.detail?.() ?? "",
    changed,
    snapshot,
  });
  /** Servers a worker ejected passively: their next successful probe is broadcast even if unchanged. */
  const passive = new Set<string>();
  const primaryHealth: HealthFactory = (svc: ServiceConfig, srv: ServerConfig) => {
    const h = httpHealth(svc, srv);
    if (h) {
      const key = keyOf(srv.url);
      const id = `${svc.name}\n${key}`;
      h.subscribe?.((status, changed) => {
        if (changed || (status === "healthy" && passive.delete(id))) {
          broadcast(healthMessage(svc.name, key, h, changed, false));
        }
      });
    }
    return h;
  };
  const connected = () => Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w?.isConnected());
  const admin = new AdminPrimary(connected, send);
  const sendSnapshot = (w: Worker) => {
    for (const s of runtime.services.values()) {
      for (const server of s.lb.servers) {
        if (server.health) send(w, healthMessage(s.name, server.key, server.health, false, true));
      }
    }
  };

  const runtime: Runtime = new Runtime({
    logger,
    proxy: false,
    admin: true,
    ownsHealth: true,
    health: primaryHealth,
    workerAdmin: admin,
    onServicesChanged: () => {
      if (runtime?.config) broadcast({ sy: "config", config: runtime.config });
    },
    workerMetrics: () =>
      new Promise((resolve) => {
        const id = ++metricId;
        const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w?.isConnected());
        const wait = { pending: new Set(workers), data: [] as object[], done: () => {} };
        const timer = setTimeout(() => wait.done(), 2000);
        wait.done = () => {
          clearTimeout(timer);
          metricWaits.delete(id);
          resolve(wait.data);
        };
        metricWaits.set(id, wait);
        if (workers.length === 0) wait.done();
        for (const w of workers) send(w, { sy: "metrics", id });
      }),
  });

  admin.setEvents(runtime.events);
  // the primary owns the idle watchers as it owns health: one wake per server for all workers
  runtime.idle.healthFor = httpHealth;
  runtime.idle.onWatcher = (w, key) => {
    w.subscribe((status, changed) => {
      const id = `${w.service}\n${key}`;
      if (changed || (status === "healthy" && passive.delete(id))) {
        broadcast(healthMessage(w.service, key, w, changed, false));
      }
    });
    w.watchProgress((event) => broadcast({ sy: "progress", service: w.service, server: w.server, event }));
  };

  if (!(await startRuntime(runtime, source, logger))) return 1;

  const onMessage = (w: Worker, m: unknown) => {
    if (admin.onMessage(w, m) || !isMessage<ToPrimary>(m)) return;
    switch (m.sy) {
      case "hello":
        if (runtime.config) send(w, { sy: "config", config: runtime.config });
        // before it listens: a new worker must not believe a down server is up
        sendSnapshot(w);
        // nor take a server out of maintenance
        admin.sync(w, runtime.adminOps());
        break;
      case "ready":
        ready.set(w, m.addresses);
        sendSnapshot(w);
        allReady.check();
        break;
      case "failed":
        logger.fatal({ worker: w.id, error: m.error }, "worker could not start");
        allReady.fail(new Error(m.error));
        break;
      case "applied":
        sendSnapshot(w);
        break;
      case "checkNow": {
        const server: Server | undefined = runtime.services
          .get(m.service)
          ?.lb.servers.find((s) => s.key === m.key);
        if (server?.health?.checkNow) {
          passive.add(`${m.service}\n${m.key}`);
          server.health.checkNow();
        }
        break;
      }
      case "wake": {
        const watcher = runtime.idle.watchers.get(`${m.service}/${m.server}`);
        if (!watcher) {
          send(w, {
            sy: "woke",
            id: m.id,
            error: `server ${m.server} has no idle watcher`,
            code: "ERR_SWITCHYARD_WAKE_FAILED",
          });
          break;
        }
        watcher.wake().then(
          () => send(w, { sy: "woke", id: m.id }),
          (err: Error & { code?: IdleError["code"] }) =>
            send(w, {
              sy: "woke",
              id: m.id,
              error: err.message,
              code: err.code ?? "ERR_SWITCHYARD_WAKE_FAILED",
            }),
        );
        break;
      }
      case "busy":
        runtime.idle.watchers.get(`${m.service}/${m.server}`)?.busyFor(m.ms);
        break;
      case "metrics": {
        const wait = metricWaits.get(m.id);
        if (wait) {
          wait.data.push(m.data);
          wait.pending.delete(w);
          if (wait.pending.size === 0) wait.done();
        }
        break;
      }
    }
  };
  cluster.on("message", onMessage);

  const allReady = (() => {
    let ok!: () => void;
    let fail!: (e: Error) => void;
    const promise = new Promise<void>((a, b) => {
      ok = a;
      fail = b;
    });
    return {
      promise,
      check: () => ready.size >= count && ok(),
      fail: (e: Error) => fail(e),
    };
  })();

  let restarts = 0;
  cluster.on("exit", (w, code, signal) => {
    ready.delete(w);
    admin.workerGone(w);
    for (const wait of metricWaits.values()) {
      wait.pending.delete(w);
      if (wait.pending.size === 0) wait.done();
    }
    if (stopping) return;
    logger.error({ worker: w.id, code, signal }, `worker ${w.id} exited unexpectedly; starting another`);
    if (++restarts > 10 * count) {
      logger.fatal("workers keep exiting; giving up");
      process.exit(1);
    }
    setTimeout(() => cluster.fork(), Math.min(5000, 100 * restarts)).unref();
  });

  for (let i = 0; i < count; i++) cluster.fork();
  try {
    await allReady.promise;
  } catch {
    stopping = true;
    for (const w of Object.values(cluster.workers ?? {})) w?.kill();
    await runtime.shutdown();
    await source.demo?.close();
    return 1;
  }

  const stop = new AbortController();
  const reload = (file: string) => {
    void runtime.reload(file, overrides).then((ok) => {
      if (ok && runtime.config && runtime.config.workers !== count) {
        logger.warn(`workers changed to ${runtime.config.workers}; restart to apply (running ${count})`);
      }
    });
  };
  reloadOnChange(source.file, reload, stop.signal, logger);

  const stopped = waitForStop(logger, async () => {
    stopping = true;
    stop.abort();
    const grace = runtime.config?.timeouts.shutdown ?? 30_000;
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w);
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((done) => {
            if (w.isDead()) return done();
            const kill = setTimeout(() => w.process.kill("SIGKILL"), grace + 5000);
            w.once("exit", () => {
              clearTimeout(kill);
              done();
            });
            send(w, { sy: "shutdown" });
          }),
      ),
    );
    cluster.off("message", onMessage);
    await runtime.shutdown();
    await source.demo?.close();
  });

  announce(source, ready.values().next().value ?? [], runtime.admin?.address(), logger, { workers: count });
  return stopped;
}

// ---------------------------------------------------------------------------------------------
// worker

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
          void runtime.applyLoaded(m.config).then(() => reply({ sy: "applied" }));
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
      logger.error({ err }, "worker cannot start");
      reply({ sy: "failed", error: (err as Error).message });
      setTimeout(() => process.exit(1), 100);
      return;
    }
    admin.started(rt);
    reply({ sy: "ready", addresses: rt.listeners!.addresses() });
  };

  reply({ sy: "hello" });
}
