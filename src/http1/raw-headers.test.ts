import assert from "node:assert/strict";
import { test } from "node:test";
import { BAD_FRAMING, BODY, bodyFraming, NO_BODY, nameIs, rawHeader, rawHeaderCount } from "./raw-headers.ts";

test("nameIs / rawHeader / rawHeaderCount ignore case and find the first value", () => {
  const raw = ["Host", "a", "X-Thing", "1", "HOST", "b", "x-thing", "2"];
  assert.equal(nameIs("Content-Length", "content-length"), true);
  assert.equal(nameIs("Content-Lengths", "content-length"), false);
  assert.equal(rawHeader(raw, "x-thing"), "1");
  assert.equal(rawHeader(raw, "missing"), undefined);
  assert.equal(rawHeader(undefined, "host"), undefined);
  assert.equal(rawHeaderCount(raw, "host"), 2);
});

test("bodyFraming: Content-Length, chunked last, and other Transfer-Encodings (RFC 9112 §6.3)", () => {
  assert.equal(bodyFraming([]), NO_BODY);
  assert.equal(bodyFraming(["Content-Length", "0"]), NO_BODY);
  assert.equal(bodyFraming(["content-length", "12"]), BODY);
  assert.equal(bodyFraming(["Transfer-Encoding", "gzip, chunked"]), BODY);
  assert.equal(bodyFraming(["Transfer-Encoding", "chunked, gzip"]), BAD_FRAMING);
  assert.equal(bodyFraming(["Content-Length", "0", "TRANSFER-ENCODING", "identity"]), BAD_FRAMING);
});
