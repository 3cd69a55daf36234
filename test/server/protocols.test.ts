import * as assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as https from "node:https";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { WebSocket, WebSocketServer } from "ws";
import {
  type Backend,
  type Running,
  selfSignedCert,
  splitAddress,
  startBackend,
  startSwitchyard,
  tempDir,
} from "../support/switchyard.ts";

describe("switchyard serve: TLS, HTTP/2, WebSocket", { timeout: 120_000 }, () => {
  const tmp = tempDir();
  let backend: Backend;
  let wsBackend: http.Server;
  let wss: WebSocketServer;
  let sy: Running;
  let ca: Buffer;

  before(async () => {
    backend = await startBackend("tls-backend");
    wsBackend = http.createServer((_req, res) => res.end("ws backend\n"));
    wss = new WebSocketServer({ server: wsBackend });
    wss.on("connection", (socket) => socket.on("message", (data, binary) => socket.send(data, { binary })));
    await new Promise<void>((r) => wsBackend.listen(0, "127.0.0.1", () => r()));
    const wsPort = (wsBackend.address() as AddressInfo).port;
    const { cert } = selfSignedCert(tmp.dir);
    ca = readFileSync(cert);
    const file = tmp.write(
      "s.yaml",
      `listen:
  - 127.0.0.1:0
  - { address: "127.0.0.2:0", tls: { cert: cert.pem, key: key.pem } }
admin: 127.0.0.1:0
services:
  web:
    hosts: ["localhost", "127.0.0.1"]
    servers:
      - { name: b, url: "${backend.url}" }
  ws:
    hosts: ["ws.test"]
    servers:
      - { name: echo, url: "http://127.0.0.1:${wsPort}" }
`,
    );
    sy = await startSwitchyard(["serve", "-c", file]);
  });

  after(async () => {
    const exit = await sy?.stop();
    await backend.stop();
    wss.close();
    await new Promise<void>((r) => {
      wsBackend.close(() => r());
      wsBackend.closeAllConnections();
    });
    tmp.remove();
    assert.equal(exit?.code, 0);
  });

  async function h2Get(): Promise<{ status: number; body: string; alpn: string | false }> {
    const [host, port] = splitAddress(sy.proxy[1]);
    const session = http2.connect(`https://localhost:${port}`, { ca, host, servername: "localhost" });
    try {
      return await new Promise((ok, fail) => {
        const req = session.request({ ":path": "/h2", ":method": "GET" });
        let status = 0;
        let body = "";
        req.on("response", (h) => (status = Number(h[":status"])));
        req.setEncoding("utf8");
        req.on("data", (c: string) => (body += c));
        req.on("end", () => ok({ status, body, alpn: session.alpnProtocol ?? false }));
        req.on("error", fail);
        req.end();
      });
    } finally {
      session.close();
    }
  }

  test("after a reload (certificates re-read), TLS listeners still negotiate h2", async () => {
    sy.child.kill("SIGHUP");
    await sy.waitForLog((r) => typeof r.msg === "string" && r.msg.startsWith("config reloaded"));
    const r = await h2Get();
    assert.equal(r.alpn, "h2");
    assert.equal(r.status, 200);
    assert.equal(r.body, "tls-backend\n");
  });

  test("an HTTP/2 client negotiates h2 by ALPN and is proxied", async () => {
    const { status, body, alpn } = await h2Get();
    assert.equal(alpn, "h2");
    assert.equal(status, 200);
    assert.equal(body, "tls-backend\n");
  });

  test("an HTTP/1.1 TLS client falls back to HTTP/1.1", async () => {
    const [, port] = splitAddress(sy.proxy[1]);
    const r = await new Promise<{ status: number; body: string; version: string }>((ok, fail) => {
      const req = https.get(
        {
          host: splitAddress(sy.proxy[1])[0],
          servername: "localhost",
          port,
          path: "/",
          ca,
          headers: { host: "localhost" },
          agent: false,
        },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => (body += c));
          res.on("end", () => ok({ status: res.statusCode ?? 0, body, version: res.httpVersion }));
        },
      );
      req.on("error", fail);
    });
    assert.equal(r.version, "1.1");
    assert.equal(r.status, 200);
    assert.equal(r.body, "tls-backend\n");
  });

  test("a WebSocket is upgraded through the proxy and echoes", async () => {
    const [, port] = splitAddress(sy.proxy[0]);
    const ws = new WebSocket(`ws://127.0.0.1:${port}/chat`, { headers: { host: "ws.test" } });
    try {
      await new Promise<void>((ok, fail) => {
        ws.once("open", () => ok());
        ws.once("error", fail);
      });
      const reply = new Promise<string>((ok) => ws.once("message", (d) => ok(String(d))));
      ws.send("hello through switchyard");
      assert.equal(await reply, "hello through switchyard");
    } finally {
      ws.close();
      await new Promise((r) => ws.once("close", r));
    }
  });

  test("HTTP/2 and TLS requests are counted per server in the metrics", async () => {
    await h2Get();
    const m = await new Promise<string>((ok, fail) => {
      const [host, port] = splitAddress(sy.admin!);
      http
        .get({ host, port, path: "/metrics", agent: false }, (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => (body += c));
          res.on("end", () => ok(body));
        })
        .on("error", fail);
    });
    const n = /switchyard_requests_total\{service="web",server="b",code_class="2xx"\} (\d+)/.exec(m);
    assert.ok(n && Number(n[1]) >= 3, m);
  });

  test("a malformed request gets 400 and the server keeps serving", async () => {
    const [, port] = splitAddress(sy.proxy[0]);
    const net = await import("node:net");
    const answer = await new Promise<string>((ok, fail) => {
      const s = net.connect(port, "127.0.0.1", () =>
        s.write("GET / HTTP/1.1\r\nHost: localhost\r\nBad Header\r\n\r\n"),
      );
      let data = "";
      s.setEncoding("utf8");
      s.on("data", (c: string) => (data += c));
      s.on("end", () => ok(data));
      s.on("error", fail);
    });
    assert.match(answer, /^HTTP\/1\.1 400 /);
    const big = await new Promise<string>((ok, fail) => {
      const s = net.connect(port, "127.0.0.1", () =>
        s.write(`GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`),
      );
      let data = "";
      s.setEncoding("utf8");
      s.on("data", (c: string) => (data += c));
      s.on("end", () => ok(data));
      s.on("error", fail);
    });
    assert.match(big, /^HTTP\/1\.1 431 /);
    const ok = await new Promise<number>((done, fail) => {
      http
        .get({ host: "127.0.0.1", port, path: "/", headers: { host: "localhost" }, agent: false }, (res) => {
          res.resume();
          done(res.statusCode ?? 0);
        })
        .on("error", fail);
    });
    assert.equal(ok, 200);
  });
});
