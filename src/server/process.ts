/**
 * What one `switchyard serve` process does whether it runs alone or as a cluster primary: resolve
 * the config source, start a runtime, wait for SIGTERM/SIGINT, announce the addresses.
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { type ConfigOverrides, demoConfig, loadConfig } from "../config/load.ts";
import type { SwitchyardConfig } from "../config/types.ts";
import { errFields, type Logger } from "../log.ts";
import { type DemoBackends, startDemoBackends } from "./demo.ts";
import type { Runtime } from "./runtime.ts";

export interface ServeOptions {
  /** -c FILE; undefined = ./switchyard.yaml if present, else the demo. */
  file: string | undefined;
  overrides: ConfigOverrides;
}

export interface Source {
  file: string | undefined;
  config: SwitchyardConfig;
  demo: DemoBackends | undefined;
}

/** Resolves where the config comes from. Throws ConfigError for a bad file. */
export async function resolveSource(options: ServeOptions): Promise<Source> {
  let file = options.file;
  if (file === undefined && existsSync("switchyard.yaml")) file = "switchyard.yaml";
  if (file !== undefined) {
    return { file, config: await loadConfig(file, options.overrides), demo: undefined };
  }
  const demo = await startDemoBackends(3);
  try {
    return { file: undefined, config: demoConfig(demo.backends, options.overrides), demo };
  } catch (err) {
    await demo.close();
    throw err;
  }
}

/** Starts `runtime` on the source's config; on failure logs why, releases everything and returns false. */
export async function startRuntime(runtime: Runtime, source: Source, logger: Logger): Promise<boolean> {
  try {
    await runtime.start(source.config);
    return true;
  } catch (err) {
    logger.fatal(errFields(logger, err), `cannot start: ${(err as Error).message}`);
    await runtime.shutdown();
    await source.demo?.close();
    return false;
  }
}

/** Resolves 0 once a SIGTERM/SIGINT was handled by `shutdown`; a second signal exits at once. */
export function waitForStop(logger: Logger, shutdown: () => Promise<void>): Promise<number> {
  return new Promise((done) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        // a second Ctrl-C means "now"; repeated SIGTERMs (process-group kills, supervisors) do not
        if (signal !== "SIGINT") return;
        logger.warn(`${signal} again: exiting now`);
        process.exit(1);
      }
      stopping = true;
      logger.info(`${signal}: shutting down gracefully`);
      shutdown().then(
        () => {
          logger.info("stopped");
          done(0);
        },
        (err) => {
          logger.error({ err }, "shutdown failed");
          done(1);
        },
      );
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
}

/**
 * The "listening" log line, then the few lines that tell a person where to send requests (and,
 * for the demo, how to go further). Call it last, once reload and signals are wired.
 */
export function announce(
  source: Source,
  proxy: { address: string; tls: boolean }[],
  admin: string | undefined,
  logger: Logger,
  extra: { workers?: number } = {},
): void {
  // machine-readable: tests and scripts learn the bound ports here
  logger.info({ proxy: proxy.map((a) => a.address), admin, ...extra }, "listening");
  const urls = proxy.map((p) => `${p.tls ? "https" : "http"}://${browsable(p.address)}/`);
  if (source.demo) {
    const lines = [
      "",
      `switchyard demo: ${source.demo.backends.length} demo backends (${source.demo.backends.map((b) => b.name).join(", ")}) behind one service matching any Host`,
      `  send requests:  curl ${urls[0]}      (repeat it: the answers rotate over the backends)`,
      admin ? `  health (JSON):  curl http://${browsable(admin)}/api/health` : "",
      admin ? `  metrics:        curl http://${browsable(admin)}/metrics` : "",
      "  your own config: switchyard serve -c switchyard.yaml   (in a checkout: npm start -- -c FILE)",
      "",
    ];
    process.stdout.write(
      `${lines.filter((l, i) => l !== "" || i === 0 || i === lines.length - 1).join("\n")}\n`,
    );
  } else {
    logger.info(
      { file: source.file && resolve(source.file), services: Object.keys(source.config.services) },
      `serving ${Object.keys(source.config.services).length} service(s) on ${urls.join(", ")}${admin ? `; admin on http://${admin}/api/health` : ""}`,
    );
  }
}

function browsable(address: string): string {
  if (address.startsWith("0.0.0.0:")) return `localhost:${address.slice(8)}`;
  if (address.startsWith("[::]:")) return `localhost:${address.slice(5)}`;
  return address;
}
