/** Test teardown shared by the suites: a stack of things to close, and listening on a free port. */
import { once } from "node:events";
import type * as http from "node:http";
import type * as net from "node:net";

/** Things to close at the end of a test, in reverse order. */
export class Cleanup {
  #fns: (() => unknown)[] = [];
  add(fn: () => unknown): void {
    this.#fns.push(fn);
  }
  async run(): Promise<void> {
    const fns = this.#fns.reverse();
    this.#fns = [];
    for (const fn of fns) await fn();
  }
}

/** A Cleanup run after test `t` (pass or fail). */
export function cleanupAfter(t: { after(fn: () => unknown): void }): Cleanup {
  const c = new Cleanup();
  t.after(() => c.run());
  return c;
}

/** Where a helper registers its undoing: a Cleanup, or a test context (`t.after`). */
export type Undo = Cleanup | { after(fn: () => unknown): void };

/** Runs `fn` at the end: `cleanup.add(fn)` or `t.after(fn)`. */
export function undoLater(undo: Undo, fn: () => unknown): void {
  if (undo instanceof Cleanup) undo.add(fn);
  else undo.after(fn);
}

/** Listens on 127.0.0.1 port 0; `cleanup` closes the server and its connections. Resolves with the port. */
export async function listen(server: net.Server, cleanup: Cleanup): Promise<number> {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  cleanup.add(
    () =>
      new Promise<void>((resolve) => {
        (server as http.Server).closeAllConnections?.();
        server.close(() => resolve());
      }),
  );
  return (server.address() as net.AddressInfo).port;
}
