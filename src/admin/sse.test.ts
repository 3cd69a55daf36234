import * as assert from "node:assert/strict";
import * as http from "node:http";
import * as net from "node:net";
import { test } from "node:test";
import { Cleanup, listen } from "../../test/support/cleanup.ts";
import { until } from "../../test/support/until.ts";
import { EventLog } from "./events.ts";
import { EventStreams } from "./sse.ts";

async function serve(streams: EventStreams, cleanup: Cleanup): Promise<number> {
  const server = http.createServer((req, res) => streams.open(req, res));
  cleanup.add(() => streams.close());
  return listen(server, cleanup);
}

test("a client gets the kept events first, then live ones, as data frames", async (t) => {
  const cleanup = new Cleanup();
  t.after(() => cleanup.run());
  const log = new EventLog(3);
  for (let i = 0; i < 5; i++) log.emit({ action: "reload", message: `old ${i}` });
  const streams = new EventStreams(log);
  const port = await serve(streams, cleanup);
  const res = await new Promise<http.IncomingMessage>((ok) => http.get({ port, host: "127.0.0.1" }, ok));
  assert.equal(res.headers["content-type"], "text/event-stream; charset=utf-8");
  res.setEncoding("utf8");
  let text = "";
  res.on("data", (c: string) => (text += c));
  const frames = () =>
    text
      .split("\n\n")
      .filter((f) => f.startsWith("data: "))
      .map((f) => JSON.parse(f.slice(6)));
  await until(() => frames().length === 3, 5000, "the replay");
  assert.deepEqual(
    frames().map((e) => e.message),
    ["old 2", "old 3", "old 4"],
  );
  log.emit({ action: "drain", service: "web", server: "w-1", message: "live", level: "warn" });
  await until(() => frames().length === 4, 5000, "the live event");
  const e = frames()[3];
  assert.equal(e.action, "drain");
  assert.equal(e.service, "web");
  assert.equal(e.server, "w-1");
  assert.equal(e.level, "warn");
  assert.ok(!Number.isNaN(Date.parse(e.timestamp)));
  res.destroy();
  await until(() => streams.clients === 0 && log.listenerCount === 0, 5000, "unsubscribed");
});

test("a client that never reads is dropped once its buffer is full; readers are unaffected", async (t) => {
  const cleanup = new Cleanup();
  t.after(() => cleanup.run());
  const log = new EventLog();
  const streams = new EventStreams(log, { maxBuffered: 64 * 1024 });
  const port = await serve(streams, cleanup);
  // the stalled client: sends the request and never reads
  const stalled = net.connect(port, "127.0.0.1");
  stalled.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  stalled.pause();
  cleanup.add(() => stalled.destroy());
  // a reader counting frames
  const reader = await new Promise<http.IncomingMessage>((ok) => http.get({ port, host: "127.0.0.1" }, ok));
  let frames = 0;
  reader.setEncoding("utf8");
  reader.on("data", (c: string) => {
    frames += c.split("data: ").length - 1;
  });
  cleanup.add(() => reader.destroy());
  await until(() => streams.clients === 2, 5000, "both clients");
  const before = process.memoryUsage().rss;
  const big = "x".repeat(8 * 1024);
  let sent = 0;
  // far more than socket buffers hold: 4,000 x 8 KiB = 32 MiB
  while (streams.dropped === 0 && sent < 4000) {
    log.emit({ action: "reload", message: big });
    sent++;
    if (sent % 4 === 0) await new Promise((r) => setImmediate(r));
  }
  assert.equal(streams.dropped, 1, `the stalled client was dropped after ${sent} events`);
  assert.equal(streams.clients, 1);
  await until(() => frames >= sent, 10_000, "the reader got every event");
  const grown = (process.memoryUsage().rss - before) / 1048576;
  assert.ok(grown < 64, `memory stayed bounded (+${grown.toFixed(1)} MiB)`);
});

test("heartbeat comments keep idle streams alive", async (t) => {
  const cleanup = new Cleanup();
  t.after(() => cleanup.run());
  const streams = new EventStreams(new EventLog(), { heartbeatMs: 20 });
  const port = await serve(streams, cleanup);
  const res = await new Promise<http.IncomingMessage>((ok) => http.get({ port, host: "127.0.0.1" }, ok));
  let text = "";
  res.setEncoding("utf8");
  res.on("data", (c: string) => (text += c));
  cleanup.add(() => res.destroy());
  await until(() => text.split(": keep-alive").length > 2, 5000, "two heartbeats");
});

test("more clients than maxClients are refused", async (t) => {
  const cleanup = new Cleanup();
  t.after(() => cleanup.run());
  const streams = new EventStreams(new EventLog(), { maxClients: 1 });
  const server = http.createServer((req, res) => {
    if (!streams.open(req, res)) {
      res.writeHead(503);
      res.end();
    }
  });
  cleanup.add(() => streams.close());
  const port = await listen(server, cleanup);
  const one = await new Promise<http.IncomingMessage>((ok) => http.get({ port, host: "127.0.0.1" }, ok));
  cleanup.add(() => one.destroy());
  assert.equal(one.statusCode, 200);
  const two = await new Promise<http.IncomingMessage>((ok) => http.get({ port, host: "127.0.0.1" }, ok));
  assert.equal(two.statusCode, 503);
  two.resume();
});
