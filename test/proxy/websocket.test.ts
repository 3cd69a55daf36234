import * as assert from "node:assert/strict";
import { once } from "node:events";
import type * as http from "node:http";
import { test } from "node:test";
import { type RawData, WebSocket, WebSocketServer } from "ws";
import { backend, tcpBackend } from "../support/backend.ts";
import { inflight, startBalancer } from "../support/balancer.ts";
import { type Cleanup, cleanupAfter } from "../support/cleanup.ts";
import { freePort } from "../support/ports.ts";
import { until } from "../support/until.ts";

/** A ws echo backend that also reports what it saw at the handshake. */
async function echoBackend(c: Cleanup) {
  const plain = await backend("echo", { cleanup: c, body: "plain" });
  const wss = new WebSocketServer({ server: plain.server });
  const b = { url: plain.url, sockets: new Set<WebSocket>(), handshakes: [] as http.IncomingHttpHeaders[] };
  wss.on("connection", (ws, req) => {
    b.handshakes.push(req.headers);
    b.sockets.add(ws);
    ws.on("close", () => b.sockets.delete(ws));
    ws.on("message", (data: RawData, isBinary: boolean) => ws.send(data, { binary: isBinary }));
  });
  c.add(() => {
    for (const ws of wss.clients) ws.terminate();
    wss.close();
  });
  return b;
}

function connect(port: number, c: Cleanup, path = "/chat"): WebSocket {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`);
  ws.on("error", () => {});
  c.add(() => ws.terminate());
  return ws;
}

test("WebSocket: echo through the balancer, text and binary, balanced across servers", {
  timeout: 20_000,
}, async (t) => {
  const c = cleanupAfter(t);
  const a = await echoBackend(c);
  const b = await echoBackend(c);
  const p = await startBalancer(c, [a.url, b.url]);
  const clients = [connect(p.port, c), connect(p.port, c)];
  await Promise.all(clients.map((ws) => once(ws, "open")));
  assert.equal(a.sockets.size, 1);
  assert.equal(b.sockets.size, 1);
  assert.equal(a.handshakes[0]["x-forwarded-for"], "127.0.0.1");
  assert.equal(a.handshakes[0]["x-real-ip"], "127.0.0.1");
  const ws = clients[0];
  ws.send("hello");
  const [text, isBinary] = (await once(ws, "message")) as [Buffer, boolean];
  assert.equal(text.toString(), "hello");
  assert.equal(isBinary, false);
  const bin = Buffer.from([0, 1, 2, 255, 254]);
  ws.send(bin);
  const [echoed, isBin2] = (await once(ws, "message")) as [Buffer, boolean];
  assert.deepEqual(Buffer.from(echoed), bin);
  assert.equal(isBin2, true);
  // a large message both ways
  const big = Buffer.alloc(2 * 1024 * 1024, 7);
  ws.send(big);
  const [bigBack] = (await once(ws, "message")) as [Buffer];
  assert.equal(Buffer.from(bigBack).length, big.length);
  // the tunnel counts as in flight for its whole life
  assert.equal(inflight(p.servers), 2);
  // the client closing closes the backend side
  ws.close();
  await until(() => a.sockets.size + b.sockets.size === 1, 5000, "backend side closed");
  // the backend closing closes the client side
  const other = clients[1];
  const closed = once(other, "close");
  for (const s of [...a.sockets, ...b.sockets]) s.close(4000, "bye");
  const [code] = (await closed) as [number];
  assert.equal(code, 4000);
  await until(() => inflight(p.servers) === 0, 5000, "inflight 0 after tunnels closed");
});

test("WebSocket: a down backend is retried on another server", { timeout: 20_000 }, async (t) => {
  const c = cleanupAfter(t);
  const dead = await freePort();
  const good = await echoBackend(c);
  const p = await startBalancer(c, [`http://127.0.0.1:${dead}`, good.url]);
  const ws = connect(p.port, c);
  await once(ws, "open");
  ws.send("ping");
  const [m] = (await once(ws, "message")) as [Buffer];
  assert.equal(m.toString(), "ping");
  assert.equal(p.servers[0].passiveDown, true);
  ws.close();
  await until(() => inflight(p.servers) === 0, 5000, "inflight 0");
});

test("WebSocket: no server left gives 502; a refusal with a normal response is relayed", {
  timeout: 20_000,
}, async (t) => {
  const c = cleanupAfter(t);
  const dead = await freePort();
  const p = await startBalancer(c, [`http://127.0.0.1:${dead}`]);
  const ws = connect(p.port, c);
  const [, res] = (await once(ws, "unexpected-response")) as [unknown, http.IncomingMessage];
  assert.equal(res.statusCode, 502);
  res.resume();

  const refusing = await backend("b", {
    cleanup: c,
    handler: (_req, res) => {
      res.writeHead(403, { "content-type": "text/plain", "x-why": "nope" });
      res.end("forbidden here");
    },
  });
  const p2 = await startBalancer(c, [refusing.url]);
  const ws2 = connect(p2.port, c);
  const [, res2] = (await once(ws2, "unexpected-response")) as [unknown, http.IncomingMessage];
  assert.equal(res2.statusCode, 403);
  assert.equal(res2.headers["x-why"], "nope");
  let body = "";
  res2.on("data", (d) => {
    body += d;
  });
  await once(res2, "end");
  assert.equal(body, "forbidden here");

  const plain = await tcpBackend(c, (s) =>
    s.once("data", () => s.end("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")),
  );
  const p3 = await startBalancer(c, [plain.url]);
  const ws3 = connect(p3.port, c);
  const [, res3] = (await once(ws3, "unexpected-response")) as [unknown, http.IncomingMessage];
  assert.equal(res3.statusCode, 200);
  res3.resume();
  await until(() => inflight([...p.servers, ...p2.servers, ...p3.servers]) === 0, 5000, "inflight 0");
});

test("WebSocket: connect and response-head timeouts give 504", { timeout: 20_000 }, async (t) => {
  const c = cleanupAfter(t);
  const mute = await tcpBackend(c, (s) => s.resume());
  // TLS never completes: the connect timeout
  const p = await startBalancer(c, [`https://127.0.0.1:${mute.port}`], { timeouts: { connect: 200 } });
  const ws = connect(p.port, c);
  const [, res] = (await once(ws, "unexpected-response")) as [unknown, http.IncomingMessage];
  assert.equal(res.statusCode, 504);
  res.resume();
  // connected, but no answer: the response-head timeout
  const p2 = await startBalancer(c, [mute.url], { timeouts: { responseHeader: 200 } });
  const ws2 = connect(p2.port, c);
  const [, res2] = (await once(ws2, "unexpected-response")) as [unknown, http.IncomingMessage];
  assert.equal(res2.statusCode, 504);
  res2.resume();
  assert.equal(p2.servers[0].passiveDown, false);
  await until(() => inflight([...p.servers, ...p2.servers]) === 0, 5000, "inflight 0");
});

test("WebSocket: the library's timeouts.tunnel closes a silent tunnel on both sides; a reload reaches new tunnels only", {
  timeout: 20_000,
}, async (t) => {
  const c = cleanupAfter(t);
  const b = await echoBackend(c);
  const p = await startBalancer(c, [b.url], { timeouts: { tunnel: "300ms" } });
  assert.equal(p.lb.tunnelTimeout, 300);
  const ws = connect(p.port, c);
  const closed = once(ws, "close");
  await once(ws, "open");
  assert.equal(inflight(p.servers), 1);
  await closed;
  await until(() => b.sockets.size === 0, 5000, "the backend side closed");
  await until(() => inflight(p.servers) === 0, 5000, "inflight 0 after the timeout");
  // 0 = never, from the next tunnel on: the one opened before the change keeps its 300 ms
  const before = connect(p.port, c);
  const beforeClosed = once(before, "close");
  await once(before, "open");
  p.lb.updateConfig({ timeouts: { tunnel: 0 } });
  const after = connect(p.port, c);
  await once(after, "open");
  await beforeClosed;
  // the clock: a 300 ms tunnel of another balancer, opened after `after`, left to expire
  const other = await startBalancer(c, [b.url], { timeouts: { tunnel: 300 } });
  const clock = connect(other.port, c);
  await once(clock, "close");
  assert.equal(after.readyState, WebSocket.OPEN);
  const reply = once(after, "message");
  after.send("still open");
  assert.equal(String((await reply)[0]), "still open");
  assert.throws(() => p.lb.updateConfig({ timeouts: { tunnel: -1 } }), /timeouts.tunnel must be >= 0/);
});
