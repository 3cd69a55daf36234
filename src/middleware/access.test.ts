import * as assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { test } from "node:test";
import { Access, blockListOf, inList } from "./access.ts";

const req = {} as IncomingMessage;

test("inList: IPv4, CIDRs, IPv6 and IPv4-mapped IPv6", () => {
  const l = blockListOf(["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"]);
  assert.equal(inList(l, "10.1.2.3"), true);
  assert.equal(inList(l, "11.0.0.1"), false);
  assert.equal(inList(l, "192.168.1.7"), true);
  assert.equal(inList(l, "192.168.1.8"), false);
  assert.equal(inList(l, "::ffff:10.9.9.9"), true);
  assert.equal(inList(l, "2001:db8::1"), true);
  assert.equal(inList(l, "2001:db9::1"), false);
  assert.equal(inList(l, ""), false);
  assert.equal(inList(l, "not-an-ip"), false);
});

test("allow lets only its addresses through; deny stops only its addresses", () => {
  const allow = new Access({ kind: "allow", cidrs: ["127.0.0.1"] });
  assert.equal(allow.request(req, { client: "127.0.0.1" }), undefined);
  assert.equal(allow.request(req, { client: "127.0.0.2" })?.status, 403);
  // an unknown address is not in any list: allow refuses it
  assert.equal(allow.request(req, { client: "" })?.status, 403);
  const deny = new Access({ kind: "deny", cidrs: ["127.0.0.0/8"] });
  assert.equal(deny.request(req, { client: "127.9.9.9" })?.status, 403);
  assert.equal(deny.request(req, { client: "10.0.0.1" }), undefined);
});
