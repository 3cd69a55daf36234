/**
 * Misbehaving backends: each request gets the right status or a cleanly aborted connection,
 * never hangs, never crashes the proxy, and leaves no socket or in-flight count behind.
 */
import * as assert from "node:assert/strict";
import { once } from "node:events";
import * as net from "node:net";
import { after, before, test } from "node:test";
import { Client } from "undici";
import { type Backend, backend } from "../support/backend.ts";
import { until } from "../support/until.ts";
import { socketCount } from "./load.ts";
import { record } from "./summary.ts";
import { type Proxy as SwitchyardProxy, startProxy } from "./switchyards.ts";

const DEADLINE = 8000;

interface RawBackend {
  url: string;
  connections: number;
  close(): Promise<void>;
}

/** A TCP server that plays `onConnection` on every connection (not HTTP, on purpose). */
async function rawBackend(onConnection: (s: net.Socket) => void): Promise<RawBackend> {
  const sockets = new Set<net.Socket>();
  const rb = { url: "", connections: 0, close: async () => {} };
  const srv = net.createServer((s) => {
    rb.connections++;
    sockets.add(s);
    s.on("error", () => {});
    s.on("close", () => sockets.delete(s));
    onConnection(s);
  });
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  rb.url = `http://127.0.0.1:${(srv.address() as net.AddressInfo).port}`;
  rb.close = async () => {
    const closed = once(srv, "close");
    srv.close();
    for (const s of sockets) s.destroy();
    await closed;
  };
  return rb;
}

const onFirstRequest = (s: net.Socket, fn: () => void) => {
  let buf = "";
  const onData = (c: Buffer) => {
    buf += c.toString("latin1");
    if (buf.includes("\r\n\r\n")) {
      s.off("data", onData);
      s.resume();
      fn();
    }
  };
  s.on("data", onData);
};

let good: Backend;
let proxy: SwitchyardProxy;
const raws: Record<string, RawBackend> = {};
let slowReader: Backend;
let midBody: Backend;

before(async () => {
  good = await backend("good");
  raws.hang = await rawBackend((s) => s.on("data", () => {}));
  raws.garbage = await rawBackend((s) =>
    onFirstRequest(s, () => s.end("SSH-2.0-OpenSSH_9.6\r\nthis is not http at all\r\n\r\n")),
  );
  raws.hugeHeaders = await rawBackend((s) =>
    onFirstRequest(s, () => {
      let head = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n";
      const line = `x-filler: ${"h".repeat(1000)}\r\n`;
      while (head.length < 1024 * 1024) head += line;
      s.end(`${head}\r\nok`);
    }),
  );
  midBody = await backend("midbody", {
    handler: (req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": 100_000 });
      res.write(Buffer.alloc(10_000, 1), () => setImmediate(() => res.socket?.destroy()));
    },
  });
  // reads a large upload at ~16 KiB per 50 ms and answers only when it is all in
  slowReader = await backend("slow-reader", {
    handler: (req, res) => {
      let n = 0;
      req.pause();
      const timer = setInterval(() => {
        let took = 0;
        while (took < 16384) {
          const c: Buffer | null = req.read();
          if (c === null) break;
          took += c.length;
        }
        n += took;
        if (req.readableEnded) {
          clearInterval(timer);
          res.end(`read ${n}`);
        }
      }, 50);
      req.on("close", () => clearInterval(timer));
    },
  });
  const svc = (url: string) => ({ servers: [{ name: "only", url }] });
  proxy = await startProxy({
    timeouts: { response_header: "800ms", idle: "800ms", connect: "800ms" },
    services: {
      good: { servers: [{ name: "good", url: good.url }] },
      hang: svc(raws.hang.url),
      garbage: svc(raws.garbage.url),
      huge: svc(raws.hugeHeaders.url),
      midbody: svc(midBody.url),
      slowread: svc(slowReader.url),
    },
  });
});

after(async () => {
  await proxy.close();
  for (const r of Object.values(raws)) await r.close();
  await good.stop();
  await midBody.stop();
  await slowReader.stop();
});

interface Outcome {
  status?: number;
  aborted?: string;
  hung: boolean;
}

async function send(host: string, opts: { method?: string; body?: Buffer } = {}): Promise<Outcome> {
  const client = new Client(proxy.url);
  const signal = AbortSignal.timeout(DEADLINE);
  try {
    const res = await client.request({
      path: "/",
      method: opts.method ?? "GET",
      headers: { host },
      body: opts.body,
      signal,
    });
    try {
      await res.body.arrayBuffer();
      return { status: res.statusCode, hung: false };
    } catch (err) {
      return { status: res.statusCode, aborted: (err as Error).message, hung: signal.aborted };
    }
  } catch (err) {
    return { aborted: (err as Error).message, hung: signal.aborted };
  } finally {
    await client.destroy();
  }
}

/** Runs a scenario next to a good request and checks that nothing is left behind. */
async function scenario(
  name: string,
  host: string,
  check: (o: Outcome) => void,
  expected: string,
  opts?: { method?: string; body?: Buffer },
) {
  const sockets = socketCount();
  const [o, g] = await Promise.all([send(host, opts), send("good.test")]);
  assert.equal(g.status, 200, "a good request on another connection succeeds meanwhile");
  assert.equal(o.hung, false, `${name}: the request hung`);
  check(o);
  const lb = proxy.lbs.get(host.split(".")[0])!;
  await until(() => lb.servers.every((s) => s.inflight === 0), 3000, `${name}: inflight back to 0`);
  // the upstream pool may keep one idle keep-alive connection; nothing else may stay open
  await until(() => socketCount() <= sockets + 2, 3000, `${name}: sockets back to baseline`);
  record({
    suite: "bad-backend",
    scenario: name,
    requests: 1,
    outcome: o.status
      ? `${o.status}${o.aborted ? " then connection aborted" : ""}`
      : `aborted (${o.aborted})`,
    expected,
    ok: true,
  });
}

test("a backend that accepts and never answers: 504 within response_header", {
  timeout: 20_000,
}, async () => {
  await scenario("accepts, never answers", "hang.test", (o) => assert.equal(o.status, 504), "504");
});

test("a backend that answers garbage instead of HTTP: 502", { timeout: 20_000 }, async () => {
  await scenario("garbage instead of HTTP", "garbage.test", (o) => assert.equal(o.status, 502), "502");
});

test("a backend that sends 1 MB of headers: 502", { timeout: 20_000 }, async () => {
  await scenario("1 MB of response headers", "huge.test", (o) => assert.equal(o.status, 502), "502");
});

test("a backend that closes mid-body: the client connection is aborted, not completed", {
  timeout: 20_000,
}, async () => {
  await scenario(
    "closes mid-body",
    "midbody.test",
    (o) => {
      assert.equal(o.status, 200);
      assert.ok(o.aborted, "the truncated body must not look complete");
    },
    "200 then aborted",
  );
});

test("a backend that reads a large upload very slowly: streamed, not buffered; no hang", {
  timeout: 30_000,
}, async () => {
  const body = Buffer.alloc(4 * 1024 * 1024, 7);
  await scenario(
    "reads a 4 MiB upload slowly",
    "slowread.test",
    (o) => {
      // it never answers within response_header while the upload drags on: 504, or the
      // connection is aborted while the client is still sending
      assert.ok(o.status === 504 || (o.status === undefined && o.aborted), JSON.stringify(o));
    },
    "504 or aborted",
    { method: "POST", body },
  );
});

test("the proxy is still serving after all of it", { timeout: 10_000 }, async () => {
  const o = await send("good.test");
  assert.equal(o.status, 200);
});

// ---- misbehaving clients: the other side of the same connections ----

test("a client that disconnects mid-upload or mid-download: upstream aborted, nothing left behind", {
  timeout: 30_000,
}, async () => {
  let uploaded = 0;
  let uploadEnded = false;
  const big = await backend("big", {
    handler: (req, res) => {
      if (req.method === "POST") {
        // reads whatever arrives; answers only at the end (which never comes)
        req.on("data", (c: Buffer) => {
          uploaded += c.length;
        });
        req.on("end", () => {
          uploadEnded = true;
        });
        return;
      }
      // a 64 MiB body written as fast as the proxy takes it
      res.writeHead(200, { "content-length": 64 * 1024 * 1024 });
      const chunk = Buffer.alloc(64 * 1024, 1);
      let left = 1024;
      const pump = () => {
        while (left > 0) {
          left--;
          if (!res.write(chunk)) {
            res.once("drain", pump);
            return;
          }
        }
        res.end();
      };
      pump();
    },
  });
  proxy.reload({
    timeouts: { response_header: "800ms", idle: "800ms", connect: "800ms" },
    services: {
      ...Object.fromEntries(
        [...proxy.lbs.keys()].map((k) => [
          k,
          { servers: proxy.lbs.get(k)!.servers.map((s) => ({ name: s.name, url: s.url.origin })) },
        ]),
      ),
      big: { servers: [{ name: "big", url: big.url }] },
    },
  });
  const lb = proxy.lbs.get("big")!;
  const sockets = socketCount();
  try {
    // mid-upload: headers announce 10 MB, 1 MB is sent, then the client vanishes
    const up = net.connect(proxy.port, "127.0.0.1");
    await once(up, "connect");
    up.write(`POST /upload HTTP/1.1\r\nHost: big.test\r\nContent-Length: ${10 * 1024 * 1024}\r\n\r\n`);
    up.write(Buffer.alloc(1024 * 1024, 2));
    await until(() => uploaded > 0, 5000, "upload to start");
    up.resetAndDestroy();
    // mid-download: read a little of the 64 MiB answer, then vanish
    const down = net.connect(proxy.port, "127.0.0.1");
    await once(down, "connect");
    down.write("GET /download HTTP/1.1\r\nHost: big.test\r\n\r\n");
    let got = 0;
    await new Promise<void>((resolve) =>
      down.on("data", (c: Buffer) => {
        got += c.length;
        if (got > 256 * 1024) resolve();
      }),
    );
    down.resetAndDestroy();
    await until(() => lb.servers.every((s) => s.inflight === 0), 5000, "inflight back to 0");
    await until(() => socketCount() <= sockets + 2, 5000, "sockets back to baseline");
    assert.equal(uploadEnded, false, "the backend never sees the truncated upload as complete");
    assert.ok(uploaded < 10 * 1024 * 1024);
    const ok = await send("good.test");
    assert.equal(ok.status, 200, "still serving");
    record({
      suite: "bad-backend",
      scenario: "client disconnects mid-upload and mid-download",
      requests: 2,
      outcome: "upstream aborted, in-flight 0, sockets back to baseline",
      expected: "no leak",
      ok: true,
    });
  } finally {
    await big.stop();
  }
});
