import * as assert from "node:assert/strict";
import { test } from "node:test";
import { relayableTrailers } from "./trailers.ts";
import { isH2cUpgrade, overflowStatus, requestProblem, validHost } from "./validate.ts";

const req = (raw: string[], major = 1, minor = 1, stream?: unknown) => ({
  httpVersionMajor: major,
  httpVersionMinor: minor,
  rawHeaders: raw,
  stream,
});

test("Host: host[:port] with a reg-name, IPv4 or IP literal; anything else is refused", () => {
  for (const ok of [
    "api.test",
    "api.test:8080",
    "127.0.0.1",
    "[::1]:443",
    "xn--bcher-kva.example",
    "a_b.test",
  ])
    assert.ok(validHost(ok), ok);
  for (const bad of ["", "a/b@c", "a, b", "a b", "user@host", "host:port", "[::1", "a\\b", "h:123456"])
    assert.ok(!validHost(bad), bad);
  assert.deepEqual(requestProblem(req(["Host", "a/b@c"]))?.[0], 400);
  assert.deepEqual(requestProblem(req(["Host", ""]))?.[0], 400);
  assert.equal(requestProblem(req(["Host", "api.test"])), null);
});

test("versions: HTTP/2.0 on an HTTP/1 connection 505, HTTP/0.9 400, HTTP/2 streams pass", () => {
  assert.equal(requestProblem(req([], 2, 0))?.[0], 505);
  assert.equal(requestProblem(req([], 0, 9))?.[0], 400);
  assert.equal(requestProblem(req([], 2, 0, {})), null);
  assert.equal(requestProblem(req(["Host", "x"], 1, 0)), null);
});

test("Transfer-Encoding: only exactly chunked passes; other codings 501", () => {
  for (const ok of ["chunked", "Chunked", " chunked "])
    assert.equal(requestProblem(req(["Transfer-Encoding", ok])), null);
  for (const bad of ["gzip, chunked", "chunked, chunked", "identity"])
    assert.equal(requestProblem(req(["transfer-encoding", bad]))?.[0], 501, bad);
});

test("a head over the limit: 414 when the request line is what is long, else 431", () => {
  assert.equal(overflowStatus(Buffer.from(`GET /${"a".repeat(100)}`))[0], 414);
  assert.equal(overflowStatus(Buffer.from(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(100)}`))[0], 431);
  // a pipelined request after a complete one: its own line counts
  assert.equal(
    overflowStatus(Buffer.from(`GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /${"a".repeat(100)}`))[0],
    414,
  );
});

test("h2c upgrades are recognised in a token list", () => {
  for (const v of ["h2c", "H2C", "websocket, h2c", "h2c , foo"]) assert.ok(isH2cUpgrade(v), v);
  for (const v of [undefined, "websocket", "h2", "xh2c"]) assert.ok(!isH2cUpgrade(v), String(v));
});

test("trailers: RFC 9110 §6.5.1 fields and hop-by-hop ones are dropped, the rest kept in order", () => {
  assert.deepEqual(
    relayableTrailers([
      "X-Checksum",
      "abc",
      "Content-Length",
      "9",
      "Set-Cookie",
      "a=b",
      "Host",
      "evil",
      "grpc-status",
      "0",
      "Transfer-Encoding",
      "chunked",
      "Location",
      "/x",
      "Connection",
      "close",
      "X-Other",
      "1",
    ]),
    ["X-Checksum", "abc", "grpc-status", "0", "X-Other", "1"],
  );
  assert.equal(relayableTrailers(["Set-Cookie", "a=b"]), null);
  assert.equal(relayableTrailers([]), null);
  assert.equal(relayableTrailers(undefined), null);
});
