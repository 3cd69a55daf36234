import * as assert from "node:assert/strict";
import { test } from "node:test";
import { Buckets, MAX_CLIENTS, RateLimit, TokenBank } from "./rate-limit.ts";

test("a bucket gives its burst, then refills at the rate", () => {
  const b = new Buckets(10, 1000, 3); // 10/s, burst 3
  assert.equal(b.take("a", 1, 0), 1);
  assert.equal(b.take("a", 1, 0), 1);
  assert.equal(b.take("a", 1, 0), 1);
  assert.equal(b.take("a", 1, 0), 0);
  assert.equal(b.retryAfter, 100);
  assert.equal(b.take("a", 1, 50), 0);
  assert.equal(b.take("a", 1, 100), 1);
  // another address has its own bucket
  assert.equal(b.take("b", 5, 100), 3);
  // never more than the burst, however long it rested
  assert.equal(b.take("a", 10, 1_000_000), 3);
});

test("memory stays bounded under a million distinct addresses; full buckets go first", () => {
  const b = new Buckets(1, 60_000, 2, 1000);
  b.take("busy", 1, 0); // not full: must survive evictions while full buckets exist
  for (let i = 0; i < 1_000_000; i++) b.take(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 1, 0);
  assert.equal(b.size, 1000);
  const big = new Buckets(1, 1000, 1);
  for (let i = 0; i < MAX_CLIENTS + 10; i++) big.take(String(i), 1, i);
  assert.equal(big.size, MAX_CLIENTS);
});

test("the busiest address keeps its state while refilled ones are evicted", () => {
  const b = new Buckets(1, 60_000, 1, 4);
  assert.equal(b.take("busy", 1, 0), 1);
  // a thousand one-off clients, each refilled a second later
  for (let i = 0; i < 1000; i++) {
    b.take(`c${i}`, 1, i * 2000);
    b.take("busy", 1, i * 2000 + 1); // keeps "busy" empty
  }
  assert.equal(b.take("busy", 1, 1000 * 2000 + 2), 0);
});

test("RateLimit answers 429 with Retry-After in whole seconds", () => {
  const rl = new RateLimit({ kind: "rate_limit", limit: 1, period: 60_000, burst: 1 }, "svc#0");
  const none = () => {};
  assert.equal(rl.request(undefined, { client: "1.2.3.4" }, none), undefined);
  const a = rl.request(undefined, { client: "1.2.3.4" }, none);
  assert.ok(a !== undefined && typeof a === "object");
  assert.equal(a.status, 429);
  const i = a.headers.indexOf("retry-after");
  assert.ok(Number(a.headers[i + 1]) >= 59 && Number(a.headers[i + 1]) <= 60, a.headers[i + 1]);
});

test("TokenBank grants what the bucket has and starts afresh when the settings change", () => {
  const bank = new TokenBank();
  const c = { kind: "rate_limit", limit: 5, period: 60_000, burst: 5 } as const;
  assert.equal(bank.grant("s#0", c, "x", 3).granted, 3);
  assert.equal(bank.grant("s#0", c, "x", 3).granted, 2);
  const out = bank.grant("s#0", c, "x", 3);
  assert.equal(out.granted, 0);
  assert.ok(out.retryAfter > 0);
  assert.equal(bank.grant("s#0", { ...c, burst: 6 }, "x", 3).granted, 3);
});
