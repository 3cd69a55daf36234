/**
 * close() of the three upstream pools (own HTTP/1 client, node:http fallback, HTTP/2): a closed
 * pool takes no request, and every close() call resolves once the request under way is answered.
 */
import * as assert from "node:assert/strict";
import * as http from "node:http";
import * as http2 from "node:http2";
import { test } from "node:test";
import { Cleanup, listen } from "../../test/support/cleanup.ts";
import { until } from "../../test/support/until.ts";
import { UpstreamPool } from "../http1/client.ts";
import { AgentPool } from "../http1/fallback-client.ts";
import type { UpstreamClient, UpstreamHandler } from "../http1/upstream.ts";
import { H2Pool } from "./h2-client.ts";

const OPTIONS = { connectTimeout: 2000, responseHeaderTimeout: 2000, idleTimeout: 2000 };

/** One GET; resolves with the body, or "error CODE". */
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

/** An HTTP/1.1 backend answering "late" when `release` is called. */
async function http1Backend(c: Cleanup, held: { release?: () => void }): Promise<URL> {
  const port = await listen(
    http.createServer((_req, res) => {
      held.release = () => res.end("late");
    }),
    c,
  );
  return new URL(`http://127.0.0.1:${port}`);
}

/** The same over h2c. */
async function h2cBackend(c: Cleanup, held: { release?: () => void }): Promise<URL> {
  const server = http2.createServer();
  server.on("stream", (stream) => {
    held.release = () => {
      stream.respond({ ":status": 200 });
      stream.end("late");
    };
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => sessions.add(s));
  c.add(() => {
    for (const s of sessions) s.destroy();
  });
  return new URL(`http://127.0.0.1:${await listen(server, c)}`);
}

const pools: [string, typeof http1Backend, (url: URL) => UpstreamClient][] = [
  ["own HTTP/1 client", http1Backend, (url) => new UpstreamPool(url, OPTIONS)],
  ["node:http fallback", http1Backend, (url) => new AgentPool(url, OPTIONS)],
  ["h2c pool", h2cBackend, (url) => new H2Pool(url, "h2c", OPTIONS)],
];

for (const [name, startBackend, makePool] of pools) {
  test(`${name}: two close() calls during a request both resolve once it is answered`, async (t) => {
    const c = new Cleanup();
    t.after(() => c.run());
    const held: { release?: () => void } = {};
    const pool = makePool(await startBackend(c, held));
    c.add(() => pool.destroy());
    const first = get(pool);
    await until(() => held.release !== undefined, 2000, "the request upstream");
    let closes = 0;
    const closed = [pool.close().then(() => closes++), pool.close().then(() => closes++)];
    assert.equal(
      await get(pool),
      "error ERR_SWITCHYARD_UPSTREAM_DESTROYED",
      "a closed pool takes no request",
    );
    assert.equal(closes, 0, "close() waits for the request under way");
    held.release!();
    assert.equal(await first, "late");
    await Promise.all(closed);
    assert.equal(closes, 2);
  });
}
