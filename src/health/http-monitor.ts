import type * as http from "node:http";
import type * as http2 from "node:http2";
import type * as https from "node:https";
import { isIP } from "node:net";
import { toMs } from "../duration.ts";
import { InvalidArgumentError } from "../errors.ts";
import {
  resolveTransport,
  type Transport,
  tlsConnectOptions,
  type UpstreamProtocol,
  type UpstreamTlsOptions,
} from "../upstream-tls.ts";
import { type HealthStatus, ReportedHealth } from "./status.ts";

// node:http taken with getBuiltinModule, not an ES import: importing it as an ES module reads
// every export, and its lazy ones (WebSocket & co.) load undici, tls, http2 and zlib: ~13 MB of RSS
const nodeHttp = process.getBuiltinModule("node:http");

export interface HttpHealthMonitorOptions {
  /** Path probed on the server (default `/`). */
  path?: string;
  /** GET instead of HEAD. */
  useGet?: boolean;
  /** ms or Go duration string; default 5s. */
  interval?: number | string;
  /** ms or Go duration string; default 5s. */
  timeout?: number | string;
  /** Consecutive failures before unhealthy; default max(1, 15s / interval); negative = at once. */
  retries?: number;
  /** As the proxy talks to the server: `http1.1` (default), `h2` or `h2c`. */
  protocol?: UpstreamProtocol;
  /** TLS towards an https:// url, as the server's own `tls` (verified by default). */
  tls?: UpstreamTlsOptions;
}

/**
 * Active HTTP checker: HEAD (or GET) `path` every `interval`; 2xx/3xx is healthy.
 * Healthy until the first check says otherwise; one success makes it healthy again.
 */
export class HttpHealthMonitor extends ReportedHealth {
  readonly url: URL;
  readonly path: string;
  readonly method: "HEAD" | "GET";
  readonly interval: number;
  readonly timeout: number;
  readonly retries: number;
  readonly transport: Transport;
  /** This monitor's own agent (custom TLS settings), or undefined for the shared ones. */
  #agent: http.Agent | undefined;
  #h2: http2.ClientHttp2Session | undefined;
  #failures = 0;
  #lastSeen = 0;
  #started = 0;
  #timer: NodeJS.Timeout | undefined;
  #signal: AbortSignal | undefined;
  #inFlight: Promise<void> | undefined;

  constructor(url: string | URL, options: HttpHealthMonitorOptions = {}) {
    super();
    try {
      this.url = new URL(url);
    } catch (err) {
      throw new InvalidArgumentError(`HttpHealthMonitor: invalid url ${JSON.stringify(String(url))}`, {
        cause: err,
      });
    }
    if (this.url.protocol !== "http:" && this.url.protocol !== "https:") {
      throw new InvalidArgumentError(
        `HttpHealthMonitor: url must be http: or https:, got ${this.url.protocol}`,
      );
    }
    const path = options.path ?? "/";
    if (!path.startsWith("/")) throw new InvalidArgumentError(`HttpHealthMonitor: path must start with "/"`);
    this.path = path;
    this.method = options.useGet ? "GET" : "HEAD";
    this.interval = toMs(options.interval, 5000, "healthcheck.interval");
    this.timeout = toMs(options.timeout, 5000, "healthcheck.timeout");
    if (this.interval <= 0) throw new InvalidArgumentError("healthcheck.interval must be > 0");
    if (this.timeout <= 0) throw new InvalidArgumentError("healthcheck.timeout must be > 0");
    const retries = options.retries ?? 0;
    if (!Number.isInteger(retries)) throw new InvalidArgumentError("healthcheck.retries must be an integer");
    this.retries = retries < 0 ? 1 : retries === 0 ? Math.max(1, Math.floor(15000 / this.interval)) : retries;
    this.transport = resolveTransport("HttpHealthMonitor", this.url, options.protocol, options.tls);
  }

  /** Time of the last successful probe (epoch ms), 0 if none. */
  lastSeen(): number {
    return this.#lastSeen;
  }
  get running(): boolean {
    return this.#signal !== undefined && !this.#signal.aborted;
  }

  /** Starts probing at once, then every interval, until `signal` aborts. Idempotent while running. */
  start(signal: AbortSignal): void {
    if (this.running) return;
    if (signal.aborted) return;
    this.#signal = signal;
    this.#started = Date.now();
    const stop = () => {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    };
    signal.addEventListener(
      "abort",
      () => {
        stop();
        this.#agent?.destroy();
        this.#agent = undefined;
        this.#h2?.destroy();
        this.#h2 = undefined;
      },
      { once: true },
    );
    void this.#tick();
  }

  /** Probes now (used after a passive failure) unless a probe is already running. */
  checkNow(): void {
    if (!this.running || this.#inFlight) return;
    clearTimeout(this.#timer);
    void this.#tick();
  }

  /** Runs one probe and applies its result; exposed for tests and the admin API. */
  async check(): Promise<HealthStatus> {
    if (this.#inFlight) {
      await this.#inFlight;
      return this.status();
    }
    this.#inFlight = this.#probe();
    try {
      await this.#inFlight;
    } finally {
      this.#inFlight = undefined;
    }
    return this.status();
  }

  async #tick(): Promise<void> {
    await this.check();
    const signal = this.#signal;
    if (!signal || signal.aborted) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#tick(), this.interval);
    this.#timer.unref?.();
  }

  async #probe(): Promise<void> {
    const target = new URL(this.path, this.url);
    const began = performance.now();
    const timeout = AbortSignal.timeout(this.timeout);
    const signal = this.#signal ? AbortSignal.any([timeout, this.#signal]) : timeout;
    let ok = false;
    let detail = "";
    try {
      const status =
        this.transport.protocol === "http1.1"
          ? await probe(target, this.method, signal, this.#http1Agent())
          : await this.#probeH2(target, signal);
      ok = status >= 200 && status < 400;
      detail = ok ? "" : `HTTP ${status}`;
    } catch (err) {
      if (this.#signal?.aborted) return;
      detail = timeout.aborted ? `timeout after ${this.timeout}ms` : describe(err);
    }
    this.setLatency(performance.now() - began);
    if (this.#signal?.aborted) return;
    if (ok) {
      this.#failures = 0;
      this.#lastSeen = Date.now();
      this.setDetail("");
      this.setStatus("healthy");
    } else {
      this.#failures++;
      this.setDetail(detail);
      // a failed check below `retries` must not notify: listeners treat "healthy" as a success
      if (this.#failures >= this.retries) this.setStatus("unhealthy");
    }
  }

  /** The agent for HTTP/1.1 probes: shared unless this server has TLS settings of its own. */
  #http1Agent(): http.Agent {
    const t = this.transport.tls;
    if (t === undefined) {
      plainAgent ??= new nodeHttp.Agent({ keepAlive: true });
      return plainAgent;
    }
    if (t.secureContext === undefined && t.servername === undefined && t.rejectUnauthorized) {
      tlsAgent ??= new (process.getBuiltinModule("node:https").Agent)({ keepAlive: true });
      return tlsAgent;
    }
    const host = this.url.hostname.replace(/^\[|\]$/g, "");
    this.#agent ??= new (process.getBuiltinModule("node:https").Agent)({
      keepAlive: true,
      ...tlsConnectOptions(t, host, isIP(host) !== 0),
    });
    return this.#agent;
  }

  /** One probe over this monitor's HTTP/2 session (opened again when it closed). */
  #probeH2(target: URL, signal: AbortSignal): Promise<number> {
    let session = this.#h2;
    if (session === undefined || session.closed || session.destroyed) {
      const t = this.transport.tls;
      const host = this.url.hostname.replace(/^\[|\]$/g, "");
      session = process
        .getBuiltinModule("node:http2")
        .connect(this.url.origin, t ? tlsConnectOptions(t, host, isIP(host) !== 0) : {});
      session.on("error", () => {});
      session.unref();
      this.#h2 = session;
    }
    const s = session;
    return new Promise((resolve, reject) => {
      let stream: http2.ClientHttp2Stream;
      try {
        stream = s.request(
          { ":method": this.method, ":path": target.pathname + target.search, ...PROBE_HEADERS },
          { endStream: true, signal },
        );
      } catch (err) {
        reject(err);
        return;
      }
      let status = 0;
      stream.on("response", (h) => {
        status = Number(h[":status"]);
      });
      stream.on("error", (err) => {
        // the session's own error says why (a refused certificate, a refused connection)
        const cause = (err as { cause?: unknown }).cause;
        reject(cause ?? err);
      });
      s.once("error", reject);
      stream.on("close", () => {
        s.off("error", reject);
        if (status > 0) resolve(status);
        else reject(new Error(`stream closed without a response (code ${stream.rstCode})`));
      });
      stream.resume();
    });
  }

  toJSON() {
    return {
      url: this.url.href,
      path: this.path,
      method: this.method,
      interval: this.interval,
      timeout: this.timeout,
      retries: this.retries,
      started: this.#started ? new Date(this.#started).toISOString() : null,
      lastSeen: this.#lastSeen ? new Date(this.#lastSeen).toISOString() : null,
    };
  }
}

const PROBE_HEADERS = { "user-agent": "switchyard-healthcheck", accept: "*/*", "cache-control": "no-cache" };

/**
 * Keep-alive agents shared by the monitors whose server has no TLS settings of its own (one
 * connection per backend, not one per probe). Certificates are verified as the proxy verifies them.
 * Process-wide, as Node's global agent: two balancers probing one backend share its connection.
 */
let plainAgent: http.Agent | undefined;
let tlsAgent: https.Agent | undefined;

/**
 * One probe: resolves with the status once the body is drained; `signal` bounds all of it. A kept-alive
 * connection the backend closed just as the probe went out is not the backend's failure: such a probe
 * is sent once more on a fresh connection (Node's `reusedSocket` rule).
 */
async function probe(target: URL, method: string, signal: AbortSignal, agent: http.Agent): Promise<number> {
  const tls = target.protocol === "https:";
  try {
    return await probeOnce(tls, target, method, signal, agent);
  } catch (err) {
    const e = err as { reusedSocket?: boolean; code?: string };
    if (e.reusedSocket !== true || signal.aborted || (e.code !== "ECONNRESET" && e.code !== "EPIPE"))
      throw err;
    return probeOnce(tls, target, method, signal, agent);
  }
}

function probeOnce(
  tls: boolean,
  target: URL,
  method: string,
  signal: AbortSignal,
  agent: http.Agent,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = (tls ? process.getBuiltinModule("node:https") : nodeHttp).request(
      target,
      { method, headers: PROBE_HEADERS, agent, signal },
      (res) => {
        res.on("error", reject);
        res.on("end", () => resolve(res.statusCode ?? 0));
        res.resume();
      },
    );
    req.on("error", (err: Error & { reusedSocket?: boolean }) => {
      err.reusedSocket = req.reusedSocket;
      reject(err);
    });
    req.end();
  });
}

function describe(err: unknown): string {
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  return e?.cause?.code ?? e?.code ?? e?.message ?? String(err);
}
