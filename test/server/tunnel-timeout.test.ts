/**
 * `timeouts.tunnel` end to end through `switchyard serve`, on both HTTP/1 paths (the native front
 * and SWITCHYARD_HTTP1=fallback): a WebSocket with no byte either way for the timeout is closed on
 * both sides and leaves the in-flight count; one that keeps talking stays open; a service's
 * `tunnel: 0` overrides the top-level timeout. The same for a WebSocket to an h2c backend (RFC 8441
 * extended CONNECT upstream) and from an HTTP/2 client (extended CONNECT on the TLS listener).
 * Backends: a ws echo server (HTTP/1.1) and node:http2 echoing WebSocket frames.
 */
import * as assert from "node:assert/strict";
import { once } from "node:events";
import * as http2 from "node:http2";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { type RawData, WebSocket } from "ws";
import { Cleanup, cleanupAfter } from "../support/cleanup.ts";
import {
  get,
  type Running,
  selfSignedCert,
  splitAddress,
  startSwitchyard,
  tempDir,
} from "../support/switchyard.ts";
import { until } from "../support/until.ts";
import {
  frame,
  frames,
  type H2WebSocketBackend,
  h2WebSocketBackend,
  type WsConn,
  wsEchoBackend,
} from "../support/websocket.ts";

/** Each test is bounded: a tunnel that never closes fails it instead of hanging. */
const T = { timeout: 15_000 };

/** The backend's side of the WebSocket opened on `path` (it connected before the client's 'open'). */
function backendSide(conns: readonly WsConn[], path: string): WsConn {
  const conn = conns.findLast((x) => x.path === path);
  assert.ok(conn, `the backend saw ${path}`);
  return conn;
}

for (const path of ["native", "fallback"] as const) {
  describe(`timeouts.tunnel through switchyard serve (HTTP/1 ${path})`, { timeout: 60_000 }, () => {
    const suite = new Cleanup();
    let sy: Running;
    let h1: Awaited<ReturnType<typeof wsEchoBackend>>;
    let h2: H2WebSocketBackend;

    before(async () => {
      h1 = await wsEchoBackend(suite);
      h2 = await h2WebSocketBackend(suite, { connect: true });
      const tmp = tempDir();
      suite.add(() => tmp.remove());
      selfSignedCert(tmp.dir);
      const yaml = `listen:
  - 127.0.0.1:0
  - { address: "127.0.0.2:0", tls: { cert: cert.pem, key: key.pem } }
admin: 127.0.0.1:0
log_level: debug
access_log: false
timeouts: { tunnel: 300ms }
services:
  ws:
    hosts: [ws.test]
    servers: ["${h1.url}"]
  forever:
    hosts: [forever.test]
    timeouts: { tunnel: 0 }
    servers: ["${h1.url}"]
  h2:
    hosts: [h2.test]
    protocol: h2c
    servers: ["${h2.url}"]
`;
      sy = await startSwitchyard(["serve", "-c", tmp.write("s.yaml", yaml)], {
        env: { SWITCHYARD_HTTP1: path },
      });
      suite.add(() => sy.stop("SIGKILL"));
    });
    after(() => suite.run());

    function connect(host: string, url: string, c: Cleanup): WebSocket {
      const ws = new WebSocket(`ws://${sy.proxy[0]}${url}`, { headers: { host } });
      ws.on("error", () => {});
      c.add(() => ws.terminate());
      return ws;
    }

    /** The in-flight count of `service`'s servers, from the admin API. */
    async function inflight(service: string): Promise<number> {
      const health = JSON.parse((await get(sy.admin!, "/api/health")).body);
      const pool = health[service].extra.pool as Record<string, { inflight: number }>;
      return Object.values(pool).reduce((a, s) => a + s.inflight, 0);
    }

    /** Sends `n` messages 100 ms apart, each awaited as echoed; returns what came back. */
    async function talk(ws: WebSocket, n: number): Promise<string[]> {
      const echoed: string[] = [];
      const closed = once(ws, "close").then(() => {
        throw new Error(`closed after ${echoed.length} echoes`);
      });
      for (let i = 0; i < n; i++) {
        const reply = once(ws, "message");
        ws.send(`m${i}`);
        echoed.push(String((await Promise.race([reply, closed]))[0] as RawData));
        await sleep(100);
      }
      return echoed;
    }

    test("a silent WebSocket is closed on both sides and leaves the in-flight count", T, async (t) => {
      const c = cleanupAfter(t);
      const ws = connect("ws.test", "/silent", c);
      const clientClosed = once(ws, "close");
      await once(ws, "open");
      const server = backendSide(h1.conns, "/silent");
      assert.equal(await inflight("ws"), 1, "the open tunnel is in flight");
      // no byte either way: switchyard ends both sides (no close frame: it moves bytes, as nginx does)
      const [code] = (await clientClosed) as [number];
      assert.equal(code, 1006);
      await server.closed;
      await until(async () => (await inflight("ws")) === 0, 5000, "the in-flight count back to 0");
      await sy.waitForLog(
        (r) => r.level === 20 && r.msg === "tunnel closed: no byte either way for timeouts.tunnel",
        5000,
        "the debug line",
      );
      assert.deepEqual(
        sy.logs.filter((r) => (r.level as number) >= 40),
        [],
        "no warning or error for an expired tunnel",
      );
    });

    test("a WebSocket that keeps talking (a message every 100 ms for 1.2 s) stays open", T, async (t) => {
      const c = cleanupAfter(t);
      const ws = connect("ws.test", "/talk", c);
      await once(ws, "open");
      const server = backendSide(h1.conns, "/talk");
      let serverClosed = false;
      void server.closed.then(() => (serverClosed = true));
      const echoed = await talk(ws, 12);
      assert.deepEqual(
        echoed,
        Array.from({ length: 12 }, (_, i) => `m${i}`),
      );
      assert.equal(ws.readyState, WebSocket.OPEN);
      assert.equal(serverClosed, false);
      // then silent: it goes like any other
      await once(ws, "close");
      await server.closed;
    });

    test(
      "a service's `tunnel: 0` keeps a silent WebSocket open past two expiries of the 300 ms default",
      T,
      async (t) => {
        const c = cleanupAfter(t);
        const kept = connect("forever.test", "/kept", c);
        await once(kept, "open");
        // the clock: two WebSockets of the 300 ms service, one after the other, each left to expire
        for (const name of ["/clock-1", "/clock-2"]) {
          const clock = connect("ws.test", name, c);
          const closed = once(clock, "close");
          await once(clock, "open");
          await closed;
        }
        assert.equal(kept.readyState, WebSocket.OPEN);
        const reply = once(kept, "message");
        kept.send("still here");
        assert.equal(String((await reply)[0] as RawData), "still here");
        assert.equal(await inflight("forever"), 1);
        const closed = backendSide(h1.conns, "/kept").closed;
        kept.close(1000);
        await closed;
        await until(async () => (await inflight("forever")) === 0, 5000, "the in-flight count back to 0");
      },
    );

    test(
      "to an h2c backend (extended CONNECT upstream): the silent stream and the client are closed",
      T,
      async (t) => {
        const c = cleanupAfter(t);
        const before = h2.connects.length;
        const ws = connect("h2.test", "/h2-silent", c);
        const clientClosed = once(ws, "close");
        await once(ws, "open");
        assert.equal(h2.connects.length, before + 1);
        const stream = [...h2.streams].at(-1)!;
        const streamClosed = once(stream, "close");
        // some traffic first: it restarts the timer, then silence
        const reply = once(ws, "message");
        ws.send("over h2");
        assert.equal(String((await reply)[0] as RawData), "over h2");
        await clientClosed;
        await streamClosed;
        assert.equal(h2.streams.has(stream), false);
        await until(async () => (await inflight("h2")) === 0, 5000, "the in-flight count back to 0");
      },
    );

    // the h2 front is the same on both HTTP/1 paths: once
    if (path === "native")
      test(
        "an h2 client's WebSocket (extended CONNECT on the TLS listener) is closed when silent",
        T,
        async (t) => {
          const c = cleanupAfter(t);
          const [host, port] = splitAddress(sy.proxy[1]);
          const session = http2.connect(`https://${host}:${port}`, { rejectUnauthorized: false });
          session.on("error", () => {});
          c.add(() => session.destroy());
          const stream = session.request(
            {
              ":method": "CONNECT",
              ":protocol": "websocket",
              ":scheme": "https",
              ":path": "/h2-front",
              ":authority": "ws.test",
              "sec-websocket-version": "13",
            },
            { endStream: false },
          );
          stream.on("error", () => {});
          const [headers] = (await once(stream, "response")) as [http2.IncomingHttpHeaders];
          assert.equal(headers[":status"], 200);
          const server = backendSide(h1.conns, "/h2-front");
          const f = frames(stream);
          stream.write(frame(0x81, Buffer.from("hello"), true));
          assert.equal(String((await f.next()).payload), "hello");
          // switchyard ends the stream; the client ends its side as a browser would
          stream.once("end", () => stream.end());
          await once(stream, "close");
          assert.equal(stream.rstCode, http2.constants.NGHTTP2_NO_ERROR);
          await server.closed;
          await until(async () => (await inflight("ws")) === 0, 5000, "the in-flight count back to 0");
          assert.equal(session.closed || session.destroyed, false, "the session itself stays");
        },
      );
  });
}
