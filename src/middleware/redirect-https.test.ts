import * as assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { test } from "node:test";
import { RealIpResolver } from "../balancer/realip.ts";
import { RedirectHttps } from "./redirect-https.ts";

const trusted = new RealIpResolver({ from: ["10.0.0.0/8"] });
const req = (url: string, raw: string[], peer = "203.0.113.5", encrypted = false) =>
  ({
    url,
    rawHeaders: raw,
    headers: {},
    socket: { remoteAddress: peer, encrypted },
  }) as unknown as IncomingMessage;

test("plain http: 308 to the same host (no port) and target on https", () => {
  const r = new RedirectHttps({ kind: "redirect_https", status: 308, port: undefined }, () => trusted);
  const a = r.request(req("/a?b=1", ["Host", "Example.COM:8080"]));
  assert.equal(a?.status, 308);
  assert.equal(a?.headers[a.headers.indexOf("location") + 1], "https://example.com/a?b=1");
  const p = new RedirectHttps({ kind: "redirect_https", status: 301, port: 8443 }, () => trusted);
  const b = p.request(req("/", ["host", "[::1]:80"]));
  assert.equal(b?.status, 301);
  assert.equal(b?.headers[b.headers.indexOf("location") + 1], "https://[::1]:8443/");
});

test("over TLS, or X-Forwarded-Proto: https from a trusted peer only: no redirect", () => {
  const r = new RedirectHttps({ kind: "redirect_https", status: 308, port: undefined }, () => trusted);
  assert.equal(r.request(req("/", ["host", "x"], "203.0.113.5", true)), undefined);
  assert.equal(r.request(req("/", ["host", "x", "X-Forwarded-Proto", "https"], "10.1.1.1")), undefined);
  // an untrusted peer cannot talk its way out of the redirect
  assert.equal(r.request(req("/", ["host", "x", "X-Forwarded-Proto", "https"]))?.status, 308);
  // no Host: nothing to redirect to
  assert.equal(r.request(req("/", []))?.status, 400);
});
