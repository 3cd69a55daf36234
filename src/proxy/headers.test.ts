import * as assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { test } from "node:test";
import { classify } from "./forward.ts";
import { connectionTokens, downstreamHeaders, upstreamHeaders } from "./headers.ts";

function fakeReq(
  rawHeaders: string[],
  remoteAddress = "::ffff:10.1.2.3",
  encrypted = false,
): IncomingMessage {
  return { rawHeaders, socket: { remoteAddress, encrypted } } as unknown as IncomingMessage;
}

function pairs(list: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < list.length; i += 2) out.push([list[i].toLowerCase(), list[i + 1]]);
  return out;
}

test("upstreamHeaders: untrusted peers get fresh forwarded headers; IPv4-mapped peers are unwrapped", () => {
  const out = pairs(
    upstreamHeaders(
      fakeReq([
        "Host",
        "a.example",
        "X-Forwarded-For",
        "6.6.6.6",
        "X-Real-IP",
        "6.6.6.6",
        "Expect",
        "100-continue",
        "Accept",
        "*/*",
      ]),
      { clientIp: "", trusted: false },
    ),
  );
  assert.deepEqual(out, [
    ["host", "a.example"],
    ["accept", "*/*"],
    ["x-forwarded-for", "10.1.2.3"],
    ["x-forwarded-proto", "http"],
    ["x-forwarded-host", "a.example"],
    ["x-real-ip", "10.1.2.3"],
  ]);
});

test("upstreamHeaders: Connection-named headers, pseudo-headers, duplicate Host, upgrade pair", () => {
  const out = pairs(
    upstreamHeaders(
      fakeReq(
        [
          ":method",
          "GET",
          ":authority",
          "h2.example",
          "Connection",
          "X-Secret, Upgrade",
          "x-secret",
          "1",
          "Upgrade",
          "websocket",
          "Sec-WebSocket-Key",
          "k",
        ],
        "127.0.0.1",
        true,
      ),
      { clientIp: "1.2.3.4", trusted: true },
      "websocket",
    ),
  );
  assert.deepEqual(out, [
    ["sec-websocket-key", "k"],
    ["host", "h2.example"],
    ["x-forwarded-for", "127.0.0.1"],
    ["x-forwarded-proto", "https"],
    ["x-forwarded-host", "h2.example"],
    ["x-real-ip", "1.2.3.4"],
    ["connection", "upgrade"],
    ["upgrade", "websocket"],
  ]);
  const twoHosts = pairs(
    upstreamHeaders(fakeReq(["Host", "a", "host", "b"]), { clientIp: "", trusted: false }),
  );
  assert.equal(twoHosts.filter(([k]) => k === "host").length, 1);
});

test("downstreamHeaders: hop-by-hop and Connection-named removed, bytes kept, Content-Length kept", () => {
  const raw = [
    "Content-Length",
    "5",
    "Connection",
    "x-private",
    "X-Private",
    "1",
    "Transfer-Encoding",
    "chunked",
    "X-Bytes",
    "caf\u00e9",
  ];
  assert.deepEqual(downstreamHeaders(raw), ["Content-Length", "5", "X-Bytes", "caf\u00e9"]);
  assert.deepEqual(
    downstreamHeaders(["Connection", "Upgrade", "Upgrade", "websocket", "Keep-Alive", "x"], true),
    ["Connection", "Upgrade", "Upgrade", "websocket"],
  );
  assert.deepEqual(connectionTokens("close, X-A ,keep-alive,,x-b"), ["x-a", "x-b"]);
});

test("classify: connect failures, resets, timeouts, protocol errors", () => {
  assert.equal(classify({ code: "ECONNREFUSED" }), "connect");
  assert.equal(classify({ code: "ERR_SWITCHYARD_UPSTREAM_CONNECT_TIMEOUT" }), "connect");
  assert.equal(classify({ code: "DEPTH_ZERO_SELF_SIGNED_CERT" }), "connect");
  assert.equal(classify({ code: "ERR_SWITCHYARD_UPSTREAM_CLOSED" }), "reset");
  assert.equal(classify({ code: "ECONNRESET" }), "reset");
  assert.equal(classify({ code: "EPIPE" }), "reset");
  assert.equal(classify({ code: "ERR_SWITCHYARD_UPSTREAM_HEADERS_TIMEOUT" }), "timeout");
  assert.equal(classify({ code: "HPE_INVALID_CONSTANT" }), "other");
  assert.equal(classify(new Error("x")), "other");
  assert.equal(classify(undefined), "other");
});
