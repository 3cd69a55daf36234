import * as assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import bcrypt from "bcryptjs";
import { type Backend, backend } from "../support/backend.ts";
import { get, type Reply } from "../support/http.ts";
import { type Running, startSwitchyard, tempDir } from "../support/switchyard.ts";

/** A backend that echoes what it got as JSON; a few paths answer otherwise. */
async function echoBackend(): Promise<Backend> {
  const big = "switchyard compresses text like this. ".repeat(200);
  return backend("echo", {
    handler: (req, res) => {
      if (req.url === "/big") {
        res.writeHead(200, {
          "content-type": "text/plain; charset=utf-8",
          "content-length": big.length,
          etag: '"v1"',
        });
        res.end(big);
      } else if (req.url === "/png") {
        const png = Buffer.alloc(4096, 7);
        res.writeHead(200, { "content-type": "image/png", "content-length": png.length });
        res.end(png);
      } else if (req.url === "/small") {
        res.writeHead(200, { "content-type": "text/plain", "content-length": 5 });
        res.end("small");
      } else if (req.url === "/chunked") {
        res.writeHead(200, { "content-type": "application/json" });
        res.write("[");
        setImmediate(() => res.end(`${'"x",'.repeat(500)}"y"]`));
      } else if (req.url === "/slow") {
        const t = setTimeout(() => res.end("late"), 3000);
        res.on("close", () => clearTimeout(t));
      } else if (req.url?.startsWith("/status/")) {
        res.writeHead(Number(req.url.slice(8)), { "content-type": "text/plain" });
        res.end("backend's own error body");
      } else {
        const body = JSON.stringify({ url: req.url, headers: req.headers });
        res.writeHead(200, {
          "content-type": "application/json",
          server: "echo",
          "content-length": Buffer.byteLength(body),
        });
        res.end(body);
      }
    },
  });
}

const json = (r: Reply) => r.json<{ url: string; headers: Record<string, string> }>();

describe("switchyard serve: paths and middlewares", { timeout: 60_000 }, () => {
  const tmp = tempDir();
  let echo: Backend;
  let sy: Running;
  let proxy: string;
  let file: string;
  const hash = bcrypt.hashSync("s3cret", 4);

  const config = (apiPaths: string) => `listen: 127.0.0.1:0
admin: 127.0.0.1:0
services:
  api:
    hosts: [p.test]
    paths: ${apiPaths}
    strip_prefix: true
    servers: ["${echo.url}"]
  web:
    hosts: [p.test]
    middlewares:
      - request_headers: { set: { X-Env: prod }, add: { X-Via: switchyard }, remove: [X-Debug] }
      - response_headers: { set: { Strict-Transport-Security: "max-age=31536000" }, remove: [Server] }
    servers: ["${echo.url}"]
  allowed:
    hosts: [allow.test]
    middlewares: [{ allow: [10.0.0.0/8] }]
    servers: ["${echo.url}"]
  denied:
    hosts: [deny.test]
    middlewares: [{ deny: [127.0.0.1, "::1"] }]
    servers: ["${echo.url}"]
  secure:
    hosts: [r.test]
    middlewares: [{ redirect_https: true }]
    servers: ["${echo.url}"]
  auth:
    hosts: [auth.test]
    middlewares: [{ basic_auth: { realm: staff, users: { alice: "${hash}" } } }]
    servers: ["${echo.url}"]
  limited:
    hosts: [rl.test]
    middlewares: [{ rate_limit: { rate: 6/m, burst: 3 } }]
    servers: ["${echo.url}"]
  zip:
    hosts: [z.test]
    middlewares: [{ compress: { min_length: 100 } }]
    servers: ["${echo.url}"]
  pages:
    hosts: [e.test]
    middlewares: [{ compress: { min_length: 10 } }, { error_pages: { 502: ./502.html, 503: ./503.html } }]
    servers: ["${echo.url}"]
  hurried:
    hosts: [t.test]
    timeouts: { response_header: 200ms }
    servers: ["${echo.url}"]
  nothing:
    hosts: [down.test]
    healthcheck: { interval: 100ms, timeout: 1s }
    middlewares: [{ error_pages: { 502: ./502.html, 503: ./503.html } }]
    servers: ["http://127.0.0.1:1"]
`;

  before(async () => {
    echo = await echoBackend();
    tmp.write("502.html", "<h1>we are fixing it</h1>");
    tmp.write("503.html", "<h1>come back soon</h1>".repeat(5));
    file = tmp.write("switchyard.yaml", config("[/api/]"));
    sy = await startSwitchyard(["serve", "-c", file]);
    proxy = sy.proxy[0];
  });
  after(async () => {
    await sy?.stop();
    await echo?.stop();
    tmp.remove();
  });

  test("longest prefix wins on a shared host; strip_prefix; /api matches, /apis does not", async () => {
    assert.equal(json(await get(proxy, "/api/users?id=1", { host: "p.test" })).url, "/users?id=1");
    assert.equal(json(await get(proxy, "/api", { host: "p.test" })).url, "/");
    assert.equal(json(await get(proxy, "/api?x", { host: "p.test" })).url, "/?x");
    const web = await get(proxy, "/apis", { host: "p.test" });
    assert.equal(json(web).url, "/apis");
    // web has response_headers: its answers prove which service took the request
    assert.equal(web.headers["strict-transport-security"], "max-age=31536000");
    assert.equal(
      (await get(proxy, "/api/x", { host: "p.test" })).headers["strict-transport-security"],
      undefined,
    );
  });

  test("request_headers and response_headers: set, add, remove", async () => {
    const r = await get(proxy, "/", {
      host: "p.test",
      headers: { "x-env": "dev", "x-debug": "1", "x-via": "client" },
    });
    const seen = json(r).headers;
    assert.equal(seen["x-env"], "prod");
    assert.equal(seen["x-debug"], undefined);
    assert.equal(seen["x-via"], "client, switchyard");
    assert.equal(r.headers.server, undefined);
  });

  test("allow and deny answer 403 by client address, without reaching the backend", async () => {
    const before = echo.received.length;
    assert.equal((await get(proxy, "/", { host: "allow.test" })).status, 403);
    assert.equal((await get(proxy, "/", { host: "deny.test" })).status, 403);
    assert.equal(echo.received.length, before);
  });

  test("redirect_https: 308 to the same URL on https", async () => {
    const r = await get(proxy, "/a/b?c=d", { host: "r.test:8080" });
    assert.equal(r.status, 308);
    assert.equal(r.headers.location, "https://r.test/a/b?c=d");
  });

  test("basic_auth: 401 with WWW-Authenticate unless the bcrypt hash matches", async () => {
    const basic = (u: string, p: string) => ({
      authorization: `Basic ${Buffer.from(`${u}:${p}`).toString("base64")}`,
    });
    const none = await get(proxy, "/", { host: "auth.test" });
    assert.equal(none.status, 401);
    assert.equal(none.headers["www-authenticate"], 'Basic realm="staff", charset="UTF-8"');
    assert.equal(
      (await get(proxy, "/", { host: "auth.test", headers: basic("alice", "wrong") })).status,
      401,
    );
    assert.equal(
      (await get(proxy, "/", { host: "auth.test", headers: basic("mallory", "s3cret") })).status,
      401,
    );
    assert.equal(
      (await get(proxy, "/", { host: "auth.test", headers: basic("alice", "s3cret") })).status,
      200,
    );
    assert.equal(
      (await get(proxy, "/", { host: "auth.test", headers: basic("alice", "s3cret") })).status,
      200,
    );
  });

  test("rate_limit: the burst passes, then 429 with Retry-After", async () => {
    const codes: number[] = [];
    let last: Reply | undefined;
    for (let i = 0; i < 5; i++) {
      last = await get(proxy, "/", { host: "rl.test" });
      codes.push(last.status);
    }
    assert.deepEqual(codes, [200, 200, 200, 429, 429]);
    assert.ok(Number(last!.headers["retry-after"]) >= 1, String(last!.headers["retry-after"]));
  });

  test("compress: gzip or br per Accept-Encoding and q-values, never images or small bodies", async () => {
    const gz = await get(proxy, "/big", { host: "z.test", headers: { "accept-encoding": "gzip, deflate" } });
    assert.equal(gz.headers["content-encoding"], "gzip");
    assert.equal(gz.headers.vary, "Accept-Encoding");
    assert.equal(gz.headers.etag, 'W/"v1"');
    assert.equal(gz.headers["content-length"], undefined);
    assert.equal(gunzipSync(gz.bytes).toString(), "switchyard compresses text like this. ".repeat(200));
    assert.ok(gz.bytes.length < 500, `${gz.bytes.length} bytes`);
    const br = await get(proxy, "/big", { host: "z.test", headers: { "accept-encoding": "gzip;q=0.5, br" } });
    assert.equal(br.headers["content-encoding"], "br");
    assert.equal(brotliDecompressSync(br.bytes).toString().length, 7600);
    const refused = await get(proxy, "/big", {
      host: "z.test",
      headers: { "accept-encoding": "gzip;q=0, br;q=0" },
    });
    assert.equal(refused.headers["content-encoding"], undefined);
    assert.equal(refused.headers.vary, "Accept-Encoding");
    const chunked = await get(proxy, "/chunked", { host: "z.test", headers: { "accept-encoding": "gzip" } });
    assert.equal(chunked.headers["content-encoding"], "gzip");
    assert.equal(JSON.parse(gunzipSync(chunked.bytes).toString()).length, 501);
    const png = await get(proxy, "/png", { host: "z.test", headers: { "accept-encoding": "gzip, br" } });
    assert.equal(png.headers["content-encoding"], undefined);
    assert.equal(png.bytes.length, 4096);
    const small = await get(proxy, "/small", { host: "z.test", headers: { "accept-encoding": "gzip" } });
    assert.equal(small.headers["content-encoding"], undefined);
    assert.equal(small.body, "small");
  });

  test("error_pages: the backend's 502 and switchyard's own 503 get the page; other statuses do not", async () => {
    const r = await get(proxy, "/status/502", { host: "e.test" });
    assert.equal(r.status, 502);
    assert.equal(r.body, "<h1>we are fixing it</h1>");
    assert.equal(r.headers["content-type"], "text/html; charset=utf-8");
    const other = await get(proxy, "/status/500", { host: "e.test" });
    assert.equal(other.body, "backend's own error body");
    // the page goes through compress listed before it (the outer middleware)
    const zipped = await get(proxy, "/status/503", {
      host: "e.test",
      headers: { "accept-encoding": "gzip" },
    });
    assert.equal(zipped.headers["content-encoding"], "gzip");
    assert.equal(gunzipSync(zipped.bytes).toString(), "<h1>come back soon</h1>".repeat(5));
    // switchyard's own answer: 502 (refused) until the health check marks the server down, then 503
    const own = await get(proxy, "/", { host: "down.test" });
    assert.ok(own.status === 502 || own.status === 503, String(own.status));
    assert.equal(
      own.body,
      own.status === 502 ? "<h1>we are fixing it</h1>" : "<h1>come back soon</h1>".repeat(5),
    );
  });

  test("a service's own response_header timeout: 504 after 200ms, not the top-level 60s", async () => {
    // the backend answers after 3 s: a 504 is the service's 200ms (the top-level default is 60s)
    assert.equal((await get(proxy, "/slow", { host: "t.test" })).status, 504);
  });

  test("answers are counted per middleware; paths and middlewares are in the health JSON", async () => {
    const metrics = await fetch(`http://${sy.admin}/metrics`).then((r) => r.text());
    assert.match(
      metrics,
      /switchyard_middleware_answers_total\{service="allowed",middleware="allow",code="403"\} 1/,
    );
    assert.match(
      metrics,
      /switchyard_middleware_answers_total\{service="limited",middleware="rate_limit",code="429"\} 2/,
    );
    const health = (await fetch(`http://${sy.admin}/api/health`).then((r) => r.json())) as Record<
      string,
      Record<string, unknown>
    >;
    assert.deepEqual(health.api.paths, ["/api"]);
    assert.equal(health.api.strip_prefix, true);
    assert.deepEqual(health.web.middlewares, ["request_headers", "response_headers"]);
    assert.equal(health.allowed.paths, undefined);
    assert.deepEqual(health.hurried.timeouts, { response_header: "200ms" });
  });

  test("hot reload: new prefixes route at once", async () => {
    tmp.write("switchyard.yaml", config("[/v2/]"));
    sy.child.kill("SIGHUP");
    await sy.waitForLog((r) => typeof r.msg === "string" && r.msg.includes("config reloaded"), 10_000);
    assert.equal(json(await get(proxy, "/v2/x", { host: "p.test" })).url, "/x");
    assert.equal(json(await get(proxy, "/api/x", { host: "p.test" })).url, "/api/x");
  });
});
