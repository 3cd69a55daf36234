/**
 * Issues 12 and 17, end to end through `switchyard serve`, on both HTTP/1 paths: trailer fields are
 * relayed with their own message only (those RFC 9110 §6.5.1 forbids in a trailer dropped). A
 * backend's trailers must not become headers of the next response on the pooled upstream
 * connection (another client's), and a client's request trailers must not rewrite the next request
 * it pipelines. Raw `net` on both sides, so the exact bytes are sent and seen.
 */
import * as assert from "node:assert/strict";
import * as net from "node:net";
import { after, before, describe, test } from "node:test";
import { field, Wire, type WireMessage } from "../support/h1wire.ts";
import { type Running, splitAddress, startSwitchyard, tempDir } from "../support/switchyard.ts";

interface Seen {
  conn: number;
  req: WireMessage;
}

const TRAILERS =
  "Set-Cookie: session=attacker\r\nX-Checksum: abc\r\nLocation: https://evil.example/\r\nHost: evil.example\r\n";

/** A backend on raw TCP: `/trail` answers chunked with trailers, `/trail-cl` adds a Content-Length trailer. */
async function rawBackend(): Promise<{ port: number; seen: Seen[]; stop(): Promise<void> }> {
  const seen: Seen[] = [];
  const sockets = new Set<net.Socket>();
  let conns = 0;
  const server = net.createServer(async (socket) => {
    const conn = ++conns;
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    const wire = new Wire(socket);
    try {
      for (;;) {
        const req = await wire.read("request");
        if (req === null) break;
        seen.push({ conn, req });
        if (req.target === "/trail") {
          socket.write(
            `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Conn: ${conn}\r\n\r\n5\r\ntrail\r\n0\r\n${TRAILERS}\r\n`,
          );
        } else if (req.target === "/trail-cl") {
          socket.write(
            `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Conn: ${conn}\r\n\r\n5\r\ntrail\r\n0\r\n${TRAILERS}Content-Length: 99\r\n\r\n`,
          );
        } else if (req.target === "/h2c") {
          // a backend that switches to h2c whatever it was asked: never tunnelled
          socket.write("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n");
          socket.end(Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
          break;
        } else socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Conn: ${conn}\r\n\r\nplain`);
      }
    } catch {
      socket.destroy();
    }
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  return {
    port: (server.address() as net.AddressInfo).port,
    seen,
    stop: () =>
      new Promise<void>((ok) => {
        for (const s of sockets) s.destroy();
        server.close(() => ok());
      }),
  };
}

for (const path of ["native", "fallback"])
  describe(`trailers end to end (${path})`, { timeout: 60_000 }, () => {
    const tmp = tempDir();
    let backend: Awaited<ReturnType<typeof rawBackend>>;
    let sy: Running;
    let host: string;
    let port: number;

    before(async () => {
      backend = await rawBackend();
      const file = tmp.write(
        "switchyard.yaml",
        "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nservices:\n  trail:\n    hosts: [trail.test]\n    healthcheck: { disable: true }\n" +
          `    servers:\n      - { name: raw, url: "http://127.0.0.1:${backend.port}" }\n`,
      );
      sy = await startSwitchyard(["serve", "-c", file], { env: { SWITCHYARD_HTTP1: path } });
      [host, port] = splitAddress(sy.proxy[0]);
    });

    after(async () => {
      const exit = await sy?.stop();
      await backend?.stop();
      tmp.remove();
      assert.equal(exit?.code, 0);
    });

    /** Writes `bytes` on a new client connection and reads `n` responses; the wire stays open. */
    async function exchange(bytes: string, n = 1): Promise<{ wire: Wire; responses: WireMessage[] }> {
      const socket = net.connect(port, host);
      const wire = new Wire(socket);
      socket.write(bytes);
      const responses: WireMessage[] = [];
      for (let i = 0; i < n; i++) {
        const r = await wire.read("response");
        assert.ok(r, `response ${i + 1} of ${n}`);
        responses.push(r);
      }
      return { wire, responses };
    }

    const GET = (path: string) => `GET ${path} HTTP/1.1\r\nHost: trail.test\r\n\r\n`;
    const LEAKED = ["set-cookie", "location", "content-length"];

    test("a backend's trailers never become headers of the next response on the pooled connection", async () => {
      const got: WireMessage[] = [];
      // each from a new client connection: the upstream connection is what they share
      for (const path of ["/plain", "/trail", "/plain", "/plain"]) {
        const { wire, responses } = await exchange(GET(path));
        got.push(responses[0]);
        wire.socket.destroy();
      }
      assert.deepEqual(
        got.map((r) => [r.status, r.body.toString()]),
        [
          [200, "plain"],
          [200, "trail"],
          [200, "plain"],
          [200, "plain"],
        ],
      );
      // one upstream connection served all four: the path of the leak was taken
      assert.deepEqual(
        got.map((r) => field(r.headers, "x-conn")),
        Array(4).fill(got[0] && field(got[0].headers, "x-conn")),
      );
      // the chunked answer reaches the client with its trailers, less those a trailer may not carry
      assert.equal(got[1].framing, "chunked");
      assert.deepEqual(got[1].trailers, [["X-Checksum", "abc"]]);
      for (const r of got) {
        for (const name of ["set-cookie", "location"]) assert.equal(field(r.headers, name), undefined, name);
      }
      for (const r of [got[2], got[3]]) {
        assert.deepEqual(
          r.headers.map(([k]) => k.toLowerCase()).filter((k) => LEAKED.includes(k)),
          ["content-length"],
        );
        assert.equal(field(r.headers, "content-length"), "5");
      }
    });

    test("a Content-Length trailer is a broken response: 502 or cut off, and the next client gets a clean one", async () => {
      const { wire } = await exchange(GET("/trail-cl"), 0);
      // the bad trailer arrives with the whole answer: a head not yet written becomes a 502 (native
      // front); one already under way is cut — never a complete 200
      const r0 = await wire.read("response").then(
        (m) => m,
        (e: Error) => e,
      );
      assert.ok(
        r0 === null || r0 instanceof Error || r0.status === 502,
        `no complete 200: ${JSON.stringify(r0)}`,
      );
      const seenEvil = wire.pending.toString("latin1");
      assert.doesNotMatch(seenEvil, /attacker|evil\.example|Content-Length: 99/i);
      const before = backend.seen.length;
      const { wire: w2, responses } = await exchange(GET("/plain"));
      w2.socket.destroy();
      const r = responses[0];
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), "plain");
      assert.equal(field(r.headers, "set-cookie"), undefined);
      assert.equal(field(r.headers, "location"), undefined);
      assert.equal(field(r.headers, "content-length"), "5");
      // the broken connection was not reused
      assert.notEqual(backend.seen[before].conn, backend.seen[before - 1].conn);
    });

    test("Upgrade: h2c is not forwarded, and a backend's 101 is not tunnelled: 502", async () => {
      const from = backend.seen.length;
      const { wire, responses } = await exchange(
        "GET /h2c HTTP/1.1\r\nHost: trail.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n" +
          "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
      );
      wire.socket.destroy();
      assert.equal(responses[0].status, 502);
      const seen = backend.seen[from].req;
      assert.equal(field(seen.headers, "upgrade"), undefined);
      assert.equal(field(seen.headers, "http2-settings"), undefined);
    });

    test("a client's request trailers reach the backend with their request only, never the next one", async () => {
      const from = backend.seen.length;
      const post =
        "POST /one HTTP/1.1\r\nHost: trail.test\r\nTransfer-Encoding: chunked\r\n\r\n" +
        "3\r\nabc\r\n0\r\nX-Leak: 1\r\nHost: evil.example\r\nSet-Cookie: a=b\r\n\r\n";
      const { wire, responses } = await exchange(post + GET("/two") + GET("/three"), 3);
      wire.socket.destroy();
      assert.deepEqual(
        responses.map((r) => r.status),
        [200, 200, 200],
      );
      const seen = backend.seen.slice(from).map((s) => s.req);
      assert.deepEqual(
        seen.map((r) => [r.method, r.target, field(r.headers, "host"), r.body.toString()]),
        [
          ["POST", "/one", "trail.test", "abc"],
          ["GET", "/two", "trail.test", ""],
          ["GET", "/three", "trail.test", ""],
        ],
      );
      // relayed with the POST, less the Host and Set-Cookie a trailer may not carry
      assert.deepEqual(seen[0].trailers, [["X-Leak", "1"]]);
      for (const r of seen) {
        if (r !== seen[0]) assert.deepEqual(r.trailers, []);
        assert.equal(field(r.headers, "x-leak"), undefined);
        assert.equal(r.headers.filter(([k]) => k.toLowerCase() === "host").length, 1);
        assert.equal(field(r.headers, "set-cookie"), undefined);
      }
    });
  });
