/**
 * Differential test of the HTTP/1 paths (issue 12): seeded sequences of messages over one client
 * connection — bodies by length and chunked, trailers, 1xx, 204/304, HEAD, pipelining, keep-alive
 * and close, every write split at random byte boundaries — are sent through `switchyard serve` and,
 * as the reference, straight to the same backend through node:http. What the backend receives and
 * what the client receives must be the same, message by message, apart from what the proxy changes
 * by SPEC ("Proxying (server)", "Backend TLS, protocols and the edge"): hop-by-hop headers, the
 * forwarded headers, and trailer fields a trailer may not carry (RFC 9110 §6.5.1: Set-Cookie,
 * Location, ... dropped). 1xx interim responses are relayed as they came; trailers are relayed with
 * their own message, both ways, never carried over.
 *
 * DIFF_SEQUENCES=N runs N sequences (default 1000); SEED=S reproduces a run (the seed is printed
 * first and in every failure); DIFF_ONLY=I runs only sequence I of that seed.
 */
import * as assert from "node:assert/strict";
import * as http from "node:http";
import * as net from "node:net";
import { after, before, test } from "node:test";
import { relayableTrailers } from "../../src/http1/trailers.ts";
import { type CliProcess, listening, spawnCli } from "../support/cli.ts";
import { field, Wire, type WireMessage } from "../support/h1wire.ts";
import { tempDir } from "../support/switchyard.ts";

const SEQUENCES = Number(process.env.DIFF_SEQUENCES ?? 1000);
const SEED = process.env.SEED === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(process.env.SEED);
const ONLY = process.env.DIFF_ONLY === undefined ? undefined : Number(process.env.DIFF_ONLY);
/** Sequences in flight at once: they share the proxy's upstream connections, as clients do. */
const PARALLEL = 4;
const HOST = "diff.test";
const DATE = "Sat, 05 Dec 2026 04:00:00 GMT";

// ---- the generator ---------------------------------------------------------------------------

type Rng = () => number;
/** mulberry32: small, fast, good enough to spread cases. */
function rng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const int = (r: Rng, n: number): number => Math.floor(r() * n);
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[int(r, xs.length)];
const chance = (r: Rng, p: number): boolean => r() < p;

type Framing = "none" | "length" | "chunked" | "close";
interface Body {
  bytes: Buffer;
  /** Sizes of the chunks when chunked. */
  chunks: number[];
  trailers: [string, string][];
}
interface ReqSpec {
  method: string;
  path: string;
  headers: [string, string][];
  framing: "none" | "length" | "chunked";
  body: Body;
  close: boolean;
}
interface ResSpec {
  interim: number[];
  status: number;
  reason: string;
  headers: [string, string][];
  framing: Framing;
  body: Body;
  /** Connection: close, and the backend closes after the answer. */
  close: boolean;
}
interface Sequence {
  index: number;
  pipelined: boolean;
  messages: { req: ReqSpec; res: ResSpec }[];
  /** Where to cut each write (fractions, consumed in order). */
  cuts: Rng;
}

function bytes(r: Rng, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = int(r, 256);
  return b;
}

const TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-";
function token(r: Rng, n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += TOKEN_CHARS[int(r, TOKEN_CHARS.length)];
  return s;
}

function fields(r: Rng, prefix: string, max: number): [string, string][] {
  const out: [string, string][] = [];
  const n = int(r, max + 1);
  for (let i = 0; i < n; i++) out.push([`${prefix}-${token(r, 1 + int(r, 6))}`, token(r, int(r, 20))]);
  return out;
}

function body(r: Rng, chunked: boolean, trailerPrefix: string): Body {
  const size = pick(r, [0, 1, 5, 100, 1000, 5000, int(r, 70_000)]);
  const b = bytes(r, size);
  const chunks: number[] = [];
  if (chunked) {
    let left = size;
    while (left > 0) {
      const c = Math.min(left, 1 + int(r, pick(r, [3, 100, 4000, 40_000])));
      chunks.push(c);
      left -= c;
    }
  }
  const trailers: [string, string][] =
    chunked && chance(r, 0.6)
      ? [
          ...fields(r, trailerPrefix, 3),
          ...(chance(r, 0.5) ? ([["Set-Cookie", `t=${token(r, 8)}`]] as [string, string][]) : []),
          ...(chance(r, 0.3) ? ([["Location", "https://evil.example/"]] as [string, string][]) : []),
        ]
      : [];
  return { bytes: b, chunks, trailers };
}

const NO_BODY: Body = { bytes: Buffer.alloc(0), chunks: [], trailers: [] };

function sequence(seed: number, index: number): Sequence {
  const r = rng(seed ^ Math.imul(index + 1, 0x9e3779b1));
  const n = 1 + int(r, 6);
  const messages: Sequence["messages"] = [];
  for (let i = 0; i < n; i++) {
    const method = pick(r, ["GET", "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]);
    const withBody = method === "POST" || method === "PUT";
    const reqFraming = withBody ? pick(r, ["length", "chunked"] as const) : "none";
    const req: ReqSpec = {
      method,
      path: `/${token(r, 1 + int(r, 8))}${chance(r, 0.3) ? `?q=${token(r, 5)}` : ""}`,
      headers: fields(r, "X-Req", 4),
      framing: reqFraming,
      body: withBody ? body(r, reqFraming === "chunked", "X-Req-Trailer") : NO_BODY,
      close: i === n - 1 && chance(r, 0.2),
    };
    const status = pick(r, [200, 200, 200, 201, 204, 304, 404, 500]);
    const bodiless = status === 204 || status === 304;
    let framing: Framing = bodiless
      ? "none"
      : pick(r, ["length", "length", "chunked", "chunked", "close"] as const);
    if (method === "HEAD" && framing === "close") framing = "length";
    const res: ResSpec = {
      interim: chance(r, 0.15) ? [pick(r, [102, 103])] : [],
      status,
      reason: pick(r, ["OK", "Fine", "Whatever It Is"]),
      headers: fields(r, "X-Res", 4),
      framing,
      body: bodiless ? NO_BODY : body(r, framing === "chunked", "X-Res-Trailer"),
      close: framing === "close" || chance(r, 0.1),
    };
    messages.push({ req, res });
  }
  return { index, pipelined: chance(r, 0.4), messages, cuts: rng(int(r, 2 ** 31)) };
}

// ---- the backend -----------------------------------------------------------------------------

interface Received {
  msg: WireMessage;
}
/** What the backend got, by the request's x-diff-id; the response spec it answers with, by id. */
const received = new Map<string, Received>();
const answers = new Map<string, { res: ResSpec; seed: number }>();

function responseBytes(res: ResSpec, head: boolean): Buffer {
  const parts: Buffer[] = [];
  for (const s of res.interim) parts.push(Buffer.from(`HTTP/1.1 ${s} Interim\r\nX-Interim: ${s}\r\n\r\n`));
  let h = `HTTP/1.1 ${res.status} ${res.reason}\r\nDate: ${DATE}\r\n`;
  for (const [k, v] of res.headers) h += `${k}: ${v}\r\n`;
  const b = res.body;
  if (res.framing === "length") h += `Content-Length: ${b.bytes.length}\r\n`;
  else if (res.framing === "chunked") h += "Transfer-Encoding: chunked\r\n";
  if (res.close) h += "Connection: close\r\n";
  parts.push(Buffer.from(`${h}\r\n`, "latin1"));
  if (!head) parts.push(encodeBody(res.framing, b));
  return Buffer.concat(parts);
}

function encodeBody(framing: Framing, b: Body): Buffer {
  if (framing !== "chunked") return b.bytes;
  const parts: Buffer[] = [];
  let off = 0;
  for (const c of b.chunks) {
    parts.push(Buffer.from(`${c.toString(16)}\r\n`), b.bytes.subarray(off, off + c), Buffer.from("\r\n"));
    off += c;
  }
  let end = "0\r\n";
  for (const [k, v] of b.trailers) end += `${k}: ${v}\r\n`;
  parts.push(Buffer.from(`${end}\r\n`, "latin1"));
  return Buffer.concat(parts);
}

/** Writes `data` in 1–4 pieces cut where `cuts` says, a turn of the event loop apart. */
async function writeSplit(socket: net.Socket, data: Buffer, cuts: Rng): Promise<void> {
  const points = new Set<number>();
  const n = int(cuts, 4);
  for (let i = 0; i < n && data.length > 1; i++) points.add(1 + int(cuts, data.length - 1));
  let off = 0;
  for (const p of [...points].sort((a, b) => a - b)) {
    socket.write(data.subarray(off, p));
    off = p;
    await new Promise((r) => setImmediate(r));
    if (socket.destroyed) return;
  }
  socket.write(data.subarray(off));
}

async function startBackend(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ noDelay: true }, async (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    const wire = new Wire(socket);
    try {
      for (;;) {
        const msg = await wire.read("request");
        if (msg === null) break;
        const id = field(msg.headers, "x-diff-id") ?? "";
        received.set(id, { msg });
        const a = answers.get(id.slice(0, id.lastIndexOf(".")));
        if (a === undefined) {
          socket.end("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
          break;
        }
        // its own cuts per path: the two paths' writes interleave
        const cuts = rng(a.seed ^ (id.endsWith(".sy") ? 0x5bd1e995 : 0));
        await writeSplit(socket, responseBytes(a.res, msg.method === "HEAD"), cuts);
        if (a.res.close) {
          socket.end();
          break;
        }
      }
    } catch {
      socket.destroy();
    }
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((ok) => {
        for (const s of sockets) s.destroy();
        server.close(() => ok());
      }),
  };
}

// ---- the two clients ---------------------------------------------------------------------------

/** What a client got for one request. */
interface Got {
  status: number;
  reason: string;
  headers: [string, string][];
  body: Buffer;
  trailers: [string, string][];
  interim: number[];
}

function requestHeaders(seq: Sequence, i: number, path: "ref" | "sy"): [string, string][] {
  const { req } = seq.messages[i];
  const h: [string, string][] = [["Host", HOST], ["X-Diff-Id", `${seq.index}.${i}.${path}`], ...req.headers];
  if (req.framing === "length") h.push(["Content-Length", String(req.body.bytes.length)]);
  else if (req.framing === "chunked") h.push(["Transfer-Encoding", "chunked"]);
  if (req.close) h.push(["Connection", "close"]);
  return h;
}

/** The reference: node:http straight to the backend, one request at a time on a keep-alive agent. */
async function viaNodeHttp(seq: Sequence, port: number): Promise<Got[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const out: Got[] = [];
  try {
    for (let i = 0; i < seq.messages.length; i++) {
      const { req } = seq.messages[i];
      out.push(
        await new Promise<Got>((resolve, reject) => {
          const interim: number[] = [];
          const cr = http.request(
            {
              host: "127.0.0.1",
              port,
              method: req.method,
              path: req.path,
              agent,
              headers: requestHeaders(seq, i, "ref").flat(),
              setHost: false,
            },
            (res) => {
              const parts: Buffer[] = [];
              res.on("data", (d: Buffer) => parts.push(d));
              res.on("end", () => {
                const raw = res.rawHeaders;
                const headers: [string, string][] = [];
                for (let k = 0; k < raw.length; k += 2) headers.push([raw[k], raw[k + 1]]);
                const trailers: [string, string][] = [];
                for (let k = 0; k < res.rawTrailers.length; k += 2)
                  trailers.push([res.rawTrailers[k], res.rawTrailers[k + 1]]);
                resolve({
                  status: res.statusCode!,
                  reason: res.statusMessage!,
                  headers,
                  body: Buffer.concat(parts),
                  trailers,
                  interim,
                });
              });
              res.on("error", reject);
            },
          );
          cr.on("information", (info: { statusCode: number }) => interim.push(info.statusCode));
          cr.on("error", reject);
          if (req.framing === "chunked") {
            let off = 0;
            for (const c of req.body.chunks) {
              cr.write(req.body.bytes.subarray(off, off + c));
              off += c;
            }
            if (req.body.trailers.length > 0) cr.addTrailers(req.body.trailers);
            cr.end();
          } else cr.end(req.framing === "length" ? req.body.bytes : undefined);
        }),
      );
    }
  } finally {
    agent.destroy();
  }
  return out;
}

function requestBytes(seq: Sequence, i: number): Buffer {
  const { req } = seq.messages[i];
  let head = `${req.method} ${req.path} HTTP/1.1\r\n`;
  for (const [k, v] of requestHeaders(seq, i, "sy")) head += `${k}: ${v}\r\n`;
  return Buffer.concat([
    Buffer.from(`${head}\r\n`, "latin1"),
    encodeBody(req.framing === "chunked" ? "chunked" : "length", req.body),
  ]);
}

/** Through switchyard: one raw connection, pipelined or one at a time, writes cut at random. */
async function viaSwitchyard(seq: Sequence, host: string, port: number): Promise<Got[]> {
  const socket = net.connect({ port, host, noDelay: true });
  const wire = new Wire(socket);
  const out: Got[] = [];
  const n = seq.messages.length;
  const read = async (i: number): Promise<void> => {
    const interim: number[] = [];
    for (;;) {
      const m = await wire.read("response", { noBody: seq.messages[i].req.method === "HEAD" });
      if (m === null) throw new Error(`the connection closed before response ${i}`);
      if (m.status < 200) {
        interim.push(m.status);
        continue;
      }
      out.push({
        status: m.status,
        reason: m.reason,
        headers: m.headers,
        body: m.body,
        trailers: m.trailers,
        interim,
      });
      return;
    }
  };
  try {
    if (seq.pipelined) {
      await writeSplit(socket, Buffer.concat(seq.messages.map((_, i) => requestBytes(seq, i))), seq.cuts);
      for (let i = 0; i < n; i++) await read(i);
    } else {
      for (let i = 0; i < n; i++) {
        await writeSplit(socket, requestBytes(seq, i), seq.cuts);
        await read(i);
      }
    }
    if (seq.messages[n - 1].req.close) {
      await wire.closed;
      assert.equal(wire.pending.length, 0, "nothing after the last response");
    }
  } finally {
    socket.destroy();
  }
  return out;
}

// ---- the comparison ----------------------------------------------------------------------------

const HOP = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "proxy-connection",
]);
const ADDED_UPSTREAM = new Set([
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-forwarded-host",
  "x-real-ip",
  "x-diff-id",
]);

function comparable(h: readonly [string, string][], drop: ReadonlySet<string>): [string, string][] {
  return h
    .map(([k, v]): [string, string] => [k.toLowerCase(), v])
    .filter(([k]) => !HOP.has(k) && !drop.has(k));
}

const FALLBACK = process.env.SWITCHYARD_HTTP1 === "fallback";

/** The trailer fields switchyard relays of those sent. */
function relayed(t: readonly [string, string][]): [string, string][] {
  const list = relayableTrailers(t.flat()) ?? [];
  const out: [string, string][] = [];
  for (let i = 0; i < list.length; i += 2) out.push([list[i], list[i + 1]]);
  return out;
}

function describeSeq(seq: Sequence): string {
  return JSON.stringify({
    pipelined: seq.pipelined,
    messages: seq.messages.map(({ req, res }) => ({
      req: `${req.method} ${req.path} ${req.framing}:${req.body.bytes.length}${req.body.trailers.length ? "+trailers" : ""}${req.close ? " close" : ""}`,
      res: `${res.interim.join(",")} ${res.status} ${res.framing}:${res.body.bytes.length}${res.body.trailers.length ? "+trailers" : ""}${res.close ? " close" : ""}`,
    })),
  });
}

function check(seq: Sequence, ref: Got[], sy: Got[]): void {
  const where = (i: number) => `SEED=${SEED} DIFF_ONLY=${seq.index} message ${i}: ${describeSeq(seq)}`;
  assert.equal(sy.length, ref.length, where(-1));
  for (let i = 0; i < ref.length; i++) {
    const { req, res } = seq.messages[i];
    // what the backend received
    const a = received.get(`${seq.index}.${i}.ref`)?.msg;
    const b = received.get(`${seq.index}.${i}.sy`)?.msg;
    assert.ok(a && b, `backend saw both requests; ${where(i)}`);
    assert.deepEqual(
      [b.method, b.target, comparable(b.headers, ADDED_UPSTREAM), b.framing],
      [a.method, a.target, comparable(a.headers, ADDED_UPSTREAM), a.framing],
      `request head; ${where(i)}`,
    );
    assert.ok(
      b.body.equals(a.body),
      `request body (${b.body.length} vs ${a.body.length} bytes); ${where(i)}`,
    );
    assert.ok(a.body.equals(req.body.bytes), `reference request body; ${where(i)}`);
    assert.deepEqual(a.trailers, req.body.trailers, `reference request trailers; ${where(i)}`);
    assert.deepEqual(b.trailers, relayed(a.trailers), `request trailers are relayed; ${where(i)}`);
    // what the client received
    const r = ref[i];
    const s = sy[i];
    assert.deepEqual(
      [s.status, s.reason, comparable(s.headers, new Set())],
      [r.status, r.reason, comparable(r.headers, new Set())],
      `response head; ${where(i)}`,
    );
    assert.ok(
      s.body.equals(r.body),
      `response body (${s.body.length} vs ${r.body.length} bytes); ${where(i)}`,
    );
    const head = req.method === "HEAD" || res.status === 204 || res.status === 304;
    assert.ok(r.body.equals(head ? Buffer.alloc(0) : res.body.bytes), `reference response body; ${where(i)}`);
    assert.deepEqual(r.interim, res.interim, `reference 1xx; ${where(i)}`);
    // node:http (the fallback front) cannot put a 1xx ahead of a pipelined answer whose turn has
    // not come: there it may be missing, never misplaced
    if (!(FALLBACK && seq.pipelined && s.interim.length === 0))
      assert.deepEqual(s.interim, r.interim, `1xx are relayed; ${where(i)}`);
    assert.deepEqual(s.trailers, relayed(r.trailers), `response trailers are relayed; ${where(i)}`);
    assert.deepEqual(r.trailers, head ? [] : res.body.trailers, `reference response trailers; ${where(i)}`);
  }
}

// ---- the run -----------------------------------------------------------------------------------

let backend: Awaited<ReturnType<typeof startBackend>>;
let sy: CliProcess;
let syHost: string;
let syPort: number;
const tmp = tempDir("switchyard-diff-");

before(async () => {
  backend = await startBackend();
  const file = tmp.write(
    "switchyard.yaml",
    `listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nservices:\n  diff:\n    hosts: [${HOST}]\n    healthcheck: { disable: true }\n` +
      `    servers:\n      - { name: raw, url: "http://127.0.0.1:${backend.port}" }\n`,
  );
  sy = spawnCli(["serve", "-c", file]);
  const rec = await listening(sy, 45_000);
  const addr = (rec.proxy as string[])[0];
  const i = addr.lastIndexOf(":");
  syHost = addr.slice(0, i);
  syPort = Number(addr.slice(i + 1));
});

after(async () => {
  const exit = await sy?.stop();
  await backend?.close();
  tmp.remove();
  assert.equal(
    exit?.code,
    0,
    `switchyard exited with ${exit?.code}: ${sy?.stderr().slice(-3000)}\n${sy?.lines.slice(-20).join("\n")}`,
  );
});

test(`switchyard and node:http agree on ${ONLY === undefined ? SEQUENCES : 1} seeded sequences`, {
  timeout: 600_000,
}, async (t) => {
  t.diagnostic(`SEED=${SEED} DIFF_SEQUENCES=${SEQUENCES}`);
  const indices = ONLY === undefined ? Array.from({ length: SEQUENCES }, (_, i) => i) : [ONLY];
  let next = 0;
  let messages = 0;
  const runOne = async (index: number): Promise<void> => {
    const seq = sequence(SEED, index);
    for (const [i, { res }] of seq.messages.entries()) {
      answers.set(`${index}.${i}`, {
        res,
        seed: (SEED ^ Math.imul(index + 7, 0x27d4eb2d) ^ (i << 20)) >>> 0,
      });
    }
    const ref = await viaNodeHttp(seq, backend.port);
    let got: Got[];
    try {
      got = await viaSwitchyard(seq, syHost, syPort);
    } catch (err) {
      throw new Error(`SEED=${SEED} DIFF_ONLY=${index}: ${(err as Error).message}; ${describeSeq(seq)}`, {
        cause: err,
      });
    }
    check(seq, ref, got);
    messages += seq.messages.length;
    for (let i = 0; i < seq.messages.length; i++) {
      answers.delete(`${index}.${i}`);
      received.delete(`${index}.${i}.ref`);
      received.delete(`${index}.${i}.sy`);
    }
  };
  const worker = async (): Promise<void> => {
    while (next < indices.length) await runOne(indices[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, indices.length) }, worker));
  t.diagnostic(`${indices.length} sequences, ${messages} messages each way, all equal`);
});
