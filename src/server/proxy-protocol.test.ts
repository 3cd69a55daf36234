import * as assert from "node:assert/strict";
import { test } from "node:test";
import { parseProxyHeader, V2_MAX } from "./proxy-protocol.ts";

const SIG = Buffer.from("0d0a0d0a000d0a515549540a", "hex");

/** A v2 header: version/command byte, family/protocol byte, address block. */
function v2(verCmd: number, famProto: number, block: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(block.length);
  return Buffer.concat([SIG, Buffer.from([verCmd, famProto]), len, block]);
}

function ports(a: number, b: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt16BE(a, 0);
  p.writeUInt16BE(b, 2);
  return p;
}

test("v1 TCP4 and TCP6: addresses, ports and the header's length", () => {
  const line = "PROXY TCP4 203.0.113.7 10.0.0.1 51234 443\r\n";
  const r = parseProxyHeader(Buffer.from(`${line}GET / HTTP/1.1\r\n`));
  assert.deepEqual(r, {
    ok: true,
    length: line.length,
    header: {
      version: 1,
      command: "proxy",
      source: { address: "203.0.113.7", port: 51234, family: "IPv4" },
      destination: { address: "10.0.0.1", port: 443, family: "IPv4" },
    },
  });
  const six = parseProxyHeader(Buffer.from("PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n"));
  assert.ok(six?.ok);
  assert.deepEqual(six.header.source, { address: "2001:db8::7", port: 65535, family: "IPv6" });
});

test("v1 UNKNOWN keeps the TCP peer (no source), whatever follows it on the line", () => {
  for (const line of ["PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"]) {
    const r = parseProxyHeader(Buffer.from(line));
    assert.deepEqual(r, {
      ok: true,
      length: line.length,
      header: { version: 1, command: "local", source: null, destination: null },
    });
  }
});

test("v1: a header cut anywhere needs more bytes; a wrong one is malformed at once", () => {
  const line = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
  for (let i = 1; i < line.length; i++)
    assert.equal(parseProxyHeader(Buffer.from(line.slice(0, i))), null, `${i}`);
  for (const bad of [
    "GET / HTTP/1.1\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
    "PROXY TCP4 1.2.3.999 5.6.7.8 1 2\r\n",
    "PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
    "PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
    "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
    "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
    "PROXX TCP4",
    `PROXY UNKNOWN ${"x".repeat(100)}\r\n`,
  ]) {
    assert.deepEqual(parseProxyHeader(Buffer.from(bad)), { ok: false, reason: "malformed" }, bad);
  }
  // no CRLF within the 107 bytes the spec allows
  assert.deepEqual(parseProxyHeader(Buffer.from(`PROXY ${"1".repeat(120)}`)), {
    ok: false,
    reason: "malformed",
  });
});

test("v2 PROXY over TCP4 and TCP6, TLVs skipped, the rest left for the connection", () => {
  const four = v2(
    0x21,
    0x11,
    Buffer.concat([
      Buffer.from([198, 51, 100, 9, 10, 0, 0, 1]),
      ports(40000, 80),
      Buffer.from([0x04, 0, 1, 0x2a]),
    ]),
  );
  const r = parseProxyHeader(Buffer.concat([four, Buffer.from("GET /")]));
  assert.deepEqual(r, {
    ok: true,
    length: four.length,
    header: {
      version: 2,
      command: "proxy",
      source: { address: "198.51.100.9", port: 40000, family: "IPv4" },
      destination: { address: "10.0.0.1", port: 80, family: "IPv4" },
    },
  });
  const src = Buffer.from("20010db8000000000000000000000007", "hex");
  const dst = Buffer.from("00000000000000000000ffffc0000201", "hex");
  const six = parseProxyHeader(v2(0x21, 0x21, Buffer.concat([src, dst, ports(1, 2)])));
  assert.ok(six?.ok);
  assert.deepEqual(six.header.source, { address: "2001:db8::7", port: 1, family: "IPv6" });
  assert.deepEqual(six.header.destination, { address: "::ffff:192.0.2.1", port: 2, family: "IPv6" });
});

test("v2 LOCAL and UNSPEC keep the TCP peer", () => {
  const local = parseProxyHeader(v2(0x20, 0x00, Buffer.alloc(0)));
  assert.deepEqual(local, {
    ok: true,
    length: 16,
    header: { version: 2, command: "local", source: null, destination: null },
  });
  // LOCAL with an address block: ignored
  const localAddr = parseProxyHeader(v2(0x20, 0x11, Buffer.alloc(12, 1)));
  assert.ok(localAddr?.ok);
  assert.equal(localAddr.header.source, null);
  const unspec = parseProxyHeader(v2(0x21, 0x00, Buffer.alloc(0)));
  assert.ok(unspec?.ok);
  assert.equal(unspec.header.source, null);
});

test("v2: cut anywhere needs more bytes; bad version, command, family or length is malformed", () => {
  const good = v2(0x21, 0x11, Buffer.concat([Buffer.alloc(8, 7), ports(1, 2)]));
  for (let i = 1; i < good.length; i++) assert.equal(parseProxyHeader(good.subarray(0, i)), null, `${i}`);
  const bad: [string, Buffer][] = [
    ["signature", Buffer.concat([Buffer.from("0d0a0d0a000d0a515549540b", "hex"), Buffer.alloc(4)])],
    ["version 1 in a v2 frame", v2(0x11, 0x11, Buffer.alloc(12))],
    ["command 2", v2(0x22, 0x11, Buffer.alloc(12))],
    ["family 4", v2(0x21, 0x41, Buffer.alloc(12))],
    ["protocol 3", v2(0x21, 0x13, Buffer.alloc(12))],
    ["TCP4 block too short", v2(0x21, 0x11, Buffer.alloc(11))],
    ["TCP6 block too short", v2(0x21, 0x21, Buffer.alloc(35))],
    ["unix block too short", v2(0x21, 0x31, Buffer.alloc(215))],
  ];
  for (const [name, b] of bad)
    assert.deepEqual(parseProxyHeader(b), { ok: false, reason: "malformed" }, name);
  // a length over the limit is refused before its bytes arrive
  const huge = Buffer.concat([SIG, Buffer.from([0x21, 0x11, 0xff, 0xff])]);
  assert.ok(16 + 0xffff > V2_MAX);
  assert.deepEqual(parseProxyHeader(huge), { ok: false, reason: "malformed" });
});
