import * as assert from "node:assert/strict";
import { test } from "node:test";
import { compressible, negotiate } from "./compress.ts";

test("negotiate: q-values, *, refusals and the configured order on ties", () => {
  const both = ["br", "gzip"] as const;
  assert.equal(negotiate("gzip, deflate, br", both), "br");
  assert.equal(negotiate("gzip, deflate, br", ["gzip", "br"]), "gzip");
  assert.equal(negotiate("gzip;q=1, br;q=0.5", both), "gzip");
  assert.equal(negotiate("br;q=0, gzip;q=0.1", both), "gzip");
  assert.equal(negotiate("br;q=0, gzip;q=0", both), undefined);
  assert.equal(negotiate("*", both), "br");
  assert.equal(negotiate("*;q=0.5, br;q=0", both), "gzip");
  assert.equal(negotiate("identity", both), undefined);
  assert.equal(negotiate("x-gzip", both), "gzip");
  assert.equal(negotiate("GZIP;Q=0.8", both), "gzip");
  assert.equal(negotiate("gzip;q=nonsense", both), undefined);
  assert.equal(negotiate(undefined, both), undefined);
  assert.equal(negotiate("", both), undefined);
});

test("compressible: text and structured types, never images, archives or event streams", () => {
  for (const t of [
    "text/html; charset=utf-8",
    "application/json",
    "application/problem+json",
    "image/svg+xml",
    "application/javascript",
  ])
    assert.equal(compressible(t), true, t);
  for (const t of [
    "image/png",
    "image/jpeg",
    "application/zip",
    "application/gzip",
    "video/mp4",
    "font/woff2",
    "application/octet-stream",
    "text/event-stream",
  ])
    assert.equal(compressible(t), false, t);
});
