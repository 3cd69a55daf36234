/**
 * WebSockets to HTTP/2-only backends (`protocol: h2c` / `h2`), end to end through `switchyard
 * serve`: an HTTP/1.1 client's upgrade goes to the backend as an RFC 8441 extended CONNECT stream
 * on the pooled session; frames flow both ways until either side closes. A backend that did not
 * enable extended CONNECT gets a clear 502 and log line; answers other than 200 are relayed;
 * resets end both sides. The backends are node:http2 servers echoing WebSocket frames.
 */
import * as assert from "node:assert/strict";
import { once } from "node:events";
import * as http2 from "node:http2";
import { after, before, describe, test } from "node:test";
import { type RawData, WebSocket } from "ws";
import { Cleanup, cleanupAfter } from "../support/cleanup.ts";
import { type Running, startSwitchyard, tempDir } from "../support/switchyard.ts";
import { until } from "../support/until.ts";
import { frame, type H2WebSocketBackend, h2WebSocketBackend } from "../support/websocket.ts";

function connect(sy: Running, host: string, path: string, c: Cleanup, protocols?: string[]): WebSocket {
  const ws = new WebSocket(`ws://${sy.proxy[0]}${path}`, protocols, { headers: { host } });
  ws.on("error", () => {});
  c.add(() => ws.terminate());
  return ws;
}

/** The status of a refused handshake. */
async function refusal(ws: WebSocket): Promise<{ status: number; body: string }> {
  const [, res] = (await once(ws, "unexpected-response")) as [unknown, import("node:http").IncomingMessage];
  let body = "";
  res.setEncoding("utf8");
  for await (const chunk of res) body += chunk;
  return { status: res.statusCode ?? 0, body };
}

describe("WebSocket to HTTP/2 backends (RFC 8441) through switchyard serve", () => {
  const suite = new Cleanup();
  let sy: Running;
  let h2c: H2WebSocketBackend;
  let h2: H2WebSocketBackend;
  let plain: H2WebSocketBackend;
  let flaky: H2WebSocketBackend;
  let good: H2WebSocketBackend;

  before(async () => {
    h2c = await h2WebSocketBackend(suite, { connect: true });
    h2 = await h2WebSocketBackend(suite, { connect: true, tls: true });
    plain = await h2WebSocketBackend(suite, { connect: false });
    flaky = await h2WebSocketBackend(suite, { connect: true, resetAll: true });
    good = await h2WebSocketBackend(suite, { connect: true });
    const tmp = tempDir();
    suite.add(() => tmp.remove());
    const yaml = `listen: 127.0.0.1:0
admin: 127.0.0.1:0
services:
  chat:
    hosts: [chat.test]
    protocol: h2c
    servers: ["${h2c.url}"]
  secure:
    hosts: [secure.test]
    protocol: h2
    tls: { insecure_skip_verify: true }
    servers: ["${h2.url}"]
  old:
    hosts: [old.test]
    protocol: h2c
    servers: ["${plain.url}"]
  broken:
    hosts: [broken.test]
    protocol: h2c
    servers: ["${flaky.url}"]
  pair:
    hosts: [pair.test]
    protocol: h2c
    servers: ["${flaky.url}", "${good.url}"]
`;
    sy = await startSwitchyard(["serve", "-c", tmp.write("s.yaml", yaml)]);
    suite.add(() => sy.stop("SIGKILL"));
  });
  after(() => suite.run());

  test("h2c: echo both ways on one pooled session, subprotocol, the client closing ends the stream", async (t) => {
    const c = cleanupAfter(t);
    const a = connect(sy, "chat.test", "/chat?room=1", c, ["chat", "superchat"]);
    const b = connect(sy, "chat.test", "/chat?room=2", c);
    await Promise.all([once(a, "open"), once(b, "open")]);
    // the client's own check of Sec-WebSocket-Accept passed (ws refuses a wrong one)
    assert.equal(a.protocol, "chat");
    const seen = h2c.connects.at(-2)!;
    assert.equal(seen[":method"], "CONNECT");
    assert.equal(seen[":protocol"], "websocket");
    assert.equal(seen[":scheme"], "http");
    assert.equal(seen[":authority"], "chat.test");
    assert.equal(seen[":path"], "/chat?room=1");
    assert.equal(seen["sec-websocket-version"], "13");
    assert.equal(seen["sec-websocket-protocol"], "chat,superchat");
    assert.equal(seen["sec-websocket-key"], undefined, "RFC 8441 §5: not sent over HTTP/2");
    assert.equal(seen["x-forwarded-for"], "127.0.0.1");
    assert.equal(h2c.streams.size, 2);
    a.send("hello");
    const [text, isBinary] = (await once(a, "message")) as [RawData, boolean];
    assert.equal(String(text), "hello");
    assert.equal(isBinary, false);
    const bin = Buffer.from([0, 1, 2, 255]);
    b.send(bin);
    const [back] = (await once(b, "message")) as [Buffer];
    assert.deepEqual(Buffer.from(back), bin);
    // larger than HTTP/2's initial flow-control windows
    const big = Buffer.alloc(1024 * 1024 + 7, 9);
    a.send(big);
    const [bigBack] = (await once(a, "message")) as [Buffer];
    assert.equal(Buffer.from(bigBack).length, big.length);
    // both WebSockets went over one pooled session
    const [sa, sb] = h2c.connectSessions.slice(-2);
    assert.equal(sa, sb);
    const closed = once(a, "close");
    a.close(1000, "done");
    const [code] = (await closed) as [number];
    assert.equal(code, 1000);
    await until(() => h2c.streams.size === 1, 5000, "the backend's stream of the closed WebSocket to end");
  });

  test("h2c: the backend closing reaches the client with its code", async (t) => {
    const c = cleanupAfter(t);
    const ws = connect(sy, "chat.test", "/chat", c);
    await once(ws, "open");
    await until(() => h2c.streams.size >= 1, 5000, "the backend's stream");
    const closed = once(ws, "close");
    for (const s of h2c.streams) s.end(frame(0x88, Buffer.from([0x0f, 0xa0, 0x62, 0x79, 0x65])));
    const [code, reason] = (await closed) as [number, Buffer];
    assert.equal(code, 4000);
    assert.equal(String(reason), "bye");
  });

  test("GOAWAY: an open WebSocket goes on on the old session, a new one opens another", async (t) => {
    const c = cleanupAfter(t);
    const a = connect(sy, "chat.test", "/chat", c);
    await once(a, "open");
    const stream = [...h2c.streams].at(-1)!;
    const old = h2c.connectSessions.at(-1)!;
    // the backend restarts gracefully: nothing after this WebSocket's stream is taken
    (old as http2.ServerHttp2Session).goaway(http2.constants.NGHTTP2_NO_ERROR, stream.id);
    const b = connect(sy, "chat.test", "/chat", c);
    await once(b, "open");
    assert.notEqual(h2c.connectSessions.at(-1), old, "the new WebSocket went to a new session");
    a.send("still on the old session");
    const [text] = (await once(a, "message")) as [RawData];
    assert.equal(String(text), "still on the old session");
  });

  test("h2 (TLS): echo through an extended CONNECT over ALPN h2", async (t) => {
    const c = cleanupAfter(t);
    const ws = connect(sy, "secure.test", "/chat", c);
    await once(ws, "open");
    assert.equal(h2.connects.at(-1)?.[":scheme"], "https");
    ws.send("over tls");
    const [text] = (await once(ws, "message")) as [RawData];
    assert.equal(String(text), "over tls");
  });

  test("a backend answer other than 200 is relayed; a reset stream is a 502", async (t) => {
    const c = cleanupAfter(t);
    const forbidden = await refusal(connect(sy, "chat.test", "/forbidden", c));
    assert.deepEqual(forbidden, { status: 403, body: "not for you" });
    // (a service of its own: the reset takes its only server out)
    const reset = await refusal(connect(sy, "broken.test", "/chat", c));
    assert.equal(reset.status, 502);
    await sy.waitForLog(
      (r) => r.msg === "upstream upgrade failed" && /reset the WebSocket stream/.test(JSON.stringify(r.err)),
      5000,
      "the reset's log line",
    );
  });

  test("passive health: a server that resets the stream is taken out, the WebSocket retried on another", async (t) => {
    const c = cleanupAfter(t);
    // round robin: one of the two goes to the resetting server first
    const socks = [connect(sy, "pair.test", "/chat", c), connect(sy, "pair.test", "/chat", c)];
    await Promise.all(socks.map((ws) => once(ws, "open")));
    assert.equal(good.streams.size, 2);
    assert.ok(flaky.connects.length >= 1);
    await sy.waitForLog(
      (r) => r.service === "pair" && r.action === "ejected" && r.server === "pair-1",
      5000,
      "the resetting server to be taken out",
    );
    socks[0].send("still here");
    const [text] = (await once(socks[0], "message")) as [RawData];
    assert.equal(String(text), "still here");
  });

  test("a mid-tunnel reset by the backend ends the client's connection", async (t) => {
    const c = cleanupAfter(t);
    const ws = connect(sy, "chat.test", "/chat", c);
    await once(ws, "open");
    await until(() => h2c.streams.size >= 1, 5000, "the backend's stream");
    const closed = once(ws, "close");
    for (const s of h2c.streams) s.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    const [code] = (await closed) as [number];
    assert.equal(code, 1006, "abnormal closure: the connection was cut");
  });

  test("a backend without SETTINGS_ENABLE_CONNECT_PROTOCOL: 502 and a log line that says so", async (t) => {
    const c = cleanupAfter(t);
    const r = await refusal(connect(sy, "old.test", "/chat", c));
    assert.equal(r.status, 502);
    assert.doesNotMatch(r.body, /127\.0\.0\.1/, "the body does not name the backend");
    await sy.waitForLog(
      (rec) => /SETTINGS_ENABLE_CONNECT_PROTOCOL/.test(JSON.stringify(rec.err ?? "")),
      5000,
      "the refusal's log line",
    );
    assert.equal(plain.connects.length, 0, "nothing was sent");
  });
});
