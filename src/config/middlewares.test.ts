import * as assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ConfigError } from "../errors.ts";
import { parseConfig } from "./load.ts";
import { normalizePrefix, parseRate } from "./middlewares.ts";

const HASH = "$2b$04$abcdefghijklmnopqrstuu5Q9fHWFXyzWFmKYp0NvHHOXBxcOLdGO";

let dir: string;
let F: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "sy-mw-"));
  F = join(dir, "switchyard.yaml");
  await writeFile(join(dir, "502.html"), "<h1>down</h1>");
});
after(() => rm(dir, { recursive: true, force: true }));

function problems(text: string): readonly string[] {
  try {
    parseConfig(text, F, {}, {});
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return err.problems.map((p) => p.slice(F.length));
  }
  assert.fail("expected the configuration to be refused");
}

describe("paths", () => {
  test("prefixes are normalized, shared hosts are told apart by path", () => {
    const c = parseConfig(
      `services:
  api:
    hosts: [example.com]
    paths: [/api/, /v2]
    strip_prefix: true
    timeouts: { response_header: 30s }
    servers: ["http://127.0.0.1:3000"]
  web:
    hosts: [example.com]
    servers: ["http://127.0.0.1:3001"]
`,
      F,
      {},
      {},
    );
    assert.deepEqual(c.services.api.paths, ["/api", "/v2"]);
    assert.equal(c.services.api.stripPrefix, true);
    assert.deepEqual(c.services.api.timeouts, { responseHeader: 30_000 });
    assert.equal(c.services.web.paths, undefined);
    assert.equal(c.services.web.middlewares, undefined);
  });

  test("an identical prefix on the same host, and malformed prefixes, are file:line problems", () => {
    const out = problems(`services:
  a:
    hosts: [example.com]
    paths: [/api/]
    servers: ["http://127.0.0.1:3000"]
  b:
    hosts: [EXAMPLE.com]
    paths: [/api, "api", "/x?y", "/a/*", "/a//b", "/../etc"]
    servers: ["http://127.0.0.1:3001"]
  c:
    hosts: [example.com]
    servers: ["http://127.0.0.1:3002"]
  d:
    hosts: [example.com]
    servers: ["http://127.0.0.1:3003"]
`);
    assert.deepEqual(out, [
      `:8: services.b.paths[1]: path prefix "api" must start with "/"`,
      `:8: services.b.paths[2]: path prefix "/x?y": no query or fragment ("?", "#") in a prefix`,
      `:8: services.b.paths[3]: path prefix "/a/*": prefixes are literal (no "*" or "{…}"); "/api/" already matches everything under /api`,
      `:8: services.b.paths[4]: path prefix "/a//b": empty segment ("//")`,
      `:8: services.b.paths[5]: path prefix "/../etc": no "." or ".." segments`,
      `:8: services.b.paths[0]: path prefix "/api" on host "example.com" is already used by service "a"`,
      `:14: services.d.hosts[0]: host "example.com" is already used by service "c" (give one of them \`paths\` to share it)`,
    ]);
  });

  test("normalizePrefix", () => {
    assert.equal(normalizePrefix("/"), "/");
    assert.equal(normalizePrefix("/api/"), "/api");
    assert.equal(normalizePrefix("/a%20b"), "/a%20b");
    assert.equal(typeof normalizePrefix("/a%2"), "object");
  });
});

describe("middlewares", () => {
  test("every middleware of the SPEC example is read", () => {
    const c = parseConfig(
      `services:
  api:
    hosts: [example.com]
    middlewares:
      - allow: [10.0.0.0/8, 127.0.0.1]
      - deny: 10.1.0.0/16
      - redirect_https: true
      - basic_auth: { realm: api, users: { admin: "${HASH}" } }
      - rate_limit: { rate: 100/s, burst: 200 }
      - request_headers: { set: { X-Env: prod }, add: { X-Via: switchyard }, remove: [X-Debug] }
      - response_headers: { set: { Strict-Transport-Security: "max-age=31536000" }, remove: [Server] }
      - compress: { min_length: 1024 }
      - error_pages: { 502: ./502.html }
    servers: ["http://127.0.0.1:3000"]
`,
      F,
      {},
      {},
    );
    assert.deepEqual(c.services.api.middlewares, [
      { kind: "allow", cidrs: ["10.0.0.0/8", "127.0.0.1"] },
      { kind: "deny", cidrs: ["10.1.0.0/16"] },
      { kind: "redirect_https", status: 308, port: undefined },
      { kind: "basic_auth", realm: "api", users: { admin: HASH } },
      { kind: "rate_limit", limit: 100, period: 1000, burst: 200 },
      {
        kind: "request_headers",
        set: { "X-Env": "prod" },
        add: { "X-Via": "switchyard" },
        remove: ["X-Debug"],
      },
      {
        kind: "response_headers",
        set: { "Strict-Transport-Security": "max-age=31536000" },
        add: {},
        remove: ["Server"],
      },
      { kind: "compress", minLength: 1024, encodings: ["br", "gzip"] },
      { kind: "error_pages", pages: { 502: join(dir, "502.html") } },
    ]);
  });

  test("bad hashes, rates, names and header names are file:line problems", () => {
    const out = problems(`services:
  api:
    hosts: [example.com]
    middlewares:
      - basic_auth: { users: { admin: "hunter2", bob: "$apr1$xyz" } }
      - rate_limit: { rate: 100/fortnight }
      - rate_limt: { rate: 1/s }
      - request_headers: { set: { "Bad Header": x }, remove: ["a:b"] }
      - error_pages: { 200: ./502.html, 503: ./missing.html }
      - allow: [10.0.0.300]
    servers: ["http://127.0.0.1:3000"]
`);
    assert.equal(out.length, 9, out.join("\n"));
    assert.match(out[0], /^:5: services\.api\.middlewares\[0\]\.basic_auth\.users\.admin: not a bcrypt hash/);
    assert.match(out[1], /^:5: .*users\.bob: not a bcrypt hash.*htpasswd -nbB/);
    assert.match(out[2], /^:6: .*rate_limit\.rate: unknown rate period "fortnight"/);
    assert.match(
      out[3],
      /^:7: services\.api\.middlewares\[2\]\.rate_limt: unknown middleware "rate_limt"; did you mean "rate_limit"\?/,
    );
    assert.match(out[4], /^:8: .*set\["Bad Header"\]: "Bad Header" is not a valid header name/);
    assert.match(out[5], /^:8: .*remove\[0\]: "a:b" is not a valid header name/);
    assert.match(out[6], /^:9: .*error_pages\.200: "200" is not an error status/);
    assert.match(out[7], /^:9: .*error_pages\.503: cannot read .*missing\.html: no such file/);
    assert.match(out[8], /^:10: .*allow\[0\]: "10\.0\.0\.300" is not an IP address or CIDR/);
  });

  test("parseRate", () => {
    assert.deepEqual(parseRate("100/s"), { limit: 100, period: 1000 });
    assert.deepEqual(parseRate("5/10s"), { limit: 5, period: 10_000 });
    assert.deepEqual(parseRate("20/min"), { limit: 20, period: 60_000 });
    assert.deepEqual(parseRate("1000/hours"), { limit: 1000, period: 3_600_000 });
    assert.equal(typeof parseRate("100"), "string");
    assert.equal(typeof parseRate("0/s"), "string");
  });
});

describe("rules and hide_forwarded in a switchyard file", () => {
  test("rules read as GoDoxy's; route names a service of the file; hide_forwarded is a setting", () => {
    const c = parseConfig(
      `services:
  app:
    middlewares:
      - hide_forwarded: true
      - rules:
          - name: old
            on: path glob(/v1/*) | header X-Legacy
            do: |
              rewrite /v1/ /
              route legacy
          - name: default
            do: set resp_header X-Frame-Options DENY
    servers: ["http://127.0.0.1:3000"]
  legacy:
    servers: ["http://127.0.0.1:3001"]
`,
      F,
      {},
      {},
    );
    const mws = c.services.app.middlewares!;
    assert.deepEqual(mws[0], { kind: "hide_forwarded" });
    assert.equal(mws[1].kind, "rules");
    const rules = mws[1].kind === "rules" ? mws[1].rules : [];
    assert.deepEqual(rules[0].do, [
      { do: "rewrite", from: "/v1/", to: "/" },
      { do: "route", service: "legacy" },
    ]);
    assert.deepEqual(rules[1], {
      name: "default",
      default: true,
      on: [],
      do: [{ do: "set", field: "resp_header", name: "X-Frame-Options", value: "DENY" }],
    });
    // hide_forwarded: false is no middleware at all
    const off = parseConfig(
      `services:\n  a:\n    middlewares: [{ hide_forwarded: false }]\n    servers: ["http://127.0.0.1:3000"]\n`,
      F,
      {},
      {},
    );
    assert.equal(off.services.a.middlewares, undefined);
  });

  test("a route to no service, a bad rule and a bad hide_forwarded are file:line problems", () => {
    const got = problems(`services:
  app:
    middlewares:
      - hide_forwarded: maybe
      - rules:
          - on: method FETCH
            do: route Legacy
    servers: ["http://127.0.0.1:3000"]
`);
    assert.equal(got.length, 3, got.join("\n"));
    assert.match(got[0], /^:4: services\.app\.middlewares\[0\]\.hide_forwarded: /);
    assert.match(got[1], /^:6: .*rules\[0\]\.on: rule "rules\[0\]": "FETCH" is not an HTTP method/);
    assert.match(
      got[2],
      /^:7: .*rules\[0\]\.do: rule "rules\[0\]": `route Legacy` names no service of this file \(app\)/,
    );
  });
});
