import { writeSync } from "node:fs";
import { type DestinationStream, type Logger as PinoLogger, pino } from "pino";

/** One log method: pino's calling convention, `(obj, msg)` or `(msg)`. */
export interface LogFn {
  (obj: object, msg?: string): void;
  (msg: string): void;
}

/**
 * What switchyard's library classes need of a logger (`LoadBalancer`, `IdleWatcher`, providers):
 * pino's level methods and `child`. A pino logger is one; so is any object with these methods, so a
 * library user can pass their own (bunyan, a console adapter, a test spy).
 */
export interface Logger {
  fatal: LogFn;
  error: LogFn;
  warn: LogFn;
  info: LogFn;
  debug: LogFn;
  trace: LogFn;
  child(bindings: Record<string, unknown>): Logger;
  /** Optional: when absent, switchyard assumes every level is enabled. */
  isLevelEnabled?(level: string): boolean;
}

/** The server's own logger (pino, with its levels and transports). */
export type { PinoLogger };

/** Access lines wait in the buffer until it holds this much (one write for many lines)... */
const BATCH_CHARS = 65_536;
/** ...or at most this long (ms). */
const BATCH_MS = 1000;

/**
 * stdout for the server's logs. Ordinary lines go straight to pino's destination (sonic-boom,
 * asynchronous, as pino's default is). Lines written with `deferred` set (the access log) are
 * joined here first and handed over 64 KB at a time, or after 1 s at most: sonic-boom measures
 * the byte length of its whole pending buffer on every write, which costs more than the line
 * itself once lines come by the thousand. An ordinary line hands over the joined lines before
 * it, so the order stays; at exit they are written synchronously.
 */
class StdoutSink implements DestinationStream {
  readonly #out: ReturnType<typeof pino.destination>;
  /** Set around an access line's write. */
  deferred = false;
  #pending = "";
  #timer: NodeJS.Timeout | undefined;
  readonly #onTimer = () => {
    this.#timer = undefined;
    this.#handOver();
  };

  constructor() {
    // before pino's destination registers its own exit flush: ours runs first
    process.on("exit", () => this.#exitFlush());
    this.#out = pino.destination({ dest: 1, sync: false });
  }

  write(line: string): void {
    if (this.deferred) {
      this.#pending += line;
      if (this.#pending.length >= BATCH_CHARS) this.#handOver();
      else if (this.#timer === undefined) {
        this.#timer = setTimeout(this.#onTimer, BATCH_MS);
        this.#timer.unref();
      }
      return;
    }
    if (this.#pending !== "") this.#handOver();
    this.#out.write(line);
  }

  #handOver(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const text = this.#pending;
    this.#pending = "";
    if (text !== "") this.#out.write(text);
  }

  /** At exit: what the destination holds, then the joined lines, synchronously. */
  #exitFlush(): void {
    const text = this.#pending;
    this.#pending = "";
    if (text === "") return;
    try {
      this.#out.flushSync();
    } catch {
      // not ready or destroyed (EPIPE): nothing more can be written
      return;
    }
    writeAllSync(1, Buffer.from(text));
  }
}

function writeAllSync(fd: number, data: Buffer): void {
  let off = 0;
  for (let tries = 0; off < data.length && tries < 1000; ) {
    try {
      off += writeSync(fd, data, off);
    } catch (err) {
      // a non-blocking pipe that is full: wait for the reader a little
      if ((err as NodeJS.ErrnoException).code !== "EAGAIN") return;
      tries++;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    }
  }
}

// process-wide: one buffer in front of fd 1, so lines of every logger leave in the order written
let stdoutSink: StdoutSink | undefined;

/** Structured logs; pretty when stdout is a TTY, silent by default for library users. */
export function createLogger(options: { level?: string; pretty?: boolean } = {}): PinoLogger {
  const level = options.level ?? process.env.SWITCHYARD_LOG_LEVEL ?? "info";
  const pretty = options.pretty ?? process.stdout.isTTY === true;
  if (pretty) {
    return pino({
      level,
      transport: { target: "pino-pretty", options: { colorize: true, translateTime: "SYS:HH:MM:ss.l" } },
    });
  }
  stdoutSink ??= new StdoutSink();
  return pino({ level }, stdoutSink);
}

/**
 * A writer of `info` records in pino's own format whose fields the caller has already written as
 * JSON (`,"key":value,...`): the access log. pino's level, time and bindings (pid, hostname,
 * worker, component) and the message are added here, so the line reads as any other; building the
 * text directly saves the object pino would walk (0.4 µs a line instead of 0.7). With the stdout
 * sink the line may wait in its buffer (up to 64 KB or 1 s); other destinations (the pretty
 * printer, a test's stream) take it at once. Undefined when `info` is off. Build it once.
 */
export function batchedInfo(logger: Logger, msg: string): ((fields: string) => void) | undefined {
  if (logger.isLevelEnabled?.("info") === false) return undefined;
  const own = logger as unknown as Record<symbol, unknown>;
  if (typeof own[pino.symbols.streamSym] !== "object") {
    // not a pino logger (a library user's own): an ordinary info line with the same fields
    return (fields) => logger.info(JSON.parse(`{${fields.slice(1)}}`) as object, msg);
  }
  const levels = (logger as unknown as PinoLogger).levels;
  const stream = own[pino.symbols.streamSym] as DestinationStream;
  const head = `${(own[pino.symbols.lsCacheSym] as Record<number, string>)[levels.values.info]},"time":`;
  const bindings = own[pino.symbols.chindingsSym] as string;
  const tail = `,"msg":${JSON.stringify(msg)}}\n`;
  if (!(stream instanceof StdoutSink)) {
    return (fields) => stream.write(`${head}${Date.now()}${bindings}${fields}${tail}`);
  }
  return (fields) => {
    stream.deferred = true;
    try {
      stream.write(`${head}${Date.now()}${bindings}${fields}${tail}`);
    } finally {
      stream.deferred = false;
    }
  };
}

/** The fields to log an error with: its message and code, and the stack only at `debug`. */
export function errFields(logger: Logger, err: unknown): Record<string, unknown> {
  if (logger.isLevelEnabled?.("debug") !== false) return { err };
  const e = err as { message?: unknown; code?: unknown } | null;
  return { error: e?.message !== undefined ? String(e.message) : String(err), code: e?.code };
}

/** The library logs nothing unless given a logger. */
export const silentLogger: PinoLogger = pino({ level: "silent" });
