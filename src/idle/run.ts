/**
 * The `run` provider: switchyard runs the server's process itself.
 *
 * No orphans, by two mechanisms:
 * - every process is started in its own process group (`detached`), so a stop, kill or pause
 *   signals the command and everything it spawned (a `/bin/sh -c` string, `npm start` …); and
 *   switchyard's shutdown stops each group (stop_signal, then SIGKILL after stop_timeout), with a
 *   last synchronous SIGKILL to every group still alive when the process exits;
 * - each running process has a watchdog: a `/bin/sh` (about 1 MB) that ignores INT/TERM/HUP and
 *   blocks reading a pipe whose only writer is switchyard. When switchyard dies in any way —
 *   SIGKILL included — the kernel closes the pipe, `read` returns, and the watchdog sends
 *   SIGKILL to the whole process group. Linux's PR_SET_PDEATHSIG would do the same, but Node
 *   cannot set it on a child; the pipe works on every POSIX system.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { statSync } from "node:fs";
import { IdleError, InvalidArgumentError } from "../errors.ts";
import { type Logger, silentLogger } from "../log.ts";
import { commandEnv } from "./command-env.ts";
import type { IdleProvider, ProviderState, StopOptions } from "./provider.ts";

export interface RunProviderOptions {
  /** argv list (no shell) or a string run by `/bin/sh -c`. */
  command: readonly string[] | string;
  cwd?: string;
  /** Added to switchyard's own environment. */
  env?: Readonly<Record<string, string>>;
  /** Output lines are logged through it (tag it with the server). */
  logger?: Logger;
  /** Used by close() (switchyard's shutdown); default SIGTERM. */
  stopSignal?: string;
  /** ms; used by close(); default 10 s. */
  stopTimeout?: number;
}

const WATCHDOG = 'trap "" INT TERM HUP; read _; kill -KILL "-$1" 2>/dev/null';

/**
 * Process groups alive in this process, SIGKILLed if switchyard exits without stopping them:
 * process-wide, as the one 'exit' hook that reaches them is.
 */
const live = new Set<number>();
let exitHook = false;
function track(pgid: number): void {
  live.add(pgid);
  if (!exitHook) {
    exitHook = true;
    process.once("exit", () => {
      for (const g of live) killGroup(g, "SIGKILL");
    });
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function killGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

export class RunProvider implements IdleProvider {
  readonly kind = "run" as const;
  readonly #argv: readonly string[];
  readonly #cwd: string | undefined;
  readonly #env: Readonly<Record<string, string>> | undefined;
  readonly #logger: Logger;
  readonly #stopSignal: string;
  readonly #stopTimeout: number;
  #child: ChildProcess | undefined;
  #watchdog: ChildProcess | undefined;
  #exited: Promise<void> | undefined;
  #paused = false;
  readonly #watchers = new Set<(state: ProviderState, detail: string) => void>();
  readonly #activity = new Set<() => void>();

  constructor(options: RunProviderOptions) {
    const { command } = options;
    if (typeof command === "string") {
      if (command.trim() === "") throw new InvalidArgumentError("RunProvider: command is empty");
      this.#argv = ["/bin/sh", "-c", command];
    } else if (Array.isArray(command) && command.length > 0 && command.every((a) => typeof a === "string")) {
      if (command[0] === "") throw new InvalidArgumentError("RunProvider: command[0] is empty");
      this.#argv = [...command];
    } else {
      throw new InvalidArgumentError("RunProvider: command must be a non-empty argv list or a string");
    }
    this.#cwd = options.cwd;
    this.#env = options.env;
    this.#logger = options.logger ?? silentLogger;
    this.#stopSignal = options.stopSignal ?? "SIGTERM";
    this.#stopTimeout = options.stopTimeout ?? 10_000;
  }

  /** The running process's id (undefined when none runs). */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  async state(): Promise<ProviderState> {
    if (!this.#child) return "stopped";
    return this.#paused ? "paused" : "running";
  }

  watch(onChange: (state: ProviderState, detail: string) => void, signal: AbortSignal): void {
    this.#watchers.add(onChange);
    signal.addEventListener("abort", () => this.#watchers.delete(onChange), { once: true });
  }

  onActivity(listener: () => void, signal: AbortSignal): void {
    this.#activity.add(listener);
    signal.addEventListener("abort", () => this.#activity.delete(listener), { once: true });
  }

  start(signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    const child = this.#child;
    if (child) {
      if (this.#paused && child.pid !== undefined) {
        killGroup(child.pid, "SIGCONT");
        this.#paused = false;
        this.#logger.info("process resumed (SIGCONT)");
      }
      return Promise.resolve();
    }
    if (this.#cwd !== undefined && !isDirectory(this.#cwd)) {
      return Promise.reject(
        new IdleError(`working directory not found: ${this.#cwd}`, "ERR_SWITCHYARD_PROVIDER"),
      );
    }
    return new Promise((resolve, reject) => {
      const [file, ...args] = this.#argv;
      let proc: ChildProcess;
      try {
        proc = spawn(file, args, {
          cwd: this.#cwd,
          env: commandEnv(this.#env),
          detached: true,
          stdio: ["ignore", "pipe", "pipe"],
        });
      } catch (err) {
        reject(
          new IdleError(`cannot start ${file}: ${(err as Error).message}`, "ERR_SWITCHYARD_PROVIDER", {
            cause: err,
          }),
        );
        return;
      }
      this.#child = proc;
      this.#paused = false;
      proc.once("error", (err: NodeJS.ErrnoException) => {
        if (this.#child === proc) this.#child = undefined;
        const why =
          err.code === "ENOENT"
            ? `command not found: ${file}`
            : err.code === "EACCES"
              ? `permission denied: ${file}`
              : err.message;
        reject(new IdleError(why, "ERR_SWITCHYARD_PROVIDER", { cause: err }));
      });
      this.#exited = new Promise<void>((done) => {
        proc.once("exit", (code, sig) => {
          if (proc.pid !== undefined) {
            live.delete(proc.pid);
            // whatever it left behind in its group goes with it
            killGroup(proc.pid, "SIGKILL");
          }
          this.#watchdog?.kill("SIGKILL");
          this.#watchdog = undefined;
          if (this.#child === proc) this.#child = undefined;
          this.#paused = false;
          const detail = sig ? `process killed by ${sig}` : `process exited with code ${code}`;
          this.#logger.info({ code, signal: sig ?? undefined, pid: proc.pid }, detail);
          for (const w of this.#watchers) w("stopped", detail);
          done();
        });
      });
      this.#lines(proc.stdout, "stdout");
      this.#lines(proc.stderr, "stderr");
      proc.once("spawn", () => {
        const pid = proc.pid!;
        track(pid);
        this.#logger.info({ pid }, `process started: ${this.#argv.join(" ")}`);
        const dog = spawn("/bin/sh", ["-c", WATCHDOG, "switchyard-watchdog", String(pid)], {
          stdio: ["pipe", "ignore", "ignore"],
        });
        dog.on("error", (err) => this.#logger.warn({ err }, "process watchdog failed to start"));
        // only switchyard holds the write end; nothing is ever written
        dog.stdin?.on("error", () => {});
        this.#watchdog = dog;
        resolve();
      });
    });
  }

  #lines(stream: NodeJS.ReadableStream | null, name: "stdout" | "stderr"): void {
    if (!stream) return;
    // node:readline only once a command runs: a server without `run` providers never loads it
    const rl = process
      .getBuiltinModule("node:readline")
      .createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
    rl.on("line", (line) => {
      this.#logger.info({ stream: name }, line);
      for (const l of this.#activity) l();
    });
  }

  async stop(options: StopOptions): Promise<void> {
    const child = this.#child;
    const pid = child?.pid;
    if (!child || pid === undefined) return;
    const exited = this.#exited!;
    if (options.method === "pause") {
      if (killGroup(pid, "SIGSTOP")) this.#paused = true;
      return;
    }
    if (options.method === "kill") {
      killGroup(pid, "SIGKILL");
      await exited;
      return;
    }
    const sig = (options.signal ?? "SIGTERM") as NodeJS.Signals;
    killGroup(pid, sig);
    // a stopped process cannot handle the signal until it runs again
    if (this.#paused) killGroup(pid, "SIGCONT");
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([
      exited.then(() => false),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(true), options.timeout);
      }),
    ]);
    clearTimeout(timer);
    if (late) {
      this.#logger.warn(
        { pid, signal: sig },
        `process did not exit ${options.timeout}ms after ${sig}; sending SIGKILL (raise stop_timeout?)`,
      );
      killGroup(pid, "SIGKILL");
      await exited;
    }
  }

  async close(): Promise<void> {
    this.#watchers.clear();
    await this.stop({ method: "stop", signal: this.#stopSignal, timeout: this.#stopTimeout });
  }
}
