/**
 * The callers of an upstream pool's `close()` waiting for the work under way to end; shared by
 * the three pools (client.ts, fallback-client.ts, ../proxy/h2-client.ts), each of which decides
 * what "nothing under way" is and settles the waiters when it gets there.
 */
export class CloseWaiters {
  #waiters: (() => void)[] = [];

  /** Whether a `close()` is waiting. */
  get waiting(): boolean {
    return this.#waiters.length > 0;
  }

  /** Resolves at the next `settle()`. */
  wait(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Resolves every waiter. */
  settle(): void {
    for (const resolve of this.#waiters.splice(0)) resolve();
  }
}
