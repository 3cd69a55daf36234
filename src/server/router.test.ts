import * as assert from "node:assert/strict";
import { test } from "node:test";
import { HostRouter, normalizeHost } from "./router.ts";

const router = new HostRouter([
  { name: "api", hosts: ["api.example.com"], target: "exact" },
  { name: "wild", hosts: ["*.example.com"], target: "wildcard" },
  { name: "shop", hosts: [], target: "label" },
  { name: "www", hosts: [], target: "label-www" },
  { name: "any", hosts: ["*"], target: "any" },
  { name: "v6", hosts: ["[::1]"], target: "v6" },
]);

test("precedence: exact, then wildcard, then first label, then *", () => {
  assert.equal(router.match("api.example.com"), "exact");
  assert.equal(router.match("x.example.com"), "wildcard");
  // an exact or wildcard match beats a label match on the same first label
  assert.equal(router.match("www.example.com"), "wildcard");
  assert.equal(router.match("www.other.org"), "label-www");
  assert.equal(router.match("shop.internal"), "label");
  assert.equal(router.match("shop"), "label");
  assert.equal(router.match("unknown.org"), "any");
  assert.equal(router.match(undefined), "any");
});

test("a wildcard matches exactly one label and not the bare domain", () => {
  const r = new HostRouter([{ name: "w", hosts: ["*.example.com"], target: 1 }]);
  assert.equal(r.match("a.example.com"), 1);
  assert.equal(r.match("a.b.example.com"), undefined);
  assert.equal(r.match("example.com"), undefined);
  assert.equal(r.match("aexample.com"), undefined);
});

test("case, port, trailing dot and IPv6 literals", () => {
  assert.equal(router.match("API.Example.COM:8443"), "exact");
  assert.equal(router.match("api.example.com."), "exact");
  assert.equal(router.match("[::1]:8080"), "v6");
  assert.equal(router.match("[::1]"), "v6");
  assert.equal(normalizeHost("[::1]:80"), "[::1]");
  assert.equal(normalizeHost("Host:80"), "host");
  assert.equal(normalizeHost("::1"), "::1");
});

test("no match and no * → undefined; the first service wins a duplicate pattern", () => {
  const r = new HostRouter([
    { name: "a", hosts: ["x.test"], target: "a" },
    { name: "b", hosts: ["x.test"], target: "b" },
  ]);
  assert.equal(r.match("x.test"), "a");
  assert.equal(r.match("y.test"), undefined);
});

test("the Host cache returns the same answers, misses included, and stays bounded", () => {
  const r = new HostRouter([{ name: "a", hosts: ["a.test"], target: "a" }]);
  for (let round = 0; round < 2; round++) {
    assert.equal(r.match("A.test:80"), "a");
    assert.equal(r.match("b.test"), undefined);
  }
  for (let i = 0; i < 5000; i++) assert.equal(r.match(`x${i}.test`), undefined);
  assert.equal(r.match("a.test"), "a");
});
