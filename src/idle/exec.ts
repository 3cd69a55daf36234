/**
 * The `exec` provider: the server is started and stopped by command lines (systemctl, podman,
 * pct, ssh …), each run by `/bin/sh -c`. Exit 0 is success; any other exit is an error whose
 * message carries the command's last stderr line. Commands are bounded: `start`/`resume`/`status`
 * by the signal the watcher passes (wake_timeout), `stop`/`pause` by stop_timeout.
 */
import { spawn } from "node:child_process";
import { IdleError, InvalidArgumentError } from "../errors.ts";
import { type Logger, silentLogger } from "../log.ts";
import { commandEnv } from "./command-env.ts";
import type { IdleProvider, ProviderState, StopOptions } from "./provider.ts";

export interface ExecProviderOptions {
  start: string;
  stop: string;
  /** For stop_method pause; without it a pause runs `stop`. */
  pause?: string;
  /** Run by a wake after a pause; without it `start`. */
  resume?: string;
  /** Exit 0 = running. Without it switchyard remembers what it did last. */
  status?: string;
  cwd?: string;
  env?: Readonly<Record<string, string>>;
  logger?: Logger;
}

export class ExecProvider implements IdleProvider {
  readonly kind = "exec" as const;
  readonly #o: ExecProviderOptions;
  readonly #logger: Logger;
  /** What switchyard last did, for state() without a status command. */
  #assumed: ProviderState = "stopped";
  readonly #running = new Set<AbortController>();

  constructor(options: ExecProviderOptions) {
    for (const k of ["start", "stop"] as const) {
      if (typeof options?.[k] !== "string" || options[k].trim() === "") {
        throw new InvalidArgumentError(`ExecProvider: \`${k}\` command is required`);
      }
    }
    this.#o = options;
    this.#logger = options.logger ?? silentLogger;
  }

  async state(signal?: AbortSignal): Promise<ProviderState> {
    if (!this.#o.status) return this.#assumed;
    const r = await this.#run("status", this.#o.status, signal, 30_000, false);
    if (r.code === 0) return "running";
    return this.#assumed === "paused" ? "paused" : "stopped";
  }

  async start(signal: AbortSignal): Promise<void> {
    const resume = this.#assumed === "paused" && this.#o.resume;
    await this.#run(resume ? "resume" : "start", resume || this.#o.start, signal, undefined, true);
    this.#assumed = "running";
  }

  async stop(options: StopOptions): Promise<void> {
    const pause = options.method === "pause" && this.#o.pause;
    await this.#run(
      pause ? "pause" : "stop",
      pause || this.#o.stop,
      undefined,
      Math.max(1, options.timeout),
      true,
    );
    this.#assumed = pause ? "paused" : "stopped";
  }

  async close(): Promise<void> {
    for (const c of this.#running) c.abort();
  }

  /** Runs one command; resolves with its exit code, or rejects (when `check`) on a non-zero exit. */
  #run(
    what: string,
    command: string,
    signal: AbortSignal | undefined,
    timeout: number | undefined,
    check: boolean,
  ): Promise<{ code: number }> {
    return new Promise((resolve, reject) => {
      const ac = new AbortController();
      this.#running.add(ac);
      const onAbort = () => ac.abort(signal?.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      let timedOut = false;
      const timer =
        timeout === undefined
          ? undefined
          : setTimeout(() => {
              timedOut = true;
              ac.abort();
            }, timeout);
      const child = spawn("/bin/sh", ["-c", command], {
        cwd: this.#o.cwd,
        env: commandEnv(this.#o.env),
        stdio: ["ignore", "pipe", "pipe"],
        detached: true,
      });
      const kill = () => {
        if (child.pid !== undefined) {
          try {
            process.kill(-child.pid, "SIGKILL");
          } catch {}
        }
      };
      ac.signal.addEventListener("abort", kill, { once: true });
      let lastErr = "";
      let errBuf = "";
      child.stderr!.setEncoding("utf8");
      child.stderr!.on("data", (chunk: string) => {
        errBuf += chunk;
        const lines = errBuf.split("\n");
        errBuf = lines.pop() ?? "";
        for (const l of lines) {
          if (l.trim()) {
            lastErr = l.trim();
            this.#logger.info({ stream: "stderr", command: what }, l);
          }
        }
      });
      child.stdout!.setEncoding("utf8");
      child.stdout!.on("data", (chunk: string) => {
        for (const l of chunk.split("\n"))
          if (l.trim()) this.#logger.debug({ stream: "stdout", command: what }, l);
      });
      const finish = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.#running.delete(ac);
      };
      child.once("error", (err) => {
        finish();
        reject(
          new IdleError(`${what} command could not run: ${err.message}`, "ERR_SWITCHYARD_PROVIDER", {
            cause: err,
          }),
        );
      });
      child.once("close", (code, sig) => {
        finish();
        if (errBuf.trim()) lastErr = errBuf.trim();
        if (timedOut) {
          reject(
            new IdleError(`${what} command did not finish within ${timeout}ms`, "ERR_SWITCHYARD_PROVIDER"),
          );
        } else if (ac.signal.aborted) {
          reject(ac.signal.reason ?? new IdleError(`${what} command aborted`, "ERR_SWITCHYARD_PROVIDER"));
        } else if (check && code !== 0) {
          const how = sig ? `was killed by ${sig}` : `exited with code ${code}`;
          reject(
            new IdleError(
              `${what} command ${how}${lastErr ? `: ${lastErr}` : ""}`,
              "ERR_SWITCHYARD_PROVIDER",
            ),
          );
        } else resolve({ code: code ?? 1 });
      });
    });
  }
}
