/**
 * The malformed-input corpus (raw request bytes and what each must get), shared by the reliability
 * test (test/reliability/malformed.test.ts: the library and `switchyard serve` on both HTTP/1 paths)
 * and the nginx comparison (test/reliability/nginx-corpus.ts, docs/reliability.md).
 */
export type Expect = { status: number[]; orClosed?: boolean };
/** Where the corpus runs: the library behind node:http, `switchyard serve` on each HTTP/1 path, nginx. */
export type TargetName = "library" | "server" | "fallback" | "nginx";
export interface Case {
  name: string;
  /** Marker path the request carries, so we can tell whether the backend saw it. */
  path: string;
  chunks: (string | Buffer | number)[];
  expect: Expect;
  /** What a target answers instead (the library's front is the user's node:http server). */
  expectBy?: Partial<Record<TargetName, Expect>>;
  /** The backend may see this request (with exactly this url) but never a different one. */
  mayReach?: boolean;
  /** The backend must see this request, complete, and (checked by the test) without these headers. */
  mustReachWithout?: string[];
  wait?: number;
}

export function expectationFor(c: Case, target: TargetName): Expect {
  return c.expectBy?.[target] ?? c.expect;
}

const H = "Host: api.test\r\n";
const big = (n: number) => `X-Big: ${"a".repeat(n)}\r\n`;
const smuggled = `GET /smuggled HTTP/1.1\r\n${H}\r\n`;

export const corpus: Case[] = [
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
    // the request line is what is too long (nginx: 414); node:http's front says 431
    expect: { status: [414] },
    expectBy: { library: { status: [431] } },
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
    expect: { status: [400] },
    // node:http's front (the library) cuts the connection when the answer is under way
    expectBy: { library: { status: [400], orClosed: true } },
    mayReach: true,
  },
  {
    name: "chunk size overflow (2^72)",
    path: "/m-chunkover",
    chunks: [
      `POST /m-chunkover HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n`,
    ],
    expect: { status: [400] },
    // node:http's front (the library) cuts the connection when the answer is under way
    expectBy: { library: { status: [400], orClosed: true } },
    mayReach: true,
  },
  {
    name: "chunk shorter than its size, then a request",
    path: "/m-chunkshort",
    chunks: [
      `POST /m-chunkshort HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n30\r\nabc\r\n0\r\n\r\n${smuggled}`,
    ],
    expect: { status: [400] },
    // node:http's front (the library) cuts the connection when the answer is under way
    expectBy: { library: { status: [400], orClosed: true } },
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
    name: "Host that is not a host[:port] (a/b@c)",
    path: "/m-hostpath",
    chunks: ["GET /m-hostpath HTTP/1.1\r\nHost: a/b@c\r\n\r\n"],
    expect: { status: [400] },
    // the test's own router (the library has none) finds no service for that Host
    expectBy: { library: { status: [400, 404] } },
  },
  {
    name: "Host that is a list (a, b)",
    path: "/m-hostlist",
    chunks: ["GET /m-hostlist HTTP/1.1\r\nHost: a, b\r\n\r\n"],
    expect: { status: [400] },
    // the test's own router (the library has none) finds no service for that Host
    expectBy: { library: { status: [400, 404] } },
  },
  {
    name: "empty Host",
    path: "/m-hostempty",
    chunks: ["GET /m-hostempty HTTP/1.1\r\nHost:\r\n\r\n"],
    expect: { status: [400] },
    // the test's own router (the library has none) finds no service for that Host
    expectBy: { library: { status: [400, 404] } },
  },
  {
    name: "Transfer-Encoding: gzip, chunked",
    path: "/m-tegzip",
    chunks: [
      `POST /m-tegzip HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    ],
    expect: { status: [501] },
  },
  {
    name: "bad chunk framing (no CRLF after the data)",
    path: "/m-chunkcrlf",
    chunks: [`POST /m-chunkcrlf HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n`],
    expect: { status: [400] },
    expectBy: { library: { status: [400], orClosed: true } },
    mayReach: true,
  },
  {
    name: "CONNECT",
    path: "",
    chunks: ["CONNECT api.test:443 HTTP/1.1\r\nHost: api.test:443\r\n\r\n"],
    expect: { status: [405] },
    // node:http without a 'connect' listener closes the connection
    expectBy: { library: { status: [], orClosed: true } },
  },
  {
    name: "HTTP/2.0 request line on HTTP/1",
    path: "/m-h2line",
    chunks: [`GET /m-h2line HTTP/2.0\r\n${H}\r\n`],
    expect: { status: [505] },
  },
  {
    name: "HTTP/0.9 request line (no version)",
    path: "/m-09",
    chunks: ["GET /m-09\r\n\r\n"],
    expect: { status: [400] },
    // the test's own router (the library has none) finds no service for that Host
    expectBy: { library: { status: [400, 404] } },
  },
  {
    name: "HTTP/0.9 version",
    path: "/m-09v",
    chunks: [`GET /m-09v HTTP/0.9\r\n${H}\r\n`],
    expect: { status: [400] },
  },
  {
    name: "Upgrade: h2c (h2c smuggling)",
    path: "/m-h2c",
    chunks: [
      `GET /m-h2c HTTP/1.1\r\n${H}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n`,
    ],
    // served as a plain request: the backend never sees the Upgrade (nor HTTP2-Settings); the
    // library, handed the socket by node:http's 'upgrade' event, refuses it
    expect: { status: [200] },
    expectBy: { library: { status: [400] } },
    mustReachWithout: ["upgrade", "http2-settings"],
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
