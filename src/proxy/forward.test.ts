import assert from "node:assert/strict";
import { test } from "node:test";
import { gatewayStatus, IdleError, UpstreamError } from "../errors.ts";
import { classify, mayRetry } from "./forward.ts";

test("gatewayStatus: 504 for connect, response-head and wake timeouts; 502 for the rest", () => {
  const up = (code: UpstreamError["code"]) => new UpstreamError("x", code);
  assert.equal(gatewayStatus(up("ERR_SWITCHYARD_UPSTREAM_CONNECT_TIMEOUT")), 504);
  assert.equal(gatewayStatus(up("ERR_SWITCHYARD_UPSTREAM_HEADERS_TIMEOUT")), 504);
  assert.equal(gatewayStatus(new IdleError("x", "ERR_SWITCHYARD_WAKE_TIMEOUT")), 504);
  assert.equal(gatewayStatus(up("ERR_SWITCHYARD_UPSTREAM_BODY_TIMEOUT")), 502);
  assert.equal(gatewayStatus(up("ERR_SWITCHYARD_UPSTREAM_PROTOCOL")), 502);
  assert.equal(gatewayStatus(new IdleError("x", "ERR_SWITCHYARD_WAKE_FAILED")), 502);
  assert.equal(gatewayStatus(Object.assign(new Error("refused"), { code: "ECONNREFUSED" })), 502);
  assert.equal(gatewayStatus(undefined), 502);
});

test("mayRetry: unsent attempts go elsewhere unless they timed out; a reset only when replayable", () => {
  const refused = classify(Object.assign(new Error("x"), { code: "ECONNREFUSED" }));
  const reset = classify(Object.assign(new Error("x"), { code: "ECONNRESET" }));
  const timeout = classify(new UpstreamError("x", "ERR_SWITCHYARD_UPSTREAM_HEADERS_TIMEOUT"));
  const other = classify(new UpstreamError("x", "ERR_SWITCHYARD_UPSTREAM_PROTOCOL"));
  assert.deepEqual([refused, reset, timeout, other], ["connect", "reset", "timeout", "other"]);
  assert.equal(mayRetry(refused, true, false), true);
  assert.equal(mayRetry(other, true, false), true);
  assert.equal(mayRetry(timeout, true, true), false, "a timeout may have reached the server");
  assert.equal(mayRetry(reset, false, true), true, "a bodiless GET broken before any response");
  assert.equal(mayRetry(reset, false, false), false, "a POST that was written is not replayed");
  assert.equal(mayRetry(other, false, true), false);
});
