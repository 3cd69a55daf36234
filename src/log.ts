import { type Logger, pino } from "pino";

export type { Logger };

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
  return pino({ level });
}

/** The library logs nothing unless given a logger. */
export const silentLogger: Logger = pino({ level: "silent" });
