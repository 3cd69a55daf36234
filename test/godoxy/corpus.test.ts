/**
 * The GoDoxy corpus (test/godoxy/fixtures): each file through `switchyard check` — every key it
 * refuses named, nothing else reported — and then, with those keys taken out, through
 * `switchyard serve` with real backends behind it.
 */
import * as assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import type * as http from "node:http";
import * as http2 from "node:http2";
import * as https from "node:https";
import type * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type * as tls from "node:tls";
import { type Backend, backend } from "../support/backend.ts";
import { Cleanup, cleanupAfter } from "../support/cleanup.ts";
import { NODE, spawnCli } from "../support/cli.ts";
import { get } from "../support/http.ts";
import { APP } from "../support/idle.ts";
import { freePort } from "../support/ports.ts";
import { testPki } from "../support/tls.ts";
import { until } from "../support/until.ts";
import { fixture, serve, without } from "./corpus.ts";

const cleanup = new Cleanup();
let a: Backend;
let b: Backend;
let env: Record<string, string>;

before(async () => {
  // answers "<name> <path>"; x-powered-by is there to be hidden by a middleware
  const options = (name: string) => ({
    cleanup,
    body: (req: http.IncomingMessage) => `${name} ${req.url}`,
    headers: { "x-powered-by": "test" },
  });
  a = await backend("a", options("a"));
  b = await backend("b", options("b"));
  env = {
    GDX_PORT_A: String(a.port),
    GDX_PORT_B: String(b.port),
    // a port nobody listens on: the "down" member
    GDX_PORT_DOWN: "9",
    GDX_PORT_IDLE: String(await freePort()),
    GDX_NODE: NODE,
    GDX_APP: APP,
  };
});
after(() => cleanup.run());

/** `switchyard check -c FILE`: exit code and output lines. */
async function check(
  file: string,
  withEnv: Record<string, string> = env,
): Promise<{ code: number | null; lines: string[] }> {
  const cli = spawnCli(["check", "-c", file], { env: withEnv });
  const exit = await cli.exited;
  const out = [...cli.lines, ...cli.stderr().split("\n")];
  return { code: exit.code, lines: out.filter((l) => l.trim() !== "") };
}

/** The "file:line: path: message" problems of a check, as [line, path, message-start] triples. */
function problems(lines: string[]): string[] {
  return lines.slice(1).map((l) => l.trim().replace(/^\S+?:(\d+): /, "$1 "));
}

/** Every problem names its key and says it is a GoDoxy key switchyard does not run. */
function expectRefused(lines: string[], expected: [number, string, string][]) {
  const got = problems(lines);
  assert.equal(got.length, expected.length, got.join("\n"));
  expected.forEach(([line, path, start], i) => {
    assert.ok(got[i].startsWith(`${line} ${path}: ${start}`), `problem ${i}: ${got[i]}`);
  });
}

describe("GoDoxy corpus: all-fields.yaml", () => {
  test("check names every key switchyard does not run, and nothing else", async () => {
    const r = await check(fixture("all-fields.yaml"));
    assert.equal(r.code, 1);
    assert.match(r.lines[0], /invalid configuration \(12 problems\)/);
    const refused = (k: string) => `GoDoxy key "${k}" is not supported`;
    const httpsOnly = "applies to https backends only";
    expectRefused(r.lines, [
      [12, "example.bind", refused("bind")],
      [14, "example.root", refused("root")],
      [15, "example.spa", refused("spa")],
      [16, "example.index", refused("index")],
      [20, "example.inbound_mtls_profile", refused("inbound_mtls_profile")],
      // GoDoxy uses them on https routes only: on this http route they would name unused files
      [22, "example.ssl_trusted_certificate", httpsOnly],
      [23, "example.ssl_certificate", httpsOnly],
      [24, "example.ssl_certificate_key", httpsOnly],
      [28, "example.path_patterns", refused("path_patterns")],
      [37, "example.rule_file", refused("rule_file")],
      [66, "example.access_log", refused("access_log")],
      [79, "example.idlewatcher.notify", refused("notify")],
    ]);
    // no "unknown key", no did-you-mean: every GoDoxy key is known
    assert.ok(!r.lines.some((l) => /unknown|did you mean/.test(l)), r.lines.join("\n"));
  });

  test("the rest serves: the link is the service, the x- anchor is no route, members stay off their alias", async (t) => {
    const c = cleanupAfter(t);
    const file = without(
      "all-fields.yaml",
      [
        ...["bind", "root", "spa", "index", "inbound_mtls_profile"].map((k) => ["example", k]),
        ...["ssl_trusted_certificate", "ssl_certificate", "ssl_certificate_key", "path_patterns"].map((k) => [
          "example",
          k,
        ]),
        ["example", "rule_file"],
        ["example", "access_log"],
        // the docker container of the idle watcher is exercised by test/idle (it needs a daemon)
        ["example", "idlewatcher"],
      ],
      c,
    );
    assert.equal((await check(file)).code, 0);
    const s = await serve(file, env, c);
    const r = await get(s.port, "/x", { host: "app.example.test" });
    assert.deepEqual([r.status, r.body], [200, "a /x"]);
    // the route's rules: a default pass, and /admin answered by the rule
    const admin = await get(s.port, "/admin", { host: "app.example.test" });
    assert.deepEqual([admin.status, admin.body], [403, "Forbidden\n"]);
    assert.equal((await get(s.port, "/", { host: "other-service.example.test" })).body, "b /");
    assert.equal(
      (await get(s.port, "/", { host: "example.example.test" })).status,
      404,
      "a member is not served on its alias",
    );
    assert.equal(
      (await get(s.port, "/", { host: "x-defaults.example.test" })).status,
      404,
      "an x- key is no route",
    );
    const health = (await get(s.admin, "/api/health")).json() as Record<
      string,
      { extra: { config: unknown } }
    >;
    assert.deepEqual(Object.keys(health).sort(), ["app", "other-service"]);
  });
});

describe("GoDoxy corpus: provider.yaml", () => {
  test("check refuses the stream routes and path_patterns by name", async () => {
    const r = await check(fixture("provider.yaml"));
    assert.equal(r.code, 1);
    expectRefused(r.lines, [
      [7, "example.path_patterns", 'GoDoxy key "path_patterns" is not supported'],
      [36, "app2.scheme", 'GoDoxy scheme "udp" is not supported: stream routes'],
      [41, "ssh-with-proxy-protocol.scheme", 'GoDoxy scheme "tcp" is not supported: stream routes'],
      [44, "ssh-with-proxy-protocol.relay_proxy_protocol_header", 'GoDoxy key "relay_proxy_protocol_header"'],
    ]);
  });

  test("the rest serves: GoDoxy's localhost default, full names and wildcards as hosts", async (t) => {
    const c = cleanupAfter(t);
    const file = without(
      "provider.yaml",
      [["example", "path_patterns"], ["app2"], ["ssh-with-proxy-protocol"]],
      c,
    );
    const s = await serve(file, env, c);
    assert.equal((await get(s.port, "/", { host: "example.lan" })).body, "a /");
    // app1 has only a port: GoDoxy's defaults make it http://localhost:<port>
    assert.equal((await get(s.port, "/p", { host: "app1.lan" })).body, "b /p");
    assert.equal(
      (await get(s.port, "/", { host: "APP.example.com:8080" })).body,
      "b /",
      "a full name, any case and port",
    );
    assert.equal(
      (await get(s.port, "/", { host: "app.example.org" })).status,
      404,
      "a full name is only that host",
    );
    assert.equal((await get(s.port, "/", { host: "foo.wild.example" })).body, "a /", "a wildcard alias");
    assert.equal(
      (await get(s.port, "/", { host: "wild.example" })).status,
      404,
      "the wildcard wants one label in front",
    );
  });
});

describe("GoDoxy corpus: load-balancing.yaml", () => {
  test("check passes", async () => {
    const r = await check(fixture("load-balancing.yaml"));
    assert.equal(r.code, 0, r.lines.join("\n"));
    assert.match(r.lines[0], /OK — 3 services, 6 servers/);
  });

  test("round robin over the link, sticky cookies (1h as GoDoxy documents), ip_hash on the real IP", async (t) => {
    const c = cleanupAfter(t);
    const s = await serve(fixture("load-balancing.yaml"), env, c);
    const bodies: string[] = [];
    for (let i = 0; i < 4; i++) bodies.push((await get(s.port, "/", { host: "web.lan" })).body);
    assert.deepEqual(bodies.sort(), ["a /", "a /", "b /", "b /"]);
    assert.equal((await get(s.port, "/", { host: "web-1.lan" })).status, 404);

    const first = await get(s.port, "/", { host: "sticky.lan" });
    const cookie = String(first.headers["set-cookie"]?.[0] ?? "");
    assert.match(cookie, /^switchyard_lb_sticky=[^;]+;.*Max-Age=3600/);
    for (let i = 0; i < 4; i++) {
      const r = await get(s.port, "/", { host: "sticky.lan", headers: { cookie: cookie.split(";")[0] } });
      assert.equal(r.body, first.body);
    }

    const byIp = new Map<string, string>();
    for (const ip of ["198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"]) {
      const one = (await get(s.port, "/", { host: "hash.lan", headers: { "x-real-ip": ip } })).body;
      byIp.set(ip, one);
      for (let i = 0; i < 3; i++)
        assert.equal(
          (await get(s.port, "/", { host: "hash.lan", headers: { "x-real-ip": ip } })).body,
          one,
          `${ip} stays`,
        );
    }
  });
});

describe("GoDoxy corpus: health.yaml", () => {
  test("check passes: retries -1 and disabled are GoDoxy's", async () => {
    const r = await check(fixture("health.yaml"));
    assert.equal(r.code, 0, r.lines.join("\n"));
    assert.match(
      r.lines.join("\n"),
      /unchecked \(unchecked\.\*; round_robin, health checks off, passive_cooldown 10s\)/,
    );
  });

  test("a member that fails one check is out at once; a route with checks disabled is always served", async (t) => {
    const c = cleanupAfter(t);
    const s = await serve(fixture("health.yaml"), env, c);
    type H = { status: string; detail: string; extra: { pool: Record<string, { status: string }> } };
    await until(
      async () =>
        ((await get(s.admin, "/api/health/pool")).json() as H).extra.pool["127.0.0.1:9"]?.status ===
        "unhealthy",
      10_000,
      "the down member to be unhealthy",
    );
    const h = (await get(s.admin, "/api/health/pool")).json() as H;
    assert.equal(h.detail, "1/2 servers are healthy");
    for (let i = 0; i < 4; i++) assert.equal((await get(s.port, "/", { host: "pool.lan" })).body, "a /");
    assert.equal((await get(s.port, "/", { host: "unchecked.lan" })).body, "b /");
    const u = (await get(s.admin, "/api/health/unchecked")).json() as H;
    assert.equal(u.status, "healthy");
  });
});

describe("GoDoxy corpus: config.yml (GoDoxy's main config)", () => {
  test("check says it is the main config, not a route file, naming its keys", async () => {
    const r = await check(fixture("config.yml"));
    assert.equal(r.code, 1);
    const got = problems(r.lines);
    assert.deepEqual(
      got.map((l) => l.split(": ")[0]),
      ["2 autocert", "4 entrypoint", "8 providers", "11 match_domains"],
    );
    for (const l of got) assert.match(l, /this is GoDoxy's main config\.yml, not a route file/);
    assert.match(got[2], /give switchyard one of those with -c/);
  });
});

describe("GoDoxy corpus: idle.yaml", () => {
  test("check passes: the idlewatcher block and route-level keys, docker from idlewatcher.docker", async () => {
    const r = await check(fixture("idle.yaml"));
    assert.equal(r.code, 0, r.lines.join("\n"));
    const text = r.lines.join("\n");
    assert.match(text, /sleepy http:\/\/127\.0\.0\.1:\d+ \(run, idle 1m0s\)/);
    assert.match(text, /container-app http:\/\/127\.0\.0\.1:8080 \(docker, idle 30m0s\)/);
  });

  test("a sleeping route is started by the first request, which waits (no_loading_page) and is answered", async (t) => {
    const c = cleanupAfter(t);
    // the docker route needs a daemon: test/idle covers it
    const s = await serve(without("idle.yaml", [["container-app"]], c), env, c);
    type H = { extra: { pool: Record<string, { status: string }> } };
    const before = (await get(s.admin, "/api/health/sleepy")).json() as H;
    assert.equal(Object.values(before.extra.pool)[0].status, "napping");
    const r = await get(s.port, "/hello", { host: "sleepy.lan", headers: { accept: "text/html" } });
    assert.equal(r.status, 200);
    assert.match(r.body, /hello from sleepy/);
  });
});

describe("GoDoxy corpus: middlewares.yaml", () => {
  test("check passes: every middleware name spelling GoDoxy takes", async () => {
    const r = await check(fixture("middlewares.yaml"));
    assert.equal(r.code, 0, r.lines.join("\n"));
  });

  test("cidr_whitelist, request/response header edits, real_ip, rate_limit and redirect_http act on traffic", async (t) => {
    const c = cleanupAfter(t);
    const s = await serve(fixture("middlewares.yaml"), env, c);
    a.received.length = 0;
    const r = await get(s.port, "/g", { host: "guarded.lan", headers: { "x-debug": "1" } });
    assert.deepEqual([r.status, r.body], [200, "a /g"]);
    assert.equal(r.headers["x-frame-options"], "DENY");
    assert.equal(r.headers["x-powered-by"], undefined, "hidden from the response");
    const seen = a.requests().at(-1)!.headers;
    assert.equal(seen["x-env"], "prod");
    assert.equal(seen["x-via"], "godoxy");
    assert.equal(seen["x-debug"], undefined, "hidden from the request");
    // hideXForwarded: no forwarded header reaches the backend, the client's or switchyard's
    for (const h of ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-real-ip", "forwarded"])
      assert.equal(seen[h], undefined, h);

    // real_ip from loopback: the allow list and the rate limit see X-Real-IP
    b.received.length = 0;
    assert.equal(
      (await get(s.port, "/", { host: "open.lan" })).status,
      403,
      "127.0.0.1 is not in 203.0.113.0/24",
    );
    const client = { "x-real-ip": "203.0.113.5" };
    for (let i = 0; i < 5; i++)
      assert.equal((await get(s.port, "/", { host: "open.lan", headers: client })).status, 200);
    const limited = await get(s.port, "/", { host: "open.lan", headers: client });
    assert.equal(limited.status, 429);
    assert.ok(Number(limited.headers["retry-after"]) >= 1);
    assert.equal(b.served(), 5, "refused requests never reach the backend");

    const red = await get(s.port, "/x?y=1", { host: "secure.lan" });
    assert.equal(red.status, 308);
    assert.equal(red.headers.location, "https://secure.lan/x?y=1");
  });
});

describe("GoDoxy corpus: rules.yaml", () => {
  test("check maps every rule and names the one unknown command", async () => {
    const r = await check(fixture("rules.yaml"));
    assert.equal(r.code, 1);
    expectRefused(r.lines, [
      [51, "gateway.rules[2].do", 'GoDoxy rule "teleport": unknown command "teleport"'],
    ]);
  });

  test("served: address rules, a default rule's header edits, path & method, route to another route", async (t) => {
    const c = cleanupAfter(t);
    const s = await serve(without("rules.yaml", [["gateway", "rules", 2]], c), env, c);
    a.received.length = 0;
    const r = await get(s.port, "/i", { host: "internal.lan", headers: { "x-debug": "1" } });
    assert.deepEqual([r.status, r.body], [200, "a /i"]);
    assert.equal(r.headers["x-served-by"], "switchyard");
    assert.equal(a.requests().at(-1)!.headers["x-env"], "prod");
    assert.equal(a.requests().at(-1)!.headers["x-debug"], undefined);
    b.received.length = 0;
    assert.equal(
      (await get(s.port, "/", { host: "tagged.lan" })).status,
      403,
      "remote 127.0.0.1 → error 403",
    );
    assert.equal((await get(s.port, "/", { host: "lan.lan" })).status, 403, "only 192.168.0.0/16 passes");
    assert.equal(b.served(), 0);
    // gateway: GET /api/* passes, anything else is the default's 404, X-Legacy goes to the legacy route
    assert.deepEqual(pick(await get(s.port, "/api/users", { host: "gateway.lan" })), [200, "a /api/users"]);
    assert.deepEqual(pick(await get(s.port, "/other", { host: "gateway.lan" })), [404, "not here\n"]);
    const legacy = await get(s.port, "/other", { host: "gateway.lan", headers: { "x-legacy": "1" } });
    assert.deepEqual(pick(legacy), [200, "b /other"]);
    assert.equal(b.served(), 1);
  });
});

const pick = (r: { status: number; body: string }) => [r.status, r.body];
const basic = (user: string, pw: string) => ({
  authorization: `Basic ${Buffer.from(`${user}:${pw}`).toString("base64")}`,
});

describe("GoDoxy corpus: rules-docs.yaml (the examples of GoDoxy's rules documentation)", () => {
  test("check refuses by name what switchyard does not do: serve, proxy to a non-route, variables", async () => {
    const r = await check(fixture("rules-docs.yaml"));
    assert.equal(r.code, 1);
    expectRefused(r.lines, [
      [20, "goaccess.rules[2].do", 'GoDoxy rule "default": command `serve` is not supported'],
      [37, "gateway.rules[0].do", 'GoDoxy rule "rules[0]": command `proxy` is not supported'],
      [56, "allowlist.rules[2].do", 'GoDoxy rule "default": command `proxy` is not supported'],
      [64, "cors.rules[0].do", 'GoDoxy rule "rules[0]": GoDoxy variables'],
    ]);
  });

  test("served as GoDoxy runs them: method blocks, basic auth by rule, admin paths, bot filters", async (t) => {
    const c = cleanupAfter(t);
    const file = without(
      "rules-docs.yaml",
      [["goaccess", "rules", 2], ["gateway", "rules", 0], ["allowlist", "rules", 2], ["cors"]],
      c,
    );
    const s = await serve(file, env, c);
    const post = await get(s.port, "/", { host: "goaccess.lan", method: "POST" });
    assert.deepEqual([post.status, post.body], [403, "Not allowed\n"]);
    assert.deepEqual(pick(await get(s.port, "/r", { host: "goaccess.lan" })), [200, "a /r"]);
    // app: the default asks for credentials unless one of the two users' rules matched
    const none = await get(s.port, "/", { host: "app.lan" });
    assert.equal(none.status, 401);
    assert.equal(none.headers["www-authenticate"], 'Basic realm="any"');
    const app = (path: string, user: string, pw: string) =>
      get(s.port, path, { host: "app.lan", headers: basic(user, pw) });
    assert.equal((await app("/", "user1", "nope")).status, 401);
    assert.deepEqual(pick(await app("/x", "user1", "pw1")), [200, "a /x"]);
    assert.deepEqual(pick(await app("/y", "user2", "pw2")), [200, "a /y"]);
    // gateway: admin paths need admin's password; the backend then sees X-Admin
    assert.equal((await get(s.port, "/api/v1/admin/users", { host: "gateway.lan" })).status, 401);
    b.received.length = 0;
    const admin = await get(s.port, "/api/v1/admin/users", {
      host: "gateway.lan",
      headers: basic("admin", "secret"),
    });
    assert.deepEqual(pick(admin), [200, "b /api/v1/admin/users"]);
    assert.equal(b.requests().at(-1)!.headers["x-admin"], "true");
    const pub = await get(s.port, "/api/v1/public/x", { host: "gateway.lan" });
    assert.deepEqual(pick(pub), [200, "b /api/v1/public/x"]);
    // allowlist: bots and crawlers get 403
    const ua = (agent: string) =>
      get(s.port, "/", { host: "allowlist.lan", headers: { "user-agent": agent } });
    assert.deepEqual(pick(await ua("Googlebot/2.1")), [403, "Access denied\n"]);
    assert.equal((await ua("a crawler b")).status, 403);
    assert.equal((await get(s.port, "/", { host: "allowlist.example.com" })).status, 200);
  });
});

describe("GoDoxy corpus: tls.yaml", () => {
  test("ssl_* keys, no_tls_verify and h2c: verified, client-certified, unverified and HTTP/2 backends", async (t) => {
    const c = cleanupAfter(t);
    const dir = mkdtempSync(join(tmpdir(), "switchyard-godoxy-pki-"));
    c.add(() => rmSync(dir, { recursive: true, force: true }));
    const pki = testPki(dir);
    const listenOn = async (server: net.Server) => {
      server.listen(0, "127.0.0.1");
      await once(server, "listening");
      c.add(() => new Promise<void>((r) => server.close(() => r())));
      return (server.address() as net.AddressInfo).port;
    };
    let clientCn = "";
    const verified = https.createServer(
      { cert: pki.server.certPem, key: pki.server.keyPem, ca: pki.clientCa.certPem, requestCert: true },
      (req, res) => {
        clientCn = String((req.socket as tls.TLSSocket).getPeerCertificate().subject?.CN ?? "");
        res.end(`verified ${req.url}`);
      },
    );
    const self = https.createServer(
      { cert: pki.selfSigned.certPem, key: pki.selfSigned.keyPem },
      (req, res) => res.end(`self ${req.url}`),
    );
    const h2c = http2.createServer((req, res) => res.end(`h2c ${req.httpVersion} ${req.url}`));
    const tlsEnv = {
      ...env,
      GDX_TLS_PORT: String(await listenOn(verified)),
      GDX_SELF_PORT: String(await listenOn(self)),
      GDX_H2C_PORT: String(await listenOn(h2c)),
      GDX_CA: pki.ca.cert,
      GDX_CLIENT_CERT: pki.client.cert,
      GDX_CLIENT_KEY: pki.client.key,
    };
    const r = await check(fixture("tls.yaml"), tlsEnv);
    assert.equal(r.code, 0, r.lines.join("\n"));
    assert.match(r.lines.join("\n"), /grpc http:\/\/127\.0\.0\.1:\d+ h2c/);
    const s = await serve(fixture("tls.yaml"), tlsEnv, c);
    const v = await get(s.port, "/v", { host: "verified.lan" });
    assert.deepEqual([v.status, v.body], [200, "verified /v"]);
    assert.equal(clientCn, "switchyard", "the client certificate was presented");
    assert.equal((await get(s.port, "/u", { host: "unverified.lan" })).body, "self /u");
    assert.equal(
      (await get(s.port, "/", { host: "strict.lan" })).status,
      502,
      "a self-signed certificate is refused by default",
    );
    assert.equal((await get(s.port, "/g", { host: "grpc.lan" })).body, "h2c 2.0 /g");
  });
});
