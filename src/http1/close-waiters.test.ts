import * as assert from "node:assert/strict";
import { test } from "node:test";
import { CloseWaiters } from "./close-waiters.ts";

test("CloseWaiters: every waiter resolves at settle(), none before", async () => {
  const w = new CloseWaiters();
  assert.equal(w.waiting, false);
  const settled: number[] = [];
  const a = w.wait().then(() => settled.push(1));
  const b = w.wait().then(() => settled.push(2));
  assert.equal(w.waiting, true);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(settled, []);
  w.settle();
  await Promise.all([a, b]);
  assert.deepEqual(settled, [1, 2]);
  assert.equal(w.waiting, false);
});
