import * as assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as https from "node:https";
import type { AddressInfo } from "node:net";
import * as net from "node:net";
import { test } from "node:test";
import { backend } from "../support/backend.ts";
import { type Balancer, inflight, startBalancer } from "../support/balancer.ts";
import { type Cleanup, cleanupAfter, listen } from "../support/cleanup.ts";
import { send } from "../support/http.ts";
import { selfSigned } from "../support/tls.ts";
import { until } from "../support/until.ts";

const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

/** The balancer `p` behind an HTTP/2 TLS listener (HTTP/1.1 allowed too), and a client session to it. */
async function h2Front(c: Cleanup, p: Balancer) {
  const { key, cert } = selfSigned();
  const h2 = http2.createSecureServer(
    { key, cert, allowHTTP1: true },
    p.lb.handle as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
  );
  const port = await listen(h2, c);
  return { session: http2.connect(`https://localhost:${port}`, { ca: cert }), port, cert };
}

test("keep-alive to the client and to the backend: sockets are reused", { timeout: 20_000 }, async (t) => {
  const c = cleanupAfter(t);
  const b = await backend("b", { cleanup: c, handler: (_req, res) => res.end("ok") });
  const p = await startBalancer(c, [b.url]);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  c.add(() => agent.destroy());
  const clientSockets = new Set<unknown>();
  p.server.on("connection", (s) => clientSockets.add(s));
  for (let i = 0; i < 20; i++) {
    const r = await send(p.port, { agent });
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), "ok");
  }
  assert.equal(b.received.length, 20);
  assert.equal(b.connections, 1, "the backend saw one reused connection");
  assert.equal(clientSockets.size, 1, "the client connection was kept alive");
  assert.equal(inflight(p.servers), 0);
});

test("5 MB bodies stream both ways intact", { timeout: 30_000 }, async (t) => {
  const c = cleanupAfter(t);
  const up = randomBytes(5 * 1024 * 1024);
  const down = randomBytes(5 * 1024 * 1024);
  let seen = "";
  const b = await backend("b", {
    cleanup: c,
    handler: (req, res) => {
      const h = createHash("sha256");
      req.on("data", (d: Buffer) => h.update(d));
      req.on("end", () => {
        seen = h.digest("hex");
        res.writeHead(200, { "content-type": "application/octet-stream" });
        // chunked (no content-length), written in pieces
        let off = 0;
        const step = () => {
          while (off < down.length) {
            const piece = down.subarray(off, off + 100_000);
            off += piece.length;
            if (!res.write(piece)) return void res.once("drain", step);
          }
          res.end();
        };
        step();
      });
    },
  });
  const p = await startBalancer(c, [b.url]);
  // chunked upload
  const r = await new Promise<{ status: number; hash: string; te?: string }>((resolve, reject) => {
    const req = http.request({ port: p.port, host: "127.0.0.1", method: "POST", path: "/up" }, (res) => {
      const h = createHash("sha256");
      res.on("data", (d: Buffer) => h.update(d));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          hash: h.digest("hex"),
          te: res.headers["transfer-encoding"],
        }),
      );
    });
    req.on("error", reject);
    for (let off = 0; off < up.length; off += 65536) req.write(up.subarray(off, off + 65536));
    req.end();
  });
  assert.equal(r.status, 200);
  assert.equal(seen, sha(up), "backend received the upload intact");
  assert.equal(r.hash, sha(down), "client received the download intact");
  // content-length upload too
  const r2 = await send(p.port, { method: "PUT", body: up, headers: { "content-length": up.length } });
  assert.equal(r2.status, 200);
  assert.equal(seen, sha(up));
  assert.equal(inflight(p.servers), 0);
});

test("a slow-reading client holds the backend back (no whole-response buffering)", {
  timeout: 30_000,
}, async (t) => {
  const c = cleanupAfter(t);
  const total = 64 * 1024 * 1024;
  let written = 0;
  let blocked: () => void = () => {};
  const isBlocked = new Promise<void>((r) => {
    blocked = r;
  });
  let finished = false;
  const b = await backend("b", {
    cleanup: c,
    handler: (_req, res) => {
      const chunk = Buffer.alloc(64 * 1024, 1);
      const step = () => {
        while (written < total) {
          written += chunk.length;
          if (!res.write(chunk)) {
            blocked();
            return void res.once("drain", step);
          }
        }
        finished = true;
        res.end();
      };
      step();
    },
  });
  const p = await startBalancer(c, [b.url]);
  const req = http.get({ port: p.port, host: "127.0.0.1", path: "/big" });
  const [res] = (await once(req, "response")) as [http.IncomingMessage];
  res.pause();
  await isBlocked;
  // let the pipes fill up completely, then check how far the backend got
  let last = -1;
  while (last !== written) {
    last = written;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.ok(!finished, "the backend could not finish while the client did not read");
  assert.ok(written < 16 * 1024 * 1024, `backend wrote only what socket buffers hold (${written} bytes)`);
  // reading resumes the flow to the end
  let got = 0;
  res.on("data", (d: Buffer) => {
    got += d.length;
  });
  res.resume();
  await once(res, "end");
  assert.equal(got, total);
  assert.equal(inflight(p.servers), 0);
});

test("forwarded headers: trusted peers extend, others are replaced, X-Real-IP is the client", {
  timeout: 20_000,
}, async (t) => {
  const c = cleanupAfter(t);
  let seen: http.IncomingHttpHeaders = {};
  let rawSeen: string[] = [];
  const b = await backend("b", {
    cleanup: c,
    handler: (req, res) => {
      seen = req.headers;
      rawSeen = req.rawHeaders;
      res.end("ok");
    },
  });
  const spoof = {
    "x-forwarded-for": "1.2.3.4",
    "x-forwarded-proto": "https",
    "x-forwarded-host": "spoofed.example",
    "x-real-ip": "9.9.9.9",
  };
  // untrusted: replaced by what switchyard saw
  const untrusted = await startBalancer(c, [b.url]);
  await send(untrusted.port, { headers: { host: "app.example:8080", ...spoof } });
  assert.equal(seen["x-forwarded-for"], "127.0.0.1");
  assert.equal(seen["x-forwarded-proto"], "http");
  assert.equal(seen["x-forwarded-host"], "app.example:8080");
  assert.equal(seen["x-real-ip"], "127.0.0.1");
  assert.equal(seen.host, "app.example:8080", "the client's Host is kept");
  assert.equal(rawSeen.filter((h) => h.toLowerCase() === "x-real-ip").length, 1);

  // trusted peer with forwarded headers: appended / kept; X-Real-IP from real-IP resolution
  const trusted = await startBalancer(c, [b.url], {
    options: { header: "X-Forwarded-For", from: ["127.0.0.1"], recursive: false },
  });
  await send(trusted.port, { headers: { host: "app.example", ...spoof } });
  assert.equal(seen["x-forwarded-for"], "1.2.3.4, 127.0.0.1");
  assert.equal(seen["x-forwarded-proto"], "https");
  assert.equal(seen["x-forwarded-host"], "spoofed.example");
  assert.equal(seen["x-real-ip"], "1.2.3.4");
  // repeated X-Forwarded-For lines are one list
  await send(trusted.port, {
    headers: { host: "app.example", "x-forwarded-for": ["5.5.5.5", "6.6.6.6, 7.7.7.7"] },
  });
  assert.equal(seen["x-forwarded-for"], "5.5.5.5, 6.6.6.6, 7.7.7.7, 127.0.0.1");
  assert.equal(seen["x-real-ip"], "7.7.7.7");

  // trusted peer that sent none: set like for anyone else
  await send(trusted.port, { headers: { host: "plain.example" } });
  assert.equal(seen["x-forwarded-for"], "127.0.0.1");
  assert.equal(seen["x-forwarded-proto"], "http");
  assert.equal(seen["x-forwarded-host"], "plain.example");
  assert.equal(seen["x-real-ip"], "127.0.0.1");
});

test("hop-by-hop headers and those named in Connection are removed both ways", {
  timeout: 20_000,
}, async (t) => {
  const c = cleanupAfter(t);
  let seen: http.IncomingHttpHeaders = {};
  const b = await backend("b", {
    cleanup: c,
    handler: (req, res) => {
      seen = req.headers;
      res.writeHead(200, [
        "Connection",
        "X-Backend-Private, keep-alive",
        "X-Backend-Private",
        "secret",
        "Keep-Alive",
        "timeout=99",
        "Proxy-Authenticate",
        "Basic",
        "Trailer",
        "X-T",
        "Upgrade",
        "h2c",
        "X-Kept",
        "yes",
        "Set-Cookie",
        "a=1",
        "Set-Cookie",
        "b=2",
      ]);
      res.end("ok");
    },
  });
  const p = await startBalancer(c, [b.url]);
  // a raw request: node's client refuses to send some of these headers itself
  const sock = net.connect(p.port, "127.0.0.1");
  c.add(() => sock.destroy());
  sock.write(
    "GET / HTTP/1.1\r\nHost: x\r\nConnection: X-Client-Private, keep-alive\r\nX-Client-Private: secret\r\n" +
      "Keep-Alive: timeout=5\r\nProxy-Authorization: Basic abc\r\nProxy-Connection: keep-alive\r\n" +
      "TE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\nX-Also-Kept: 1\r\n\r\n",
  );
  const r = await readResponse(sock);
  for (const h of [
    "x-client-private",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
  ]) {
    assert.equal(seen[h], undefined, `${h} must not reach the backend`);
  }
  assert.notEqual(seen.connection, "X-Client-Private, keep-alive");
  assert.equal(seen["x-also-kept"], "1");
  assert.equal(r.status, 200);
  for (const h of ["x-backend-private", "proxy-authenticate", "trailer", "upgrade"]) {
    assert.equal(r.headers[h], undefined, `${h} must not reach the client`);
  }
  assert.notEqual(r.headers["keep-alive"], "timeout=99");
  assert.equal(r.headers["x-kept"], "yes");
  assert.deepEqual(r.headers["set-cookie"], ["a=1", "b=2"]);
});

test("the sticky cookie and the backend's own Set-Cookie both reach the client", {
  timeout: 20_000,
}, async (t) => {
  const c = cleanupAfter(t);
  const b = await backend("b", {
    cleanup: c,
    handler: (_req, res) => {
      res.setHeader("set-cookie", ["session=abc; Path=/"]);
      res.end("ok");
    },
  });
  const p = await startBalancer(c, [b.url], { sticky: true });
  const r = await send(p.port);
  const cookies = r.headers["set-cookie"] ?? [];
  assert.equal(cookies.length, 2, String(cookies));
  assert.ok(cookies.some((x) => x.startsWith("session=abc")));
  assert.ok(cookies.some((x) => x.startsWith("switchyard_lb_sticky=")));
});

test("HTTP/2 clients: pseudo-headers are not forwarded and Host comes from :authority", {
  timeout: 20_000,
}, async (t) => {
  const c = cleanupAfter(t);
  let seen: { raw: string[]; headers: http.IncomingHttpHeaders; body: string } | undefined;
  const b = await backend("b", {
    cleanup: c,
    handler: (req, res) => {
      let body = "";
      req.on("data", (d) => {
        body += d;
      });
      req.on("end", () => {
        seen = { raw: req.rawHeaders, headers: req.headers, body };
        res.writeHead(201, { "x-from": "backend", connection: "keep-alive", "keep-alive": "timeout=5" });
        res.end("created");
      });
    },
  });
  const p = await startBalancer(c, [b.url]);
  const { session, port, cert } = await h2Front(c, p);
  c.add(() => session.close());
  const stream = session.request({ ":method": "POST", ":path": "/h2?x=1", "content-type": "text/plain" });
  stream.end("hello over h2");
  const [headers] = (await once(stream, "response")) as [http2.IncomingHttpHeaders];
  let body = "";
  stream.setEncoding("utf8");
  stream.on("data", (d) => {
    body += d;
  });
  await once(stream, "end");
  assert.equal(headers[":status"], 201);
  assert.equal(headers["x-from"], "backend");
  assert.equal(body, "created");
  assert.ok(seen);
  assert.ok(!seen.raw.some((h) => h.startsWith(":")), `no pseudo-headers upstream: ${seen.raw}`);
  assert.equal(seen.headers.host, `localhost:${port}`);
  assert.equal(seen.headers["x-forwarded-proto"], "https");
  assert.equal(seen.headers["x-forwarded-host"], `localhost:${port}`);
  assert.equal(seen.body, "hello over h2");
  // an HTTP/1.1 client on the same listener still works
  const agent = new https.Agent({ ca: cert });
  c.add(() => agent.destroy());
  const r = await new Promise<number>((resolve, reject) => {
    https
      .get({ host: "localhost", port, path: "/", agent }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      })
      .on("error", reject);
  });
  assert.equal(r, 201);
  await until(() => inflight(p.servers) === 0, 2000, "inflight 0");
});

test("https:// backends with a self-signed certificate given as `ca` are proxied over kept-alive TLS", {
  timeout: 20_000,
}, async (t) => {
  const c = cleanupAfter(t);
  const { key, cert } = selfSigned();
  const sockets = new Set<unknown>();
  const backend = https.createServer({ key, cert }, (req, res) => {
    sockets.add(req.socket);
    res.end(`tls ${req.headers["x-forwarded-proto"]}`);
  });
  const port = await listen(backend, c);
  const p = await startBalancer(c, [`https://127.0.0.1:${port}`], {}, { tls: { ca: cert } });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  c.add(() => agent.destroy());
  for (let i = 0; i < 3; i++) {
    const r = await send(p.port, { agent });
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), "tls http");
  }
  assert.equal(sockets.size, 1, "TLS connection to the backend is kept alive");
  void (backend.address() as AddressInfo);
});

/** Reads one response head from a raw socket. */
async function readResponse(
  sock: net.Socket,
): Promise<{ status: number; headers: Record<string, string | string[]> }> {
  let text = "";
  for await (const chunk of sock) {
    text += chunk.toString("latin1");
    if (text.includes("\r\n\r\n")) break;
  }
  const [statusLine, ...lines] = text.slice(0, text.indexOf("\r\n\r\n")).split("\r\n");
  const headers: Record<string, string | string[]> = {};
  for (const line of lines) {
    const k = line.slice(0, line.indexOf(":")).toLowerCase();
    const v = line.slice(line.indexOf(":") + 1).trim();
    const prev = headers[k];
    headers[k] = prev === undefined ? v : k === "set-cookie" ? [...[prev].flat(), v] : `${prev}, ${v}`;
  }
  return { status: Number(statusLine.split(" ")[1]), headers };
}

test("HEAD, 204/304 and Expect: 100-continue pass through", { timeout: 20_000 }, async (t) => {
  const c = cleanupAfter(t);
  let sawExpect: string | undefined = "unset";
  const b = await backend("b", {
    cleanup: c,
    handler: (req, res) => {
      if (req.url === "/204") {
        res.writeHead(204);
        res.end();
        return;
      }
      if (req.url === "/304") {
        res.writeHead(304, { etag: '"x"' });
        res.end();
        return;
      }
      sawExpect = req.headers.expect;
      let body = "";
      req.on("data", (d) => {
        body += d;
      });
      req.on("end", () => {
        res.writeHead(200, { "content-type": "text/plain", "content-length": 11 + body.length });
        res.end(`hello world${body}`);
      });
    },
  });
  const p = await startBalancer(c, [b.url]);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  c.add(() => agent.destroy());
  const head = await send(p.port, { agent, method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(head.headers["content-length"], "11");
  assert.equal(head.body.length, 0);
  assert.equal((await send(p.port, { agent, path: "/204" })).status, 204);
  const nm = await send(p.port, { agent, path: "/304" });
  assert.equal(nm.status, 304);
  assert.equal(nm.headers.etag, '"x"');
  const get = await send(p.port, { agent });
  assert.equal(get.body.toString(), "hello world");
  // Expect: 100-continue already answered by the user's node:http server is not asked again
  const r = await new Promise<{ status: number; body: string; continued: boolean }>((resolve, reject) => {
    let continued = false;
    const req = http.request({
      port: p.port,
      host: "127.0.0.1",
      method: "POST",
      agent,
      headers: { expect: "100-continue", "content-length": 3 },
    });
    req.on("continue", () => {
      continued = true;
      req.end("abc");
    });
    req.on("response", (res) => {
      let body = "";
      res.on("data", (d) => {
        body += d;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, continued }));
    });
    req.on("error", reject);
  });
  assert.deepEqual(r, { status: 200, body: "hello worldabc", continued: true });
  assert.equal(sawExpect, undefined);
  assert.equal(inflight(p.servers), 0);
});

test("an absolute-form request target reaches the backend in origin form", { timeout: 20_000 }, async (t) => {
  const c = cleanupAfter(t);
  let seen = "";
  const b = await backend("b", {
    cleanup: c,
    handler: (req, res) => {
      seen = req.url ?? "";
      res.end("ok");
    },
  });
  const p = await startBalancer(c, [b.url]);
  const sock = net.connect(p.port, "127.0.0.1");
  c.add(() => sock.destroy());
  sock.write("GET http://app.example/abs?q=1 HTTP/1.1\r\nHost: app.example\r\n\r\n");
  const r = await readResponse(sock);
  assert.equal(r.status, 200);
  assert.equal(seen, "/abs?q=1");
});

test("a slow-reading backend holds the uploading client back (no whole-body buffering)", {
  timeout: 30_000,
}, async (t) => {
  const c = cleanupAfter(t);
  let upstreamReq: http.IncomingMessage | undefined;
  let received = 0;
  const b = await backend("b", {
    cleanup: c,
    handler: (req, res) => {
      upstreamReq = req;
      req.pause(); // reads nothing until told
      req.on("data", (d: Buffer) => {
        received += d.length;
      });
      req.on("end", () => res.end(String(received)));
    },
  });
  const p = await startBalancer(c, [b.url]);
  const total = 64 * 1024 * 1024;
  const req = http.request({
    port: p.port,
    host: "127.0.0.1",
    method: "POST",
    agent: false,
    headers: { "content-length": total },
  });
  const response = once(req, "response");
  const chunk = Buffer.alloc(64 * 1024, 2);
  let written = 0;
  // write until the pipes are full
  const fill = async () => {
    while (written < total) {
      written += chunk.length;
      if (!req.write(chunk)) {
        const drained = await Promise.race([
          once(req, "drain").then(() => true),
          new Promise<boolean>((r) => setTimeout(() => r(false), 500)),
        ]);
        if (!drained) return;
      }
    }
  };
  await fill();
  await until(() => upstreamReq !== undefined, 5000, "backend got the request");
  assert.ok(written < total, "the client could not write everything");
  assert.ok(written < 24 * 1024 * 1024, `only socket buffers' worth was accepted (${written} bytes)`);
  // the backend reading lets the rest through
  upstreamReq?.resume();
  while (written < total) {
    written += chunk.length;
    if (!req.write(chunk)) await once(req, "drain");
  }
  req.end();
  const [res] = (await response) as [http.IncomingMessage];
  let body = "";
  res.on("data", (d) => {
    body += d;
  });
  await once(res, "end");
  assert.equal(body, String(total));
  assert.equal(inflight(p.servers), 0);
});

test("an HTTP/2 client resetting its stream aborts the upstream request", { timeout: 20_000 }, async (t) => {
  const c = cleanupAfter(t);
  let upstreamClosed = false;
  const b = await backend("b", {
    cleanup: c,
    handler: (_req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("start");
      res.on("close", () => {
        upstreamClosed = true;
      });
    },
  });
  const p = await startBalancer(c, [b.url]);
  const { session } = await h2Front(c, p);
  session.on("error", () => {});
  c.add(() => session.destroy());
  const stream = session.request({ ":path": "/stream" });
  stream.on("error", () => {});
  await once(stream, "data");
  assert.equal(p.servers[0].inflight, 1);
  stream.close(http2.constants.NGHTTP2_CANCEL);
  await until(() => upstreamClosed, 5000, "upstream aborted");
  await until(() => inflight(p.servers) === 0, 5000, "inflight 0");
});

test("interim 1xx responses (103 Early Hints) are not mistaken for the response", {
  timeout: 20_000,
}, async (t) => {
  const c = cleanupAfter(t);
  const b = await backend("b", {
    cleanup: c,
    handler: (_req, res) => {
      res.writeEarlyHints({ link: "</style.css>; rel=preload; as=style" });
      res.writeHead(200, { "x-final": "yes" });
      res.end("final");
    },
  });
  const p = await startBalancer(c, [b.url]);
  const r = await send(p.port, { agent: false });
  assert.equal(r.status, 200);
  assert.equal(r.headers["x-final"], "yes");
  assert.equal(r.body.toString(), "final");
  assert.equal(inflight(p.servers), 0);
});
