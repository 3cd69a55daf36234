import * as assert from "node:assert/strict";
import { test } from "node:test";
import {
  bucketOf,
  bucketUpper,
  emptySummary,
  LAT_BUCKETS,
  mergeSnapshot,
  quantile,
  renderSnapshot,
  renderSummary,
  StatsWindow,
} from "./stats.ts";

test("latency buckets: monotonic, each value within its bucket, ~26% wide", () => {
  let prev = 0;
  for (const ms of [0, 0.01, 0.05, 0.06, 0.1, 0.5, 1, 2, 5, 10, 50, 100, 1000, 10_000, 60_000, 1e9]) {
    const b = bucketOf(ms);
    assert.ok(b >= prev, `bucket of ${ms}`);
    assert.ok(b >= 0 && b < LAT_BUCKETS);
    if (b > 0 && b < LAT_BUCKETS - 1) {
      assert.ok(ms <= bucketUpper(b) * (1 + 1e-9) && ms > bucketUpper(b - 1), `${ms} in bucket ${b}`);
      assert.ok(bucketUpper(b) / bucketUpper(b - 1) < 1.27);
    }
    prev = b;
  }
  assert.equal(bucketOf(Number.NaN), 0);
});

test("a window counts classes and latencies of the last minute, rps over the last 10 s", () => {
  const w = new StatsWindow();
  const t0 = 1_000_000; // ms, as performance.now() would give
  // 60 s of 10 requests/s: 2xx at 10 ms; one 5xx at 200 ms each second
  for (let s = 0; s < 60; s++) {
    for (let i = 0; i < 9; i++) w.record(t0 + s * 1000 + i, 1, 10);
    w.record(t0 + s * 1000 + 9, 4, 200);
  }
  const now = t0 + 59_999;
  const sum = emptySummary();
  w.collect(now, sum);
  assert.equal(sum.status[1], 540);
  assert.equal(sum.status[4], 60);
  assert.ok(Math.abs(sum.rps - 10) < 0.2, `rps ${sum.rps}`);
  const json = renderSummary(sum);
  assert.deepEqual(json.status, { "2xx": 540, "3xx": 0, "4xx": 0, "5xx": 60 });
  assert.ok(json.p50_ms > 8.9 && json.p50_ms < 11.3, `p50 ${json.p50_ms}`);
  assert.ok(json.p99_ms > 178 && json.p99_ms < 225, `p99 ${json.p99_ms}`);

  // 30 s later half the minute has gone by; nothing in the last 10 s
  const later = emptySummary();
  w.collect(now + 30_000, later);
  assert.equal(later.status[1] + later.status[4], 300, "only the last 30 seconds of traffic are left");
  assert.equal(later.rps, 0);
  // a slot reused after a minute starts from zero
  w.record(now + 61_000, 3, 1);
  const reused = emptySummary();
  w.collect(now + 61_000, reused);
  assert.equal(reused.status[3], 1);
  assert.equal(reused.status[1] + reused.status[4], 0, "the old seconds have expired");
});

test("summaries merge by addition (cluster workers) and render per service and server", () => {
  const a = emptySummary();
  a.inflight = 2;
  a.rps = 5;
  a.status[1] = 10;
  a.hist[bucketOf(1)] = 10;
  const b = emptySummary();
  b.inflight = 1;
  b.rps = 3;
  b.status[3] = 10;
  b.hist[bucketOf(100)] = 10;
  const one = { web: { total: a, servers: { "w-1": structuredClone(a) } } };
  const two = { web: { total: b, servers: { "w-1": structuredClone(b), "w-2": emptySummary() } } };
  const out = renderSnapshot(mergeSnapshot(one, two)).web;
  assert.equal(out.inflight, 3);
  assert.equal(out.rps, 8);
  assert.deepEqual(out.status, { "2xx": 10, "3xx": 0, "4xx": 10, "5xx": 0 });
  assert.ok(out.p50_ms < 1.2 && out.p99_ms > 80, `${out.p50_ms} ${out.p99_ms}`);
  assert.deepEqual(Object.keys(out.servers), ["w-1", "w-2"]);
  assert.equal(out.servers["w-1"].inflight, 3);
  assert.equal(out.servers["w-2"].p99_ms, 0);
  assert.equal(quantile(new Array(LAT_BUCKETS).fill(0), 0.5), 0);
});
