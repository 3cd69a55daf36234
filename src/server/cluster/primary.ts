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
import { AdminPrimary } from "../../admin/ipc.ts";
import type { Server } from "../../balancer/server.ts";
import type { ConfigOverrides } from "../../config/load.ts";
import type { ServerConfig, ServiceConfig } from "../../config/types.ts";
import type { IdleError } from "../../errors.ts";
import type { HealthSource } from "../../health/status.ts";
import type { Logger } from "../../log.ts";
import { TokenBank } from "../../middleware/index.ts";
import { RetiredMetrics } from "../metrics.ts";
import { announce, type Source, startRuntime, waitForStop } from "../process.ts";
import { reloadOnChange } from "../reload.ts";
import { Runtime } from "../runtime.ts";
import { type HealthFactory, httpHealth, keyOf } from "../services.ts";
import { isMessage, type ToPrimary, type ToWorker } from "./messages.ts";

export async function runPrimary(
  source: Source,
  overrides: ConfigOverrides,
  logger: Logger,
): Promise<number> {
  const count = source.config.workers;
  let stopping = false;
  const ready = new Map<Worker, { address: string; tls: boolean }[]>();
  const metricWaits = new Map<number, { pending: Set<Worker>; data: object[]; done: () => void }>();
  /** Each worker's metrics as last read; a dead worker's counters move to `retired`. */
  const lastMetrics = new Map<Worker, object[]>();
  const retired = new RetiredMetrics();
  let metricId = 0;
  // rate_limit is the service's limit, not a worker's: the buckets live here, workers lease tokens
  const bank = new TokenBank();

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
          // the totals of workers that died, so that no counter goes down when one is replaced
          resolve(retired.size ? [...wait.data, retired.toJSON()] : wait.data);
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
      case "tokens": {
        const hash = m.limiter.lastIndexOf("#");
        const mw =
          runtime.config?.services[m.limiter.slice(0, hash)]?.middlewares?.[
            Number(m.limiter.slice(hash + 1))
          ];
        const grant = bank.grant(m.limiter, mw?.kind === "rate_limit" ? mw : undefined, m.client, m.want);
        send(w, { sy: "granted", id: m.id, ...grant });
        break;
      }
      case "metrics": {
        const wait = metricWaits.get(m.id);
        if (Array.isArray(m.data)) lastMetrics.set(w, m.data);
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
    const last = lastMetrics.get(w);
    lastMetrics.delete(w);
    if (last !== undefined) retired.add(last);
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
