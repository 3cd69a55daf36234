import * as assert from "node:assert/strict";
import { test } from "node:test";
import { decideHttp1 } from "./mode.ts";

test("SWITCHYARD_HTTP1: auto (or unset) and native take the working binding; fallback is forced; others are refused", () => {
  for (const s of [undefined, "", "auto", " Auto ", "native", "NATIVE"])
    assert.deepEqual(decideHttp1(s), { path: "native" }, String(s));
  assert.deepEqual(decideHttp1("fallback"), { path: "fallback" });
  assert.throws(() => decideHttp1("fast"), /SWITCHYARD_HTTP1=fast: expected native, fallback or auto/);
});
