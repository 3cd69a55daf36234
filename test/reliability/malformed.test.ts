/**
 * Bad input from clients over raw TCP: each malformed request gets the right 4xx or a closed
 * connection, never reaches a backend in a form the backend would read differently (no
 * smuggled second request, no request the client did not send), and a good request on
 * another connection succeeds while it happens.
 */
import * as assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type Backend, rawRequest, record, startBackend, startCli, startProxy } from "./helpers.ts";

const HEADERS_TIMEOUT = 1000;

interface Target {
  name: string;
  port: number;
  backend: Backend;
  close(): Promise<void>;
}

const targets: Record<string, Target> = {};

before(async () => {
  const b1 = await startBackend("api-1");
  const lib = await startProxy(
    { services: { api: { servers: [{ name: "api-1", url: b1.url }] } } },
    // the server's slowloris guard, shortened for the test
    { http: { headersTimeout: HEADERS_TIMEOUT, requestTimeout: 5000, connectionsCheckingInterval: 100 } },
  );
  targets.library = {
    name: "library",
    port: lib.port,
    backend: b1,
    close: async () => {
      await lib.close();
      await b1.close();
    },
  };
  const b2 = await startBackend("api-1");
  const cli = await startCli({
    // the server's slowloris guard (timeouts.client_header), shortened for the test
    timeouts: { client_header: `${HEADERS_TIMEOUT}ms` },
    services: { api: { servers: [{ name: "api-1", url: b2.url }] } },
  });
  targets.server = {
    name: "server",
    port: cli.port,
    backend: b2,
    close: async () => {
      await cli.stop("SIGKILL");
      await b2.close();
    },
  };
});

after(async () => {
  for (const t of Object.values(targets)) await t.close();
});

type Expect = { status: number[]; orClosed?: boolean };
interface Case {
  name: string;
  /** Marker path the request carries, so we can tell whether the backend saw it. */
  path: string;
  chunks: (string | Buffer | number)[];
  expect: Expect;
  /** The backend may see this request (with exactly this url) but never a different one. */
  mayReach?: boolean;
  wait?: number;
}

const H = "Host: api.test\r\n";
const big = (n: number) => `X-Big: ${"a".repeat(n)}\r\n`;
const smuggled = `GET /smuggled HTTP/1.1\r\n${H}\r\n`;

const corpus: Case[] = [
  { name: "request line is not HTTP", path: "", chunks: ["GARBAGE\r\n\r\n"], expect: { status: [400] } },
  {
    name: "unknown HTTP version",
    path: "/m-version",
    chunks: [`GET /m-version HTTP/9.9\r\n${H}\r\n`],
    expect: { status: [400, 505] },
  },
  {
    name: "space inside the request target",
    path: "/m-space",
    chunks: [`GET /m-space x HTTP/1.1\r\n${H}\r\n`],
    expect: { status: [400] },
  },
  {
    name: "control character in the request target",
    path: "/m-ctl",
    chunks: [`GET /m-ctl\x01x HTTP/1.1\r\n${H}\r\n`],
    expect: { status: [400] },
  },
  {
    name: "invalid header name (space)",
    path: "/m-hname",
    chunks: [`GET /m-hname HTTP/1.1\r\n${H}Bad Name: x\r\n\r\n`],
    expect: { status: [400] },
  },
  {
    name: "whitespace before the colon (Content-Length : 5)",
    path: "/m-wscolon",
    chunks: [`POST /m-wscolon HTTP/1.1\r\n${H}Content-Length : 5\r\n\r\nhello`],
    expect: { status: [400] },
  },
  {
    name: "NUL in a header value",
    path: "/m-nul",
    chunks: [`GET /m-nul HTTP/1.1\r\n${H}X-A: a\x00b\r\n\r\n`],
    expect: { status: [400] },
  },
  {
    name: "bare CR in a header value",
    path: "/m-cr",
    chunks: [`GET /m-cr HTTP/1.1\r\n${H}X-A: a\rX-B: b\r\n\r\n`],
    expect: { status: [400] },
  },
  {
    name: "obsolete line folding",
    path: "/m-fold",
    chunks: [`GET /m-fold HTTP/1.1\r\n${H}X-A: a\r\n b\r\n\r\n`],
    expect: { status: [400] },
  },
  {
    name: "header block over the limit (20 KiB)",
    path: "/m-big",
    chunks: [`GET /m-big HTTP/1.1\r\n${H}${big(20 * 1024)}\r\n`],
    expect: { status: [431] },
  },
  {
    name: "request target over the limit (20 KiB)",
    path: "/m-longurl",
    chunks: [`GET /m-longurl${"a".repeat(20 * 1024)} HTTP/1.1\r\n${H}\r\n`],
    expect: { status: [414, 431, 400] },
  },
  {
    name: "Content-Length with Transfer-Encoding (CL.TE smuggling)",
    path: "/m-clte",
    chunks: [
      `POST /m-clte HTTP/1.1\r\n${H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`,
    ],
    expect: { status: [400] },
  },
  {
    name: "Transfer-Encoding with Content-Length (TE.CL smuggling)",
    path: "/m-tecl",
    chunks: [
      `POST /m-tecl HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 60\r\n\r\n0\r\n\r\n${smuggled}`,
    ],
    expect: { status: [400] },
  },
  {
    name: "two differing Content-Lengths",
    path: "/m-2cl",
    chunks: [`POST /m-2cl HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`],
    expect: { status: [400] },
  },
  {
    name: "Content-Length list (5, 6)",
    path: "/m-cllist",
    chunks: [`POST /m-cllist HTTP/1.1\r\n${H}Content-Length: 5, 6\r\n\r\nhello!`],
    expect: { status: [400] },
  },
  {
    name: "non-numeric Content-Length (+5)",
    path: "/m-clplus",
    chunks: [`POST /m-clplus HTTP/1.1\r\n${H}Content-Length: +5\r\n\r\nhello`],
    expect: { status: [400] },
  },
  {
    name: "Transfer-Encoding not ending in chunked",
    path: "/m-teid",
    chunks: [`POST /m-teid HTTP/1.1\r\n${H}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`],
    expect: { status: [400, 501] },
  },
  {
    name: "obfuscated Transfer-Encoding (xchunked)",
    path: "/m-tex",
    chunks: [`POST /m-tex HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${smuggled}`],
    expect: { status: [400, 501] },
  },
  {
    name: "bad chunk size (zz)",
    path: "/m-chunk",
    chunks: [`POST /m-chunk HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`],
    expect: { status: [400], orClosed: true },
    mayReach: true,
  },
  {
    name: "chunk size overflow (2^72)",
    path: "/m-chunkover",
    chunks: [
      `POST /m-chunkover HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n`,
    ],
    expect: { status: [400], orClosed: true },
    mayReach: true,
  },
  {
    name: "chunk shorter than its size, then a request",
    path: "/m-chunkshort",
    chunks: [
      `POST /m-chunkshort HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n30\r\nabc\r\n0\r\n\r\n${smuggled}`,
    ],
    expect: { status: [400], orClosed: true },
    mayReach: true,
  },
  {
    name: "absolute-form URL naming another host",
    path: "/m-abs",
    chunks: [`GET http://evil.example/m-abs HTTP/1.1\r\n${H}\r\n`],
    expect: { status: [400, 404] },
  },
  {
    name: "two Host headers",
    path: "/m-2host",
    chunks: [`GET /m-2host HTTP/1.1\r\n${H}Host: evil.example\r\n\r\n`],
    expect: { status: [400] },
  },
  {
    name: "WebSocket upgrade with two Host headers",
    path: "/m-ws2host",
    chunks: [
      `GET /m-ws2host HTTP/1.1\r\n${H}Host: evil.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
    ],
    expect: { status: [400] },
  },
  {
    name: "WebSocket upgrade with an absolute-form URL to another host",
    path: "/m-wsabs",
    chunks: [
      `GET http://evil.example/m-wsabs HTTP/1.1\r\n${H}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
    ],
    expect: { status: [400, 404] },
  },
  {
    name: "no Host in HTTP/1.1",
    path: "/m-nohost",
    chunks: ["GET /m-nohost HTTP/1.1\r\n\r\n"],
    expect: { status: [400] },
  },
  {
    name: "Host that names no service",
    path: "/m-nosvc",
    chunks: ["GET /m-nosvc HTTP/1.1\r\nHost: nothing.example\r\n\r\n"],
    expect: { status: [404] },
  },
  {
    name: "slowloris: headers trickled past the headers timeout",
    path: "/m-slow",
    chunks: (() => {
      const out: (string | number)[] = [];
      for (const ch of `GET /m-slow HTTP/1.1\r\n${H}X-Slow: ${"s".repeat(40)}`) out.push(ch, 50);
      return out;
    })(),
    expect: { status: [408], orClosed: true },
    wait: 3000,
  },
];

for (const targetName of ["library", "server"]) {
  describe(`malformed requests (${targetName})`, () => {
    for (const c of corpus) {
      test(c.name, { timeout: 90_000 }, async () => {
        const target = targets[targetName];
        const wait = c.wait ?? 1500;
        const { backend, port } = target;
        const seenBefore = backend.received.length;
        const [r, good] = await Promise.all([
          rawRequest(port, c.chunks, wait),
          // a good request on another connection, sent while the bad one is in progress
          rawRequest(port, [`GET /good HTTP/1.1\r\n${H}Connection: close\r\n\r\n`], 3000),
        ]);
        const outcome = r.status !== undefined ? String(r.status) : r.closed ? "closed" : "no answer";
        const expected = c.expect.status.join("/") + (c.expect.orClosed ? " or closed" : "");
        const ok =
          (r.status !== undefined && c.expect.status.includes(r.status)) ||
          (c.expect.orClosed === true && r.status === undefined && r.closed);
        record({
          suite: "malformed",
          target: targetName,
          scenario: c.name,
          requests: 1,
          outcome,
          expected,
          ok,
        });
        assert.equal(good.status, 200, "a good request on another connection succeeds meanwhile");
        assert.ok(
          ok,
          `${c.name}: got ${outcome} (${JSON.stringify(r.data.slice(0, 160))}), expected ${expected}`,
        );
        const seen = backend.received
          .slice(seenBefore)
          .filter((x) => x.url !== "/good" && x.method !== "HEAD");
        if (c.path !== "" && c.mayReach) {
          // the backend may have started reading it, but never as a complete request, and never
          // as anything else
          for (const x of seen) {
            assert.equal(
              x.url,
              c.path,
              `the backend saw a request the client did not send: ${x.method} ${x.url}`,
            );
            assert.equal(x.complete, false, "a rejected body must not reach the backend as complete");
          }
        } else {
          assert.deepEqual(
            seen.map((x) => `${x.method} ${x.url}`),
            [],
            "a rejected request must not reach the backend",
          );
        }
      });
    }

    test("the backend never saw a smuggled request, and the server still serves", {
      timeout: 10_000,
    }, async () => {
      const { backend, port } = targets[targetName];
      assert.deepEqual(
        backend.received.filter((x) => x.url.includes("smuggled")).map((x) => x.url),
        [],
      );
      const r = await rawRequest(port, [`GET /after HTTP/1.1\r\n${H}Connection: close\r\n\r\n`], 3000);
      assert.equal(r.status, 200);
    });
  });
}
