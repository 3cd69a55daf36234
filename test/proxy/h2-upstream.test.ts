/**
 * HTTP/2 to backends (`protocol: h2` over TLS with ALPN, `h2c` by prior knowledge): real node:http2
 * backends behind a balancer. Pooled sessions with the peer's stream limit, GOAWAY, refused and
 * reset streams, trailers to HTTP/2 clients, and a clear 502 for a backend that is not HTTP/2.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as https from "node:https";
import { Writable } from "node:stream";
import { test } from "node:test";
import { pino } from "pino";
import { Server, type ServerOptions } from "../../src/balancer/server.ts";
import { HttpHealthMonitor } from "../../src/health/http-monitor.ts";
import { LoadBalancer } from "../../src/load-balancer.ts";
import type { H2Pool } from "../../src/proxy/h2-client.ts";
import { inflight } from "../support/balancer.ts";
import { type Cleanup, cleanupAfter, listen } from "../support/cleanup.ts";
import { send } from "../support/http.ts";
import { selfSigned } from "../support/tls.ts";
import { until } from "../support/until.ts";

const { NGHTTP2_REFUSED_STREAM, NGHTTP2_INTERNAL_ERROR } = http2.constants;

type StreamHandler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void;

/** An h2c (or, with `tls`, h2) backend; counts sessions and streams. */
async function h2Backend(
  c: Cleanup,
  onStream: StreamHandler,
  opts: { tls?: boolean; settings?: http2.Settings } = {},
): Promise<{ url: string; port: number; sessions: http2.ServerHttp2Session[]; streams: number }> {
  const server = opts.tls
    ? http2.createSecureServer({ ...selfSigned(), settings: opts.settings })
    : http2.createServer({ settings: opts.settings });
  const b = { url: "", port: 0, sessions: [] as http2.ServerHttp2Session[], streams: 0 };
  server.on("session", (s) => {
    b.sessions.push(s);
    s.on("error", () => {});
  });
  server.on("stream", (stream, headers) => {
    b.streams++;
    stream.on("error", () => {});
    onStream(stream, headers);
  });
  b.port = await listen(server, c);
  c.add(() => {
    for (const s of b.sessions) s.destroy();
  });
  b.url = `${opts.tls ? "https" : "http"}://127.0.0.1:${b.port}`;
  return b;
}

type LogLine = Record<string, unknown> & { msg: string; level: number };

async function balancer(
  c: Cleanup,
  servers: { url: string; options?: Partial<ServerOptions> }[],
): Promise<{ lb: LoadBalancer; servers: Server[]; port: number; logs: LogLine[]; h2port: number }> {
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split("\n")) if (line) logs.push(JSON.parse(line));
      cb();
    },
  });
  const lb = new LoadBalancer({ link: "h2svc", logger: pino({ level: "debug" }, sink) });
  const list = servers.map((s, i) => new Server({ name: `s${i}`, url: s.url, ...s.options }));
  for (const s of list) lb.addServer(s);
  const ac = new AbortController();
  lb.start(ac.signal);
  c.add(() => ac.abort());
  const port = await listen(http.createServer(lb.handle), c);
  // an HTTP/2 front too (trailers reach HTTP/2 clients)
  const h2front = http2.createSecureServer({ ...selfSigned() }, lb.handle as never);
  const h2port = await listen(h2front, c);
  return { lb, servers: list, port, logs, h2port };
}

test("h2c: requests and uploads reach an HTTP/2 backend over one pooled session", async (t) => {
  const c = cleanupAfter(t);
  const seen: http2.IncomingHttpHeaders[] = [];
  const b = await h2Backend(c, (stream, headers) => {
    seen.push(headers);
    const parts: Buffer[] = [];
    stream.on("data", (d: Buffer) => parts.push(d));
    stream.on("end", () => {
      stream.respond({ ":status": 201, "x-backend": "h2c", "set-cookie": ["a=1", "b=2"] });
      stream.end(`${headers[":method"]} ${headers[":path"]} ${Buffer.concat(parts).toString()}`);
    });
  });
  const p = await balancer(c, [{ url: b.url, options: { protocol: "h2c" } }]);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  c.add(() => agent.destroy());
  const replies = await Promise.all([
    send(p.port, { agent, path: "/a?x=1", headers: { host: "app.example" } }),
    send(p.port, { agent, path: "/b", method: "POST", body: "payload" }),
    send(p.port, { agent, path: "/c" }),
  ]);
  assert.deepEqual(
    replies.map((r) => [r.status, r.body.toString()]),
    [
      [201, "GET /a?x=1 "],
      [201, "POST /b payload"],
      [201, "GET /c "],
    ],
  );
  assert.equal(replies[0].headers["x-backend"], "h2c");
  assert.deepEqual(replies[0].headers["set-cookie"], ["a=1", "b=2"]);
  assert.equal(b.sessions.length, 1, "one session carries the concurrent requests");
  const first = seen.find((h) => h[":path"] === "/a?x=1")!;
  assert.equal(first[":authority"], "app.example", "Host becomes :authority");
  assert.equal(first[":scheme"], "http");
  assert.equal(first["x-forwarded-for"], "127.0.0.1");
  assert.equal(first.host, undefined);
  assert.equal(first.connection, undefined);
  assert.equal(inflight(p.servers), 0);
});

test("h2 over TLS with ALPN, verified with `ca`; trailers reach an HTTP/2 client", async (t) => {
  const c = cleanupAfter(t);
  const b = await h2Backend(
    c,
    (stream) => {
      stream.respond({ ":status": 200, "content-type": "text/plain" }, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "x-checksum": "abc", "grpc-status": "0" }));
      stream.end("body");
    },
    { tls: true },
  );
  const url = b.url.replace("127.0.0.1", "localhost");
  const p = await balancer(c, [{ url, options: { protocol: "h2", tls: { ca: selfSigned().cert } } }]);
  // HTTP/1.1 client: the body arrives
  const r = await send(p.port);
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), "body");
  // HTTP/2 client: the trailers too
  const client = http2.connect(`https://localhost:${p.h2port}`, { ca: selfSigned().cert });
  c.add(() => client.close());
  const stream = client.request({ ":path": "/" });
  const [trailers] = (await Promise.all([
    once(stream, "trailers"),
    new Promise((r) => stream.resume().on("end", r)),
  ])) as unknown as [[http2.IncomingHttpHeaders]];
  assert.equal(trailers[0]["x-checksum"], "abc");
  assert.equal(trailers[0]["grpc-status"], "0");
});

test("the peer's SETTINGS_MAX_CONCURRENT_STREAMS is respected: a full session makes another one open", async (t) => {
  const c = cleanupAfter(t);
  const held: http2.ServerHttp2Stream[] = [];
  let concurrentMax = 0;
  const perSession = new Map<unknown, number>();
  const b = await h2Backend(
    c,
    (stream) => {
      const n = (perSession.get(stream.session) ?? 0) + 1;
      perSession.set(stream.session, n);
      concurrentMax = Math.max(concurrentMax, n);
      stream.on("close", () => perSession.set(stream.session, (perSession.get(stream.session) ?? 1) - 1));
      held.push(stream);
    },
    { settings: { maxConcurrentStreams: 2 } },
  );
  const p = await balancer(c, [{ url: b.url, options: { protocol: "h2c" } }]);
  const replies = Array.from({ length: 5 }, () => send(p.port, { agent: false }));
  await until(() => held.length === 5, 5000, "five streams at the backend");
  assert.equal(b.sessions.length, 3, "5 streams at 2 per session");
  assert.equal(concurrentMax, 2);
  for (const s of held) {
    s.respond({ ":status": 200 });
    s.end("ok");
  }
  for (const r of await Promise.all(replies)) assert.equal(r.status, 200);
});

test("GOAWAY: the in-flight stream finishes on the old session, new requests go to a new one, no error reaches a client", async (t) => {
  const c = cleanupAfter(t);
  const held: http2.ServerHttp2Stream[] = [];
  const b = await h2Backend(c, (stream, headers) => {
    if (headers[":path"] === "/hold") held.push(stream);
    else {
      stream.respond({ ":status": 200 });
      stream.end("fresh");
    }
  });
  const p = await balancer(c, [{ url: b.url, options: { protocol: "h2c" } }]);
  const slow = send(p.port, { agent: false, path: "/hold" });
  slow.catch(() => {});
  await until(() => held.length === 1, 5000, "held stream");
  const first = b.sessions[0];
  first.goaway(http2.constants.NGHTTP2_NO_ERROR, held[0].id!);
  // the GOAWAY reaches the client before the next request: wait until switchyard saw it
  await until(() => stats(p.servers[0])?.goaways === 1, 5000, "GOAWAY seen by switchyard");
  const r = await send(p.port, { agent: false, path: "/next" });
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), "fresh");
  assert.equal(b.sessions.length, 2, "a new session for the new request");
  held[0].respond({ ":status": 200 });
  held[0].end("old session finished");
  const s = await slow;
  assert.equal(s.status, 200);
  assert.equal(s.body.toString(), "old session finished");
  assert.equal(p.servers[0].passiveDown, false, "a GOAWAY is no failure");
});

test("a refused stream (REFUSED_STREAM) is sent again without the client noticing; the server stays in", async (t) => {
  const c = cleanupAfter(t);
  let refused = 0;
  const b = await h2Backend(c, (stream) => {
    if (refused === 0) {
      refused++;
      stream.close(NGHTTP2_REFUSED_STREAM);
      return;
    }
    stream.respond({ ":status": 200 });
    stream.end("second try");
  });
  const p = await balancer(c, [{ url: b.url, options: { protocol: "h2c" } }]);
  const r = await send(p.port, { agent: false });
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), "second try");
  assert.equal(b.streams, 2);
  assert.equal(stats(p.servers[0])?.refused, 1);
});

test("passive health: a backend that resets streams is taken out and the request retried on another server", async (t) => {
  const c = cleanupAfter(t);
  const bad = await h2Backend(c, (stream) => stream.close(NGHTTP2_INTERNAL_ERROR));
  const good = await h2Backend(c, (stream) => {
    stream.respond({ ":status": 200 });
    stream.end("good");
  });
  const p = await balancer(c, [
    { url: bad.url, options: { protocol: "h2c" } },
    { url: good.url, options: { protocol: "h2c" } },
  ]);
  for (let i = 0; i < 3; i++) {
    const r = await send(p.port, { agent: false });
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), "good");
  }
  assert.equal(p.servers[0].passiveDown, true, "the resetting server is out");
  assert.equal(stats(p.servers[0])?.resets, 1);
  assert.equal(bad.streams, 1, "no second request went to it");
});

test("a backend that speaks only HTTP/1.1 where h2c or h2 is set: 502 and a log line saying so", async (t) => {
  const c = cleanupAfter(t);
  const h1 = http.createServer((_req, res) => res.end("h1"));
  const h1port = await listen(h1, c);
  const h1tls = https.createServer({ ...selfSigned() }, (_req, res) => res.end("h1"));
  const h1tlsPort = await listen(h1tls, c);
  const p = await balancer(c, [{ url: `http://127.0.0.1:${h1port}`, options: { protocol: "h2c" } }]);
  const r = await send(p.port, { agent: false });
  assert.equal(r.status, 502);
  const line = p.logs.find((l) => l.msg === "upstream request failed");
  assert.match(String((line?.err as { message?: string })?.message), /does not speak HTTP\/2.*h2c/);
  assert.equal(line?.server, "s0");

  const q = await balancer(c, [
    {
      url: `https://localhost:${h1tlsPort}`,
      options: { protocol: "h2", tls: { ca: selfSigned().cert } },
    },
  ]);
  const r2 = await send(q.port, { agent: false });
  assert.equal(r2.status, 502);
  const line2 = q.logs.find((l) => l.msg === "upstream request failed");
  assert.match(String((line2?.err as { message?: string })?.message), /does not speak HTTP\/2.*ALPN/);
});

test("h2 verifies certificates as HTTP/1.1 does: a self-signed backend is a 502 with the TLS reason", async (t) => {
  const c = cleanupAfter(t);
  const b = await h2Backend(
    c,
    (stream) => {
      stream.respond({ ":status": 200 });
      stream.end();
    },
    { tls: true },
  );
  const p = await balancer(c, [
    { url: b.url.replace("127.0.0.1", "localhost"), options: { protocol: "h2" } },
  ]);
  const r = await send(p.port, { agent: false });
  assert.equal(r.status, 502);
  assert.match(String(p.logs.find((l) => l.msg === "backend TLS refused")?.tls), /SELF_SIGNED/);
  assert.equal(b.streams, 0);
});

/** The counts of a server's HTTP/2 pool. */
function stats(server: Server): H2Pool["stats"] | undefined {
  return (server.upstream as H2Pool | undefined)?.stats;
}

test("health checks speak the service's protocol: an h2c check is healthy on an h2c backend, unhealthy on an HTTP/1.1 one", async (t) => {
  const c = cleanupAfter(t);
  const paths: string[] = [];
  const b = await h2Backend(c, (stream, headers) => {
    paths.push(`${headers[":method"]} ${headers[":path"]}`);
    stream.respond({ ":status": headers[":path"] === "/down" ? 503 : 204 });
    stream.end();
  });
  const h1 = await listen(
    http.createServer((_req, res) => res.end()),
    c,
  );
  const ok = new HttpHealthMonitor(b.url, { protocol: "h2c", path: "/healthz", retries: -1 });
  const down = new HttpHealthMonitor(b.url, { protocol: "h2c", path: "/down", retries: -1 });
  const notH2 = new HttpHealthMonitor(`http://127.0.0.1:${h1}`, { protocol: "h2c", retries: -1 });
  const ac = new AbortController();
  c.add(() => ac.abort());
  for (const m of [ok, down, notH2]) m.start(ac.signal);
  assert.equal(await ok.check(), "healthy");
  assert.equal(await down.check(), "unhealthy");
  assert.equal(down.detail(), "HTTP 503");
  assert.equal(await notH2.check(), "unhealthy");
  assert.ok(paths.includes("HEAD /healthz"), paths.join());
});
