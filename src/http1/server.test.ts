import * as assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import type { IncomingMessage, ServerResponse } from "node:http";
import * as http from "node:http";
import * as net from "node:net";
import type { Readable } from "node:stream";
import { type TestContext, test } from "node:test";
import { WebSocket, WebSocketServer } from "ws";
import { Cleanup, listen } from "../../test/support/cleanup.ts";
import { kRequestBody, type ProxyRequest } from "../http-types.ts";
import { H1Server, type Http1Handler, type Http1Timeouts } from "./server.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

/** Runs after the test, and also when it times out: a hung test must not hang the process. */
function cleanup(t: TestContext): Cleanup {
  const c = new Cleanup();
  t.after(() => c.run());
  t.signal.addEventListener("abort", () => void c.run(), { once: true });
  return c;
}

const SLOW: Http1Timeouts = {
  headersTimeout: 10_000,
  requestTimeout: 20_000,
  keepAliveTimeout: 5_000,
  connectionsCheckingInterval: 1_000,
};

type Handler = Pick<Http1Handler, "request"> & Partial<Http1Handler>;

async function serve(
  c: Cleanup,
  handler: Handler,
  timeouts: Partial<Http1Timeouts> = {},
): Promise<{ server: H1Server; port: number }> {
  const server = new H1Server(
    { upgrade: (_req, socket) => socket.destroy(), ...handler },
    { ...SLOW, ...timeouts },
  );
  return { server, port: await listen(server, c) };
}

function bodyOf(req: ProxyRequest): Readable | null {
  return req[kRequestBody] ?? null;
}

async function readAll(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const d of s) parts.push(d as Buffer);
  return Buffer.concat(parts);
}

function sha(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
}
function deferred<T = void>(): Deferred<T> {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Writes `data` in 64 KB pieces, waiting for 'drain' whenever write() says so, then ends. */
function pump(res: ServerResponse, data: Buffer, onBlocked?: () => void): { drains: number } {
  const st = { drains: 0 };
  let off = 0;
  const go = (): void => {
    while (off < data.length) {
      const piece = data.subarray(off, off + 65536);
      off += piece.length;
      if (!res.write(piece)) {
        onBlocked?.();
        res.once("drain", () => {
          st.drains++;
          go();
        });
        return;
      }
    }
    res.end();
  };
  go();
  return st;
}

interface Res {
  status: number;
  reason: string;
  /** Header lines in order, names lower-cased. */
  lines: [string, string][];
  /** Lower-cased name → value (repeated names joined with ", "). */
  headers: Record<string, string>;
  body: Buffer;
  /** Number of data chunks of a chunked body. */
  chunks: number;
}

type Parse<T> = (buf: Buffer, ended: boolean) => [number, T] | null;

function parseResponse(noBody: boolean): Parse<Res> {
  return (buf, ended) => {
    const end = buf.indexOf("\r\n\r\n");
    if (end < 0) return null;
    const [statusLine, ...rest] = buf.subarray(0, end).toString("latin1").split("\r\n");
    const m = /^HTTP\/1\.1 (\d{3}) (.*)$/.exec(statusLine);
    assert.ok(m, `bad status line ${JSON.stringify(statusLine)}`);
    const lines = rest.map((l): [string, string] => {
      const i = l.indexOf(":");
      assert.ok(i > 0, `bad header line ${JSON.stringify(l)}`);
      return [l.slice(0, i).toLowerCase(), l.slice(i + 1).trim()];
    });
    const headers: Record<string, string> = {};
    for (const [n, v] of lines) headers[n] = headers[n] === undefined ? v : `${headers[n]}, ${v}`;
    const status = Number(m[1]);
    const r: Res = { status, reason: m[2], lines, headers, body: Buffer.alloc(0), chunks: 0 };
    let pos = end + 4;
    if (noBody || status < 200 || status === 204 || status === 304) return [pos, r];
    if (headers["transfer-encoding"] === "chunked") {
      const parts: Buffer[] = [];
      for (;;) {
        const le = buf.indexOf("\r\n", pos);
        if (le < 0) return null;
        const sizeText = buf.subarray(pos, le).toString("latin1");
        assert.match(sizeText, /^[0-9a-f]+$/, "chunk size line");
        const size = Number.parseInt(sizeText, 16);
        if (buf.length < le + 4 + size) return null;
        assert.equal(buf.subarray(le + 2 + size, le + 4 + size).toString("latin1"), "\r\n", "chunk end");
        if (size === 0) {
          pos = le + 4;
          break;
        }
        parts.push(buf.subarray(le + 2, le + 2 + size));
        pos = le + 4 + size;
      }
      r.body = Buffer.concat(parts);
      r.chunks = parts.length;
      return [pos, r];
    }
    if (headers["content-length"] !== undefined) {
      const len = Number(headers["content-length"]);
      if (buf.length < pos + len) return null;
      r.body = Buffer.from(buf.subarray(pos, pos + len));
      return [pos + len, r];
    }
    if (!ended) return null;
    r.body = Buffer.from(buf.subarray(pos));
    return [buf.length, r];
  };
}

/** A raw loopback client: exact bytes out, responses parsed by hand. */
class Client {
  readonly socket: net.Socket;
  readonly closed: Promise<void>;
  #parts: Buffer[] = [];
  #ended = false;
  #wake: (() => void) | null = null;

  constructor(port: number, c: Cleanup) {
    const s = net.connect(port, "127.0.0.1");
    this.socket = s;
    s.on("error", () => {});
    s.on("data", (d: Buffer) => {
      this.#parts.push(d);
      this.#poke();
    });
    s.on("end", () => {
      this.#ended = true;
      this.#poke();
    });
    this.closed = new Promise((resolve) =>
      s.once("close", () => {
        this.#ended = true;
        this.#poke();
        resolve();
      }),
    );
    c.add(() => s.destroy());
  }

  #poke(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  #buf(): Buffer {
    if (this.#parts.length > 1) this.#parts = [Buffer.concat(this.#parts)];
    return this.#parts[0] ?? Buffer.alloc(0);
  }

  /** Bytes received and not yet consumed. */
  get pending(): Buffer {
    return this.#buf();
  }

  send(data: string | Buffer): void {
    this.socket.write(data);
  }

  async read<T>(parse: Parse<T>): Promise<T> {
    for (;;) {
      const buf = this.#buf();
      const r = parse(buf, this.#ended);
      if (r !== null) {
        this.#parts = r[0] < buf.length ? [buf.subarray(r[0])] : [];
        return r[1];
      }
      if (this.#ended) {
        throw new Error(
          `connection ended; unparsed: ${JSON.stringify(buf.toString("latin1").slice(0, 300))}`,
        );
      }
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
  }

  response(noBody = false): Promise<Res> {
    return this.read(parseResponse(noBody));
  }

  bytes(n: number): Promise<string> {
    return this.read((buf) => (buf.length >= n ? [n, buf.subarray(0, n).toString("latin1")] : null));
  }

  /** Everything until the server closes the connection. */
  rest(): Promise<Buffer> {
    return this.read((buf, ended) => (ended ? [buf.length, Buffer.from(buf)] : null));
  }
}

function get(
  port: number,
  path: string,
  options: http.RequestOptions = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path, agent: false, ...options }, (res) => {
      readAll(res).then(
        (b) =>
          resolve({
            status: res.statusCode!,
            headers: res.headers,
            body: b.toString(),
            reused: req.reusedSocket,
          }),
        reject,
      );
    });
    req.on("error", reject);
    req.end();
  });
}

const GET = (path: string, extra = ""): string => `GET ${path} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`;

// ---------------------------------------------------------------------------------------------
// 1. keep-alive

test("keep-alive: requests share one connection; Connection: close ends it after the response", {
  timeout: 5000,
}, async (t) => {
  const c = cleanup(t);
  const seen: string[] = [];
  const { server, port } = await serve(
    c,
    {
      request(req: IncomingMessage, res: ServerResponse) {
        seen.push(req.url!);
        res.end(`hi ${req.url}`);
      },
    },
    { keepAliveTimeout: 7_000 },
  );
  let conns = 0;
  server.on("connection", () => conns++);
  const cl = new Client(port, c);
  for (const path of ["/a", "/b"]) {
    cl.send(GET(path));
    const r = await cl.response();
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), `hi ${path}`);
    assert.equal(r.headers.connection, "keep-alive");
    assert.equal(r.headers["keep-alive"], "timeout=7");
    assert.equal(r.headers["content-length"], String(`hi ${path}`.length));
    assert.ok(r.headers.date);
  }
  // a request pipelined behind Connection: close is not served
  cl.send(GET("/c", "Connection: close\r\n") + GET("/dropped"));
  const r = await cl.response();
  assert.equal(r.body.toString(), "hi /c");
  assert.equal(r.headers.connection, "close");
  assert.equal(r.headers["keep-alive"], undefined);
  await cl.closed;
  assert.equal(cl.pending.length, 0);
  assert.equal(conns, 1);
  assert.deepEqual(seen, ["/a", "/b", "/c"]);

  // node:http's own keep-alive agent reuses the connection
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  c.add(() => agent.destroy());
  const a = await get(port, "/d", { agent });
  const b = await get(port, "/e", { agent });
  assert.equal(a.body, "hi /d");
  assert.equal(b.body, "hi /e");
  assert.equal(b.reused, true);
  assert.equal(conns, 2);
});

// ---------------------------------------------------------------------------------------------
// 2. pipelining

test("pipelining: requests in one write are answered in order, the first one late", {
  timeout: 5000,
}, async (t) => {
  const c = cleanup(t);
  const order: string[] = [];
  const { port } = await serve(c, {
    request(req: IncomingMessage, res: ServerResponse) {
      order.push(req.url!);
      if (req.url === "/1") setImmediate(() => setImmediate(() => res.end("one")));
      else if (req.url === "/2") readAll(bodyOf(req)!).then((b) => res.end(`two:${b}`));
      else res.end("three");
    },
  });
  const cl = new Client(port, c);
  cl.send(`${GET("/1")}POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc${GET("/3")}`);
  const bodies: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await cl.response();
    assert.equal(r.status, 200);
    assert.equal(r.headers.connection, "keep-alive");
    bodies.push(r.body.toString());
  }
  assert.deepEqual(bodies, ["one", "two:abc", "three"]);
  assert.deepEqual(order, ["/1", "/2", "/3"]);
  // the connection is still usable afterwards
  cl.send(GET("/4"));
  assert.equal((await cl.response()).body.toString(), "three");
});

// ---------------------------------------------------------------------------------------------
// 3. response framing

test("framing: unknown length is chunked for HTTP/1.1 and close-delimited for HTTP/1.0", {
  timeout: 5000,
}, async (t) => {
  const c = cleanup(t);
  const { port } = await serve(c, {
    request(req: IncomingMessage, res: ServerResponse) {
      if (req.url === "/len") {
        res.end("hello");
        return;
      }
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("hello ");
      res.write(Buffer.from("world"));
      res.end("!");
    },
  });
  const cl = new Client(port, c);
  cl.send(GET("/"));
  const r = await cl.response();
  assert.equal(r.headers["transfer-encoding"], "chunked");
  assert.equal(r.headers["content-length"], undefined);
  assert.equal(r.headers.connection, "keep-alive");
  assert.equal(r.chunks, 3);
  assert.equal(r.body.toString(), "hello world!");
  // the framing ended exactly: the next response on the connection parses
  cl.send(GET("/len"));
  assert.equal((await cl.response()).body.toString(), "hello");
  assert.equal((await get(port, "/")).body, "hello world!");

  // HTTP/1.0 keep-alive with a known length stays open; unknown length ends the connection
  const old = new Client(port, c);
  old.send("GET /len HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  const r1 = await old.response();
  assert.equal(r1.headers["content-length"], "5");
  assert.equal(r1.headers.connection, "keep-alive");
  old.send("GET / HTTP/1.0\r\n\r\n");
  const r2 = await old.response();
  assert.equal(r2.headers["transfer-encoding"], undefined);
  assert.equal(r2.headers["content-length"], undefined);
  assert.equal(r2.headers.connection, "close");
  assert.equal(r2.body.toString(), "hello world!");
  await old.closed;
});

test("framing: end(data) without headers sets content-length", { timeout: 5000 }, async (t) => {
  const c = cleanup(t);
  const { port } = await serve(c, {
    request(req: IncomingMessage, res: ServerResponse) {
      if (req.url === "/utf8") res.end("héllo");
      else if (req.url === "/buf") {
        res.statusCode = 201;
        res.setHeader("x-a", "b");
        res.end(Buffer.from([1, 2, 3]));
      } else res.end();
    },
  });
  const cl = new Client(port, c);
  cl.send(GET("/utf8") + GET("/buf") + GET("/empty"));
  const a = await cl.response();
  assert.equal(a.headers["content-length"], "6");
  assert.equal(a.body.toString(), "héllo");
  const b = await cl.response();
  assert.equal(b.status, 201);
  assert.equal(b.reason, "Created");
  assert.equal(b.headers["x-a"], "b");
  assert.equal(b.headers["content-length"], "3");
  assert.deepEqual([...b.body], [1, 2, 3]);
  const e = await cl.response();
  assert.equal(e.headers["content-length"], "0");
  assert.equal(e.headers["transfer-encoding"], undefined);
});

test("framing: HEAD, 204 and 304 carry no body bytes even when the handler writes one", {
  timeout: 5000,
}, async (t) => {
  const c = cleanup(t);
  const { port } = await serve(c, {
    request(req: IncomingMessage, res: ServerResponse) {
      switch (req.url) {
        case "/head":
          res.writeHead(200, { "content-type": "text/plain" });
          res.write("leak");
          res.end("leak");
          return;
        case "/204":
          res.statusCode = 204;
          res.end("leak");
          return;
        case "/204w":
          res.writeHead(204);
          res.write("leak");
          res.end();
          return;
        case "/304":
          res.statusCode = 304;
          res.setHeader("etag", '"v1"');
          res.end();
          return;
        default:
          res.end("end");
      }
    },
  });
  const cl = new Client(port, c);
  cl.send(
    `HEAD /head HTTP/1.1\r\nHost: x\r\n\r\n${GET("/204")}${GET("/204w")}${GET("/304")}${GET("/last", "Connection: close\r\n")}`,
  );
  const head = await cl.response(true);
  assert.equal(head.status, 200);
  assert.equal(head.headers["transfer-encoding"], undefined);
  for (const path of ["/204", "/204w", "/304"]) {
    const r = await cl.response();
    assert.equal(r.status, Number(path.slice(1, 4)), path);
    // as node:http: no Content-Length on 204 (RFC 9110 forbids it) nor a made-up 0 on 304
    assert.equal(r.headers["content-length"], undefined, path);
    assert.equal(r.headers["transfer-encoding"], undefined, path);
  }
  const last = await cl.response();
  assert.equal(last.body.toString(), "end");
  await cl.closed;
  assert.equal(cl.pending.toString("latin1"), "");
});

test("framing: a large body streamed with backpressure arrives intact", { timeout: 10_000 }, async (t) => {
  const c = cleanup(t);
  const data = randomBytes(8 * 1024 * 1024);
  const blocked = deferred();
  const allWritten = deferred();
  let st = { drains: 0 };
  const { port } = await serve(c, {
    request(_req: IncomingMessage, res: ServerResponse) {
      res.on("finish", () => allWritten.resolve());
      st = pump(res, data, () => blocked.resolve());
    },
  });
  const cl = new Client(port, c);
  cl.socket.pause();
  cl.send(GET("/big"));
  // the client reads nothing until the server has had to wait
  const first = await Promise.race([
    blocked.promise.then(() => "blocked"),
    allWritten.promise.then(() => "done"),
  ]);
  assert.equal(first, "blocked");
  cl.socket.resume();
  const r = await cl.response();
  assert.equal(r.headers["transfer-encoding"], "chunked");
  assert.equal(r.body.length, data.length);
  assert.equal(sha(r.body), sha(data));
  assert.ok(st.drains >= 1);
});

// ---------------------------------------------------------------------------------------------
// 4. request bodies

test("request bodies: content-length and chunked uploads arrive intact through req[kRequestBody]", {
  timeout: 10_000,
}, async (t) => {
  const c = cleanup(t);
  const up = randomBytes(3 * 1024 * 1024 + 7);
  const { port } = await serve(c, {
    async request(req: IncomingMessage, res: ServerResponse) {
      const body = bodyOf(req);
      assert.ok(body !== null);
      const before = req.complete;
      const h = createHash("sha256");
      let n = 0;
      // a slow reader: the socket has to be paused and resumed along the way
      for await (const d of body) {
        h.update(d as Buffer);
        n += (d as Buffer).length;
        await new Promise(setImmediate);
      }
      res.end(
        JSON.stringify({
          before,
          after: req.complete,
          n,
          sha: h.digest("hex"),
          te: req.headers["transfer-encoding"] ?? null,
        }),
      );
    },
  });
  for (const mode of ["length", "chunked"] as const) {
    const result = await new Promise<string>((resolve, reject) => {
      const req = http.request(
        {
          host: "127.0.0.1",
          port,
          method: "POST",
          path: "/up",
          agent: false,
          headers: mode === "length" ? { "content-length": up.length } : {},
        },
        (res) => readAll(res).then((b) => resolve(b.toString()), reject),
      );
      req.on("error", reject);
      for (let off = 0; off < up.length; off += 100_000) req.write(up.subarray(off, off + 100_000));
      req.end();
    });
    const got = JSON.parse(result);
    assert.deepEqual(got, {
      before: false,
      after: true,
      n: up.length,
      sha: sha(up),
      te: mode === "chunked" ? "chunked" : null,
    });
  }
});

test("request bodies: a request without a body has none and is complete", { timeout: 5000 }, async (t) => {
  const c = cleanup(t);
  const { port } = await serve(c, {
    request(req: IncomingMessage, res: ServerResponse) {
      res.end(JSON.stringify({ body: bodyOf(req), complete: req.complete }));
    },
  });
  const cl = new Client(port, c);
  cl.send(`${GET("/")}POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`);
  for (let i = 0; i < 2; i++) {
    assert.deepEqual(JSON.parse((await cl.response()).body.toString()), { body: null, complete: true });
  }
});

test("request bodies: an unread upload is discarded after the response; the next request is served", {
  timeout: 5000,
}, async (t) => {
  const c = cleanup(t);
  const seen: string[] = [];
  const { server, port } = await serve(c, {
    request(req: IncomingMessage, res: ServerResponse) {
      seen.push(req.url!);
      res.end(req.url === "/up" ? "early" : `next ${req.url}`);
    },
  });
  let conns = 0;
  server.on("connection", () => conns++);
  const cl = new Client(port, c);
  const big = Buffer.alloc(1_000_000, 97);
  // content-length
  cl.send(`POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: ${big.length}\r\n\r\n`);
  const r1 = await cl.response();
  assert.equal(r1.body.toString(), "early");
  assert.equal(r1.headers.connection, "keep-alive");
  cl.send(big);
  cl.send(GET("/next1"));
  assert.equal((await cl.response()).body.toString(), "next /next1");
  // chunked
  cl.send("POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  assert.equal((await cl.response()).body.toString(), "early");
  cl.send(`${big.length.toString(16)}\r\n`);
  cl.send(big);
  cl.send(`\r\n0\r\n\r\n${GET("/next2")}`);
  assert.equal((await cl.response()).body.toString(), "next /next2");
  assert.equal(conns, 1);
  assert.deepEqual(seen, ["/up", "/next1", "/up", "/next2"]);
});

test("trailers: a request's trailer fields are dropped and never reach the next pipelined request", {
  timeout: 5000,
}, async (t) => {
  const c = cleanup(t);
  const seen: { url: string; raw: string[]; body: string }[] = [];
  const { port } = await serve(c, {
    request(req: IncomingMessage, res: ServerResponse) {
      const body = bodyOf(req);
      const done = (b: Buffer) => {
        seen.push({ url: req.url!, raw: req.rawHeaders, body: b.toString() });
        res.end(`got ${req.url}`);
      };
      if (body === null) done(Buffer.alloc(0));
      else void readAll(body).then(done);
    },
  });
  const trailerPost = (path: string) =>
    `POST ${path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n` +
    "3\r\nabc\r\n0\r\nX-Leak: 1\r\nHost: evil.test\r\nSet-Cookie: a=b\r\n\r\n";
  const cl = new Client(port, c);
  // pipelined in one write, then again a byte at a time
  cl.send(trailerPost("/one") + GET("/two") + GET("/three"));
  for (const path of ["/one", "/two", "/three"]) {
    const r = await cl.response();
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), `got ${path}`);
  }
  const bytes = Buffer.from(trailerPost("/four") + GET("/five"));
  for (let i = 0; i < bytes.length; i++) {
    cl.send(bytes.subarray(i, i + 1));
    await new Promise((r) => setImmediate(r));
  }
  assert.equal((await cl.response()).body.toString(), "got /four");
  assert.equal((await cl.response()).body.toString(), "got /five");
  assert.deepEqual(
    seen.map((s) => [s.url, s.raw, s.body]),
    [
      ["/one", ["Host", "x", "Transfer-Encoding", "chunked"], "abc"],
      ["/two", ["Host", "x"], ""],
      ["/three", ["Host", "x"], ""],
      ["/four", ["Host", "x", "Transfer-Encoding", "chunked"], "abc"],
      ["/five", ["Host", "x"], ""],
    ],
  );
});

test("each request on a connection starts from nothing: Expect, HTTP/1.0, HEAD do not carry over", {
  timeout: 5000,
}, async (t) => {
  const c = cleanup(t);
  const seen: string[] = [];
  const { port } = await serve(c, {
    request(req: IncomingMessage, res: ServerResponse) {
      seen.push(`${req.method} ${req.url} ${req.httpVersion} ${req.headers.expect ?? "-"}`);
      const body = bodyOf(req);
      if (body === null) res.end(`got ${req.url}`);
      else void readAll(body).then((b) => res.end(`got ${b}`));
    },
  });
  const cl = new Client(port, c);
  cl.send("POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
  assert.equal((await cl.response()).status, 100);
  cl.send("abc");
  assert.equal((await cl.response()).body.toString(), "got abc");
  // no 100 for a request that did not ask for one, a HEAD's answer has no body, the next one has
  cl.send(`POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi${GET("/g")}`);
  const p = await cl.response();
  assert.deepEqual([p.status, p.body.toString()], [200, "got hi"]);
  assert.equal((await cl.response()).body.toString(), "got /g");
  cl.send(`HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n${GET("/after-head")}`);
  assert.equal((await cl.response(true)).status, 200);
  const g = await cl.response();
  assert.deepEqual([g.status, g.body.toString()], [200, "got /after-head"]);
  // an HTTP/1.0 keep-alive request, then HTTP/1.1 again: each answered in its own version's terms
  cl.send("GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  const old = await cl.response();
  assert.equal(old.body.toString(), "got /old");
  cl.send(GET("/new"));
  assert.equal((await cl.response()).body.toString(), "got /new");
  assert.deepEqual(seen, [
    "POST /e 1.1 100-continue",
    "POST /p 1.1 -",
    "GET /g 1.1 -",
    "HEAD /h 1.1 -",
    "GET /after-head 1.1 -",
    "GET /old 1.0 -",
    "GET /new 1.1 -",
  ]);
});

test("request bodies: a client that disconnects mid-upload makes the body stream error", {
  timeout: 5000,
}, async (t) => {
  const c = cleanup(t);
  const dispatched = deferred();
  const bodyError = deferred<NodeJS.ErrnoException>();
  const resClosed = deferred<{ finished: boolean; ended: boolean }>();
  let received = 0;
  const { port } = await serve(c, {
    request(req: IncomingMessage, res: ServerResponse) {
      const body = bodyOf(req)!;
      body.on("error", (err) => bodyError.resolve(err));
      body.on("data", (d: Buffer) => {
        received += d.length;
        if (received === 1000) dispatched.resolve();
      });
      res.on("close", () => resClosed.resolve({ finished: res.writableFinished, ended: res.writableEnded }));
    },
  });
  const cl = new Client(port, c);
  cl.send(`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n${"a".repeat(1000)}`);
  await dispatched.promise;
  cl.socket.destroy();
  const err = await bodyError.promise;
  assert.equal(err.code, "ECONNRESET");
  assert.deepEqual(await resClosed.promise, { finished: false, ended: false });
});

// ---------------------------------------------------------------------------------------------
// 5. Expect, Host

test("Expect: 100-continue is answered before the body; other expectations get 417", {
  timeout: 5000,
}, async (t) => {
  const c = cleanup(t);
  const seen: string[] = [];
  const { port } = await serve(c, {
    request(req: IncomingMessage, res: ServerResponse) {
      seen.push(req.url!);
      readAll(bodyOf(req)!).then((b) => res.end(`got ${b}`));
    },
  });
  const cl = new Client(port, c);
  cl.send("POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
  const cont = await cl.response();
  assert.equal(cont.status, 100);
  assert.equal(cont.reason, "Continue");
  assert.equal(cl.pending.length, 0);
  cl.send("hello");
  const r = await cl.response();
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), "got hello");

  const bad = new Client(port, c);
  bad.send("POST /x HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\nContent-Length: 5\r\n\r\n");
  const r417 = await bad.response();
  assert.equal(r417.status, 417);
  assert.equal(r417.headers.connection, "close");
  await bad.closed;
  assert.deepEqual(seen, ["/e"]);
});

test("Host: an HTTP/1.1 request without one gets 400; HTTP/1.0 needs none", { timeout: 5000 }, async (t) => {
  const c = cleanup(t);
  const seen: string[] = [];
  const { port } = await serve(c, {
    request(req: IncomingMessage, res: ServerResponse) {
      seen.push(req.url!);
      res.end("ok");
    },
  });
  const cl = new Client(port, c);
  cl.send("GET /nohost HTTP/1.1\r\n\r\n");
  const r = await cl.response();
  assert.equal(r.status, 400);
  assert.equal(r.headers.connection, "close");
  await cl.closed;
  const old = new Client(port, c);
  old.send("GET /old HTTP/1.0\r\n\r\n");
  assert.equal((await old.response()).body.toString(), "ok");
  assert.deepEqual(seen, ["/old"]);
});

// ---------------------------------------------------------------------------------------------
// 6. bad input

test("bad input: 400 or 431 and close; CONNECT gets 405; other connections keep being served", {
  timeout: 5000,
}, async (t) => {
  const c = cleanup(t);
  const seen: string[] = [];
  const clientErrors: string[] = [];
  const { port } = await serve(c, {
    request(req: IncomingMessage, res: ServerResponse) {
      seen.push(req.url!);
      res.end("ok");
    },
    clientError(err: Error & { code?: string }) {
      clientErrors.push(err.code ?? "?");
    },
  });
  const other = new Client(port, c);
  other.send(GET("/before"));
  assert.equal((await other.response()).body.toString(), "ok");

  const cases: [string, string, number][] = [
    ["garbage", "garbage\r\n\r\n", 400],
    ["invalid method", "GETT / HTTP/1.1\r\nHost: x\r\n\r\n", 400],
    ["bad header name", "GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", 400],
    ["binary", "\x00\x01\x02\xff\xfe\r\n\r\n", 400],
    [
      "content-length with chunked",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      400,
    ],
    ["head over 16 KB", `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`, 431],
  ];
  let i = 0;
  for (const [name, bytes, status] of cases) {
    const cl = new Client(port, c);
    cl.send(Buffer.from(bytes, "latin1"));
    const r = await cl.response();
    assert.equal(r.status, status, name);
    assert.equal(r.headers.connection, "close", name);
    await cl.closed;
    other.send(GET(`/after${i++}`));
    assert.equal((await other.response()).body.toString(), "ok", name);
  }
  assert.equal(clientErrors.length, cases.length);
  assert.equal(clientErrors.at(-1), "HPE_HEADER_OVERFLOW");

  const tunnel = new Client(port, c);
  tunnel.send("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
  // no tunnel to offer: 405, then the connection closes
  assert.match((await tunnel.rest()).toString("latin1"), /^HTTP\/1\.1 405 /);
  other.send(GET("/last"));
  assert.equal((await other.response()).body.toString(), "ok");
  assert.deepEqual(seen, ["/before", ...cases.map((_, j) => `/after${j}`), "/last"]);
});

test("bad input behind a pending response: the connection is cut, the handler's response gets 'close'", {
  timeout: 5000,
}, async (t) => {
  const c = cleanup(t);
  const closed = deferred<boolean>();
  let late: ServerResponse | undefined;
  const { port } = await serve(c, {
    request(_req: IncomingMessage, res: ServerResponse) {
      late = res;
      res.on("close", () => closed.resolve(res.writableFinished));
    },
  });
  const cl = new Client(port, c);
  cl.send(`${GET("/slow")}garbage\r\n\r\n`);
  // a 400 now would be read as the answer to /slow: the connection is cut without a word
  assert.equal((await cl.rest()).length, 0);
  await cl.closed;
  assert.equal(await closed.promise, false);
  // answering afterwards is harmless: nothing is written, no 'finish'
  assert.equal(late!.destroyed, true);
  late!.on("finish", () => assert.fail("'finish' after 'close'"));
  late!.end("too late");
  await new Promise(setImmediate);
  assert.equal(late!.writableFinished, false);
});

test("a handler that throws: 500 and close; handlerError hears of it", { timeout: 5000 }, async (t) => {
  const c = cleanup(t);
  const errors: Error[] = [];
  const { port } = await serve(c, {
    request(req: IncomingMessage, res: ServerResponse) {
      if (req.url === "/throw") throw new Error("boom");
      res.end("ok");
    },
    handlerError(err: unknown) {
      errors.push(err as Error);
    },
  });
  const cl = new Client(port, c);
  cl.send(GET("/throw"));
  const r = await cl.response();
  assert.equal(r.status, 500);
  assert.equal(r.headers.connection, "close");
  await cl.closed;
  assert.equal(errors.length, 1);
  assert.equal(errors[0].message, "boom");
  assert.equal((await get(port, "/fine")).body, "ok");
});

// ---------------------------------------------------------------------------------------------
// 7. timeouts

test("timeouts: slow heads, silent and slow-bodied requests get 408; idle keep-alive closes", {
  timeout: 5000,
}, async (t) => {
  const c = cleanup(t);
  const seen: string[] = [];
  const clientErrors: string[] = [];
  const big = randomBytes(8 * 1024 * 1024);
  const slowBody = {
    error: deferred<NodeJS.ErrnoException>(),
    close: deferred<boolean>(),
    started: deferred<boolean>(),
  };
  const { port } = await serve(
    c,
    {
      request(req: IncomingMessage, res: ServerResponse) {
        seen.push(req.url!);
        if (req.url === "/slowbody" || req.url === "/slowbody-started") {
          const body = bodyOf(req)!;
          if (req.url === "/slowbody") {
            body.on("error", (err: NodeJS.ErrnoException) => slowBody.error.resolve(err));
            res.on("close", () => slowBody.close.resolve(res.writableFinished));
          } else {
            body.on("error", () => {});
            res.writeHead(200);
            res.write("started");
            res.on("close", () => slowBody.started.resolve(res.writableFinished));
          }
          body.resume();
        } else if (req.url === "/slowreader") {
          res.end(big);
        } else if (req.url === "/slowhandler") {
          // slower than every timeout: a request being answered is not timed out
          setTimeout(() => res.end("late but fine"), 600);
        } else res.end("ok");
      },
      clientError(err: Error & { code?: string }) {
        clientErrors.push(err.code ?? "?");
      },
    },
    { headersTimeout: 300, requestTimeout: 400, keepAliveTimeout: 300, connectionsCheckingInterval: 50 },
  );

  const slowHead = async () => {
    const cl = new Client(port, c);
    cl.send("GET /slowhead HTTP/1.1\r\nHost: x\r\n");
    const r = await cl.response();
    assert.equal(r.status, 408);
    assert.equal(r.headers.connection, "close");
    await cl.closed;
  };
  const silent = async () => {
    const cl = new Client(port, c);
    const r = await cl.response();
    assert.equal(r.status, 408);
    await cl.closed;
  };
  const slowBodyCase = async () => {
    const cl = new Client(port, c);
    cl.send("POST /slowbody HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
    const r = await cl.response();
    assert.equal(r.status, 408);
    await cl.closed;
    assert.equal(cl.pending.length, 0);
    assert.equal((await slowBody.error.promise).code, "ECONNRESET");
    assert.equal(await slowBody.close.promise, false);
  };
  const slowBodyStarted = async () => {
    // the answer is under way: no 408 can follow it, the connection is cut
    const cl = new Client(port, c);
    cl.send("POST /slowbody-started HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
    const rest = (await cl.rest()).toString("latin1");
    assert.match(rest, /^HTTP\/1\.1 200 OK\r\n/);
    assert.doesNotMatch(rest, /408/);
    assert.equal(await slowBody.started.promise, false);
  };
  const idleKeepAlive = async () => {
    const cl = new Client(port, c);
    cl.send(GET("/idle"));
    const r = await cl.response();
    assert.equal(r.body.toString(), "ok");
    assert.equal(r.headers.connection, "keep-alive");
    await cl.closed;
    assert.equal(cl.pending.length, 0); // closed without a word, as node:http does
  };
  const slowHandler = async () => {
    const cl = new Client(port, c);
    cl.send(GET("/slowhandler"));
    assert.equal((await cl.response()).body.toString(), "late but fine");
  };
  const slowReader = async () => {
    // a response still being flushed is not an idle connection
    const cl = new Client(port, c);
    cl.socket.pause();
    cl.send(GET("/slowreader"));
    setTimeout(() => cl.socket.resume(), 600);
    const r = await cl.response();
    assert.equal(sha(r.body), sha(big));
  };
  await Promise.all([
    slowHead(),
    silent(),
    slowBodyCase(),
    slowBodyStarted(),
    idleKeepAlive(),
    slowHandler(),
    slowReader(),
  ]);
  assert.deepEqual(seen.sort(), ["/idle", "/slowbody", "/slowbody-started", "/slowhandler", "/slowreader"]);
  assert.equal(clientErrors.filter((e) => e === "ERR_HTTP_REQUEST_TIMEOUT").length, 4);
});

test("request bodies: an aborted upload nobody listens to does not throw", { timeout: 5000 }, async (t) => {
  const c = cleanup(t);
  const bodies: Readable[] = [];
  let dispatched = deferred<Readable>();
  const { port } = await serve(c, {
    request(req: IncomingMessage, res: ServerResponse) {
      const body = bodyOf(req)!;
      bodies.push(body);
      if (req.url === "/detach") {
        // a reader that lets go when the response closes, as the forwarder does
        const onError = (): void => {};
        body.on("error", onError);
        res.on("close", () => body.off("error", onError));
      }
      dispatched.resolve(body);
    },
  });
  for (const path of ["/ignore", "/detach"]) {
    const cl = new Client(port, c);
    cl.send(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc`);
    const body = await dispatched.promise;
    dispatched = deferred();
    // (not events.once: it listens for 'error' itself)
    const closed = new Promise((resolve) => body.once("close", resolve));
    cl.socket.destroy();
    // an 'error' nobody hears would be thrown before 'close' and fail the test
    await closed;
    assert.equal(body.destroyed, true, path);
  }
  assert.equal(bodies.length, 2);
});

// ---------------------------------------------------------------------------------------------
// 8. upgrade

test("upgrade: the raw socket and the bytes after the head go to handler.upgrade, after earlier answers", {
  timeout: 5000,
}, async (t) => {
  const c = cleanup(t);
  const seen: string[] = [];
  const upgraded: net.Socket[] = [];
  let info: { url?: string; upgrade?: string; head: string } | undefined;
  const { port } = await serve(c, {
    request(req: IncomingMessage, res: ServerResponse) {
      seen.push(req.url!);
      setImmediate(() => res.end("slow done"));
    },
    upgrade(req: IncomingMessage, socket: net.Socket, head: Buffer) {
      upgraded.push(socket);
      info = { url: req.url, upgrade: req.headers.upgrade, head: head.toString() };
      socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
      socket.write(`head:${head}|`);
      socket.on("data", (d: Buffer) => socket.write(d));
      socket.on("end", () => socket.end());
      socket.resume();
    },
  });
  c.add(() => {
    for (const s of upgraded) s.destroy();
  });
  const cl = new Client(port, c);
  cl.send(
    `${GET("/slow")}GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nHELLO`,
  );
  const r1 = await cl.response();
  assert.equal(r1.body.toString(), "slow done");
  const r2 = await cl.response();
  assert.equal(r2.status, 101);
  assert.deepEqual(info, { url: "/ws", upgrade: "websocket", head: "HELLO" });
  assert.equal(await cl.bytes(11), "head:HELLO|");
  cl.send("ping");
  assert.equal(await cl.bytes(4), "ping");
  assert.deepEqual(seen, ["/slow"]);
});

test("upgrade: a real WebSocket through ws.handleUpgrade", { timeout: 5000 }, async (t) => {
  const c = cleanup(t);
  const wss = new WebSocketServer({ noServer: true });
  c.add(() => new Promise((resolve) => wss.close(resolve)));
  const { port } = await serve(c, {
    request(_req: IncomingMessage, res: ServerResponse) {
      res.end();
    },
    upgrade(req: IncomingMessage, socket: net.Socket, head: Buffer) {
      wss.handleUpgrade(req, socket, head, (ws) => {
        ws.on("message", (m, binary) => ws.send(binary ? m : `echo ${m}`));
      });
    },
  });
  const ws = new WebSocket(`ws://127.0.0.1:${port}/chat`);
  c.add(() => ws.terminate());
  await once(ws, "open");
  ws.send("hi");
  const [msg] = await once(ws, "message");
  assert.equal(String(msg), "echo hi");
  ws.close();
  await once(ws, "close");
});

// ---------------------------------------------------------------------------------------------
// 9. req.headers as node:http builds them

test("req.headers, rawHeaders, url and version equal node:http's for the same bytes", {
  timeout: 5000,
}, async (t) => {
  const c = cleanup(t);
  type Seen = { method?: string; url?: string; httpVersion: string; rawHeaders: string[]; headers: object };
  const capture = (req: IncomingMessage): Seen => ({
    method: req.method,
    url: req.url,
    httpVersion: req.httpVersion,
    rawHeaders: [...req.rawHeaders],
    headers: { ...req.headers },
  });
  let ours: Seen | undefined;
  let theirs: Seen | undefined;
  const { port } = await serve(c, {
    request(req: IncomingMessage, res: ServerResponse) {
      ours = capture(req);
      res.end();
    },
  });
  const node = http.createServer((req, res) => {
    theirs = capture(req);
    res.end();
  });
  const nodePort = await listen(node, c);

  const many = Array.from({ length: 40 }, (_, i) => `X-Many-${i % 7}: v${i}\r\n`).join("");
  const requests = [
    "GET /p?q=1&r=%20 HTTP/1.1\r\nHost: first.example\r\nhost: second.example\r\nCookie: a=1\r\nCookie: b=2\r\n" +
      "Set-Cookie: s=1\r\nSet-Cookie: s=2\r\nX-Dup: 1\r\nx-dup: 2\r\nUser-Agent: ua1\r\nUser-Agent: ua2\r\n" +
      "Content-Type: text/plain\r\nContent-Type: text/html\r\nAccept: a\r\nACCEPT: b\r\nAuthorization: x\r\n" +
      "Authorization: y\r\nReferer: r1\r\nReferer: r2\r\nX-Empty:\r\nX-Spaces:   v w  \r\nConnection: close\r\n\r\n",
    // more header lines than the parser hands over at once, and a long URL, split across writes
    `GET /${"u".repeat(3000)}?x=1 HTTP/1.1\r\nHost: h\r\n${many}Cookie: c=1\r\nCookie: d=2\r\nConnection: close\r\n\r\n`,
    "GET http://absolute.example/path HTTP/1.0\r\nX-A: 1\r\n\r\n",
  ];
  for (const raw of requests) {
    for (const p of [port, nodePort]) {
      const cl = new Client(p, c);
      const bytes = Buffer.from(raw, "latin1");
      const third = Math.floor(bytes.length / 3);
      cl.send(bytes.subarray(0, third));
      await new Promise(setImmediate);
      cl.send(bytes.subarray(third, 2 * third));
      await new Promise(setImmediate);
      cl.send(bytes.subarray(2 * third));
      assert.equal((await cl.response()).status, 200);
    }
    assert.ok(ours && theirs);
    assert.deepEqual(ours, theirs);
    ours = theirs = undefined;
  }
});

// ---------------------------------------------------------------------------------------------
// 10. response API

test("response: setHeader then writeHead(status, flat array) merges; given names replace preset ones", {
  timeout: 5000,
}, async (t) => {
  const c = cleanup(t);
  const { port } = await serve(c, {
    request(_req: IncomingMessage, res: ServerResponse) {
      res.setHeader("X-A", "1");
      res.setHeader("x-b", ["1", "2"]);
      res.setHeader("Content-Type", "text/plain");
      res.setHeader("Set-Cookie", "p=1");
      assert.equal(res.getHeader("content-type"), "text/plain");
      assert.deepEqual(res.getHeaderNames().sort(), ["content-type", "set-cookie", "x-a", "x-b"]);
      res.writeHead(201, ["content-type", "text/html", "X-C", "3", "set-cookie", "q=1", "set-cookie", "q=2"]);
      assert.equal(res.headersSent, true);
      assert.equal(res.statusCode, 201);
      assert.throws(() => res.setHeader("x-late", "1"), { code: "ERR_HTTP_HEADERS_SENT" });
      res.end("ok");
    },
  });
  const cl = new Client(port, c);
  cl.send(GET("/"));
  const r = await cl.response();
  assert.equal(r.status, 201);
  assert.equal(r.reason, "Created");
  const pick = (n: string) => r.lines.filter(([k]) => k === n).map(([, v]) => v);
  assert.deepEqual(pick("content-type"), ["text/html"]);
  assert.deepEqual(pick("set-cookie"), ["q=1", "q=2"]);
  assert.deepEqual(pick("x-a"), ["1"]);
  assert.deepEqual(pick("x-b"), ["1", "2"]);
  assert.deepEqual(pick("x-c"), ["3"]);
  assert.equal(r.body.toString(), "ok");
});

test("response: invalid header values throw ERR_INVALID_CHAR and write nothing", {
  timeout: 5000,
}, async (t) => {
  const c = cleanup(t);
  const thrown: unknown[] = [];
  const { port } = await serve(c, {
    request(_req: IncomingMessage, res: ServerResponse) {
      for (const bad of ["a\r\nb", "a\nb", "a\x00b", "a\x7fb"]) {
        try {
          res.writeHead(200, "Fine", ["transfer-encoding", "chunked", "x-ok", "1", "x-bad", bad]);
        } catch (err) {
          thrown.push((err as { code?: string }).code);
        }
      }
      try {
        res.setHeader("x-bad", "a\nb");
      } catch (err) {
        thrown.push((err as { code?: string }).code);
      }
      try {
        res.setHeader("bad name", "v");
      } catch (err) {
        thrown.push((err as { code?: string }).code);
      }
      thrown.push(res.headersSent);
      // the answer after the failed attempts is clean: its own status text and framing
      res.writeHead(502, { "content-length": 3 });
      res.end("bad");
    },
  });
  const cl = new Client(port, c);
  cl.send(`${GET("/")}${GET("/")}`);
  for (let i = 0; i < 2; i++) {
    const r = await cl.response();
    assert.equal(r.status, 502);
    assert.equal(r.reason, "Bad Gateway");
    assert.equal(r.headers["x-ok"], undefined);
    assert.equal(r.headers["transfer-encoding"], undefined);
    assert.equal(r.body.toString(), "bad");
  }
  assert.deepEqual(thrown.slice(0, 7), [
    "ERR_INVALID_CHAR",
    "ERR_INVALID_CHAR",
    "ERR_INVALID_CHAR",
    "ERR_INVALID_CHAR",
    "ERR_INVALID_CHAR",
    "ERR_INVALID_HTTP_TOKEN",
    false,
  ]);
});

test("response: 'finish' then 'close' when completed; only 'close' when the client leaves mid-response", {
  timeout: 10_000,
}, async (t) => {
  const c = cleanup(t);
  const events = new Map<string, Deferred<{ events: string[]; finished: boolean; ended: boolean }>>();
  for (const k of ["/a", "/b", "/reset", "/fin", "/unflushed"]) events.set(k, deferred());
  const ended = deferred();
  const { port } = await serve(c, {
    request(req: IncomingMessage, res: ServerResponse) {
      const log: string[] = [];
      res.on("finish", () => log.push("finish"));
      res.on("close", () => {
        log.push("close");
        events
          .get(req.url!)!
          .resolve({ events: log, finished: res.writableFinished, ended: res.writableEnded });
      });
      if (req.url === "/a") res.end("x");
      else if (req.url === "/b") {
        res.setHeader("content-length", 5);
        res.write("hello");
        res.end();
      } else if (req.url === "/reset") {
        res.writeHead(200);
        res.write("part");
      } else if (req.url === "/fin") {
        // a stream (SSE-like): a FIN alone may be a half-close, the next write finds the client gone
        res.writeHead(200);
        res.write("part");
        const timer = setInterval(() => res.write("more"), 20);
        res.on("close", () => clearInterval(timer));
      } else {
        res.end(Buffer.alloc(32 * 1024 * 1024));
        ended.resolve();
      }
    },
  });
  const cl = new Client(port, c);
  cl.send(GET("/a") + GET("/b"));
  assert.equal((await cl.response()).body.toString(), "x");
  assert.equal((await cl.response()).body.toString(), "hello");
  const done = { events: ["finish", "close"], finished: true, ended: true };
  assert.deepEqual(await events.get("/a")!.promise, done);
  assert.deepEqual(await events.get("/b")!.promise, done);

  for (const how of ["/reset", "/fin"]) {
    const cut = new Client(port, c);
    cut.send(GET(how));
    await cut.read((buf) => (buf.includes("part") ? [buf.length, null] : null));
    if (how === "/reset") cut.socket.resetAndDestroy();
    else cut.socket.destroy();
    assert.deepEqual(
      await events.get(how)!.promise,
      { events: ["close"], finished: false, ended: false },
      how,
    );
  }

  // ended but not flushed: the client stops reading, then leaves
  const slow = new Client(port, c);
  slow.socket.pause();
  slow.send(GET("/unflushed"));
  await ended.promise;
  slow.socket.destroy();
  assert.deepEqual(await events.get("/unflushed")!.promise, {
    events: ["close"],
    finished: false,
    ended: true,
  });
});

test("a client FIN aborts the request it waits on (as node:http and nginx); after its last answer it just closes", {
  timeout: 5000,
}, async (t) => {
  const c = cleanup(t);
  const held = deferred<ServerResponse>();
  const { port } = await serve(c, {
    request(req: IncomingMessage, res: ServerResponse) {
      if (req.url === "/held") held.resolve(res);
      else res.end("small");
    },
  });
  // answered, then FIN: the server closes its side too
  const done = new Client(port, c);
  done.send(GET("/small"));
  assert.equal((await done.response()).body.toString(), "small");
  done.socket.end();
  await done.closed;

  // FIN while the answer is pending: the response closes unfinished, nothing more is written
  const gone = new Client(port, c);
  gone.send(GET("/held"));
  const res = await held.promise;
  const closed = once(res, "close");
  gone.socket.end();
  await closed;
  assert.equal(res.writableFinished, false);
  res.end("too late");
  await gone.closed;
  assert.equal(gone.pending.length, 0);
});

test("response: write(data, cb) and end(cb) call back once the bytes are handed over", {
  timeout: 5000,
}, async (t) => {
  const c = cleanup(t);
  const calls: string[] = [];
  const all = deferred();
  const { port } = await serve(c, {
    request(_req: IncomingMessage, res: ServerResponse) {
      res.writeHead(200, { "content-length": 4 });
      res.write("ab", () => calls.push("write"));
      res.end("cd", () => {
        calls.push("end");
        all.resolve();
      });
    },
  });
  const cl = new Client(port, c);
  cl.send(GET("/"));
  assert.equal((await cl.response()).body.toString(), "abcd");
  await all.promise;
  assert.deepEqual(calls, ["write", "end"]);
});

test("response: every byte value survives the one-write path of small answers, with and without a length", {
  timeout: 5000,
}, async (t) => {
  const c = cleanup(t);
  const bytes = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 7) % 256));
  const { port } = await serve(c, {
    request(req: IncomingMessage, res: ServerResponse) {
      if (req.url === "/chunked") res.writeHead(200, ["x-kind", "chunked"]);
      else res.writeHead(200, ["content-length", String(bytes.length)]);
      res.end(bytes);
    },
  });
  const cl = new Client(port, c);
  cl.send(GET("/length") + GET("/chunked"));
  const a = await cl.response();
  assert.equal(a.headers["content-length"], "512");
  assert.deepEqual(a.body, bytes);
  const b = await cl.response();
  assert.equal(b.headers["transfer-encoding"], "chunked");
  assert.deepEqual(b.body, bytes);
});

// ---------------------------------------------------------------------------------------------
// Review findings (regressions)

/** Polls `cond` until true or the deadline: for states no event announces. */
async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

test("pipelining: a client that sends many requests and reads nothing does not make the front buffer", {
  timeout: 10_000,
}, async (t) => {
  const c = cleanup(t);
  const body = Buffer.alloc(16 * 1024, 97);
  let handled = 0;
  const { server, port } = await serve(c, {
    request(_req: IncomingMessage, res: ServerResponse) {
      handled++;
      res.writeHead(200, ["content-length", String(body.length)]);
      res.end(body);
    },
  });
  const total = 2000;
  const cl = new Client(port, c);
  cl.socket.pause();
  cl.send(GET("/").repeat(total));
  await until(() => [...server.live].some((conn) => conn.waitingDrain));
  const conn = [...server.live][0];
  assert.ok(handled < total, `handled ${handled} of ${total} before the client read anything`);
  assert.ok(conn.socket.writableLength < 1024 * 1024, `buffered ${conn.socket.writableLength} bytes`);
  cl.socket.resume();
  for (let i = 0; i < total; i++) assert.equal((await cl.response()).body.length, body.length);
  assert.equal(handled, total);
});

test("pipelining: a Connection: close request behind one answered late is answered too, then the connection closes", {
  timeout: 5000,
}, async (t) => {
  const c = cleanup(t);
  const { port } = await serve(c, {
    request(req: IncomingMessage, res: ServerResponse) {
      if (req.url === "/a") setImmediate(() => res.end("a"));
      else res.end("b");
    },
  });
  const cl = new Client(port, c);
  cl.send(GET("/a") + GET("/b", "Connection: close\r\n"));
  const a = await cl.response();
  assert.equal(a.body.toString(), "a");
  assert.equal(a.headers.connection, "keep-alive");
  const b = await cl.response();
  assert.equal(b.body.toString(), "b");
  assert.equal(b.headers.connection, "close");
  await cl.closed;
});

test("upgrade: body bytes sent with an upgrade request belong to the upgrade head, however they arrive", {
  timeout: 5000,
}, async (t) => {
  const c = cleanup(t);
  const heads: string[] = [];
  const got = deferred();
  const { port } = await serve(c, {
    request: (_req: IncomingMessage, res: ServerResponse) => res.end(),
    upgrade(_req: IncomingMessage, socket: net.Socket, head: Buffer) {
      heads.push(head.toString("latin1"));
      socket.destroy();
      got.resolve();
    },
  });
  const cl = new Client(port, c);
  cl.send(
    "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nhelloEXTRA",
  );
  await got.promise;
  assert.deepEqual(heads, ["helloEXTRA"]);
});

test("keep-alive: the idle time counts from the last byte the client took, not from end()", {
  timeout: 10_000,
}, async (t) => {
  const c = cleanup(t);
  const big = Buffer.alloc(16 * 1024 * 1024, 98);
  const { port } = await serve(
    c,
    {
      request(req: IncomingMessage, res: ServerResponse) {
        res.writeHead(200, ["content-length", String(req.url === "/big" ? big.length : 2)]);
        res.end(req.url === "/big" ? big : "ok");
      },
    },
    { keepAliveTimeout: 300, connectionsCheckingInterval: 25 },
  );
  // a raw reader that only counts (the test client's parser is too slow for 16 MB)
  const sock = net.connect(port, "127.0.0.1");
  c.add(() => sock.destroy());
  sock.on("error", () => {});
  await once(sock, "connect");
  sock.pause();
  sock.write(GET("/big"));
  // the client is slow: it takes the answer well after the keep-alive time has passed since end()
  await new Promise((r) => setTimeout(r, 600));
  let head = "";
  let left = -1;
  const done = deferred();
  const onData = (d: Buffer): void => {
    if (left < 0) {
      head += d.toString("latin1");
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      left = Number(/content-length: (\d+)/i.exec(head)![1]) - (head.length - end - 4);
    } else left -= d.length;
    if (left === 0) done.resolve();
  };
  sock.on("data", onData);
  sock.resume();
  await done.promise;
  sock.off("data", onData);
  // idle for less than the keep-alive time since the last byte (far more since end())
  await new Promise((r) => setTimeout(r, 100));
  let answer = "";
  const ok = deferred();
  sock.on("data", (d: Buffer) => {
    answer += d.toString("latin1");
    if (answer.endsWith("\r\n\r\nok")) ok.resolve();
  });
  sock.on("close", () => ok.resolve());
  sock.write(GET("/small"));
  await ok.promise;
  assert.match(answer, /^HTTP\/1\.1 200 [\s\S]*\r\n\r\nok$/);
});

test("timeouts: a head that waits behind pipelined answers (the front paused reading) is not timed out", {
  timeout: 10_000,
}, async (t) => {
  const c = cleanup(t);
  const { port } = await serve(
    c,
    {
      request(req: IncomingMessage, res: ServerResponse) {
        if (req.url === "/slow") setTimeout(() => res.end("slow"), 600);
        else res.end(req.url);
      },
    },
    { headersTimeout: 200, connectionsCheckingInterval: 25 },
  );
  const cl = new Client(port, c);
  const third = GET("/c");
  cl.send(GET("/slow") + GET("/b") + third.slice(0, 10));
  setTimeout(() => cl.send(third.slice(10)), 20);
  assert.equal((await cl.response()).body.toString(), "slow");
  assert.equal((await cl.response()).body.toString(), "/b");
  assert.equal((await cl.response()).body.toString(), "/c");
});

test("timeouts: a client that stops reading its answer is cut after sendTimeout", {
  timeout: 10_000,
}, async (t) => {
  const c = cleanup(t);
  const closed = deferred<boolean>();
  const { port } = await serve(
    c,
    {
      request(_req: IncomingMessage, res: ServerResponse) {
        res.on("close", () => closed.resolve(res.writableFinished));
        pump(res, Buffer.alloc(64 * 1024 * 1024, 99));
      },
    },
    { sendTimeout: 300, connectionsCheckingInterval: 25 },
  );
  const cl = new Client(port, c);
  cl.socket.pause();
  cl.send(GET("/"));
  assert.equal(await closed.promise, false);
});

test("response: the front owns Connection: a handler's keep-alive does not survive a closing connection", {
  timeout: 5000,
}, async (t) => {
  const c = cleanup(t);
  const { port } = await serve(c, {
    request(req: IncomingMessage, res: ServerResponse) {
      res.writeHead(200, { connection: "keep-alive", "keep-alive": "timeout=999", "content-length": 2 });
      res.end(req.method === "HEAD" ? undefined : "ok");
    },
  });
  const cl = new Client(port, c);
  cl.send(GET("/", "Connection: close\r\n"));
  const r = await cl.response();
  assert.equal(r.headers.connection, "close");
  assert.equal(r.headers["keep-alive"], undefined);
  await cl.closed;
  // HEAD ended without a body gets no invented content-length
  const head = new Client(port, c);
  const seen = deferred<string | undefined>();
  const { port: p2 } = await serve(c, {
    request(_req: IncomingMessage, res: ServerResponse) {
      res.end();
      seen.resolve(String(res.getHeader("content-length")));
    },
  });
  head.socket.destroy();
  const h = new Client(p2, c);
  h.send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
  const hr = await h.response(true);
  assert.equal(hr.headers["content-length"], undefined);
  assert.equal(await seen.promise, "undefined");
});

test("lingering close: an answer given before the upload ends reaches a client that sends it all first", {
  timeout: 10_000,
}, async (t) => {
  const c = cleanup(t);
  const { port } = await serve(c, {
    request(_req: IncomingMessage, res: ServerResponse) {
      // answered at once, upload unread (as a proxy relays a backend's early 413)
      res.shouldKeepAlive = false;
      res.writeHead(413, ["content-length", "9"]);
      res.end("too big\n\n");
    },
  });
  const size = 8 * 1024 * 1024;
  const sock = net.connect(port, "127.0.0.1");
  c.add(() => sock.destroy());
  await once(sock, "connect");
  sock.pause();
  // the whole upload is written before the client reads anything: without lingering, the server's
  // close with unread data resets the connection and the answer is lost
  sock.write(`POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n\r\n`);
  const sent = new Promise<Error | null | undefined>((resolve) => sock.write(Buffer.alloc(size, 1), resolve));
  sock.on("error", () => {});
  assert.equal(await sent, null);
  let answer = "";
  sock.on("data", (d: Buffer) => {
    answer += d.toString("latin1");
  });
  sock.resume();
  await once(sock, "close");
  assert.match(answer, /^HTTP\/1\.1 413 [\s\S]*\r\n\r\ntoo big\n\n$/);
  assert.match(answer, /connection: close/);
});

// ---------------------------------------------------------------------------------------------
// 11. close()

test("close(): stops accepting, closes idle connections, lets a busy response finish with connection: close", {
  timeout: 5000,
}, async (t) => {
  const c = cleanup(t);
  const busy = deferred<ServerResponse>();
  const { server, port } = await serve(
    c,
    {
      request(req: IncomingMessage, res: ServerResponse) {
        if (req.url === "/busy") busy.resolve(res);
        else res.end("idle");
      },
    },
    { keepAliveTimeout: 60_000 },
  );
  const idle = new Client(port, c);
  idle.send(GET("/i"));
  assert.equal((await idle.response()).headers.connection, "keep-alive");
  const b = new Client(port, c);
  b.send(GET("/busy"));
  const res = await busy.promise;

  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  await idle.closed;
  assert.equal(idle.pending.length, 0);
  const refused = await new Promise<string>((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? "?"));
    s.on("connect", () => {
      s.destroy();
      resolve("connected");
    });
  });
  assert.equal(refused, "ECONNREFUSED");

  res.end("busy done");
  const r = await b.response();
  assert.equal(r.body.toString(), "busy done");
  assert.equal(r.headers.connection, "close");
  await b.closed;
  await closed;
});

test("Upgrade: h2c is served as a plain request, and the connection goes on parsing after it", {
  timeout: 5000,
}, async (t) => {
  const c = cleanup(t);
  const upgrades: string[] = [];
  const { port } = await serve(c, {
    request(req: IncomingMessage, res: ServerResponse) {
      const body = bodyOf(req);
      if (body === null) res.end(`got ${req.url}`);
      else void readAll(body).then((b) => res.end(`got ${req.url} ${b}`));
    },
    upgrade(req: IncomingMessage, socket: import("node:net").Socket) {
      upgrades.push(req.url!);
      socket.destroy();
    },
  });
  const cl = new Client(port, c);
  const up = "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\n";
  cl.send(
    `GET /a HTTP/1.1\r\nHost: x\r\n${up}\r\n` +
      `POST /b HTTP/1.1\r\nHost: x\r\n${up}Content-Length: 3\r\n\r\nabc` +
      "GET /c HTTP/1.1\r\nHost: x\r\n\r\n",
  );
  const got: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await cl.response();
    assert.equal(r.status, 200);
    got.push(r.body.toString());
  }
  assert.deepEqual(got, ["got /a", "got /b abc", "got /c"]);
  assert.deepEqual(upgrades, []);
});
