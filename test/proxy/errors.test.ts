import * as assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import * as http from "node:http";
import * as net from "node:net";
import { test } from "node:test";
import { LoadBalancer } from "../../src/load-balancer.ts";
import { backend, tcpBackend } from "../support/backend.ts";
import { inflight, startBalancer } from "../support/balancer.ts";
import { type Cleanup, cleanupAfter, listen } from "../support/cleanup.ts";
import { send } from "../support/http.ts";
import { freePort } from "../support/ports.ts";
import { until } from "../support/until.ts";

/** An HTTP backend that echoes a digest of the body it received. */
function digestBackend(c: Cleanup) {
  return backend("b", {
    cleanup: c,
    handler: (req, res) => {
      const h = createHash("sha256");
      req.on("data", (d: Buffer) => h.update(d));
      req.on("end", () => res.end(h.digest("hex")));
    },
  });
}

test("no good server: 503 with a short plain-text body", { timeout: 10_000 }, async (t) => {
  const c = cleanupAfter(t);
  const lb = new LoadBalancer({ link: "empty" });
  const port = await listen(http.createServer(lb.handle), c);
  const r = await send(port);
  assert.equal(r.status, 503);
  assert.match(String(r.headers["content-type"]), /^text\/plain/);
  assert.equal(r.body.toString(), "Service Unavailable\n");
});

test("refused connection: retried elsewhere for any method, body intact; server taken out at once", {
  timeout: 20_000,
}, async (t) => {
  const c = cleanupAfter(t);
  const dead = await freePort();
  const good = await digestBackend(c);
  // the dead server first: round robin sends the first request there
  const p = await startBalancer(c, [`http://127.0.0.1:${dead}`, good.url]);
  const body = randomBytes(300_000);
  const r = await send(p.port, {
    method: "POST",
    body,
    headers: { "content-length": body.length },
  });
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), createHash("sha256").update(body).digest("hex"));
  assert.equal(p.servers[0].passiveDown, true, "refusing server reported to passive health");
  assert.equal(p.servers[0].available, false);
  // chunked body too, and every later request goes straight to the good server
  for (let i = 0; i < 4; i++) {
    const rr = await new Promise<number>((resolve, reject) => {
      const req = http.request({ port: p.port, host: "127.0.0.1", method: "PATCH" }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      });
      req.on("error", reject);
      req.write("part one, ");
      setImmediate(() => req.end("part two"));
    });
    assert.equal(rr, 200);
  }
  assert.equal(good.received.length, 5);
  assert.equal(inflight(p.servers), 0);
});

test("every server refusing: 502 that names no backend, bounded attempts, never one server twice", {
  timeout: 20_000,
}, async (t) => {
  const c = cleanupAfter(t);
  // servers that accept and then reset: each connection is one attempt
  const backends = await Promise.all(
    [0, 1, 2, 3, 4].map(() => tcpBackend(c, (s) => s.once("data", () => s.resetAndDestroy()))),
  );
  const p = await startBalancer(
    c,
    backends.map((b) => b.url),
  );
  const r = await send(p.port, { agent: false });
  assert.equal(r.status, 502);
  assert.equal(r.body.toString(), "Bad Gateway\n");
  for (const b of backends) {
    assert.ok(!r.body.toString().includes(String(b.port)));
    assert.ok(b.connections <= 1, "no server twice");
  }
  assert.equal(
    backends.reduce((a, b) => a + b.connections, 0),
    3,
    "three attempts at most",
  );
  assert.equal(inflight(p.servers), 0);
});

test("reset before a response: GET retried elsewhere; POST with a body gets 502 and is not replayed", {
  timeout: 20_000,
}, async (t) => {
  const c = cleanupAfter(t);
  // reads part of the request (the body has started to flow), then resets
  const resetter = await tcpBackend(c, (s) => s.once("data", () => s.resetAndDestroy()));
  const good = await digestBackend(c);
  const p = await startBalancer(c, [resetter.url, good.url]);
  const r = await send(p.port, { agent: false });
  assert.equal(r.status, 200);
  assert.equal(good.received.length, 1);
  assert.equal(p.servers[0].passiveDown, true, "reset reported to passive health");

  // POST: bring the resetter back and make it the next pick
  p.servers[0].clearPassive();
  const p2 = await startBalancer(c, [resetter.url, good.url]);
  const before = good.received.length;
  const body = randomBytes(200_000);
  const r2 = await send(p2.port, {
    agent: false,
    method: "POST",
    body,
    headers: { "content-length": body.length },
  });
  assert.equal(r2.status, 502);
  assert.equal(good.received.length, before, "a POST whose body was sent is not replayed");
  // DELETE without a body is not replayed either (not GET/HEAD/OPTIONS)
  p2.servers[0].clearPassive();
  const p3 = await startBalancer(c, [resetter.url, good.url]);
  const r3 = await send(p3.port, { agent: false, method: "DELETE" });
  assert.equal(r3.status, 502);
  assert.equal(good.received.length, before);
  assert.equal(inflight([...p.servers, ...p2.servers, ...p3.servers]), 0);
});

test("response header timeout: 504", { timeout: 20_000 }, async (t) => {
  const c = cleanupAfter(t);
  const silent = await tcpBackend(c, (s) => s.resume());
  const p = await startBalancer(c, [silent.url], { timeouts: { responseHeader: 300 } });
  const r = await send(p.port, { agent: false });
  assert.equal(r.status, 504);
  assert.equal(r.body.toString(), "Gateway Timeout\n");
  assert.equal(p.servers[0].passiveDown, false, "a slow server is not a dead one");
  assert.equal(inflight(p.servers), 0);
});

/** Sends a GET and reports how the response ended: complete, or the connection aborted. */
function getOutcome(
  port: number,
): Promise<{ status: number; outcome: "complete" | "aborted"; bytes: number }> {
  return new Promise((resolve) => {
    const req = http.get({ port, host: "127.0.0.1", path: "/", agent: false }, (res) => {
      let bytes = 0;
      res.on("data", (d: Buffer) => {
        bytes += d.length;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, outcome: "complete", bytes }));
      res.on("error", () => resolve({ status: res.statusCode ?? 0, outcome: "aborted", bytes }));
      res.on("aborted", () => resolve({ status: res.statusCode ?? 0, outcome: "aborted", bytes }));
    });
    // aborted before the head reached the client
    req.on("error", () => resolve({ status: 0, outcome: "aborted", bytes: 0 }));
  });
}

test("idle timeout mid-body: the client connection is aborted", { timeout: 20_000 }, async (t) => {
  const c = cleanupAfter(t);
  const stall = await tcpBackend(c, (s) =>
    s.once("data", () => s.write("HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nfirst part")),
  );
  const p = await startBalancer(c, [stall.url], { timeouts: { idle: 300 } });
  const r = await getOutcome(p.port);
  assert.equal(r.status, 200);
  assert.equal(r.outcome, "aborted");
  assert.equal(r.bytes, 10);
  assert.equal(inflight(p.servers), 0);
});

test("misbehaving backends: garbage, huge headers, close mid-body — 502 or a clean abort, never a crash", {
  timeout: 30_000,
}, async (t) => {
  const c = cleanupAfter(t);
  const garbage = await tcpBackend(c, (s) => s.once("data", () => s.end("SMTP ready\r\n\r\n")));
  const huge = await tcpBackend(c, (s) =>
    s.once("data", () => s.end(`HTTP/1.1 200 OK\r\nx-big: ${"a".repeat(128 * 1024)}\r\n\r\n`)),
  );
  const midBody = await tcpBackend(c, (s) =>
    s.once("data", () => s.end("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort")),
  );
  const badChunk = await tcpBackend(c, (s) =>
    s.once("data", () => s.end("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nnope\r\n")),
  );
  for (const b of [garbage, huge]) {
    const p = await startBalancer(c, [b.url]);
    const r = await getOutcome(p.port);
    assert.equal(r.status, 502, b.url);
    assert.equal(inflight(p.servers), 0);
  }
  for (const b of [midBody, badChunk]) {
    const p = await startBalancer(c, [b.url]);
    const r = await getOutcome(p.port);
    assert.equal(r.outcome, "aborted", b.url);
    assert.equal(inflight(p.servers), 0);
  }
});

test("a client that goes away aborts the upstream request", { timeout: 20_000 }, async (t) => {
  const c = cleanupAfter(t);
  const closed: string[] = [];
  const b = await backend("b", {
    cleanup: c,
    handler: (req, res) => {
      res.on("close", () => closed.push(req.url ?? ""));
      if (req.url === "/mid") {
        res.writeHead(200, { "content-type": "text/plain" });
        res.write("some");
      }
      // otherwise: never answers
    },
  });
  const p = await startBalancer(c, [b.url]);
  // while waiting for the response head
  const waiting = http.get({ port: p.port, host: "127.0.0.1", path: "/wait", agent: false });
  waiting.on("error", () => {});
  await until(() => b.received.length === 1, 5000, "backend got /wait");
  waiting.destroy();
  await until(() => closed.includes("/wait"), 5000, "upstream /wait aborted");
  // mid-response
  const mid = http.get({ port: p.port, host: "127.0.0.1", path: "/mid", agent: false });
  mid.on("error", () => {});
  const [res] = (await once(mid, "response")) as [http.IncomingMessage];
  res.on("error", () => {});
  await once(res, "data");
  mid.destroy();
  await until(() => closed.includes("/mid"), 5000, "upstream /mid aborted");
  await until(() => inflight(p.servers) === 0, 5000, "inflight back to 0");
});

test("server.inflight counts a request for its whole life and never leaks", {
  timeout: 30_000,
}, async (t) => {
  const c = cleanupAfter(t);
  let held: http.ServerResponse | undefined;
  const b = await backend("b", {
    cleanup: c,
    handler: (req, res) => {
      if (req.url === "/hold") held = res;
      else if (req.url === "/slow") setTimeout(() => res.end("slow"), 20);
      else {
        req.resume();
        res.end("ok");
      }
    },
  });
  const resetter = await tcpBackend(c, (s) => s.once("data", () => s.resetAndDestroy()));
  const dead = await freePort();
  const p = await startBalancer(c, [b.url, resetter.url, `http://127.0.0.1:${dead}`]);
  // held request counts while it waits
  const holding = send(p.port, { path: "/hold", agent: false });
  await until(() => held !== undefined, 5000, "held");
  assert.equal(p.servers[0].inflight, 1);
  held?.end("released");
  assert.equal((await holding).status, 200);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  c.add(() => agent.destroy());
  const jobs: Promise<unknown>[] = [];
  for (let i = 0; i < 120; i++) {
    const kind = i % 4;
    if (kind === 0) jobs.push(send(p.port, { agent }));
    else if (kind === 1) jobs.push(send(p.port, { agent, method: "POST", body: "x".repeat(1000) }));
    else if (kind === 2) jobs.push(send(p.port, { agent, path: "/slow" }));
    else {
      const r = http.get({ port: p.port, host: "127.0.0.1", path: "/slow", agent: false });
      r.on("error", () => {});
      setTimeout(() => r.destroy(), 5);
      jobs.push(once(r, "close"));
    }
    // periodically bring the failing servers back so they keep being tried
    if (i % 10 === 0) for (const s of p.servers) s.clearPassive();
  }
  await Promise.allSettled(jobs);
  await until(() => inflight(p.servers) === 0, 5000, `inflight 0 (${p.servers.map((s) => s.inflight)})`);
});

test("a client that aborts mid-upload aborts the upstream request", { timeout: 20_000 }, async (t) => {
  const c = cleanupAfter(t);
  let received = 0;
  let aborted = false;
  const b = await backend("b", {
    cleanup: c,
    handler: (req, res) => {
      req.on("data", (d: Buffer) => {
        received += d.length;
      });
      req.on("error", () => {});
      req.on("close", () => {
        if (!req.complete) aborted = true;
      });
      req.on("end", () => res.end("done"));
    },
  });
  const p = await startBalancer(c, [b.url]);
  const req = http.request({
    port: p.port,
    host: "127.0.0.1",
    method: "POST",
    agent: false,
    headers: { "content-length": 1_000_000 },
  });
  req.on("error", () => {});
  req.write(Buffer.alloc(10_000, 1));
  await until(() => received === 10_000, 5000, "first part upstream");
  req.destroy();
  await until(() => aborted, 5000, "upstream request aborted");
  await until(() => inflight(p.servers) === 0, 5000, "inflight 0");
  // regression: the client's broken upload once counted as a connection failure of the backend
  assert.equal(p.servers[0].passiveDown, false, "a client's abort is not the backend's failure");
  assert.equal((await send(p.port)).status, 200);
});

test("config changes do not drop in-flight requests", { timeout: 20_000 }, async (t) => {
  const c = cleanupAfter(t);
  let held: http.ServerResponse | undefined;
  const b = await backend("b", {
    cleanup: c,
    handler: (_req, res) => {
      held = res;
    },
  });
  const p = await startBalancer(c, [b.url]);
  const pending = send(p.port, { agent: false });
  await until(() => held !== undefined, 5000, "request held upstream");
  p.lb.updateConfig({ timeouts: { responseHeader: 30_000 } });
  await new Promise((r) => setImmediate(r));
  held?.end("still here");
  const r = await pending;
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), "still here");
});

test("sticky: a cookie set for a server that refused names the server that answered", {
  timeout: 20_000,
}, async (t) => {
  const c = cleanupAfter(t);
  const dead = await freePort();
  const good = await backend("b", { cleanup: c, handler: (_req, res) => res.end("ok") });
  const p = await startBalancer(c, [`http://127.0.0.1:${dead}`, good.url], { sticky: true });
  const first = await send(p.port, { agent: false });
  assert.equal(first.status, 200);
  const cookies = first.headers["set-cookie"] ?? [];
  assert.equal(cookies.length, 1, String(cookies));
  const cookie = cookies[0].split(";")[0];
  // with that cookie the next request stays on the good server and needs no new cookie
  const second = await send(p.port, { agent: false, headers: { cookie } });
  assert.equal(second.status, 200);
  assert.equal(second.headers["set-cookie"], undefined);
  assert.equal(good.received.length, 2);
});

test("connect timeout (a TLS backend that never completes its handshake): retried, then 504", {
  timeout: 20_000,
}, async (t) => {
  const c = cleanupAfter(t);
  const mute = await tcpBackend(c, (s) => s.resume());
  const good = await backend("b", { cleanup: c, handler: (_req, res) => res.end("ok") });
  const p = await startBalancer(c, [`https://127.0.0.1:${mute.port}`, good.url], {
    timeouts: { connect: 300 },
  });
  const r = await send(p.port, { agent: false, method: "POST", body: "payload" });
  assert.equal(r.status, 200, "nothing was sent: retried on the other server");
  assert.equal(p.servers[0].passiveDown, true);
  const only = await startBalancer(c, [`https://127.0.0.1:${mute.port}`], { timeouts: { connect: 300 } });
  const r2 = await send(only.port, { agent: false });
  assert.equal(r2.status, 504);
  assert.equal(inflight([...p.servers, ...only.servers]), 0);
});

test("an answer before the whole upload: relayed, the upstream connection dropped, the client told to close", {
  timeout: 20_000,
}, async (t) => {
  const c = cleanupAfter(t);
  const b = await backend("b", {
    cleanup: c,
    handler: (req, res) => {
      if (req.method === "POST") {
        // refuses without reading the body
        res.writeHead(413, { "content-type": "text/plain" });
        res.end("too large\n");
        return;
      }
      res.end("ok");
    },
  });
  const p = await startBalancer(c, [b.url]);
  const client = net.connect(p.port, "127.0.0.1");
  await once(client, "connect");
  let text = "";
  client.on("data", (d: Buffer) => {
    text += d.toString("latin1");
  });
  client.on("error", () => {});
  const closed = once(client, "close");
  client.write(`POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: ${8 * 1024 * 1024}\r\n\r\n`);
  client.write(Buffer.alloc(64 * 1024, 1));
  await until(() => text.includes("too large"), 5000, "the 413");
  assert.match(text, /^HTTP\/1\.1 413 /);
  assert.match(text, /\r\nconnection: close\r\n/i);
  // the client connection does not hang waiting for an upload nobody reads
  await closed;
  await until(() => inflight(p.servers) === 0, 5000, "inflight 0");
  assert.equal((await send(p.port)).status, 200);
});
