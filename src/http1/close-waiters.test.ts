import * as assert from "node:assert/strict";
import * as http from "node:http";
import { test } from "node:test";
import { Cleanup, listen } from "../../test/support/cleanup.ts";
import { until } from "../../test/support/until.ts";
import { UpstreamPool } from "./client.ts";
import { CloseWaiters } from "./close-waiters.ts";
import { AgentPool } from "./fallback-client.ts";
import type { UpstreamClient, UpstreamHandler } from "./upstream.ts";

test("CloseWaiters: every waiter resolves at settle(), none before", async () => {
  const w = new CloseWaiters();
  assert.equal(w.waiting, false);
  const settled: number[] = [];
  const a = w.wait().then(() => settled.push(1));
  const b = w.wait().then(() => settled.push(2));
  assert.equal(w.waiting, true);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(settled, []);
  w.settle();
  await Promise.all([a, b]);
  assert.deepEqual(settled, [1, 2]);
  assert.equal(w.waiting, false);
});

/** One GET; resolves with the body or the error code. */
function get(pool: UpstreamClient): Promise<string> {
  return new Promise((resolve) => {
    let body = "";
    const handler: UpstreamHandler = {
      bodyTaken: false,
      onSent: () => true,
      onHeaders: () => true,
      onData(chunk) {
        body += chunk.toString("latin1");
        return true;
      },
      onComplete(last) {
        resolve(body + (last?.toString("latin1") ?? ""));
      },
      onError(err) {
        resolve(`error ${(err as Error & { code?: string }).code}`);
      },
    };
    pool.request({ method: "GET", path: "/", headers: [], body: null }, handler);
  });
}

for (const [name, make] of [
  [
    "own client",
    (url: URL) =>
      new UpstreamPool(url, { connectTimeout: 2000, responseHeaderTimeout: 2000, idleTimeout: 2000 }),
  ],
  [
    "node:http fallback",
    (url: URL) =>
      new AgentPool(url, { connectTimeout: 2000, responseHeaderTimeout: 2000, idleTimeout: 2000 }),
  ],
] as const) {
  test(`${name}: two close() calls during a request both resolve once it is answered`, async (t) => {
    const c = new Cleanup();
    t.after(() => c.run());
    let release: (() => void) | undefined;
    const port = await listen(
      http.createServer((_req, res) => {
        release = () => res.end("late");
      }),
      c,
    );
    const pool = make(new URL(`http://127.0.0.1:${port}`));
    c.add(() => pool.destroy());
    const first = get(pool);
    await until(() => release !== undefined, 2000, "the request upstream");
    let closes = 0;
    const closed = [pool.close().then(() => closes++), pool.close().then(() => closes++)];
    assert.equal(
      await get(pool),
      "error ERR_SWITCHYARD_UPSTREAM_DESTROYED",
      "a closed pool takes no request",
    );
    assert.equal(closes, 0, "close() waits for the busy request");
    release!();
    assert.equal(await first, "late");
    await Promise.all(closed);
    assert.equal(closes, 2);
  });
}
