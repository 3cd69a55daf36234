/**
 * PROXY protocol on a listener, end to end through `switchyard serve` on both HTTP/1 paths and TLS:
 * real v1 and v2 headers over raw sockets. The address a header carries replaces the TCP peer in
 * the real-IP trust check, the forwarded headers and ip_hash; a peer outside `trusted`, a malformed
 * header and one that never completes close the connection without a response, and are counted.
 */
import * as assert from "node:assert/strict";
import * as http from "node:http";
import * as net from "node:net";
import { after, before, describe, test } from "node:test";
import * as tls from "node:tls";
import { Wire, type WireMessage } from "../support/h1wire.ts";
import {
  type Running,
  selfSignedCert,
  splitAddress,
  startSwitchyard,
  tempDir,
} from "../support/switchyard.ts";

const SIG = Buffer.from("0d0a0d0a000d0a515549540a", "hex");

function v1(src: string, family: "TCP4" | "TCP6" = "TCP4"): Buffer {
  const dst = family === "TCP4" ? "10.0.0.1" : "2001:db8::1";
  return Buffer.from(`PROXY ${family} ${src} ${dst} 40000 80\r\n`);
}

function v2(verCmd: number, famProto: number, block: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(block.length);
  return Buffer.concat([SIG, Buffer.from([verCmd, famProto]), len, block]);
}

function v2tcp4(src: string): Buffer {
  const block = Buffer.alloc(12);
  src.split(".").forEach((o, i) => {
    block[i] = Number(o);
  });
  block.set([10, 0, 0, 1], 4);
  block.writeUInt16BE(40000, 8);
  block.writeUInt16BE(443, 10);
  return v2(0x21, 0x11, block);
}

function v2tcp6(srcHex: string): Buffer {
  const block = Buffer.alloc(36);
  Buffer.from(srcHex, "hex").copy(block, 0);
  block.writeUInt16BE(1, 32);
  block.writeUInt16BE(2, 34);
  return v2(0x21, 0x21, block);
}

interface Echo {
  backend: string;
  realIp: string;
  xff: string;
}

async function echoBackend(name: string): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const body = JSON.stringify({
      backend: name,
      realIp: req.headers["x-real-ip"],
      xff: req.headers["x-forwarded-for"],
    });
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  return server;
}

const REQUEST = (extra = "") => `GET / HTTP/1.1\r\nHost: api.test\r\n${extra}Connection: close\r\n\r\n`;

/** Sends `bytes` on a new connection (split after the header when asked) and reads one answer. */
async function send(
  port: number,
  host: string,
  header: Buffer,
  extra = "",
): Promise<{ answer: WireMessage | null; rest: string }> {
  const socket = net.connect(port, host);
  const wire = new Wire(socket);
  socket.write(header);
  socket.write(REQUEST(extra));
  const answer = await wire.read("response").catch(() => null);
  await wire.closed;
  return { answer, rest: wire.pending.toString("latin1") };
}

let lastLogs: (() => unknown) | undefined;
function echo(m: WireMessage | null): Echo {
  assert.ok(m, `an answer; logs: ${JSON.stringify(lastLogs?.())}`);
  assert.equal(m.status, 200, m.body.toString());
  return JSON.parse(m.body.toString()) as Echo;
}

for (const path of ["native", "fallback"]) {
  describe(`PROXY protocol listeners (${path})`, { timeout: 60_000 }, () => {
    const tmp = tempDir();
    let a: http.Server;
    let b: http.Server;
    let sy: Running;
    let host: string;
    let port: number;
    let untrustedPort: number;
    let tlsPort: number;
    let file: string;
    let config: string;

    before(async () => {
      a = await echoBackend("a");
      b = await echoBackend("b");
      selfSignedCert(tmp.dir);
      const url = (s: http.Server) => `http://127.0.0.1:${(s.address() as net.AddressInfo).port}`;
      config = [
        "listen:",
        "  - { address: 127.0.0.1:0, proxy_protocol: { trusted: [127.0.0.0/8, '::1'], timeout: 300ms } }",
        "  - { address: '[::1]:0', proxy_protocol: { trusted: [10.0.0.0/8] } }",
        "  - { address: 127.0.0.2:0, tls: { cert: cert.pem, key: key.pem }, proxy_protocol: { trusted: [127.0.0.1] } }",
        "admin: 127.0.0.1:0",
        "services:",
        "  api:",
        "    hosts: [api.test]",
        "    mode: ip_hash",
        "    healthcheck: { disable: true }",
        // the balancer in front of the PROXY balancer: its X-Forwarded-For is believed
        "    options: { header: X-Forwarded-For, from: [203.0.113.0/24] }",
        `    servers:\n      - { name: a, url: "${url(a)}" }\n      - { name: b, url: "${url(b)}" }`,
        "",
      ].join("\n");
      file = tmp.write("switchyard.yaml", config);
      sy = await startSwitchyard(["serve", "-c", file, "--log-level", "debug"], {
        env: { SWITCHYARD_HTTP1: path },
      });
      [host, port] = splitAddress(sy.proxy[0]);
      lastLogs = () => sy.logs.slice(-5);
      untrustedPort = splitAddress(sy.proxy[1])[1];
      tlsPort = splitAddress(sy.proxy[2])[1];
    });

    after(async () => {
      const exit = await sy?.stop();
      for (const s of [a, b]) {
        s?.closeAllConnections();
        await new Promise((ok) => s?.close(ok));
      }
      tmp.remove();
      assert.equal(exit?.code, 0);
    });

    test("v1 TCP4 / TCP6 and v2 TCP4 / TCP6: the header's address is the client", async () => {
      const cases: [string, Buffer, string][] = [
        ["v1 TCP4", v1("192.0.2.10"), "192.0.2.10"],
        ["v1 TCP6", v1("2001:db8::10", "TCP6"), "2001:db8::10"],
        ["v2 TCP4", v2tcp4("192.0.2.11"), "192.0.2.11"],
        ["v2 TCP6", v2tcp6("20010db8000000000000000000000011"), "2001:db8::11"],
      ];
      for (const [name, header, client] of cases) {
        const e = echo((await send(port, host, header, "X-Forwarded-For: 6.6.6.6\r\n")).answer);
        // not inside options.from: its X-Forwarded-For is not believed, it is the client itself
        assert.deepEqual([e.realIp, e.xff], [client, client], name);
      }
    });

    test("v1 UNKNOWN and v2 LOCAL keep the TCP peer", async () => {
      for (const header of [Buffer.from("PROXY UNKNOWN\r\n"), v2(0x20, 0x00, Buffer.alloc(0))]) {
        const e = echo((await send(port, host, header)).answer);
        assert.equal(e.realIp, "127.0.0.1");
      }
    });

    test("the header's address is what options.from trusts: a balancer's X-Forwarded-For is believed", async () => {
      const e = echo(
        (await send(port, host, v1("203.0.113.5"), "X-Forwarded-For: 198.51.100.77\r\n")).answer,
      );
      assert.equal(e.realIp, "198.51.100.77");
      assert.equal(e.xff, "198.51.100.77, 203.0.113.5");
    });

    test("ip_hash goes by the header's address: each client sticks to one server, clients spread", async () => {
      const by = new Map<string, Set<string>>();
      for (let round = 0; round < 2; round++) {
        for (let i = 1; i <= 16; i++) {
          const client = `192.0.2.${100 + i}`;
          const e = echo((await send(port, host, i % 2 ? v1(client) : v2tcp4(client))).answer);
          if (!by.has(client)) by.set(client, new Set());
          by.get(client)!.add(e.backend);
        }
      }
      for (const [client, servers] of by) assert.equal(servers.size, 1, `${client} went to ${[...servers]}`);
      const used = new Set([...by.values()].flatMap((s) => [...s]));
      assert.deepEqual([...used].sort(), ["a", "b"]);
    });

    test("TLS listener: the header comes before the handshake, the address reaches the request", async () => {
      const raw = net.connect(tlsPort, "127.0.0.2");
      await new Promise((ok) => raw.once("connect", ok));
      raw.write(v2tcp4("192.0.2.200"));
      const socket = tls.connect({ socket: raw, rejectUnauthorized: false, servername: "api.test" });
      const wire = new Wire(socket as unknown as net.Socket);
      socket.write(REQUEST());
      const e = echo(await wire.read("response"));
      assert.equal(e.realIp, "192.0.2.200");
      socket.destroy();
    });

    test("untrusted peer, malformed header, a header that never completes: closed without a word, counted", async () => {
      // 127.0.0.1 / ::1 is not inside this listener's trusted list
      const untrusted = await send(untrustedPort, "::1", v1("192.0.2.1"));
      assert.deepEqual([untrusted.answer, untrusted.rest], [null, ""]);
      for (const bad of [
        Buffer.from("GET / HTTP/1.1\r\n"),
        Buffer.from("PROXY TCP4 1.2.3.999 5.6.7.8 1 2\r\n"),
        v2(0x31, 0x11, Buffer.alloc(12)),
      ]) {
        const r = await send(port, host, bad);
        assert.deepEqual([r.answer, r.rest], [null, ""], bad.toString("latin1"));
      }
      // half a header, then nothing: closed after the listener's 300ms
      const slow = net.connect(port, host);
      const wire = new Wire(slow);
      slow.write("PROXY TCP4 192.0.2.1 ");
      await wire.closed;
      assert.equal(wire.pending.length, 0);
      const [ah, ap] = splitAddress(sy.admin!);
      const metrics = await new Promise<string>((ok, fail) => {
        http
          .get({ host: ah, port: ap, path: "/metrics" }, (res) => {
            let body = "";
            res.on("data", (d) => {
              body += d;
            });
            res.on("end", () => ok(body));
          })
          .on("error", fail);
      });
      const count = (reason: string) =>
        Number(
          new RegExp(`switchyard_proxy_protocol_errors_total\\{reason="${reason}"\\} (\\d+)`).exec(
            metrics,
          )?.[1],
        );
      assert.deepEqual([count("untrusted"), count("malformed"), count("timeout")], [1, 3, 1]);
      assert.ok(
        sy.logs.some((l) => l.msg === "PROXY protocol header refused" && l.reason === "malformed"),
        "a debug line says why",
      );
    });

    test("a reload changes the trusted peers in place: the listener stays, the new list applies", async () => {
      const before = sy.logs.length;
      tmp.write("switchyard.yaml", config.replace("trusted: [10.0.0.0/8]", "trusted: ['::1']"));
      await sy.waitForLog(
        () => sy.logs.slice(before).some((l) => String(l.msg).startsWith("config reloaded")),
        10_000,
        "the reload",
      );
      const r = await send(untrustedPort, "::1", v1("192.0.2.77"));
      const e = echo(r.answer);
      assert.equal(e.realIp, "192.0.2.77");
    });
  });
}
