/**
 * Prometheus metrics on the server's own Registry. The per-request path only bumps plain
 * numbers in a per-service `ServiceStats`; label sets are materialised at scrape time, so a
 * request costs no label hashing or allocation in prom-client.
 */
import { createRequire } from "node:module";
import type * as Prom from "prom-client";
import type { MetricValue, Counter as PromCounter } from "prom-client";
import { emptySummary, type ServiceSummary, StatsWindow } from "../admin/stats.ts";
import type { Server } from "../balancer/server.ts";
import type { IdleMetricsSink } from "../idle/watcher.ts";
import type { LoadBalancer } from "../load-balancer.ts";

// prom-client's index also loads its Pushgateway (node:https, node:zlib, so TLS) and its cluster
// aggregator, which the server needs only with --workers (runtime.ts imports it then): the four
// classes used here come from their own files, a few MB less RSS.
const load = createRequire(import.meta.url);
const Counter = load("prom-client/lib/counter") as typeof Prom.Counter;
const Histogram = load("prom-client/lib/histogram") as typeof Prom.Histogram;
const Registry = load("prom-client/lib/registry") as typeof Prom.Registry;
const collectDefaultMetrics = load("prom-client/lib/defaultMetrics") as typeof Prom.collectDefaultMetrics;

/** Status classes, indexed by `classIndex`. */
export const CODE_CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx", "aborted"] as const;
/** Upper bounds (seconds) of the latency histogram. */
export const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** The class index for a response: 0..4 for 1xx..5xx, 5 when nothing was sent. */
export function classIndex(status: number, headersSent: boolean): number {
  if (!headersSent) return 5;
  const c = (status / 100) | 0;
  return c >= 1 && c <= 5 ? c - 1 : 5;
}

/** Request accounting of one service; numbers only, read at scrape time. */
export class ServiceStats {
  readonly name: string;
  inflight = 0;
  retries = 0;
  /** Requests per server name ("none" when no server was picked), one slot per code class. */
  readonly counts = new Map<string, number[]>();
  /** The last minute per server name, for `GET /api/stats` (same keys as `counts`). */
  readonly windows = new Map<string, StatsWindow>();
  readonly buckets = new Float64Array(BUCKETS.length);
  count = 0;
  sum = 0;
  /** Answers given by middlewares (never reached a backend): "middleware status" → count. */
  readonly answers = new Map<string, number>();
  /** Cached lookup for the last server seen: most pools are small and hot. */
  #lastServer: Server | undefined;
  #lastRow: number[] | undefined;
  #lastWindow: StatsWindow | undefined;

  constructor(name: string) {
    this.name = name;
  }

  /** Counts an answer a middleware gave instead of a backend. */
  answered(middleware: string, status: number): void {
    const key = `${middleware} ${status}`;
    this.answers.set(key, (this.answers.get(key) ?? 0) + 1);
  }

  /** Records one finished request; `now` is performance.now() at its end. */
  record(server: Server | undefined, cls: number, seconds: number, now: number): void {
    let row: number[] | undefined;
    let window: StatsWindow | undefined;
    if (server !== undefined && server === this.#lastServer) {
      row = this.#lastRow;
      window = this.#lastWindow;
    } else {
      const key = server === undefined ? "none" : server.name;
      row = this.counts.get(key);
      if (row === undefined) {
        row = [0, 0, 0, 0, 0, 0];
        this.counts.set(key, row);
      }
      window = this.windows.get(key);
      if (window === undefined) {
        window = new StatsWindow();
        this.windows.set(key, window);
      }
      if (server !== undefined) {
        this.#lastServer = server;
        this.#lastRow = row;
        this.#lastWindow = window;
      }
    }
    row![cls]++;
    window!.record(now, cls, seconds * 1000);
    this.count++;
    this.sum += seconds;
    const b = this.buckets;
    for (let i = 0; i < BUCKETS.length; i++) {
      if (seconds <= BUCKETS[i]) {
        b[i]++;
        break;
      }
    }
  }

  /**
   * The last minute of this service (every window, including servers since removed and requests
   * no server took) and of each of `servers` (those currently in the balancer), as of `now`.
   */
  summary(servers: readonly Server[], now: number): ServiceSummary {
    const total = emptySummary();
    total.inflight = this.inflight;
    for (const w of this.windows.values()) w.collect(now, total);
    const out: ServiceSummary = { total, servers: {} };
    for (const s of servers) {
      const sum = emptySummary();
      sum.inflight = s.inflight;
      this.windows.get(s.name)?.collect(now, sum);
      out.servers[s.name] = sum;
    }
    return out;
  }
}

type Kind = "counter" | "gauge" | "histogram";

/** A metric whose values are produced on scrape (prom-client calls `get()`). */
class ScrapeMetric {
  readonly name: string;
  readonly help: string;
  readonly type: Kind;
  readonly aggregator: "sum" | "max";
  readonly #values: () => MetricValue<string>[];
  constructor(
    name: string,
    help: string,
    type: Kind,
    values: () => MetricValue<string>[],
    aggregator: "sum" | "max" = "sum",
  ) {
    this.name = name;
    this.help = help;
    this.type = type;
    this.#values = values;
    this.aggregator = aggregator;
  }
  get() {
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      values: this.#values(),
      aggregator: this.aggregator,
    };
  }
}

export interface MetricsSource {
  /** The services (with their stats) currently served in this process. */
  stats(): Iterable<ServiceStats>;
  /** The balancers whose server health this process knows authoritatively. */
  balancers(): Iterable<LoadBalancer>;
}

export interface MetricsOptions {
  /** Request metrics (processes that proxy). */
  requests: boolean;
  /** Server health and config reload metrics (the process that owns health). */
  health: boolean;
  /** Default process metrics. */
  process: boolean;
}

export class Metrics {
  readonly registry = new Registry();
  readonly reloads: PromCounter<"result"> | undefined;
  /** PROXY protocol headers refused on a listener, by reason (untrusted, malformed, timeout). */
  readonly proxyProtocolErrors: PromCounter<"reason"> | undefined;
  /** Wake and idle-stop counts (the process that owns the idle watchers); wakes are rare. */
  readonly idle: IdleMetricsSink | undefined;

  constructor(source: MetricsSource, options: MetricsOptions) {
    const r = this.registry;
    if (options.process) collectDefaultMetrics({ register: r });
    if (options.requests) {
      r.registerMetric(
        new ScrapeMetric(
          "switchyard_requests_total",
          "Requests served, by service, server and status class.",
          "counter",
          () => {
            const out: MetricValue<string>[] = [];
            for (const s of source.stats()) {
              for (const [server, row] of s.counts) {
                for (let c = 0; c < row.length; c++) {
                  if (row[c] !== 0) {
                    out.push({
                      labels: { service: s.name, server, code_class: CODE_CLASSES[c] },
                      value: row[c],
                    });
                  }
                }
              }
            }
            return out;
          },
        ) as never,
      );
      r.registerMetric(
        new ScrapeMetric(
          "switchyard_request_duration_seconds",
          "Time from request to the end of the response, by service.",
          "histogram",
          () => {
            const out: MetricValue<string>[] = [];
            const name = "switchyard_request_duration_seconds";
            for (const s of source.stats()) {
              let acc = 0;
              for (let i = 0; i < BUCKETS.length; i++) {
                acc += s.buckets[i];
                out.push({
                  metricName: `${name}_bucket`,
                  labels: { le: BUCKETS[i], service: s.name },
                  value: acc,
                } as never);
              }
              out.push({
                metricName: `${name}_bucket`,
                labels: { le: "+Inf", service: s.name },
                value: s.count,
              } as never);
              out.push({ metricName: `${name}_sum`, labels: { service: s.name }, value: s.sum } as never);
              out.push({ metricName: `${name}_count`, labels: { service: s.name }, value: s.count } as never);
            }
            return out;
          },
        ) as never,
      );
      r.registerMetric(
        new ScrapeMetric("switchyard_requests_in_flight", "Requests being served, by service.", "gauge", () =>
          Array.from(source.stats(), (s) => ({ labels: { service: s.name }, value: s.inflight })),
        ) as never,
      );
      r.registerMetric(
        new ScrapeMetric(
          "switchyard_upstream_retries_total",
          "Requests retried on another server after a refused or reset connection, by service.",
          "counter",
          () => Array.from(source.stats(), (s) => ({ labels: { service: s.name }, value: s.retries })),
        ) as never,
      );
      r.registerMetric(
        new ScrapeMetric(
          "switchyard_middleware_answers_total",
          "Requests a middleware answered itself (403, 308, 401, 429, 500), by service, middleware and status.",
          "counter",
          () => {
            const out: MetricValue<string>[] = [];
            for (const s of source.stats()) {
              for (const [key, value] of s.answers) {
                const [middleware, code] = key.split(" ");
                out.push({ labels: { service: s.name, middleware, code }, value });
              }
            }
            return out;
          },
        ) as never,
      );
    }
    if (options.requests) {
      this.proxyProtocolErrors = new Counter({
        name: "switchyard_proxy_protocol_errors_total",
        help: "Connections closed on a proxy_protocol listener without a response, by reason (untrusted peer, malformed header, timeout).",
        labelNames: ["reason"],
        registers: [r],
      });
    }
    if (options.health) {
      r.registerMetric(
        new ScrapeMetric(
          "switchyard_server_healthy",
          "1 when the server can take requests (good and not passively ejected), else 0.",
          "gauge",
          () => {
            const out: MetricValue<string>[] = [];
            for (const lb of source.balancers()) {
              for (const s of lb.servers) {
                out.push({ labels: { service: lb.link, server: s.name }, value: s.good ? 1 : 0 });
              }
            }
            return out;
          },
          "max",
        ) as never,
      );
      r.registerMetric(
        new ScrapeMetric(
          "switchyard_panic",
          "1 while the service is in panic mode (too few good servers: every server takes requests), else 0.",
          "gauge",
          () =>
            Array.from(source.balancers(), (lb) => ({
              labels: { service: lb.link },
              value: lb.panic ? 1 : 0,
            })),
          "max",
        ) as never,
      );
      this.reloads = new Counter({
        name: "switchyard_config_reloads_total",
        help: "Configuration reloads, by result (ok or error).",
        labelNames: ["result"],
        registers: [r],
      });
      this.reloads.inc({ result: "ok" }, 0);
      this.reloads.inc({ result: "error" }, 0);
      const wakes = new Counter({
        name: "switchyard_wakes_total",
        help: "Wakes of idle servers, by service, server and result (ok, error, timeout).",
        labelNames: ["service", "server", "result"],
        registers: [r],
      });
      const wakeSeconds = new Histogram({
        name: "switchyard_wake_duration_seconds",
        help: "Time from the start of a wake to the server being ready (or failing).",
        labelNames: ["service", "server"],
        buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180],
        registers: [r],
      });
      const stops = new Counter({
        name: "switchyard_idle_stops_total",
        help: "Servers stopped (or paused) after their idle_timeout, by service and server.",
        labelNames: ["service", "server"],
        registers: [r],
      });
      this.idle = {
        wake: (service, server, result, seconds) => {
          wakes.inc({ service, server, result });
          wakeSeconds.observe({ service, server }, seconds);
        },
        idleStop: (service, server) => stops.inc({ service, server }),
      };
    }
  }
}

/** One metric as prom-client's `getMetricsAsJSON` gives it (what workers send the primary). */
interface MetricJSON {
  name: string;
  help: string;
  type: string;
  aggregator?: string;
  values: { labels: Record<string, string | number>; value: number; metricName?: string }[];
}

/**
 * The counters and histograms of cluster workers that exited, as last read from them, summed: the
 * primary adds them to the workers' aggregate so that a total never goes down when a worker dies
 * and a fresh one (counting from 0) replaces it. Gauges are not kept (a dead worker has nothing in
 * flight). What a worker counted after its last scrape is lost with it.
 */
export class RetiredMetrics {
  readonly #metrics = new Map<string, MetricJSON & { byKey: Map<string, MetricJSON["values"][number]> }>();

  /** Adds the last metrics read from a worker that exited. */
  add(snapshot: readonly object[]): void {
    for (const m of snapshot as MetricJSON[]) {
      if ((m.type !== "counter" && m.type !== "histogram") || (m.aggregator ?? "sum") !== "sum") continue;
      let kept = this.#metrics.get(m.name);
      if (kept === undefined) {
        kept = { name: m.name, help: m.help, type: m.type, aggregator: "sum", values: [], byKey: new Map() };
        this.#metrics.set(m.name, kept);
      }
      for (const v of m.values) {
        const labels = Object.keys(v.labels)
          .sort()
          .map((k) => `${k}=${v.labels[k]}`)
          .join(",");
        const key = `${v.metricName ?? ""}{${labels}}`;
        const prev = kept.byKey.get(key);
        if (prev !== undefined) prev.value += v.value;
        else {
          const value = { labels: { ...v.labels }, value: v.value, metricName: v.metricName };
          kept.byKey.set(key, value);
          kept.values.push(value);
        }
      }
    }
  }

  get size(): number {
    return this.#metrics.size;
  }

  /** In `getMetricsAsJSON`'s shape, for `AggregatorRegistry.aggregate`. */
  toJSON(): object[] {
    return Array.from(this.#metrics.values(), ({ byKey: _, ...m }) => m);
  }
}
