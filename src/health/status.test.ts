import * as assert from "node:assert/strict";
import { test } from "node:test";
import { isGood, STATUSES } from "./status.ts";

test("healthy, napping and starting are good; unhealthy, error and unknown are not", () => {
  assert.deepEqual(STATUSES, ["healthy", "napping", "starting", "unhealthy", "error", "unknown"]);
  assert.deepEqual(
    STATUSES.filter((s) => isGood(s)),
    ["healthy", "napping", "starting"],
  );
});
