import * as assert from "node:assert/strict";
import { describe, test } from "node:test";
import { LoadBalancer } from "../load-balancer.ts";
import { Server } from "./server.ts";
import { effectiveWeights, rebalance } from "./weights.ts";

describe("rebalance (the SPEC's weight rule)", () => {
  test("scales to exactly 100, rounding down, remainder one point at a time in add order", () => {
    assert.deepEqual(rebalance([5, 1, 1]), [72, 14, 14]);
    assert.deepEqual(rebalance([1, 1, 1]), [34, 33, 33]);
    assert.deepEqual(rebalance([1, 1, 1, 1, 1, 1, 1]), [15, 15, 14, 14, 14, 14, 14]);
    assert.deepEqual(rebalance([50, 30, 20]), [50, 30, 20]);
    assert.deepEqual(rebalance([5, 3, 2]), [50, 30, 20]);
    assert.deepEqual(rebalance([30, 70]), [30, 70]);
    assert.deepEqual(rebalance([1, 2]), [34, 66]);
    assert.deepEqual(rebalance([7]), [100]);
    assert.deepEqual(rebalance([]), []);
    // 200:1 — the small one is rounded down to 0 and the single remainder point goes to the first
    assert.deepEqual(rebalance([200, 1]), [100, 0]);
    assert.deepEqual(rebalance([1, 200]), [1, 99]);
  });

  test("0 becomes the rounded mean of the non-zero weights; all 0 → 1 each", () => {
    assert.deepEqual(effectiveWeights([0, 0, 0]), [1, 1, 1]);
    assert.deepEqual(effectiveWeights([10, 0, 20]), [10, 15, 20]);
    assert.deepEqual(effectiveWeights([1, 2, 0]), [1, 2, 2]); // 1.5 rounds to 2
    assert.deepEqual(effectiveWeights([1, 1, 2, 0]), [1, 1, 2, 1]); // 1.33 rounds to 1
    assert.deepEqual(rebalance([10, 0, 20]), [23, 33, 44]); // 10,15,20 of 45 → 22,33,44 + 1
    assert.deepEqual(rebalance([30, 0]), [50, 50]);
    assert.deepEqual(rebalance([0, 0, 0]), [34, 33, 33]);
  });

  test("more than 100 servers: the total is the server count", () => {
    const w = rebalance(new Array(150).fill(0));
    assert.equal(w.length, 150);
    assert.ok(w.every((x) => x === 1));
    const mixed = rebalance([2, ...new Array(100).fill(1)]);
    assert.equal(
      mixed.reduce((a, b) => a + b, 0),
      101,
    );
    // 2*101/102 → 1, 101/102 → 0; the 100 remainder points go one each from the first
    assert.equal(mixed[0], 2);
    assert.equal(mixed[99], 1);
    assert.equal(mixed[100], 0);
  });

  test("negative or fractional weights are errors naming the server", () => {
    assert.throws(() => new Server({ name: "a", url: "http://127.0.0.1:1", weight: -1 }), {
      name: "InvalidArgumentError",
      message: /Server a: weight must be an integer >= 0, got -1/,
    });
    assert.throws(
      () => new Server({ name: "b", url: "http://127.0.0.1:1", weight: 1.5 }),
      /Server b: weight/,
    );
  });

  test("the balancer rebalances on every add and remove", () => {
    const lb = new LoadBalancer({ link: "w" });
    const mk = (name: string, port: number, weight?: number) =>
      new Server({ name, url: `http://127.0.0.1:${port}`, weight });
    const a = mk("a", 1001, 5);
    lb.addServer(a);
    assert.deepEqual(
      lb.servers.map((s) => s.weight),
      [100],
    );
    lb.addServer(mk("b", 1002, 1));
    assert.deepEqual(
      lb.servers.map((s) => s.weight),
      [84, 16], // 5:1 of 100 → 83, 16 + 1
    );
    lb.addServer(mk("c", 1003, 1));
    assert.deepEqual(
      lb.servers.map((s) => s.weight),
      [72, 14, 14],
    );
    lb.addServer(mk("d", 1004)); // 0 → mean of 5,1,1 = 2.33 → 2
    assert.deepEqual(
      lb.servers.map((s) => s.weight),
      [56, 11, 11, 22], // 5,1,1,2 of 9 → 55,11,11,22 + 1
    );
    assert.equal(lb.removeServer(a), true);
    assert.deepEqual(
      lb.servers.map((s) => [s.name, s.weight]),
      [
        ["b", 34], // 1,1,1 (d's 0 is now the mean of 1,1) → 33 each + 1
        ["c", 33],
        ["d", 33],
      ],
    );
    assert.equal(lb.removeServer("127.0.0.1:1003"), true);
    assert.equal(lb.removeServer("127.0.0.1:1003"), false);
    assert.deepEqual(
      lb.servers.map((s) => s.weight),
      [50, 50],
    );
    assert.deepEqual(
      lb.servers.map((s) => s.configuredWeight),
      [1, 0],
    );
  });
});
