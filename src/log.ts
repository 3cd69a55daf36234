import { type Logger as PinoLogger, pino } from "pino";

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
  return pino({ level });
}

/** The library logs nothing unless given a logger. */
export const silentLogger: PinoLogger = pino({ level: "silent" });
