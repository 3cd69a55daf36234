import * as assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { test } from "node:test";
import { hostName, hostRefusal, isLoopback, originRefusal, TokenCheck } from "./auth.ts";

function req(headers: Record<string, string>, localAddress = "127.0.0.1"): IncomingMessage {
  return { headers, socket: { localAddress } } as unknown as IncomingMessage;
}

test("hostName: port and brackets off, lower case, no trailing dot; malformed is undefined", () => {
  assert.equal(hostName("LocalHost:8081"), "localhost");
  assert.equal(hostName("localhost."), "localhost");
  assert.equal(hostName("[::1]:8081"), "::1");
  assert.equal(hostName("[::1]"), "::1");
  assert.equal(hostName("10.0.0.5"), "10.0.0.5");
  assert.equal(hostName("[::1"), undefined);
  assert.equal(hostName("[::1]x"), undefined);
  assert.equal(hostName("a:b:c"), undefined);
  assert.equal(hostName("host:port"), undefined);
  assert.equal(hostName(""), undefined);
});

test("isLoopback: 127/8, ::1, localhost, v4-mapped 127/8; nothing else", () => {
  for (const h of ["127.0.0.1", "127.9.8.7", "::1", "[::1]", "localhost", "::ffff:127.0.0.1"])
    assert.ok(isLoopback(h), h);
  for (const h of ["128.0.0.1", "10.0.0.1", "::2", "localhost.evil.example", "0.0.0.0", "::ffff:10.0.0.1"])
    assert.ok(!isLoopback(h), h);
});

test("hostRefusal: loopback names, the configured host and the local address pass; others are refused", () => {
  assert.equal(hostRefusal(req({ host: "localhost:1" }), "127.0.0.1"), undefined);
  assert.equal(hostRefusal(req({ host: "10.0.0.5:8081" }, "10.0.0.5"), "0.0.0.0"), undefined);
  assert.equal(hostRefusal(req({ host: "10.0.0.5:8081" }, "::ffff:10.0.0.5"), "0.0.0.0"), undefined);
  assert.equal(hostRefusal(req({ host: "[fd00::5]:8081" }, "fd00::5"), "::"), undefined);
  assert.equal(hostRefusal(req({ host: "admin.internal" }, "10.0.0.5"), "admin.internal"), undefined);
  assert.match(String(hostRefusal(req({ host: "evil.example" }), "127.0.0.1")), /not this admin's address/);
  assert.match(
    String(hostRefusal(req({ host: "10.0.0.6" }, "10.0.0.5"), "0.0.0.0")),
    /not this admin's address/,
  );
  assert.match(String(hostRefusal(req({}), "127.0.0.1")), /Host header is required/);
  assert.match(String(hostRefusal(req({ host: "a:b:c" }), "127.0.0.1")), /malformed/);
});

test("originRefusal: absent or the same origin passes; anything else is refused", () => {
  assert.equal(originRefusal(req({ host: "127.0.0.1:8081" })), undefined);
  assert.equal(originRefusal(req({ host: "127.0.0.1:8081", origin: "http://127.0.0.1:8081" })), undefined);
  assert.equal(
    originRefusal(req({ host: "localhost:80", origin: "http://localhost" })),
    undefined,
    "default port",
  );
  for (const origin of [
    "null",
    "http://evil.example",
    "https://127.0.0.1:8081",
    "http://127.0.0.1:8082",
    "garbage",
  ]) {
    assert.ok(originRefusal(req({ host: "127.0.0.1:8081", origin })), origin);
  }
});

test("TokenCheck: Bearer scheme (any case), exact token; no token configured allows all", () => {
  const open = new TokenCheck(undefined);
  assert.equal(open.required, false);
  assert.ok(open.allows(req({})));
  const t = new TokenCheck("s3cret");
  assert.equal(t.required, true);
  assert.ok(t.allows(req({ authorization: "Bearer s3cret" })));
  assert.ok(t.allows(req({ authorization: "bearer s3cret " })));
  for (const a of [
    "Bearer s3cre",
    "Bearer s3cret2",
    "s3cret",
    "Basic s3cret",
    "Bearer",
    "Bearer  ",
    "Bearer s3 cret",
  ])
    assert.ok(!t.allows(req({ authorization: a })), a);
  assert.ok(!t.allows(req({})));
});
