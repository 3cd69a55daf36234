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
const BATCH_BYTES = 65_536;
/** ...or at most this long (ms). */
const BATCH_MS = 1000;

/**
 * stdout for the server's logs. Ordinary lines go straight to pino's destination (sonic-boom,
 * asynchronous, as pino's default is, here in its Buffer mode). Access lines (`deferred`) are
 * encoded as they come into one Buffer, handed over 64 KB at a time, or after 1 s at most: no
 * string of many lines is built (it would live through scavenges until its write, and
 * sonic-boom's string mode measures its whole pending text on every write). An ordinary line
 * hands over the access lines before it, so the order stays; at exit they are written
 * synchronously.
 */
class StdoutSink implements DestinationStream {
  readonly #out: ReturnType<typeof pino.destination>;
  #buf = Buffer.allocUnsafeSlow(BATCH_BYTES);
  /** Bytes of access lines in `#buf`. */
  #used = 0;
  /** Batches handed over and not yet written, then reused: no new 64 KB per batch to collect. */
  readonly #handed: Buffer<ArrayBuffer>[] = [];
  readonly #spare: Buffer<ArrayBuffer>[] = [];
  #timer: NodeJS.Timeout | undefined;
  readonly #onTimer = () => {
    this.#timer = undefined;
    this.#handOver();
  };

  constructor() {
    // before pino's destination registers its own exit flush: ours runs first
    process.on("exit", () => this.#exitFlush());
    this.#out = pino.destination({ dest: 1, sync: false, contentMode: "buffer" });
    // everything handed over is written (sonic-boom emits it whenever its queue empties)
    this.#out.on("drain", () => {
      for (const b of this.#handed) if (this.#spare.length < 2) this.#spare.push(b);
      this.#handed.length = 0;
    });
  }

  /** An ordinary line (pino's). */
  write(line: string): void {
    if (this.#used !== 0) this.#handOver();
    this.#out.write(Buffer.from(line) as unknown as string);
  }

  /** An access line: into the batch. */
  deferred(line: string): void {
    // UTF-8 takes at most 3 bytes per UTF-16 unit
    if (line.length * 3 > BATCH_BYTES - this.#used) {
      this.#handOver();
      if (line.length * 3 > BATCH_BYTES) {
        this.#out.write(Buffer.from(line) as unknown as string);
        return;
      }
    }
    this.#used += this.#buf.write(line, this.#used);
    if (this.#timer === undefined) {
      this.#timer = setTimeout(this.#onTimer, BATCH_MS);
      this.#timer.unref();
    }
  }

  #handOver(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#used === 0) return;
    // sonic-boom keeps the Buffer until it is written: the next lines go to another one
    const full = this.#buf.subarray(0, this.#used);
    this.#handed.push(this.#buf);
    this.#buf = this.#spare.pop() ?? Buffer.allocUnsafeSlow(BATCH_BYTES);
    this.#used = 0;
    this.#out.write(full as unknown as string);
  }

  /** At exit: what the destination holds, then the batch, synchronously. */
  #exitFlush(): void {
    if (this.#used === 0) return;
    const rest = this.#buf.subarray(0, this.#used);
    this.#used = 0;
    try {
      this.#out.flushSync();
    } catch {
      // not ready or destroyed (EPIPE): nothing more can be written
      return;
    }
    writeAllSync(1, rest);
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
 * JSON (`,"key":value,...`): the access log. pino's level, time, the logger's own bindings (worker,
 * component; not pino's pid and hostname) and the message are added here, so the line reads as
 * any other; building the
 * text directly saves the object pino would walk (0.4 µs a line instead of 0.7). With the stdout
 * sink the line waits in its batch (up to 64 KB or 1 s); other destinations (the pretty
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
  // without pino's pid and hostname (they lead the bindings, from the base logger): constant per
  // process, a sixth of a line; the logger's own bindings (worker, component) stay
  const bindings = (own[pino.symbols.chindingsSym] as string)
    .replace(/^,"pid":\d+/, "")
    .replace(/^,"hostname":"(?:[^"\\]|\\.)*"/, "");
  const tail = `,"msg":${JSON.stringify(msg)}}\n`;
  if (!(stream instanceof StdoutSink)) {
    return (fields) => stream.write(`${head}${Date.now()}${bindings}${fields}${tail}`);
  }
  // level, time and bindings change with the millisecond: built once per millisecond
  let ms = 0;
  let start = "";
  return (fields) => {
    const now = Date.now();
    if (now !== ms) {
      ms = now;
      start = `${head}${now}${bindings}`;
    }
    stream.deferred(start + fields + tail);
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
