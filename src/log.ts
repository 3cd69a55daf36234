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

/** Node's Buffer with its undocumented direct writer (no encoding argument to look up). */
type RawBuffer = Buffer<ArrayBuffer> & {
  utf8Write(s: string, offset: number): number;
};

function batchBuffer(bytes: number): RawBuffer {
  return Buffer.allocUnsafeSlow(bytes) as RawBuffer;
}

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
  /** The batch: access lines are written into it directly (BufferLine), `used` bytes so far. */
  buf = batchBuffer(BATCH_BYTES);
  used = 0;
  /** Batches handed over and not yet written, then reused: no new 64 KB per batch to collect. */
  readonly #handed: RawBuffer[] = [];
  readonly #spare: RawBuffer[] = [];
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
      for (const b of this.#handed)
        if (this.#spare.length < 2 && b.length === BATCH_BYTES) this.#spare.push(b);
      this.#handed.length = 0;
    });
  }

  /** An ordinary line (pino's). */
  write(line: string): void {
    if (this.used !== 0) this.#handOver();
    this.#out.write(Buffer.from(line) as unknown as string);
  }

  /** An access line: into the batch. */
  deferred(line: string): void {
    // UTF-8 takes at most 3 bytes per UTF-16 unit
    const room = line.length * 3;
    if (room > this.buf.length - this.used) {
      this.#handOver();
      if (room > BATCH_BYTES) {
        this.#out.write(Buffer.from(line) as unknown as string);
        return;
      }
    }
    this.used += this.buf.utf8Write(line, this.used);
    if (this.#timer === undefined) {
      this.#timer = setTimeout(this.#onTimer, BATCH_MS);
      this.#timer.unref();
    }
  }

  #handOver(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.used === 0) return;
    // sonic-boom keeps the Buffer until it is written: the next lines go to another one
    const full = this.buf.subarray(0, this.used);
    this.#handed.push(this.buf);
    this.buf = this.#spare.pop() ?? batchBuffer(BATCH_BYTES);
    this.used = 0;
    this.#out.write(full as unknown as string);
  }

  /** At exit: what the destination holds, then the batch, synchronously. */
  #exitFlush(): void {
    if (this.used === 0) return;
    const rest = this.buf.subarray(0, this.used);
    this.used = 0;
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
 * One access line, written field by field: `begin`, then the fields (`key` for a key and its
 * punctuation, `str`/`int`/`hundredths` for values), then `end`: no object per line, and the
 * writer adds pino's level, time, bindings and message around the fields.
 */
export interface AccessLine {
  /** Starts a line. */
  begin(): void;
  /** ASCII text that needs no escaping: a key with its punctuation (`,"client":`). */
  key(s: string): void;
  /** A string value, as a JSON string literal. */
  str(s: string): void;
  /** A non-negative integer value. */
  int(n: number): void;
  /** `n / 100` (n a non-negative integer) as JavaScript prints it: 76 → 0.76, 150 → 1.5. */
  hundredths(n: number): void;
  end(): void;
}

/**
 * True when `s` can go into a JSON string literal as it is, one byte per character: printable
 * ASCII without `"` or `\\`. Anything else goes through `JSON.stringify` and UTF-8.
 */
function plainAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return false;
  }
  return true;
}

/**
 * `n / 100` as JavaScript prints it (76 → "0.76", 150 → "1.5", 200 → "2"), from integers: a
 * fraction's shortest decimal form costs more to find than the line's other fields together.
 */
export function hundredths(n: number): string {
  const whole = Math.trunc(n / 100);
  const rest = n - whole * 100;
  if (rest === 0) return `${whole}`;
  if (rest % 10 === 0) return `${whole}.${rest / 10}`;
  return rest < 10 ? `${whole}.0${rest}` : `${whole}.${rest}`;
}

/**
 * An access line for the stdout sink: its parts joined into one string (V8 joins short strings
 * faster than a call per part into the Buffer would copy them), copied into the batch Buffer in
 * one call.
 */
class BufferLine implements AccessLine {
  readonly #sink: StdoutSink;
  readonly #head: string;
  readonly #bindings: string;
  readonly #tail: string;
  /** level, time and bindings change with the millisecond: built once per millisecond */
  #ms = 0;
  #start = "";
  #s = "";

  constructor(sink: StdoutSink, head: string, bindings: string, tail: string) {
    this.#sink = sink;
    this.#head = head;
    this.#bindings = bindings;
    this.#tail = tail;
  }

  begin(): void {
    const now = Date.now();
    if (now !== this.#ms) {
      this.#ms = now;
      this.#start = `${this.#head}${now}${this.#bindings}`;
    }
    this.#s = this.#start;
  }

  key(s: string): void {
    this.#s += s;
  }

  str(s: string): void {
    this.#s += jsonString(s);
  }

  int(n: number): void {
    this.#s += `${n}`;
  }

  hundredths(n: number): void {
    this.#s += hundredths(n);
  }

  end(): void {
    const line = this.#s + this.#tail;
    this.#s = "";
    this.#sink.deferred(line);
  }
}

/** `s` as a JSON string literal, as `JSON.stringify(s)` writes it (plain ASCII quoted directly). */
export function jsonString(s: string): string {
  return plainAscii(s) ? `"${s}"` : JSON.stringify(s);
}

/** An access line joined into one string, for any other destination (`out` takes it). */
class StringLine implements AccessLine {
  readonly #out: (fields: string) => void;
  #s = "";

  constructor(out: (fields: string) => void) {
    this.#out = out;
  }

  begin(): void {
    this.#s = "";
  }

  key(s: string): void {
    this.#s += s;
  }

  str(s: string): void {
    this.#s += jsonString(s);
  }

  int(n: number): void {
    this.#s += `${n}`;
  }

  hundredths(n: number): void {
    this.#s += hundredths(n);
  }

  end(): void {
    const s = this.#s;
    this.#s = "";
    this.#out(s);
  }
}

/**
 * The writer of `info` records in pino's own format whose fields the caller writes (`AccessLine`):
 * the access log. pino's level, time and the logger's own bindings (`worker`, `component`; not
 * pino's `pid` and `hostname`, constant per process and a sixth of a line) and the message are
 * added here, so the line reads as any other record. With the stdout sink the line goes into its
 * batch (up to 64 KB or 1 s); other destinations (the pretty printer, a test's stream) take it
 * at once. Undefined when `info` is off. Build it once.
 */
export function batchedInfo(logger: Logger, msg: string): AccessLine | undefined {
  if (logger.isLevelEnabled?.("info") === false) return undefined;
  const own = logger as unknown as Record<symbol, unknown>;
  if (typeof own[pino.symbols.streamSym] !== "object") {
    // not a pino logger (a library user's own): an ordinary info line with the same fields
    return new StringLine((fields) => logger.info(JSON.parse(`{${fields.slice(1)}}`) as object, msg));
  }
  const levels = (logger as unknown as PinoLogger).levels;
  const stream = own[pino.symbols.streamSym] as DestinationStream;
  const level = (own[pino.symbols.lsCacheSym] as Record<number, string>)[levels.values.info];
  // pino's pid and hostname lead its bindings (the base logger's); the logger's own follow
  const bindings = (own[pino.symbols.chindingsSym] as string)
    .replace(/^,"pid":\d+/, "")
    .replace(/^,"hostname":"(?:[^"\\]|\\.)*"/, "");
  const head = `${level},"time":`;
  const tail = `,"msg":${JSON.stringify(msg)}}\n`;
  if (stream instanceof StdoutSink && /^[\x20-\x7e]*$/.test(bindings + tail.slice(0, -1))) {
    return new BufferLine(stream, head, bindings, tail);
  }
  return new StringLine((fields) => stream.write(`${head}${Date.now()}${bindings}${fields}${tail}`));
}

/** The fields to log an error with: its message and code, and the stack only at `debug`. */
export function errFields(logger: Logger, err: unknown): Record<string, unknown> {
  if (logger.isLevelEnabled?.("debug") !== false) return { err };
  const e = err as { message?: unknown; code?: unknown } | null;
  return { error: e?.message !== undefined ? String(e.message) : String(err), code: e?.code };
}

/** The library logs nothing unless given a logger. */
export const silentLogger: PinoLogger = pino({ level: "silent" });
