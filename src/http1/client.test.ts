import * as assert from "node:assert/strict";
import * as http from "node:http";
import * as https from "node:https";
import * as net from "node:net";
import { PassThrough, Readable } from "node:stream";
import { test } from "node:test";
import * as tls from "node:tls";
import { Cleanup, listen } from "../../test/support/cleanup.ts";
import { Wire, type WireMessage } from "../../test/support/h1wire.ts";
import { selfSigned } from "../../test/support/tls.ts";
import { until } from "../../test/support/until.ts";
import { type Connection, type UpstreamHandler, UpstreamPool, type UpstreamRequest } from "./client.ts";

interface Result {
  status: number;
  headers: string[];
  body: string;
  error: (Error & { code?: string }) | null;
}

/** Sends one request and collects what the handler hears. */
function send(pool: UpstreamPool, req: Partial<UpstreamRequest> = {}): Promise<Result> {
  return new Promise((resolve) => {
    const r: Result = { status: 0, headers: [], body: "", error: null };
    const handler: UpstreamHandler = {
      bodyTaken: false,
      onSent: (_conn: Connection) => true,
      onHeaders(status, headers) {
        r.status = status;
        r.headers = headers;
        return true;
      },
      onData(chunk) {
        r.body += chunk.toString("latin1");
        return true;
      },
      onComplete(last) {
        if (last !== null) r.body += last.toString("latin1");
        resolve(r);
      },
      onError(err) {
        r.error = err;
        resolve(r);
      },
    };
    pool.request({ method: "GET", path: "/", headers: [], body: null, ...req }, handler);
  });
}

function newPool(c: Cleanup, url: string, extra: { keepAliveTimeout?: number } = {}): UpstreamPool {
  const pool = new UpstreamPool(new URL(url), {
    connectTimeout: 2000,
    responseHeaderTimeout: 2000,
    idleTimeout: 2000,
    ...extra,
  });
  c.add(() => pool.destroy());
  return pool;
}

async function backend(c: Cleanup, handler: http.RequestListener): Promise<{ url: string; conns: number }> {
  const srv = http.createServer(handler);
  const b = { url: "", conns: 0 };
  srv.on("connection", () => b.conns++);
  b.url = `http://127.0.0.1:${await listen(srv, c)}`;
  return b;
}

async function raw(c: Cleanup, onConn: (s: net.Socket) => void): Promise<{ url: string; conns: number }> {
  const sockets = new Set<net.Socket>();
  const b = { url: "", conns: 0 };
  const srv = net.createServer((s) => {
    b.conns++;
    sockets.add(s);
    s.on("error", () => {});
    onConn(s);
  });
  b.url = `http://127.0.0.1:${await listen(srv, c)}`;
  c.add(() => {
    for (const s of sockets) s.destroy();
  });
  return b;
}

test("keep-alive: sequential requests share one connection; a Host is added when missing", async () => {
  const c = new Cleanup();
  try {
    const hosts: (string | undefined)[] = [];
    const b = await backend(c, (req, res) => {
      hosts.push(req.headers.host);
      res.end("ok");
    });
    const pool = newPool(c, b.url);
    for (let i = 0; i < 5; i++) {
      const r = await send(pool, i === 0 ? {} : { headers: ["Host", "svc.test"] });
      assert.equal(r.status, 200);
      assert.equal(r.body, "ok");
    }
    assert.equal(b.conns, 1);
    assert.equal(pool.all.size, 1);
    assert.deepEqual(hosts, [new URL(b.url).host, "svc.test", "svc.test", "svc.test", "svc.test"]);
  } finally {
    await c.run();
  }
});

test("a response head of 100 headers arrives whole and in order", async () => {
  const c = new Cleanup();
  try {
    const b = await backend(c, (_req, res) => {
      const h: string[] = [];
      for (let i = 0; i < 100; i++) h.push(`X-H${i}`, `v${i}`);
      res.writeHead(200, h);
      res.end();
    });
    const r = await send(newPool(c, b.url));
    const names = r.headers.filter((_, i) => i % 2 === 0 && r.headers[i].startsWith("X-H"));
    assert.equal(names.length, 100);
    assert.deepEqual(names.slice(0, 3), ["X-H0", "X-H1", "X-H2"]);
    assert.equal(r.headers[r.headers.indexOf("X-H99") + 1], "v99");
  } finally {
    await c.run();
  }
});

test("request bodies: chunked without a length, exact with one; a bodiless POST says length 0", async () => {
  const c = new Cleanup();
  try {
    const seen: { te?: string; cl?: string; body: string }[] = [];
    const b = await backend(c, (req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => {
        body += d;
      });
      req.on("end", () => {
        seen.push({ te: req.headers["transfer-encoding"], cl: req.headers["content-length"], body });
        res.end();
      });
    });
    const pool = newPool(c, b.url);
    let r = await send(pool, {
      method: "POST",
      body: Readable.from([Buffer.from("abc"), Buffer.from("defg")]),
    });
    assert.equal(r.error, null);
    r = await send(pool, {
      method: "PUT",
      headers: ["Content-Length", "5"],
      body: Readable.from([Buffer.from("hello")]),
    });
    assert.equal(r.error, null);
    r = await send(pool, { method: "POST" });
    assert.equal(r.error, null);
    assert.deepEqual(seen, [
      { te: "chunked", cl: undefined, body: "abcdefg" },
      { te: undefined, cl: "5", body: "hello" },
      { te: undefined, cl: "0", body: "" },
    ]);
    assert.equal(b.conns, 1, "every body was complete, so the connection was reused");
  } finally {
    await c.run();
  }
});

test("a body delimited by the connection's end is complete; HEAD answers carry no body", async () => {
  const c = new Cleanup();
  try {
    const b = await raw(c, (s) => {
      s.once("data", (d: Buffer) => {
        if (d.toString().startsWith("HEAD")) s.write("HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n");
        else s.end("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end");
      });
    });
    const pool = newPool(c, b.url);
    const r = await send(pool);
    assert.equal(r.error, null);
    assert.equal(r.body, "until the end");
    await until(() => pool.all.size === 0, 2000, "closed connection dropped");
    const h = await send(pool, { method: "HEAD" });
    assert.equal(h.error, null);
    assert.equal(h.status, 200);
    assert.equal(h.body, "");
  } finally {
    await c.run();
  }
});

test("Keep-Alive: timeout from the backend shortens reuse; idle connections close after keepAliveTimeout", async () => {
  const c = new Cleanup();
  try {
    let hint = "timeout=1";
    const b = await backend(c, (_req, res) => {
      res.setHeader("keep-alive", hint);
      res.end("x");
    });
    const pool = newPool(c, b.url, { keepAliveTimeout: 300 });
    await send(pool);
    // timeout=1 leaves no safe time to reuse: closed at once
    await until(() => pool.all.size === 0, 2000, "connection closed");
    hint = "timeout=60";
    await send(pool);
    await send(pool);
    assert.equal(b.conns, 2);
    assert.equal(pool.idle.length, 1);
    await until(() => pool.all.size === 0, 5000, "idle connection swept");
  } finally {
    await c.run();
  }
});

test("bytes nobody asked for drop the connection; the next request gets a fresh one", async () => {
  const c = new Cleanup();
  try {
    const b = await raw(c, (s) => {
      s.once("data", () => {
        s.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        setImmediate(() => s.write("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"));
      });
    });
    const pool = newPool(c, b.url);
    assert.equal((await send(pool)).body, "ok");
    await until(() => pool.all.size === 0, 2000, "connection dropped");
    assert.equal((await send(pool)).body, "ok");
    assert.equal(b.conns, 2);
  } finally {
    await c.run();
  }
});

test("trailers of a response stay out of the next response on the pooled connection", async () => {
  const c = new Cleanup();
  try {
    const b = await raw(c, (s) => {
      let buf = "";
      s.on("data", (d: Buffer) => {
        buf += d.toString("latin1");
        for (let end = buf.indexOf("\r\n\r\n"); end >= 0; end = buf.indexOf("\r\n\r\n")) {
          const path = buf.split(" ")[1];
          buf = buf.slice(end + 4);
          if (path === "/trail") {
            s.write(
              "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\ntrail\r\n0\r\n" +
                "Set-Cookie: session=attacker\r\nLocation: https://evil.example/\r\nHost: evil.test\r\n\r\n",
            );
          } else s.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Path: plain\r\n\r\nplain");
        }
      });
    });
    const pool = newPool(c, b.url);
    const results: Result[] = [];
    for (const path of ["/plain", "/trail", "/plain", "/plain"]) results.push(await send(pool, { path }));
    assert.deepEqual(
      results.map((r) => [r.status, r.headers, r.body, r.error]),
      [
        [200, ["Content-Length", "5", "X-Path", "plain"], "plain", null],
        [200, ["Transfer-Encoding", "chunked"], "trail", null],
        [200, ["Content-Length", "5", "X-Path", "plain"], "plain", null],
        [200, ["Content-Length", "5", "X-Path", "plain"], "plain", null],
      ],
    );
    assert.equal(b.conns, 1);
  } finally {
    await c.run();
  }
});

test("a response begun while no request waits (idle in the pool) is nobody's: the connection is dropped", async () => {
  const c = new Cleanup();
  try {
    let first: net.Socket | undefined;
    const b = await raw(c, (s) => {
      first ??= s;
      s.on("data", () => s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    });
    const pool = newPool(c, b.url);
    assert.equal((await send(pool)).body, "ok");
    // half a response head while idle: it must not become the start of the next answer
    first!.write("HTTP/1.1 200 OK\r\nSet-Cookie: session=attacker\r\n");
    await until(() => pool.all.size === 0, 2000, "connection dropped");
    const r = await send(pool);
    assert.deepEqual([r.status, r.headers, r.body], [200, ["Content-Length", "2"], "ok"]);
    assert.equal(b.conns, 2);
  } finally {
    await c.run();
  }
});

test("each request on a pooled connection starts from nothing: HEAD, 1xx, keep-alive hint, body framing", async () => {
  const c = new Cleanup();
  try {
    const seen: WireMessage[] = [];
    const b = await raw(c, (s) => {
      const wire = new Wire(s);
      void (async () => {
        for (;;) {
          const m = await wire.read("request").catch(() => null);
          if (m === null) return;
          seen.push(m);
          if (m.target === "/head") s.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
          else if (m.target === "/early") {
            s.write("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n");
            s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=30\r\n\r\nok");
          } else s.write(`HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n${m.body.toString().padEnd(5, ".")}`);
        }
      })();
    });
    const pool = newPool(c, b.url);
    const results: Result[] = [];
    results.push(await send(pool, { method: "HEAD", path: "/head" }));
    results.push(await send(pool, { path: "/get" }));
    results.push(await send(pool, { path: "/early" }));
    results.push(await send(pool, { path: "/get" }));
    results.push(
      await send(pool, { method: "POST", path: "/chunked", body: Readable.from([Buffer.from("ab")]) }),
    );
    results.push(
      await send(pool, {
        method: "POST",
        path: "/length",
        headers: ["Content-Length", "3"],
        body: Readable.from([Buffer.from("xyz")]),
      }),
    );
    assert.deepEqual(
      results.map((r) => [r.status, r.headers, r.body, r.error]),
      [
        [200, ["Content-Length", "5"], "", null],
        // the HEAD's "no body" did not carry over
        [200, ["Content-Length", "5"], ".....", null],
        // the 1xx's fields are not the response's
        [200, ["Content-Length", "2", "Keep-Alive", "timeout=30"], "ok", null],
        [200, ["Content-Length", "5"], ".....", null],
        [200, ["Content-Length", "5"], "ab...", null],
        [200, ["Content-Length", "5"], "xyz..", null],
      ],
    );
    // a chunked upload does not make the next one chunked
    assert.deepEqual(
      seen.map((m) => [m.method, m.target, m.framing]),
      [
        ["HEAD", "/head", "none"],
        ["GET", "/get", "none"],
        ["GET", "/early", "none"],
        ["GET", "/get", "none"],
        ["POST", "/chunked", "chunked"],
        ["POST", "/length", "length"],
      ],
    );
    assert.equal(b.conns, 1);
  } finally {
    await c.run();
  }
});

test("an answer that comes before the upload ends: the connection is not reused for the next request", async () => {
  const c = new Cleanup();
  try {
    const b = await raw(c, (s) => {
      s.once("data", () => s.write("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n"));
    });
    const pool = newPool(c, b.url);
    const upload = new PassThrough();
    upload.write("the start of a long upload");
    const r = await send(pool, { method: "POST", path: "/up", body: upload });
    assert.equal(r.status, 413);
    // the rest of the upload would be read by the backend as the next request
    upload.end("GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal(pool.idle.length, 0);
    await send(pool, { path: "/next" });
    assert.equal(b.conns, 2);
  } finally {
    await c.run();
  }
});

test("failures carry codes: refused, closed before a response, invalid response, header timeout", async () => {
  const c = new Cleanup();
  try {
    const dead = net.createServer().listen(0, "127.0.0.1");
    await new Promise((r) => dead.once("listening", r));
    const port = (dead.address() as net.AddressInfo).port;
    await new Promise((r) => dead.close(r));
    assert.equal((await send(newPool(c, `http://127.0.0.1:${port}`))).error?.code, "ECONNREFUSED");
    const closer = await raw(c, (s) => s.once("data", () => s.end()));
    assert.equal((await send(newPool(c, closer.url))).error?.code, "ERR_SWITCHYARD_UPSTREAM_CLOSED");
    const garbage = await raw(c, (s) => s.once("data", () => s.write("SMTP ready\r\n\r\n")));
    assert.match((await send(newPool(c, garbage.url))).error?.code ?? "", /^HPE_/);
    const mute = await raw(c, () => {});
    const slow = new UpstreamPool(new URL(mute.url), {
      connectTimeout: 2000,
      responseHeaderTimeout: 100,
      idleTimeout: 2000,
    });
    c.add(() => slow.destroy());
    assert.equal((await send(slow)).error?.code, "ERR_SWITCHYARD_UPSTREAM_HEADERS_TIMEOUT");
  } finally {
    await c.run();
  }
});

test("close() lets a busy connection finish; destroy() fails it", async () => {
  const c = new Cleanup();
  try {
    let release: (() => void) | undefined;
    const b = await backend(c, (_req, res) => {
      release = () => res.end("late");
    });
    const pool = newPool(c, b.url);
    const first = send(pool);
    await until(() => release !== undefined, 2000, "request upstream");
    const closed = pool.close();
    assert.equal((await send(pool)).error?.code, "ERR_SWITCHYARD_UPSTREAM_DESTROYED");
    release!();
    assert.equal((await first).body, "late");
    await closed;
    assert.equal(pool.all.size, 0);
    release = undefined;
    const other = newPool(c, b.url);
    const pending = send(other);
    await until(() => release !== undefined, 2000, "request upstream");
    other.destroy();
    assert.equal((await pending).error?.code, "ERR_SWITCHYARD_UPSTREAM_DESTROYED");
  } finally {
    await c.run();
  }
});

test("https backends: SNI from a host name (none for an IP), certificates verified unless told otherwise", async () => {
  const c = new Cleanup();
  try {
    const names: (string | false | null)[] = [];
    const srv = https.createServer(selfSigned(), (req, res) => {
      names.push((req.socket as tls.TLSSocket).servername);
      res.end("secure");
    });
    const port = await listen(srv, c);
    const opts = { connectTimeout: 2000, responseHeaderTimeout: 2000, idleTimeout: 2000 };
    const insecure = { secureContext: undefined, servername: undefined, rejectUnauthorized: false };
    const byName = new UpstreamPool(new URL(`https://localhost:${port}`), { ...opts, tls: insecure });
    const byIp = new UpstreamPool(new URL(`https://127.0.0.1:${port}`), { ...opts, tls: insecure });
    const strict = new UpstreamPool(new URL(`https://localhost:${port}`), opts);
    c.add(() => {
      byName.destroy();
      byIp.destroy();
      strict.destroy();
    });
    assert.equal((await send(byName)).body, "secure");
    assert.equal((await send(byIp)).body, "secure");
    assert.deepEqual(names, ["localhost", false]);
    const refused = await send(strict);
    assert.match(refused.error?.code ?? "", /SELF_SIGNED|CERT/);
  } finally {
    await c.run();
  }
});

test("a handler that throws fails its request, not the process; the pool keeps serving", async () => {
  const c = new Cleanup();
  try {
    const b = await backend(c, (_req, res) => res.end("fine"));
    const pool = newPool(c, b.url);
    const failed = await new Promise<Error>((resolve) => {
      pool.request(
        { method: "GET", path: "/", headers: [], body: null },
        {
          bodyTaken: false,
          onSent: () => true,
          onHeaders() {
            throw new Error("handler bug");
          },
          onData: () => true,
          onComplete: () => resolve(new Error("completed")),
          onError: resolve,
        },
      );
    });
    assert.equal(failed.message, "handler bug");
    assert.equal((await send(pool)).body, "fine");
  } finally {
    await c.run();
  }
});

test("the keep-alive sweep closes every expired connection, however many are idle", async () => {
  const c = new Cleanup();
  try {
    let waiting: (() => void)[] = [];
    const b = await backend(c, (_req, res) => {
      // answer only once three requests are in, so they need three connections
      waiting.push(() => res.end("x"));
      if (waiting.length === 3) {
        for (const w of waiting) w();
        waiting = [];
      }
    });
    const pool = newPool(c, b.url, { keepAliveTimeout: 150 });
    await Promise.all([send(pool), send(pool), send(pool)]);
    assert.equal(pool.idle.length, 3);
    // regression: destroying inside the sweep loop shifted the list and dropped connections unclosed
    // (they stayed open until the backend's own 5 s keep-alive ran out)
    await until(() => pool.all.size === 0, 2500, "all three swept");
    assert.equal(pool.idle.length, 0);
  } finally {
    await c.run();
  }
});

test("https: a new connection resumes the backend's TLS session", async () => {
  const c = new Cleanup();
  try {
    const resumed: boolean[] = [];
    const srv = https.createServer(selfSigned(), (req, res) => {
      resumed.push((req.socket as tls.TLSSocket).isSessionReused());
      res.end("ok");
    });
    const port = await listen(srv, c);
    const pool = new UpstreamPool(new URL(`https://localhost:${port}`), {
      connectTimeout: 2000,
      responseHeaderTimeout: 2000,
      idleTimeout: 2000,
      keepAliveTimeout: 1,
      // verified: the self-signed certificate is the trusted root
      tls: {
        secureContext: tls.createSecureContext({ ca: selfSigned().cert }),
        servername: undefined,
        rejectUnauthorized: true,
      },
    });
    c.add(() => pool.destroy());
    assert.equal((await send(pool)).body, "ok");
    await until(() => pool.all.size === 0, 3000, "first connection closed");
    assert.equal((await send(pool)).body, "ok");
    assert.deepEqual(resumed, [false, true]);
  } finally {
    await c.run();
  }
});
