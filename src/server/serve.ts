/**
 * `switchyard serve`: picks the config (file, ./switchyard.yaml, or the embedded demo), then runs
 * one process or a cluster, with reload on file change / SIGHUP and graceful SIGTERM/SIGINT.
 */
import type { ConfigOverrides } from "../config/load.ts";
import { ConfigError } from "../errors.ts";
import { createLogger, type Logger } from "../log.ts";
import { runPrimary } from "./cluster/primary.ts";
import {
  announce,
  resolveSource,
  type ServeOptions,
  type Source,
  startRuntime,
  waitForStop,
} from "./process.ts";
import { reloadOnChange } from "./reload.ts";
import { Runtime } from "./runtime.ts";

export type { ServeOptions } from "./process.ts";

/** Runs the server until SIGTERM/SIGINT. Resolves with the exit code. */
export async function serve(options: ServeOptions): Promise<number> {
  let source: Source;
  try {
    source = await resolveSource(options);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    throw err;
  }
  const logger = createLogger({ level: source.config.logLevel });
  if (source.config.workers > 1) return runPrimary(source, options.overrides, logger);
  return runSingle(source, options.overrides, logger);
}

async function runSingle(source: Source, overrides: ConfigOverrides, logger: Logger): Promise<number> {
  const runtime = new Runtime({ logger, proxy: true, admin: true, ownsHealth: true });
  if (!(await startRuntime(runtime, source, logger))) return 1;
  const stop = new AbortController();
  reloadOnChange(source.file, (file) => void runtime.reload(file, overrides), stop.signal, logger);
  const stopped = waitForStop(logger, async () => {
    stop.abort();
    await runtime.shutdown();
    await source.demo?.close();
  });
  announce(source, runtime.listeners!.addresses(), runtime.admin!.address(), logger);
  return stopped;
}
