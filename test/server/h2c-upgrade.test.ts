/**
 * Issue 17 item 7, end to end through `switchyard serve`: `Upgrade: h2c` is dropped (the backend
 * never sees it, nothing is tunnelled) unless the service says `allow_h2c_upgrade: true`; then the
 * backend's 101 is tunnelled and HTTP/2 runs through it. The service's middlewares still judge the
 * upgrade request. Runs on both HTTP/1 fronts (`npm run test:fallback` runs it again on node:http).
 */
import * as assert from "node:assert/strict";
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { after, before, describe, test } from "node:test";
import { Cleanup, cleanupAfter, listen } from "../support/cleanup.ts";
import { get, type Running, splitAddress, startSwitchyard, tempDir } from "../support/switchyard.ts";
import { until } from "../support/until.ts";

const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
/** A client's HTTP2-Settings: SETTINGS_MAX_CONCURRENT_STREAMS 100, SETTINGS_INITIAL_WINDOW_SIZE 1 GiB, ENABLE_PUSH 0. */
const SETTINGS = "AAMAAABkAARAAAAAAAIAAAAA";
// bcrypt of "secret"
const HASH = "$2b$04$bMphtHk9sB8tFNb4nVcaZOE/8AzfpjkbejzH.ZgYBdfomCSJnqwtq";

interface H2cBackend {
  url: string;
  /** Every request head the HTTP/1.1 side saw (plain requests and upgrades). */
  heads: { method: string; url: string; headers: http.IncomingHttpHeaders; upgrade: boolean }[];
  /** Paths of the HTTP/2 requests served on upgraded connections. */
  h2Paths: string[];
  upgrades: number;
}

/**
 * An HTTP/1.1 backend that takes h2c: it answers `Upgrade: h2c` with 101 and then speaks HTTP/2 on
 * the socket (node:http2 given the socket); plain requests get "plain <path>".
 */
async function h2cBackend(c: Cleanup): Promise<H2cBackend> {
  const b: H2cBackend = { url: "", heads: [], h2Paths: [], upgrades: 0 };
  const h2 = http2.createServer((req, res) => {
    b.h2Paths.push(req.url);
    res.end(`h2 ${req.url}`);
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (s) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
  });
  const server = http.createServer((req, res) => {
    // switchyard's health checks (HEAD /) are not what these tests watch
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    b.heads.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, upgrade: false });
    res.end(`plain ${req.url}`);
  });
  server.on("upgrade", (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    b.heads.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, upgrade: true });
    if (!/h2c/i.test(req.headers.upgrade ?? "")) {
      socket.destroy();
      return;
    }
    b.upgrades++;
    socket.write("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n");
    if (head.length) socket.unshift(head);
    h2.emit("connection", socket);
  });
  const port = await listen(server, c);
  // before the server's close, which waits for them (upgraded sockets are no longer the server's)
  c.add(() => {
    for (const s of sessions) s.destroy();
  });
  b.url = `http://127.0.0.1:${port}`;
  return b;
}

/** Reads a response head off a raw socket; what came after it is put back. */
async function readHead(sock: net.Socket): Promise<{ status: number; head: string }> {
  let buf = Buffer.alloc(0);
  for (;;) {
    const end = buf.indexOf("\r\n\r\n");
    if (end >= 0) {
      const head = buf.subarray(0, end).toString("latin1");
      const rest = buf.subarray(end + 4);
      if (rest.length) sock.unshift(rest);
      return { status: Number(head.split(" ")[1]), head };
    }
    const chunk: Buffer | null = sock.read();
    if (chunk !== null) {
      buf = Buffer.concat([buf, chunk]);
      continue;
    }
    if (sock.readableEnded || sock.destroyed) throw new Error(`closed before a response head: ${buf}`);
    await Promise.race([once(sock, "readable"), once(sock, "close")]);
  }
}

/** Everything the peer sends until the connection closes (a reset included). */
async function untilClosed(sock: net.Socket): Promise<string> {
  let out = "";
  sock.setEncoding("latin1");
  sock.on("data", (d: string) => (out += d));
  // not events.once: it rejects on the 'error' of a reset
  if (!sock.closed) await new Promise((done) => sock.once("close", done));
  return out;
}

function upgradeRequest(host: string, path: string, extra = ""): string {
  return (
    `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade, HTTP2-Settings\r\n` +
    `Upgrade: h2c\r\nHTTP2-Settings: ${SETTINGS}\r\n${extra}\r\n`
  );
}

/** An HTTP/2 request on a session. */
async function h2Request(
  session: http2.ClientHttp2Session,
  path: string,
): Promise<{ status: number; body: string }> {
  const stream = session.request({ ":path": path });
  const [headers] = (await once(stream, "response")) as [http2.IncomingHttpHeaders];
  let body = "";
  stream.setEncoding("utf8");
  for await (const chunk of stream) body += chunk;
  return { status: Number(headers[":status"]), body };
}

/** An HTTP/2 request on an upgraded connection (the socket after the 101). */
async function h2Get(
  sock: net.Socket,
  authority: string,
  path: string,
): Promise<{ status: number; body: string }> {
  const session = http2.connect(`http://${authority}`, { createConnection: () => sock });
  session.on("error", () => {});
  try {
    return await h2Request(session, path);
  } finally {
    session.destroy();
  }
}

function connect(address: string, c: Cleanup): Promise<net.Socket> {
  const [host, port] = splitAddress(address);
  const sock = net.connect(port, host);
  sock.on("error", () => {});
  c.add(() => sock.destroy());
  return once(sock, "connect").then(() => sock);
}

describe("Upgrade: h2c through switchyard serve", () => {
  const suite = new Cleanup();
  let sy: Running;
  let open: H2cBackend;
  let closed: H2cBackend;
  let guarded: H2cBackend;
  let split: H2cBackend;
  let admin: H2cBackend;
  let file: string;
  let yaml: string;

  before(async () => {
    open = await h2cBackend(suite);
    closed = await h2cBackend(suite);
    guarded = await h2cBackend(suite);
    split = await h2cBackend(suite);
    admin = await h2cBackend(suite);
    const tmp = tempDir();
    suite.add(() => tmp.remove());
    yaml = `listen: 127.0.0.1:0
admin: 127.0.0.1:0
services:
  open:
    hosts: [open.test]
    allow_h2c_upgrade: true
    timeouts: { tunnel: 1s }
    servers: ["${open.url}"]
  closed:
    hosts: [closed.test]
    servers: ["${closed.url}"]
  guarded:
    hosts: [guarded.test]
    allow_h2c_upgrade: true
    middlewares:
      - basic_auth: { realm: g, users: { admin: "${HASH}" } }
    servers: ["${guarded.url}"]
  public:
    hosts: [split.test]
    paths: [/public/]
    servers: ["${split.url}"]
  private:
    hosts: [split.test]
    paths: [/admin/]
    middlewares:
      - allow: [10.0.0.0/8]
    servers: ["${admin.url}"]
`;
    file = tmp.write("s.yaml", yaml);
    sy = await startSwitchyard(["serve", "-c", file]);
    suite.add(() => sy.stop("SIGKILL"));
  });
  after(() => suite.run());

  test("default: the Upgrade and HTTP2-Settings never reach the backend; the request is served plainly", async (t) => {
    const c = cleanupAfter(t);
    const sock = await connect(sy.proxy[0], c);
    sock.write(upgradeRequest("closed.test", "/x"));
    const r = await readHead(sock);
    assert.equal(r.status, 200, r.head);
    assert.doesNotMatch(r.head, /upgrade/i);
    assert.equal(closed.heads.length, 1);
    const seen = closed.heads[0];
    assert.equal(seen.upgrade, false);
    assert.equal(seen.headers.upgrade, undefined);
    assert.equal(seen.headers["http2-settings"], undefined);
    assert.doesNotMatch(String(seen.headers.connection), /upgrade|http2-settings/i);
    assert.equal(closed.upgrades, 0);
  });

  test("allow_h2c_upgrade: the backend's 101 is tunnelled and HTTP/2 runs through it", async (t) => {
    const c = cleanupAfter(t);
    const sock = await connect(sy.proxy[0], c);
    sock.write(upgradeRequest("open.test", "/up"));
    const r = await readHead(sock);
    assert.equal(r.status, 101, r.head);
    assert.match(r.head, /\r\nupgrade: h2c/i);
    const seen = open.heads.at(-1)!;
    assert.equal(seen.upgrade, true);
    assert.equal(seen.headers.upgrade, "h2c");
    assert.equal(seen.headers["http2-settings"], SETTINGS);
    assert.match(String(seen.headers.connection), /upgrade/i);
    assert.match(String(seen.headers.connection), /http2-settings/i);
    assert.equal(seen.headers["x-forwarded-for"], "127.0.0.1");
    // HTTP/2 through the tunnel: a request the proxy never sees
    const session = http2.connect("http://open.test", { createConnection: () => sock });
    session.on("error", () => {});
    c.add(() => session.destroy());
    const reply = await h2Request(session, "/inside");
    assert.deepEqual(reply, { status: 200, body: "h2 /inside" });
    assert.deepEqual(open.h2Paths, ["/inside"]);
    // an upgraded connection: the server counts it in flight while it lasts, and the health JSON
    // shows the service's setting
    const health = async () => JSON.parse((await get(sy.admin!, "/api/health")).body).open;
    const svc = await health();
    assert.equal(svc.extra.config.allow_h2c_upgrade, true);
    assert.equal((Object.values(svc.extra.pool)[0] as { inflight: number }).inflight, 1);
    session.destroy();
    await until(
      async () => (Object.values((await health()).extra.pool)[0] as { inflight: number }).inflight === 0,
      5000,
      "the tunnel to leave the in-flight count",
    );
  });

  test("an opted-in tunnel closes after the service's timeouts.tunnel with no byte either way", async (t) => {
    const c = cleanupAfter(t);
    const sock = await connect(sy.proxy[0], c);
    sock.write(upgradeRequest("open.test", "/idle"));
    assert.equal((await readHead(sock)).status, 101);
    // timeouts.tunnel is 1s for this service; the socket must close on its own (bounded wait)
    const closedAt = once(sock, "close");
    sock.resume();
    await Promise.race([
      closedAt,
      new Promise((_, fail) => setTimeout(() => fail(new Error("tunnel not closed when idle")), 8000)),
    ]);
  });

  test("an opted-in service still runs its middlewares on the upgrade request", async (t) => {
    const c = cleanupAfter(t);
    const sock = await connect(sy.proxy[0], c);
    sock.write(upgradeRequest("guarded.test", "/"));
    const r = await readHead(sock);
    assert.equal(r.status, 401, r.head);
    assert.equal(guarded.heads.length, 0, "the backend never saw the refused upgrade");
    const ok = await connect(sy.proxy[0], c);
    ok.write(upgradeRequest("guarded.test", "/", `Authorization: Basic ${btoa("admin:secret")}\r\n`));
    assert.equal((await readHead(ok)).status, 101);
    assert.deepEqual(await h2Get(ok, "guarded.test", "/after-auth"), {
      status: 200,
      body: "h2 /after-auth",
    });
  });

  test("smuggling: behind paths and allow, a default service lets no tunnel through", async (t) => {
    const c = cleanupAfter(t);
    const sock = await connect(sy.proxy[0], c);
    // an h2c upgrade on the public path, then what an h2c client sends after a 101 (the HTTP/2
    // preface and a SETTINGS frame) on the same connection: read as HTTP/1 again, never tunnelled
    sock.write(upgradeRequest("split.test", "/public/x"));
    await until(() => split.heads.length === 1, 5000, "the plain request at the backend");
    // (ended: node:http's front would wait for the rest of a head until its header timeout)
    sock.end(Buffer.concat([H2_PREFACE, Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]));
    const answer = await untilClosed(sock);
    // (the native front answers 400 and closes; it used to recurse on these bytes until its stack
    // overflowed, which took the whole process down)
    assert.match(
      answer,
      /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nplain \/public\/x(HTTP\/1\.1 (400|505) [\s\S]*)?$/,
    );
    assert.doesNotMatch(answer, / 101 /);
    assert.equal(split.upgrades, 0);
    assert.deepEqual(split.h2Paths, []);
    assert.deepEqual(
      split.heads.map((h) => [h.url, h.upgrade, h.headers.upgrade]),
      [["/public/x", false, undefined]],
    );
    assert.equal(admin.heads.length, 0, "nothing reached the allow-guarded service");
    assert.deepEqual(admin.h2Paths, []);
    // and the straight way is still refused
    const direct = await connect(sy.proxy[0], c);
    direct.write(upgradeRequest("split.test", "/admin/secret"));
    assert.equal((await readHead(direct)).status, 403);
    assert.equal(admin.heads.length, 0);
  });

  test("hot reload: turning allow_h2c_upgrade off drops the next upgrade", async (t) => {
    const c = cleanupAfter(t);
    writeFileSync(file, yaml.replace("    allow_h2c_upgrade: true\n    timeouts: { tunnel: 1s }\n", ""));
    await sy.waitForLog(
      (r) => typeof r.msg === "string" && /allow_h2c_upgrade true→false/.test(r.msg),
      10_000,
      "the reload",
    );
    const before = open.upgrades;
    const sock = await connect(sy.proxy[0], c);
    sock.write(upgradeRequest("open.test", "/after-reload"));
    const r = await readHead(sock);
    assert.equal(r.status, 200, r.head);
    assert.equal(open.upgrades, before);
    assert.equal(open.heads.at(-1)?.headers.upgrade, undefined);
  });
});
