/**
 * The `docker` idle provider: one container driven through the Docker Engine API on a unix
 * socket (Docker, or podman's Docker-compatible API service). Plain `node:http` with
 * `socketPath`, one short-lived connection per call (docs/docker.md says why).
 *
 * - state: `GET /containers/{name}/json` → running / paused / stopped.
 * - start: `POST …/start` (204, or 304 when already running); a paused container is unpaused.
 * - stop `stop`: `POST …/stop?t=ceil(timeout s)`; with a stop signal on an engine whose API is
 *   1.42 or newer `…/stop?signal=`, on older ones (podman 4 answers 1.41 and ignores `signal`)
 *   `…/kill?signal=`, `…/wait?condition=not-running` for the timeout, then SIGKILL.
 * - stop `kill`: `…/kill?signal=` (default SIGKILL), then the same wait and SIGKILL.
 * - stop `pause`: `…/pause`; a `stop`/`kill` of a paused container unpauses it first (a frozen
 *   process cannot act on a signal). A pause the engine fails while the container still runs is
 *   tried again (3 tries in all, logged): runc's cgroup v1 freezer gives up ("unable to freeze")
 *   when the container's processes do not get the CPU in time on a busy host.
 * - watch: `GET /events?filters=…` (JSON lines); an event (or a (re)connect) makes it read the
 *   state with an inspect and report it when it changed; our own starts and stops are not
 *   reported; reconnected with back-off when the stream ends.
 */
import type * as http from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { InvalidArgumentError } from "../errors.ts";
import { type Logger, silentLogger } from "../log.ts";
import type { IdleProvider, ProviderState, StopOptions } from "./provider.ts";

// node:http taken with getBuiltinModule, not an ES import: importing it as an ES module reads
// every export, and its lazy ones (WebSocket & co.) load undici, tls, http2 and zlib: ~13 MB of RSS
const nodeHttp = process.getBuiltinModule("node:http");

export interface DockerProviderOptions {
  /** Container name or ID. */
  readonly container: string;
  /** The engine's unix socket; default from `DOCKER_HOST=unix://…`, else /var/run/docker.sock. */
  readonly socketPath?: string;
  readonly logger?: Logger;
  /** Pins the API version (`/v1.41/…` paths); default: the engine's own (unversioned paths). */
  readonly apiVersion?: string;
}

const DEFAULT_SOCKET = "/var/run/docker.sock";
/** How long a call other than stop/wait may take before it fails. */
const CALL_TIMEOUT = 30_000;
/** What a stop may take beyond its own `t` (the engine holds the answer until the container exited). */
const STOP_MARGIN = 30_000;
/** Event stream reconnect back-off. */
const BACKOFF_FIRST = 500;
const BACKOFF_MAX = 30_000;
/** An engine answer body is read up to this many bytes (inspect answers are a few KiB). */
const MAX_BODY = 1 << 20;
/** Tries of a pause in all, and the wait before the second (doubled before each later one), ms. */
export const PAUSE_TRIES = 3;
export const PAUSE_RETRY = 250;

/** The engine socket named by `DOCKER_HOST` (unix:// only), else Docker's default path. */
export function dockerSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  const host = env.DOCKER_HOST;
  if (!host) return DEFAULT_SOCKET;
  if (host.startsWith("unix://")) return host.slice("unix://".length);
  throw new Error(
    `docker: DOCKER_HOST=${host} is not supported: only a unix socket (unix:///path/to/docker.sock)`,
  );
}

/** `TERM`, `sigterm`, `SIGTERM` → `SIGTERM`; numbers stay as they are. */
export function signalName(signal: string): string {
  const s = signal.trim().toUpperCase();
  if (/^\d+$/.test(s) || s.startsWith("SIG")) return s;
  return `SIG${s}`;
}

function isKill(signal: string): boolean {
  return signal === "SIGKILL" || signal === "9";
}

/** "1.42" >= "1.41" and the like; anything unparsable counts as old. */
function apiAtLeast(version: string, major: number, minor: number): boolean {
  const m = /^v?(\d+)\.(\d+)/.exec(version);
  if (!m) return false;
  const a = Number(m[1]);
  const b = Number(m[2]);
  return a > major || (a === major && b >= minor);
}

interface ContainerState {
  Status?: string;
  Running?: boolean;
  Paused?: boolean;
  Restarting?: boolean;
}

/** Docker's container states onto the provider's three. `restarting` counts as running: the engine is bringing it up. */
export function providerState(s: ContainerState | undefined): ProviderState {
  if (!s) return "stopped";
  if (s.Status === "paused" || s.Paused === true) return "paused";
  if (s.Status === "running" || s.Status === "restarting" || s.Running === true) return "running";
  return "stopped"; // created, exited, dead, removing
}

interface EngineEvent {
  Type?: string;
  Action?: string;
  status?: string;
  id?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
}

/** A watch() loop, told when an op of ours ends (with the state it made, when it succeeded). */
interface Follower {
  opEnded(result: ProviderState | undefined): void;
}

interface Answer {
  status: number;
  body: string;
}

interface CallOptions {
  signal?: AbortSignal;
  /** ms; default CALL_TIMEOUT. */
  timeout?: number;
}

export class DockerProvider implements IdleProvider {
  readonly kind = "docker" as const;
  readonly container: string;
  readonly socketPath: string;
  readonly #log: Logger;
  readonly #prefix: string;
  readonly #pinnedVersion: string | undefined;
  readonly #path: string;
  #engineVersion: Promise<string> | undefined;
  /** Aborted by close(): every call, stream and back-off timer listens to it. */
  readonly #closing = new AbortController();
  /** Settles when each open connection or follow loop has finished; close() waits for all. */
  readonly #open = new Set<Promise<unknown>>();
  #opsStarted = 0;
  #opsRunning = 0;
  /** The watch() loops running now. */
  readonly #followers = new Set<Follower>();

  constructor(options: DockerProviderOptions) {
    if (!options.container)
      throw new InvalidArgumentError(
        "DockerProvider: options.container (a container name or ID) is required",
      );
    this.container = options.container;
    this.socketPath = options.socketPath ?? dockerSocketPath();
    this.#log = options.logger ?? silentLogger;
    this.#pinnedVersion = options.apiVersion?.replace(/^v/, "");
    this.#prefix = this.#pinnedVersion ? `/v${this.#pinnedVersion}` : "";
    this.#path = `/containers/${encodeURIComponent(this.container)}`;
  }

  async state(signal?: AbortSignal): Promise<ProviderState> {
    return (await this.#inspect(signal)).state;
  }

  /** The container's state and, for a stopped one, the words for it ("exited with code 3"). */
  async #inspect(signal?: AbortSignal): Promise<{ state: ProviderState; stopped: string }> {
    const answer = await this.#call("inspect", "GET", `${this.#path}/json`, { signal });
    let info: { State?: ContainerState & { ExitCode?: number } };
    try {
      info = JSON.parse(answer.body) as { State?: ContainerState & { ExitCode?: number } };
    } catch (err) {
      throw new Error(`docker: container "${this.container}": inspect: the engine's answer is not JSON`, {
        cause: err,
      });
    }
    const st = info.State;
    // podman says "stopped" between the process's exit and its cleanup (then "exited"); its
    // ExitCode is already the process's
    const exited = st?.Status === "exited" || st?.Status === "dead" || st?.Status === "stopped";
    return {
      state: providerState(st),
      stopped: exited ? `exited with code ${st?.ExitCode ?? "?"}` : `is stopped (${st?.Status ?? "unknown"})`,
    };
  }

  start(signal: AbortSignal): Promise<void> {
    return this.#op(() => this.#start(signal), "running");
  }

  stop(options: StopOptions): Promise<void> {
    return this.#op(() => this.#stop(options), options.method === "pause" ? "paused" : "stopped");
  }

  /**
   * Our own starts and stops are not reported by watch() (the caller made them), and the event
   * streams wait for them to end before reading the state again: a read in the middle of a start
   * would say "stopped" and could undo the wake under way. Once done, `result` is the state the
   * followers know.
   */
  async #op(fn: () => Promise<void>, result: ProviderState): Promise<void> {
    this.#opsStarted++;
    this.#opsRunning++;
    let ok = false;
    try {
      await fn();
      ok = true;
    } finally {
      this.#opsRunning--;
      for (const f of this.#followers) f.opEnded(ok ? result : undefined);
    }
  }

  async #start(signal: AbortSignal): Promise<void> {
    const state = await this.state(signal);
    if (state === "running") return;
    if (state === "paused") {
      await this.#call("unpause", "POST", `${this.#path}/unpause`, { signal });
      return;
    }
    await this.#call("start", "POST", `${this.#path}/start`, { signal });
  }

  async #stop(options: StopOptions): Promise<void> {
    const state = await this.state();
    if (state === "stopped") return;
    if (options.method === "pause") {
      if (state === "running") await this.#pause();
      return;
    }
    if (state === "paused") await this.#call("unpause", "POST", `${this.#path}/unpause`);
    const timeout = Math.max(0, options.timeout);
    if (options.method === "kill") {
      await this.#killAndWait(options.signal ? signalName(options.signal) : "SIGKILL", timeout);
      return;
    }
    const signal = options.signal ? signalName(options.signal) : undefined;
    if (signal === undefined || (await this.#stopTakesSignal())) {
      const t = Math.ceil(timeout / 1000);
      const query = signal === undefined ? `t=${t}` : `t=${t}&signal=${encodeURIComponent(signal)}`;
      await this.#call("stop", "POST", `${this.#path}/stop?${query}`, { timeout: t * 1000 + STOP_MARGIN });
      return;
    }
    await this.#killAndWait(signal, timeout);
  }

  /**
   * `POST /pause`, tried again while the engine fails it and the container still runs. runc
   * freezes a cgroup v1 by asking the kernel again and again for a moment, then thaws it and
   * fails ("unable to freeze"; podman only says "exit status 1") when a process in it did not get
   * the CPU in that moment: on a busy host, a transient failure that the next try usually fixes.
   */
  async #pause(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#call("pause", "POST", `${this.#path}/pause`);
        return;
      } catch (err) {
        if (attempt >= PAUSE_TRIES) throw err;
        // what the failed pause left: paused after all, exited meanwhile, or still running
        const state = await this.state().catch(() => undefined);
        if (state === "paused" || state === "stopped") return;
        if (state !== "running") throw err;
        const retryMs = PAUSE_RETRY * 2 ** (attempt - 1);
        this.#log.warn(
          { err, container: this.container, attempt, retryMs },
          "docker: the engine could not pause the container; trying again",
        );
        await sleep(retryMs, undefined, { signal: this.#closing.signal }).catch(() => {
          throw this.#closing.signal.reason;
        });
      }
    }
  }

  watch(onChange: (state: ProviderState, detail: string) => void, signal: AbortSignal): void {
    if (signal.aborted || this.#closing.signal.aborted) return;
    const stop = AbortSignal.any([signal, this.#closing.signal]);
    this.#track(this.#follow(onChange, stop));
  }

  /**
   * Ends every call and event stream of this provider and waits until their connections are
   * closed. The container itself is left as it is: it belongs to the engine, not to switchyard.
   */
  async close(): Promise<void> {
    this.#closing.abort(new Error(`docker: container "${this.container}": provider closed`));
    while (this.#open.size) await Promise.allSettled([...this.#open]);
  }

  // --- stopping with a signal ------------------------------------------------------------

  /** Sends `signal`; if the container has not exited after `timeout` ms, SIGKILL. Resolves once it is down. */
  async #killAndWait(signal: string, timeout: number): Promise<void> {
    await this.#kill(signal);
    if (!isKill(signal)) {
      if (await this.#waitDown(timeout)) return;
      this.#log.warn(
        { container: this.container, signal, timeoutMs: timeout },
        "docker: container still running after its stop signal and stop_timeout; sending SIGKILL",
      );
      await this.#kill("SIGKILL");
    }
    if (!(await this.#waitDown(STOP_MARGIN))) {
      throw new Error(
        `docker: container "${this.container}": still running ${STOP_MARGIN / 1000} s after SIGKILL`,
      );
    }
  }

  async #kill(signal: string): Promise<void> {
    try {
      await this.#call("kill", "POST", `${this.#path}/kill?signal=${encodeURIComponent(signal)}`);
    } catch (err) {
      // It may have exited between our inspect and the kill (Docker 409, podman 500 "can only kill running containers").
      if ((await this.state().catch(() => "unknown")) === "stopped") return;
      throw err;
    }
  }

  /** `POST /wait?condition=not-running` for up to `ms`: true once the container is down, false on time-out. */
  async #waitDown(ms: number): Promise<boolean> {
    const timer = new AbortController();
    const t = setTimeout(() => timer.abort(), ms);
    try {
      await this.#call("wait", "POST", `${this.#path}/wait?condition=not-running`, {
        signal: timer.signal,
        timeout: ms + STOP_MARGIN,
      });
      return true;
    } catch (err) {
      if (timer.signal.aborted && !this.#closing.signal.aborted) return false;
      throw err;
    } finally {
      clearTimeout(t);
    }
  }

  /** Whether `POST /stop` takes `signal` (Engine API 1.42+). Asked once; a failed ask is asked again next time. */
  async #stopTakesSignal(): Promise<boolean> {
    if (this.#pinnedVersion) return apiAtLeast(this.#pinnedVersion, 1, 42);
    this.#engineVersion ??= this.#call("version", "GET", "/version").then(
      (a) => String((JSON.parse(a.body) as { ApiVersion?: unknown }).ApiVersion ?? ""),
      (err: unknown) => {
        this.#engineVersion = undefined;
        throw err;
      },
    );
    return apiAtLeast(await this.#engineVersion, 1, 42);
  }

  // --- events ----------------------------------------------------------------------------

  async #follow(onChange: (state: ProviderState, detail: string) => void, stop: AbortSignal): Promise<void> {
    const c = `container "${this.container}"`;
    // What was last reported (or made by an op of ours): only a different state is reported.
    let last: ProviderState | undefined;
    // The newest event that says what the state is, for the words of the report.
    let news: [ProviderState, string] | undefined;
    // Events say "something changed"; the state reported is always read from the engine, after
    // the event, so a late event (podman delivers them from a file) cannot report a stale state.
    let dirty = false;
    let reading = false;
    const read = async () => {
      if (reading) return;
      reading = true;
      try {
        while (dirty && !stop.aborted && this.#opsRunning === 0) {
          dirty = false;
          const ops = this.#opsStarted;
          let info: { state: ProviderState; stopped: string };
          try {
            info = await this.#inspect(stop);
          } catch (err) {
            if (stop.aborted) return;
            if (news?.[1] === `${c} removed`) report("stopped", news[1]);
            else
              this.#log.warn({ err, container: this.container }, "docker: cannot read the container's state");
            continue;
          }
          // something newer came in meanwhile (an event, an op of ours): read again (after the op)
          if (dirty || this.#opsStarted !== ops) {
            dirty = true;
            continue;
          }
          this.#log.debug({ container: this.container, state: info.state }, "docker: state read");
          const words =
            info.state === "stopped"
              ? `${c} ${info.stopped}`
              : news?.[0] === info.state
                ? news[1]
                : `${c} is ${info.state}`;
          report(info.state, words);
        }
      } finally {
        reading = false;
      }
    };
    const changed = () => {
      dirty = true;
      void read();
    };
    const report = (state: ProviderState, detail: string) => {
      if (state === last) return;
      last = state;
      try {
        onChange(state, detail);
      } catch (err) {
        this.#log.error({ err, container: this.container }, "docker: a state listener threw");
      }
    };
    const follower: Follower = {
      opEnded(result) {
        if (result) last = result;
        void read();
      },
    };
    this.#followers.add(follower);
    let delay = BACKOFF_FIRST;
    try {
      while (!stop.aborted) {
        let connected = false;
        try {
          await this.#stream(
            stop,
            () => {
              connected = true;
              delay = BACKOFF_FIRST;
              this.#log.debug({ container: this.container }, "docker: following the engine's events");
              changed(); // whatever happened while the stream was down
            },
            (ev) => {
              const change = this.#eventState(ev);
              this.#log.debug({ container: this.container, action: ev.Action ?? ev.status }, "docker: event");
              if (!change) return;
              news = change;
              changed();
            },
          );
          if (stop.aborted) return;
          this.#log.warn(
            { container: this.container, socket: this.socketPath, retryMs: delay },
            "docker: the engine ended the event stream; reconnecting",
          );
        } catch (err) {
          if (stop.aborted) return;
          this.#log.warn(
            { err, container: this.container, socket: this.socketPath, retryMs: delay, connected },
            connected
              ? "docker: the event stream broke; reconnecting"
              : "docker: cannot follow the engine's events; retrying",
          );
        }
        try {
          await sleep(delay, undefined, { signal: stop });
        } catch {
          return; // aborted
        }
        delay = Math.min(delay * 2, BACKOFF_MAX);
      }
    } finally {
      this.#followers.delete(follower);
    }
  }

  /**
   * One event stream connection: resolves when the engine ends it or `stop` aborts, rejects when
   * it cannot be opened or breaks.
   */
  #stream(stop: AbortSignal, onConnect: () => void, onEvent: (ev: EngineEvent) => void): Promise<void> {
    const filters = JSON.stringify({ type: ["container"], container: [this.container] });
    const path = `${this.#prefix}/events?filters=${encodeURIComponent(filters)}`;
    return new Promise<void>((resolve, reject) => {
      const req = nodeHttp.request({ socketPath: this.socketPath, method: "GET", path, agent: false });
      this.#track(new Promise((r) => req.once("close", r)));
      const onAbort = () => req.destroy();
      stop.addEventListener("abort", onAbort, { once: true });
      let settled = false;
      const done = (err?: Error) => {
        if (settled) return;
        settled = true;
        stop.removeEventListener("abort", onAbort);
        req.destroy();
        if (err && !stop.aborted) reject(err);
        else resolve();
      };
      req.once("error", (err) => done(this.#socketError("events", err)));
      req.once("response", (res) => {
        if (res.statusCode !== 200) {
          readBody(res).then(
            (body) => done(this.#engineError("events", { status: res.statusCode ?? 0, body })),
            (err: Error) => done(this.#socketError("events", err)),
          );
          return;
        }
        onConnect();
        let buffered = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          buffered += chunk;
          let nl = buffered.indexOf("\n");
          while (nl >= 0) {
            const line = buffered.slice(0, nl).trim();
            buffered = buffered.slice(nl + 1);
            nl = buffered.indexOf("\n");
            if (!line) continue;
            let ev: EngineEvent;
            try {
              ev = JSON.parse(line) as EngineEvent;
            } catch {
              this.#log.warn(
                { container: this.container, line: line.slice(0, 200) },
                "docker: unreadable event",
              );
              continue;
            }
            if (!stop.aborted) onEvent(ev);
          }
          if (buffered.length > MAX_BODY) done(new Error("docker: events: an event line longer than 1 MiB"));
        });
        res.once("end", () => done());
        res.once("error", (err) => done(this.#socketError("events", err)));
        res.once("close", () => {
          if (!res.complete) done(this.#socketError("events", new Error("the stream was cut")));
        });
      });
      req.end();
    });
  }

  /** What one engine event means for the state, or undefined when it changes nothing. */
  #eventState(ev: EngineEvent): [ProviderState, string] | undefined {
    if (ev.Type !== undefined && ev.Type !== "container") return undefined;
    const name = ev.Actor?.Attributes?.name;
    const id = ev.Actor?.ID ?? ev.id ?? "";
    if (name !== this.container && !id.startsWith(this.container)) return undefined;
    const action = ev.Action ?? ev.status ?? "";
    const c = `container "${this.container}"`;
    switch (action) {
      case "start":
        return ["running", `${c} started`];
      case "restart":
        return ["running", `${c} restarted`];
      case "unpause":
        return ["running", `${c} unpaused`];
      case "pause":
        return ["paused", `${c} paused`];
      case "die": {
        const code = ev.Actor?.Attributes?.exitCode;
        return ["stopped", code === undefined ? `${c} exited` : `${c} exited with code ${code}`];
      }
      case "stop":
        return ["stopped", `${c} stopped`];
      case "destroy":
        return ["stopped", `${c} removed`];
      default:
        return undefined; // create, kill (a signal, not an exit), exec_*, health_status, attach, …
    }
  }

  // --- one API call ----------------------------------------------------------------------

  #track(p: Promise<unknown>): void {
    const settled: Promise<unknown> = p.then(
      () => this.#open.delete(settled),
      () => this.#open.delete(settled),
    );
    this.#open.add(settled);
  }

  /** One request on its own connection; resolves with a 2xx/304 answer, rejects with a message naming the container and the engine's reason. */
  #call(op: string, method: "GET" | "POST", path: string, options: CallOptions = {}): Promise<Answer> {
    const closing = this.#closing.signal;
    const { signal } = options;
    if (closing.aborted) return Promise.reject(closing.reason);
    if (signal?.aborted) return Promise.reject(this.#aborted(op, signal));
    const timeout = options.timeout ?? CALL_TIMEOUT;
    return new Promise<Answer>((resolve, reject) => {
      const req = nodeHttp.request({
        socketPath: this.socketPath,
        method,
        path: this.#prefix + path,
        agent: false,
      });
      this.#track(new Promise((r) => req.once("close", r)));
      let settled = false;
      const finish = (err: Error | undefined, answer?: Answer) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        closing.removeEventListener("abort", onClose);
        signal?.removeEventListener("abort", onAbort);
        if (err) {
          req.destroy();
          reject(err);
        } else resolve(answer!);
      };
      const onClose = () => finish(closing.reason as Error);
      const onAbort = () => finish(this.#aborted(op, signal!));
      closing.addEventListener("abort", onClose, { once: true });
      signal?.addEventListener("abort", onAbort, { once: true });
      const timer = setTimeout(
        () =>
          finish(
            new Error(
              `docker: container "${this.container}": ${op}: no answer from the engine at ${this.socketPath} within ${timeout} ms`,
            ),
          ),
        timeout,
      );
      req.once("error", (err) => finish(this.#socketError(op, err)));
      req.once("response", (res) => {
        readBody(res).then(
          (body) => {
            const answer = { status: res.statusCode ?? 0, body };
            if ((answer.status >= 200 && answer.status < 300) || answer.status === 304)
              finish(undefined, answer);
            else finish(this.#engineError(op, answer));
          },
          (err: Error) => finish(this.#socketError(op, err)),
        );
      });
      req.end();
    });
  }

  #aborted(op: string, signal: AbortSignal): Error {
    return new Error(`docker: container "${this.container}": ${op} aborted`, { cause: signal.reason });
  }

  /** A failure below HTTP: no socket, refused, or the engine hung up. */
  #socketError(op: string, err: Error & { code?: string }): Error {
    const code = err.code;
    if (code === "ENOENT" || code === "ECONNREFUSED" || code === "EACCES" || code === "ENOTSOCK") {
      return new Error(`docker: cannot reach the engine at ${this.socketPath}: ${code}`, { cause: err });
    }
    return new Error(
      `docker: container "${this.container}": ${op}: the engine at ${this.socketPath} closed the connection (${code ?? err.message})`,
      { cause: err },
    );
  }

  /** A non-2xx answer: the engine's own `message` (Docker and podman send `{"message": …}`). */
  #engineError(op: string, answer: Answer): Error {
    let message = answer.body.trim();
    try {
      const parsed = JSON.parse(message) as { message?: unknown };
      if (typeof parsed.message === "string") message = parsed.message;
    } catch {
      // not JSON: the text as it is
    }
    if (message.length > 500) message = `${message.slice(0, 500)}…`;
    const c = `docker: container "${this.container}"`;
    if (answer.status === 404 && op !== "version" && op !== "events") {
      return new Error(`${c}: no such container (${op}: ${message || "HTTP 404"})`);
    }
    return new Error(`${c}: ${op}: HTTP ${answer.status}${message ? `: ${message}` : ""}`);
  }
}

/** The body of an answer as text (capped), rejecting when the connection breaks before its end. */
function readBody(res: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = "";
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => {
      if (body.length < MAX_BODY) body += chunk;
    });
    res.once("end", () => resolve(body));
    res.once("error", reject);
    res.once("close", () => {
      if (!res.complete) reject(Object.assign(new Error("the answer was cut"), { code: "ECONNRESET" }));
    });
  });
}
