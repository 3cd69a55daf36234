import * as assert from "node:assert/strict";
import * as http2 from "node:http2";
import { test } from "node:test";
import { Cleanup, listen } from "../../test/support/cleanup.ts";
import { until } from "../../test/support/until.ts";
import type { UpstreamHandler } from "../http1/upstream.ts";
import { H2Pool } from "./h2-client.ts";

test("h2c pool: two close() calls during a stream both resolve once it is answered", async (t) => {
  const c = new Cleanup();
  t.after(() => c.run());
  let release: (() => void) | undefined;
  const server = http2.createServer();
  server.on("stream", (stream) => {
    release = () => {
      stream.respond({ ":status": 200 });
      stream.end("late");
    };
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => sessions.add(s));
  c.add(() => {
    for (const s of sessions) s.destroy();
  });
  const port = await listen(server, c);
  const pool = new H2Pool(new URL(`http://127.0.0.1:${port}`), "h2c", {
    connectTimeout: 2000,
    responseHeaderTimeout: 2000,
    idleTimeout: 2000,
  });
  c.add(() => pool.destroy());
  const first = new Promise<string>((resolve) => {
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
        resolve(`error ${err.message}`);
      },
    };
    pool.request({ method: "GET", path: "/", headers: [], body: null }, handler);
  });
  await until(() => release !== undefined, 2000, "the stream upstream");
  let closes = 0;
  const closed = [pool.close().then(() => closes++), pool.close().then(() => closes++)];
  await new Promise((r) => setImmediate(r));
  assert.equal(closes, 0, "close() waits for the stream under way");
  release!();
  assert.equal(await first, "late");
  await Promise.all(closed);
  assert.equal(closes, 2);
});
