import { type DestinationStream, type Logger, pino } from "pino";

export type { Logger };

/** Access lines wait in the buffer until it holds this much (one write for many lines)... */
const BATCH_BYTES = 4096;
/** ...or at most this long (ms). */
const BATCH_MS = 1000;

/**
 * stdout for the server's logs, through one buffer so lines never interleave or reorder. Ordinary
 * lines leave at once (asynchronously, as pino's default destination does); lines written with
 * `deferred` set (the access log) wait until 4 KB are buffered or 1 s has passed, so a busy
 * proxy makes one `write(2)` per ~20 requests instead of one per request. What is buffered is
 * written synchronously at exit (pino's destination flushes itself then).
 */
class StdoutSink implements DestinationStream {
  readonly #out = pino.destination({ dest: 1, sync: false, minLength: BATCH_BYTES });
  /** Set around an access line's write. */
  deferred = false;
  /** An ordinary line (or the timer) asked for a flush while a write was under way. */
  #urgent = false;
  #timer: NodeJS.Timeout | undefined;
  readonly #onTimer = () => {
    this.#timer = undefined;
    this.#flush();
  };

  constructor() {
    // a flush asked for during a write is done once that write is over
    this.#out.on("drain", () => {
      if (this.#urgent) {
        this.#urgent = false;
        this.#out.flush();
      }
    });
  }

  write(line: string): void {
    this.#out.write(line);
    if (!this.deferred) this.#flush();
    else if (this.#timer === undefined) {
      this.#timer = setTimeout(this.#onTimer, BATCH_MS);
      this.#timer.unref();
    }
  }

  #flush(): void {
    // sonic-boom ignores a flush while it writes: remember it for the 'drain' that ends the write
    this.#urgent = true;
    this.#out.flush();
  }
}

let stdoutSink: StdoutSink | undefined;

/** Structured logs; pretty when stdout is a TTY, silent by default for library users. */
export function createLogger(options: { level?: string; pretty?: boolean } = {}): Logger {
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
 * A writer of `info` lines that may wait in the stdout buffer (up to 4 KB or 1 s, see StdoutSink):
 * the access log. With another destination (pretty output, a test's stream) lines go as usual.
 * Build it once; the returned function allocates nothing beyond pino's own line.
 */
export function batchedInfo(logger: Logger, msg: string): (fields: object) => void {
  const sink = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym];
  if (!(sink instanceof StdoutSink)) return (fields) => logger.info(fields, msg);
  return (fields) => {
    sink.deferred = true;
    try {
      logger.info(fields, msg);
    } finally {
      sink.deferred = false;
    }
  };
}

/** The fields to log an error with: its message and code, and the stack only at `debug`. */
export function errFields(logger: Logger, err: unknown): Record<string, unknown> {
  if (logger.isLevelEnabled("debug")) return { err };
  const e = err as { message?: unknown; code?: unknown } | null;
  return { error: e?.message !== undefined ? String(e.message) : String(err), code: e?.code };
}

/** The library logs nothing unless given a logger. */
export const silentLogger: Logger = pino({ level: "silent" });
