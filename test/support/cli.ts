/**
 * `switchyard` (src/cli.ts) as a child process: its stdout split into lines and JSON log records,
 * waiting for a log record, stopping it. Children still running when the test process exits are
 * killed, since a test that times out never reaches its cleanup.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "../..");
export const NODE = join(ROOT, "node_modules/.bin/node");
export const CLI = join(ROOT, "src/cli.ts");

export type LogRecord = Record<string, unknown>;
export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface CliProcess {
  child: ChildProcess;
  /** Every stdout line so far (JSON log lines and plain text). */
  lines: string[];
  /** The stdout lines that are JSON log records, parsed, in order. */
  logs: LogRecord[];
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Resolves once the process has exited and its output is closed (every log line is in by then). */
  exited: Promise<Exit>;
  /**
   * Resolves with the first log record matching `pred`, past or future (checked again at every new
   * record); rejects after `timeoutMs` or when the process exits first.
   */
  waitForLog(pred: (rec: LogRecord) => boolean, timeoutMs?: number, what?: string): Promise<LogRecord>;
  /** Sends `signal` (if still running) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<Exit>;
}

const children = new Set<ChildProcess>();
let exitHook = false;
export function track(child: ChildProcess): void {
  children.add(child);
  child.once("exit", () => children.delete(child));
  if (!exitHook) {
    exitHook = true;
    process.once("exit", () => {
      for (const c of children) c.kill("SIGKILL");
    });
  }
}

function parse(line: string): LogRecord | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    return JSON.parse(line) as LogRecord;
  } catch {
    return undefined;
  }
}

/** Runs `node [nodeArgs] src/cli.ts <args>` with stdout and stderr piped. */
export function spawnCli(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; nodeArgs?: string[] } = {},
): CliProcess {
  const child = spawn(NODE, [...(options.nodeArgs ?? []), CLI, ...args], {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  track(child);
  const lines: string[] = [];
  const logs: LogRecord[] = [];
  let stderr = "";
  let closed = false;
  const waiters = new Set<() => void>();
  let buf = "";
  child.stdout!.setEncoding("utf8");
  child.stdout!.on("data", (chunk: string) => {
    buf += chunk;
    let i = buf.indexOf("\n");
    while (i >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      lines.push(line);
      const rec = parse(line);
      if (rec) {
        logs.push(rec);
        for (const w of waiters) w();
      }
      i = buf.indexOf("\n");
    }
  });
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<Exit>((done) =>
    child.once("close", (code, signal) => {
      closed = true;
      done({ code, signal });
      for (const w of waiters) w();
    }),
  );
  const output = () => `stdout:\n${lines.slice(-50).join("\n")}\nstderr:\n${stderr.slice(-2000)}`;
  const waitForLog = (pred: (rec: LogRecord) => boolean, timeoutMs = 10_000, what = "the log line") =>
    new Promise<LogRecord>((ok, fail) => {
      let seen = 0;
      const check = () => {
        for (; seen < logs.length; seen++) {
          if (pred(logs[seen])) {
            done();
            ok(logs[seen]);
            return;
          }
        }
        if (closed) {
          done();
          fail(new Error(`exited while waiting for ${what}; ${output()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        fail(new Error(`timed out after ${timeoutMs}ms waiting for ${what}; ${output()}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });
  return {
    child,
    lines,
    logs,
    stderr: () => stderr,
    exited,
    waitForLog,
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Waits for the "listening" log record (it names the bound addresses); kills the process if it does not come. */
export async function listening(p: CliProcess, timeoutMs: number): Promise<LogRecord> {
  try {
    return await p.waitForLog((r) => r.msg === "listening", timeoutMs, "the listening line");
  } catch (err) {
    p.child.kill("SIGKILL");
    throw err;
  }
}

/** The pids of a `--workers N` primary's workers (its child processes). */
export function workerPids(primary: number): number[] {
  return execFileSync("ps", ["-o", "pid=", "--ppid", String(primary)], { encoding: "utf8" })
    .trim()
    .split(/\s+/)
    .map(Number);
}
