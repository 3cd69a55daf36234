/**
 * Interim responses end to end through `switchyard serve`, on both HTTP/1 paths and the h2 front:
 * a backend's `103 Early Hints` reaches the client before the final answer; `Expect: 100-continue`
 * goes to the backend, whose `100` is relayed, and a backend that refuses (a final status without
 * 100) gets no body: switchyard never tells the client to send it.
 */
import * as assert from "node:assert/strict";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { after, before, describe, test } from "node:test";
import { field, Wire } from "../support/h1wire.ts";
import {
  type Running,
  selfSignedCert,
  splitAddress,
  startSwitchyard,
  tempDir,
} from "../support/switchyard.ts";

interface Seen {
  url: string;
  body: string;
  expect: string | undefined;
}

async function backend(): Promise<{ port: number; seen: Seen[]; server: http.Server }> {
  const seen: Seen[] = [];
  const server = http.createServer();
  const serve = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const entry: Seen = { url: req.url!, body: "", expect: req.headers.expect };
    seen.push(entry);
    if (req.url === "/hints") {
      res.writeEarlyHints({ link: "</a.css>; rel=preload" });
      res.end("final");
      return;
    }
    if (req.url === "/trail") {
      res.writeHead(200, { trailer: "x-checksum" });
      res.write("t");
      res.addTrailers({ "x-checksum": "abc", "set-cookie": "a=b" });
      res.end();
      return;
    }
    if (req.url === "/rtrail") {
      req.resume();
      req.on("end", () => res.end(JSON.stringify(req.rawTrailers)));
      return;
    }
    if (req.url === "/refuse") {
      // a final answer without 100: the body is not wanted
      res.writeHead(413, { "content-length": "7", connection: "close" });
      res.end("refused");
      req.on("data", (d: Buffer) => {
        entry.body += d.toString();
      });
      return;
    }
    // /ignore: a backend that does not know Expect and waits for the body
    if (req.headers.expect !== undefined && req.url !== "/ignore") res.writeContinue();
    req.on("data", (d: Buffer) => {
      entry.body += d.toString();
    });
    req.on("end", () => res.end(`got ${entry.body}`));
  };
  server.on("request", serve);
  server.on("checkContinue", serve);
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  return { port: (server.address() as net.AddressInfo).port, seen, server };
}

for (const path of ["native", "fallback"]) {
  describe(`1xx and Expect end to end (${path})`, { timeout: 60_000 }, () => {
    const tmp = tempDir();
    let b: Awaited<ReturnType<typeof backend>>;
    let sy: Running;
    let host: string;
    let port: number;
    let tlsPort: number;

    before(async () => {
      b = await backend();
      selfSignedCert(tmp.dir);
      const file = tmp.write(
        "switchyard.yaml",
        "listen:\n  - 127.0.0.1:0\n  - { address: '[::1]:0', tls: { cert: cert.pem, key: key.pem } }\n" +
          "admin: 127.0.0.1:0\nservices:\n  api:\n    hosts: [api.test]\n    healthcheck: { disable: true }\n" +
          `    servers:\n      - { name: b, url: "http://127.0.0.1:${b.port}" }\n`,
      );
      sy = await startSwitchyard(["serve", "-c", file], { env: { SWITCHYARD_HTTP1: path } });
      [host, port] = splitAddress(sy.proxy[0]);
      tlsPort = splitAddress(sy.proxy[1])[1];
    });

    after(async () => {
      const exit = await sy?.stop();
      b?.server.closeAllConnections();
      await new Promise((ok) => b?.server.close(ok));
      tmp.remove();
      assert.equal(exit?.code, 0);
    });

    test("103 Early Hints reaches an HTTP/1.1 client before the final answer", async () => {
      const socket = net.connect(port, host);
      const wire = new Wire(socket);
      socket.write("GET /hints HTTP/1.1\r\nHost: api.test\r\n\r\n");
      const hints = await wire.read("response");
      assert.equal(hints?.status, 103);
      assert.equal(field(hints!.headers, "link"), "</a.css>; rel=preload");
      const final = await wire.read("response");
      assert.deepEqual([final?.status, final?.body.toString()], [200, "final"]);
      socket.destroy();
    });

    test("Expect: 100-continue: the backend's 100 is relayed, then the body goes through", async () => {
      const socket = net.connect(port, host);
      const wire = new Wire(socket);
      socket.write(
        "POST /up HTTP/1.1\r\nHost: api.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
      );
      const cont = await wire.read("response");
      assert.equal(cont?.status, 100);
      socket.write("hello");
      const final = await wire.read("response");
      assert.deepEqual([final?.status, final?.body.toString()], [200, "got hello"]);
      assert.equal(b.seen.at(-1)?.expect, "100-continue");
      socket.destroy();
    });

    test("Expect: 100-continue to a backend that never answers 100: the body still goes, after a wait", async () => {
      const socket = net.connect(port, host);
      const wire = new Wire(socket);
      socket.write(
        "POST /ignore HTTP/1.1\r\nHost: api.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
      );
      // switchyard stops waiting for the backend's 100 (1 s) and asks for the body itself
      const cont = await wire.read("response");
      assert.equal(cont?.status, 100);
      socket.write("hello");
      const final = await wire.read("response");
      assert.deepEqual([final?.status, final?.body.toString()], [200, "got hello"]);
      socket.destroy();
    });

    test("Expect: 100-continue refused by the backend: its final status, no 100, the body never sent", async () => {
      const socket = net.connect(port, host);
      const wire = new Wire(socket);
      socket.write(
        "POST /refuse HTTP/1.1\r\nHost: api.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
      );
      const r = await wire.read("response");
      // the first thing the client hears is the refusal: switchyard did not answer 100 itself
      assert.deepEqual([r?.status, r?.body.toString()], [413, "refused"]);
      const seen = b.seen.at(-1)!;
      assert.deepEqual([seen.url, seen.expect, seen.body], ["/refuse", "100-continue", ""]);
      socket.destroy();
    });

    test("h2 front: an HTTP/1 backend's chunked trailers reach an HTTP/2 client as HTTP/2 trailers", async () => {
      const session = http2.connect(`https://[::1]:${tlsPort}`, { rejectUnauthorized: false });
      try {
        const req = session.request({ ":path": "/trail", ":authority": "api.test" });
        req.end();
        const [body, trailers] = await new Promise<[string, http2.IncomingHttpHeaders]>((ok, fail) => {
          let data = "";
          let t: http2.IncomingHttpHeaders = {};
          req.on("trailers", (h) => {
            t = h;
          });
          req.on("data", (d: Buffer) => {
            data += d.toString();
          });
          req.on("end", () => ok([data, t]));
          req.on("error", fail);
        });
        assert.equal(body, "t");
        assert.equal(trailers["x-checksum"], "abc");
        assert.equal(trailers["set-cookie"], undefined, "a trailer may not carry Set-Cookie");
      } finally {
        session.close();
      }
    });

    test("h2 front: an HTTP/2 client's request trailers reach the HTTP/1 backend in its last chunk", async () => {
      const session = http2.connect(`https://[::1]:${tlsPort}`, { rejectUnauthorized: false });
      try {
        const req = session.request(
          { ":method": "POST", ":path": "/rtrail", ":authority": "api.test" },
          { waitForTrailers: true },
        );
        req.on("wantTrailers", () => req.sendTrailers({ "x-sum": "42", host: "evil.example" }));
        req.end("body");
        const body = await new Promise<string>((ok, fail) => {
          let data = "";
          req.on("data", (d: Buffer) => {
            data += d.toString();
          });
          req.on("end", () => ok(data));
          req.on("error", fail);
        });
        assert.deepEqual(JSON.parse(body), ["x-sum", "42"]);
      } finally {
        session.close();
      }
    });

    test("h2 front: 103 Early Hints reaches an HTTP/2 client", async () => {
      const session = http2.connect(`https://[::1]:${tlsPort}`, { rejectUnauthorized: false });
      try {
        const hints: number[] = [];
        const req = session.request({ ":path": "/hints", ":authority": "api.test" });
        req.on("headers", (h) => hints.push(Number(h[":status"])));
        req.end();
        const [status, body] = await new Promise<[number, string]>((ok, fail) => {
          let s = 0;
          let data = "";
          req.on("response", (h) => {
            s = Number(h[":status"]);
          });
          req.on("data", (d: Buffer) => {
            data += d.toString();
          });
          req.on("end", () => ok([s, data]));
          req.on("error", fail);
        });
        assert.deepEqual([hints, status, body], [[103], 200, "final"]);
      } finally {
        session.close();
      }
    });
  });
}
