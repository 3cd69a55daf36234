/**
 * What an idle provider does: start, stop and report the state of the thing behind one
 * server (a process switchyard runs, shell commands, a Docker container). The watcher
 * (src/idle/watcher.ts) owns the policy — single-flight wakes, readiness, idle timers,
 * depends_on, back-off — and talks to providers only through this interface.
 */

export type StopMethod = "stop" | "pause" | "kill";

/** What a provider knows about its target. */
export type ProviderState = "running" | "paused" | "stopped";

export interface StopOptions {
  readonly method: StopMethod;
  /** Signal name for `stop` (e.g. "SIGTERM"); providers pick their default when undefined. */
  readonly signal: string | undefined;
  /** ms a `stop` may take before the target is killed. */
  readonly timeout: number;
}

export interface IdleProvider {
  readonly kind: "run" | "exec" | "docker";
  /** The target's state now (a process table look-up, a status command, a container inspect). */
  state(signal?: AbortSignal): Promise<ProviderState>;
  /**
   * Starts (or resumes, when paused) the target. Resolves once the start was accepted — readiness
   * is the watcher's job. Rejects with an Error whose message says why (a command's last stderr
   * line, the engine's message). `signal` bounds it (wake_timeout).
   */
  start(signal: AbortSignal): Promise<void>;
  /** Stops, pauses or kills the target as `options` say; resolves when it is done. */
  stop(options: StopOptions): Promise<void>;
  /**
   * Follows changes made outside switchyard (a process that exited, a container started or
   * stopped by someone else) until `signal` aborts. Optional.
   */
  watch?(onChange: (state: ProviderState, detail: string) => void, signal: AbortSignal): void;
  /**
   * Called whenever the target shows a sign of life (the `run` provider: a line of output). The
   * watcher probes readiness at once instead of at the next 200 ms tick, so an app that logs
   * "listening" is proxied to within a probe's round trip. Optional.
   */
  onActivity?(listener: () => void, signal: AbortSignal): void;
  /** Stops everything this provider started and releases its handles (switchyard's shutdown). */
  close(): Promise<void>;
}
