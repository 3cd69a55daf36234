import * as assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import bcrypt from "bcryptjs";
import { type Running, splitAddress, startSwitchyard, tempDir } from "../support/switchyard.ts";

/** A backend that echoes what it got as JSON; a few paths answer otherwise. */
async function echoBackend(): Promise<{ url: string; hits: number; close(): Promise<void> }> {
  const state = { hits: 0 };
  const big = "switchyard compresses text like this. ".repeat(200);
  const server = http.createServer((req, res) => {
    state.hits++;
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
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get hits() {
      return state.hits;
    },
    close: () =>
      new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      }),
  };
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function request(
  address: string,
  host: string,
  path: string,
  headers: http.OutgoingHttpHeaders = {},
  method = "GET",
): Promise<Reply> {
  const [hostname, port] = splitAddress(address);
  return new Promise((ok, fail) => {
    const req = http.request(
      { host: hostname, port, path, method, agent: false, headers: { host, ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          ok({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on("error", fail);
      },
    );
    req.on("error", fail);
    req.end();
  });
}
const json = (r: Reply) => JSON.parse(r.body.toString()) as { url: string; headers: Record<string, string> };

describe("switchyard serve: paths and middlewares", { timeout: 60_000 }, () => {
  const tmp = tempDir();
  let backend: Awaited<ReturnType<typeof echoBackend>>;
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
    servers: ["${backend.url}"]
  web:
    hosts: [p.test]
    middlewares:
      - request_headers: { set: { X-Env: prod }, add: { X-Via: switchyard }, remove: [X-Debug] }
      - response_headers: { set: { Strict-Transport-Security: "max-age=31536000" }, remove: [Server] }
    servers: ["${backend.url}"]
  allowed:
    hosts: [allow.test]
    middlewares: [{ allow: [10.0.0.0/8] }]
    servers: ["${backend.url}"]
  denied:
    hosts: [deny.test]
    middlewares: [{ deny: [127.0.0.1, "::1"] }]
    servers: ["${backend.url}"]
  secure:
    hosts: [r.test]
    middlewares: [{ redirect_https: true }]
    servers: ["${backend.url}"]
  auth:
    hosts: [auth.test]
    middlewares: [{ basic_auth: { realm: staff, users: { alice: "${hash}" } } }]
    servers: ["${backend.url}"]
  limited:
    hosts: [rl.test]
    middlewares: [{ rate_limit: { rate: 6/m, burst: 3 } }]
    servers: ["${backend.url}"]
  zip:
    hosts: [z.test]
    middlewares: [{ compress: { min_length: 100 } }]
    servers: ["${backend.url}"]
  pages:
    hosts: [e.test]
    middlewares: [{ compress: { min_length: 10 } }, { error_pages: { 502: ./502.html, 503: ./503.html } }]
    servers: ["${backend.url}"]
  hurried:
    hosts: [t.test]
    timeouts: { response_header: 200ms }
    servers: ["${backend.url}"]
  nothing:
    hosts: [down.test]
    healthcheck: { interval: 100ms, timeout: 1s }
    middlewares: [{ error_pages: { 502: ./502.html, 503: ./503.html } }]
    servers: ["http://127.0.0.1:1"]
`;

  before(async () => {
    backend = await echoBackend();
    tmp.write("502.html", "<h1>we are fixing it</h1>");
    tmp.write("503.html", "<h1>come back soon</h1>".repeat(5));
    file = tmp.write("switchyard.yaml", config("[/api/]"));
    sy = await startSwitchyard(["serve", "-c", file]);
    proxy = sy.proxy[0];
  });
  after(async () => {
    await sy?.stop();
    await backend?.close();
    tmp.remove();
  });

  test("longest prefix wins on a shared host; strip_prefix; /api matches, /apis does not", async () => {
    assert.equal(json(await request(proxy, "p.test", "/api/users?id=1")).url, "/users?id=1");
    assert.equal(json(await request(proxy, "p.test", "/api")).url, "/");
    assert.equal(json(await request(proxy, "p.test", "/api?x")).url, "/?x");
    const web = await request(proxy, "p.test", "/apis");
    assert.equal(json(web).url, "/apis");
    // web has response_headers: its answers prove which service took the request
    assert.equal(web.headers["strict-transport-security"], "max-age=31536000");
    assert.equal((await request(proxy, "p.test", "/api/x")).headers["strict-transport-security"], undefined);
  });

  test("request_headers and response_headers: set, add, remove", async () => {
    const r = await request(proxy, "p.test", "/", { "x-env": "dev", "x-debug": "1", "x-via": "client" });
    const seen = json(r).headers;
    assert.equal(seen["x-env"], "prod");
    assert.equal(seen["x-debug"], undefined);
    assert.equal(seen["x-via"], "client, switchyard");
    assert.equal(r.headers.server, undefined);
  });

  test("allow and deny answer 403 by client address, without reaching the backend", async () => {
    const before = backend.hits;
    assert.equal((await request(proxy, "allow.test", "/")).status, 403);
    assert.equal((await request(proxy, "deny.test", "/")).status, 403);
    assert.equal(backend.hits, before);
  });

  test("redirect_https: 308 to the same URL on https", async () => {
    const r = await request(proxy, "r.test:8080", "/a/b?c=d");
    assert.equal(r.status, 308);
    assert.equal(r.headers.location, "https://r.test/a/b?c=d");
  });

  test("basic_auth: 401 with WWW-Authenticate unless the bcrypt hash matches", async () => {
    const basic = (u: string, p: string) => ({
      authorization: `Basic ${Buffer.from(`${u}:${p}`).toString("base64")}`,
    });
    const none = await request(proxy, "auth.test", "/");
    assert.equal(none.status, 401);
    assert.equal(none.headers["www-authenticate"], 'Basic realm="staff", charset="UTF-8"');
    assert.equal((await request(proxy, "auth.test", "/", basic("alice", "wrong"))).status, 401);
    assert.equal((await request(proxy, "auth.test", "/", basic("mallory", "s3cret"))).status, 401);
    assert.equal((await request(proxy, "auth.test", "/", basic("alice", "s3cret"))).status, 200);
    assert.equal((await request(proxy, "auth.test", "/", basic("alice", "s3cret"))).status, 200);
  });

  test("rate_limit: the burst passes, then 429 with Retry-After", async () => {
    const codes: number[] = [];
    let last: Reply | undefined;
    for (let i = 0; i < 5; i++) {
      last = await request(proxy, "rl.test", "/");
      codes.push(last.status);
    }
    assert.deepEqual(codes, [200, 200, 200, 429, 429]);
    assert.ok(Number(last!.headers["retry-after"]) >= 1, String(last!.headers["retry-after"]));
  });

  test("compress: gzip or br per Accept-Encoding and q-values, never images or small bodies", async () => {
    const gz = await request(proxy, "z.test", "/big", { "accept-encoding": "gzip, deflate" });
    assert.equal(gz.headers["content-encoding"], "gzip");
    assert.equal(gz.headers.vary, "Accept-Encoding");
    assert.equal(gz.headers.etag, 'W/"v1"');
    assert.equal(gz.headers["content-length"], undefined);
    assert.equal(gunzipSync(gz.body).toString(), "switchyard compresses text like this. ".repeat(200));
    assert.ok(gz.body.length < 500, `${gz.body.length} bytes`);
    const br = await request(proxy, "z.test", "/big", { "accept-encoding": "gzip;q=0.5, br" });
    assert.equal(br.headers["content-encoding"], "br");
    assert.equal(brotliDecompressSync(br.body).toString().length, 7600);
    const refused = await request(proxy, "z.test", "/big", { "accept-encoding": "gzip;q=0, br;q=0" });
    assert.equal(refused.headers["content-encoding"], undefined);
    assert.equal(refused.headers.vary, "Accept-Encoding");
    const chunked = await request(proxy, "z.test", "/chunked", { "accept-encoding": "gzip" });
    assert.equal(chunked.headers["content-encoding"], "gzip");
    assert.equal(JSON.parse(gunzipSync(chunked.body).toString()).length, 501);
    const png = await request(proxy, "z.test", "/png", { "accept-encoding": "gzip, br" });
    assert.equal(png.headers["content-encoding"], undefined);
    assert.equal(png.body.length, 4096);
    const small = await request(proxy, "z.test", "/small", { "accept-encoding": "gzip" });
    assert.equal(small.headers["content-encoding"], undefined);
    assert.equal(small.body.toString(), "small");
  });

  test("error_pages: the backend's 502 and switchyard's own 503 get the page; other statuses do not", async () => {
    const r = await request(proxy, "e.test", "/status/502");
    assert.equal(r.status, 502);
    assert.equal(r.body.toString(), "<h1>we are fixing it</h1>");
    assert.equal(r.headers["content-type"], "text/html; charset=utf-8");
    const other = await request(proxy, "e.test", "/status/500");
    assert.equal(other.body.toString(), "backend's own error body");
    // the page goes through compress listed before it (the outer middleware)
    const zipped = await request(proxy, "e.test", "/status/503", { "accept-encoding": "gzip" });
    assert.equal(zipped.headers["content-encoding"], "gzip");
    assert.equal(gunzipSync(zipped.body).toString(), "<h1>come back soon</h1>".repeat(5));
    // switchyard's own answer: 502 (refused) until the health check marks the server down, then 503
    const own = await request(proxy, "down.test", "/");
    assert.ok(own.status === 502 || own.status === 503, String(own.status));
    assert.equal(
      own.body.toString(),
      own.status === 502 ? "<h1>we are fixing it</h1>" : "<h1>come back soon</h1>".repeat(5),
    );
  });

  test("a service's own response_header timeout: 504 after 200ms, not the top-level 60s", async () => {
    // the backend answers after 3 s: a 504 is the service's 200ms (the top-level default is 60s)
    assert.equal((await request(proxy, "t.test", "/slow")).status, 504);
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
    assert.equal(json(await request(proxy, "p.test", "/v2/x")).url, "/x");
    assert.equal(json(await request(proxy, "p.test", "/api/x")).url, "/api/x");
  });
});
