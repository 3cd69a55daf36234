/** Builds the provider a server's config names. */
import type { ProviderConfig } from "../config/types.ts";
import { IdleError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { ExecProvider } from "./exec.ts";
import type { IdleProvider, ProviderState, StopOptions } from "./provider.ts";
import { RunProvider } from "./run.ts";

export function createProvider(
  config: ProviderConfig,
  logger: Logger,
  stop: { signal: string | undefined; timeout: number },
): IdleProvider {
  switch (config.kind) {
    case "run":
      return new RunProvider({
        command: config.command,
        cwd: config.cwd,
        env: config.env,
        logger,
        stopSignal: stop.signal,
        stopTimeout: stop.timeout,
      });
    case "exec":
      return new ExecProvider({
        start: config.start,
        stop: config.stop,
        pause: config.pause,
        resume: config.resume,
        status: config.status,
        logger,
      });
    case "docker":
      return new LazyDocker(config.container, config.socketPath, logger);
  }
}

type DockerModule = {
  DockerProvider: new (o: { container: string; socketPath?: string; logger?: Logger }) => IdleProvider;
};

/**
 * The Docker provider lives in src/idle/docker.ts (its own work); it is loaded on first use so
 * that a configuration without `docker` servers never loads it.
 */
class LazyDocker implements IdleProvider {
  readonly kind = "docker" as const;
  readonly #o: { container: string; socketPath?: string; logger?: Logger };
  #p: Promise<IdleProvider> | undefined;
  #watch: Parameters<NonNullable<IdleProvider["watch"]>> | undefined;

  constructor(container: string, socketPath: string | undefined, logger: Logger) {
    this.#o = { container, ...(socketPath ? { socketPath } : {}), logger };
  }
  #get(): Promise<IdleProvider> {
    this.#p ??= (async () => {
      // a computed specifier is not rewritten by the build: pick the extension this file has
      const spec = import.meta.url.endsWith(".ts") ? "./docker.ts" : "./docker.js";
      let mod: DockerModule;
      try {
        mod = (await import(spec)) as DockerModule;
      } catch (err) {
        throw new IdleError("the docker provider is not available in this build", "ERR_SWITCHYARD_PROVIDER", {
          cause: err,
        });
      }
      const p = new mod.DockerProvider(this.#o);
      if (this.#watch) p.watch?.(...this.#watch);
      return p;
    })();
    return this.#p;
  }
  async state(signal?: AbortSignal): Promise<ProviderState> {
    return (await this.#get()).state(signal);
  }
  async start(signal: AbortSignal): Promise<void> {
    return (await this.#get()).start(signal);
  }
  async stop(options: StopOptions): Promise<void> {
    return (await this.#get()).stop(options);
  }
  watch(onChange: (state: ProviderState, detail: string) => void, signal: AbortSignal): void {
    this.#watch = [onChange, signal];
    void this.#get().catch(() => {});
  }
  async close(): Promise<void> {
    if (this.#p) await (await this.#p.catch(() => undefined))?.close();
  }
}
