import * as assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { selfSigned } from "../../test/support/tls.ts";
import { ConfigError } from "../errors.ts";
import { parseConfig } from "./load.ts";

const F = "routes.yaml";

function problems(text: string): readonly string[] {
  try {
    parseConfig(text, F, {}, {});
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  assert.fail("expected the route file to be refused");
}

const ROUTES = `app-1:
  host: 10.0.2.1
  port: 8080
  healthcheck: { path: /health, interval: 2s, use_get: true, retries: 2 }
  load_balance:
    link: app
    mode: least_conn
    weight: 3
    sticky: true
    sticky_max_age: 30m
    options:
      header: X-Forwarded-For
      from: 10.0.0.0/8, 172.16.0.0/12
      recursive: true
app-2:
  scheme: https
  host: 10.0.2.2
  load_balance: { link: app, weight: 1 }
app-3:
  host: 10.0.2.3
  port: "8080"
  LoadBalance: { Link: app }
solo:
  host: 127.0.0.1
  port: 3000
  healthcheck: { disable: true }
`;

describe("GoDoxy route files", () => {
  test("routes sharing a link become one service; the rest are one-server services", () => {
    const c = parseConfig(ROUTES, F, {}, {});
    assert.deepEqual(Object.keys(c.services), ["app", "solo"]);
    const app = c.services.app;
    assert.deepEqual(app.hosts, [], "matched by first label");
    assert.equal(app.mode, "least_conn");
    assert.equal(app.sticky, true);
    assert.equal(app.stickyMaxAge, 1_800_000);
    assert.deepEqual(app.options, {
      header: "X-Forwarded-For",
      from: ["10.0.0.0/8", "172.16.0.0/12"],
      recursive: true,
    });
    assert.deepEqual(app.healthcheck, {
      path: "/health",
      useGet: true,
      interval: 2000,
      timeout: 5000,
      retries: 2,
      enabled: true,
    });
    assert.deepEqual(app.servers, [
      { name: "app-1", url: "http://10.0.2.1:8080", weight: 3, backup: false },
      { name: "app-2", url: "https://10.0.2.2", weight: 1, backup: false },
      { name: "app-3", url: "http://10.0.2.3:8080", weight: 0, backup: false },
    ]);
    assert.deepEqual(c.services.solo.servers, [
      { name: "solo", url: "http://127.0.0.1:3000", weight: 0, backup: false },
    ]);
    assert.equal(c.services.solo.healthcheck.enabled, false);
    assert.equal(c.services.solo.mode, "round_robin");
    // listen/admin from the defaults, or the command line
    assert.equal(c.listen[0].address, "0.0.0.0:8080");
    assert.equal(c.admin.address, "127.0.0.1:8081");
    const flagged = parseConfig(ROUTES, F, { listen: ["127.0.0.1:0"], admin: "127.0.0.1:0" }, {});
    assert.equal(flagged.listen[0].address, "127.0.0.1:0");
    assert.equal(flagged.admin.port, 0);
  });

  test("keys match ignoring case and underscores; GoDoxy mode spellings work", () => {
    const c = parseConfig(
      `a:\n  Host: 10.0.0.1\n  PORT: 81\n  load_balance: { LINK: svc, Mode: IPHash, StickyMaxAge: 1h, STICKY: true }\n`,
      F,
      {},
      {},
    );
    assert.equal(c.services.svc.mode, "ip_hash");
    assert.equal(c.services.svc.stickyMaxAge, 3_600_000);
    assert.equal(c.services.svc.sticky, true);
  });

  test("members that disagree are problems, whatever their order", () => {
    const text = `a-1:
  host: 10.0.0.1
  load_balance: { link: app, mode: iphash, sticky_max_age: 1h }
a-2:
  host: 10.0.0.2
  load_balance: { link: app, sticky_max_age: 1h }
a-3:
  host: 10.0.0.3
  healthcheck: { path: /x }
  load_balance:
    link: app
    mode: roundrobin
    sticky_max_age: 2h
    options: { from: [10.0.0.0/8] }
a-4:
  host: 10.0.0.4
  healthcheck: { path: /y }
  load_balance: { link: app, options: { from: [10.0.0.0/16] } }
`;
    assert.deepEqual(problems(text), [
      `${F}:12: a-3.load_balance.mode: mode "round_robin" conflicts with "ip_hash" set by route "a-1" (members of service "app" must agree)`,
      `${F}:13: a-3.load_balance.sticky_max_age: sticky_max_age 2h0m0s conflicts with 1h0m0s set by route "a-1" (members of service "app" must agree)`,
      `${F}:17: a-4.healthcheck: healthcheck (path "/y" vs "/x") conflicts with the one set by route "a-3" (members of service "app" must agree)`,
      `${F}:18: a-4.load_balance.options: options (from ["10.0.0.0/16"] vs ["10.0.0.0/8"]) conflicts with the one set by route "a-3" (members of service "app" must agree)`,
    ]);
  });

  test("mistakes in a route file are reported with lines", () => {
    const text = `web:
  scheme: gopher
  host: 10.0.0.1
  port: 99999
  middlewares:
    cidr_whitelist: { allow: [10.0.0.0/8] }
api-1:
  host: 10.0.0.2
  port: 80
  load_balance: { link: api, wieght: 2, mode: fastest }
  healthcheck: { interval: 5 }
api-2:
  host: 10.0.0.5
  port: 80
  load_balance: { link: api, weight: -1 }
api:
  host: 10.0.0.9
  port: 80
Bad_Alias:
  host: 10.0.0.3
  port: 80
`;
    assert.deepEqual(problems(text), [
      `${F}:2: web.scheme: unknown scheme "gopher": switchyard balances "http" and "https" routes`,
      `${F}:4: web.port: must be ≤ 65535, got 99999`,
      `${F}:10: api-1.load_balance.wieght: unknown key; did you mean "weight"?`,
      `${F}:10: api-1.load_balance.mode: unknown load-balancing mode "fastest"; valid modes: round_robin, least_conn, ip_hash (case and "_"/"-" ignored)`,
      `${F}:11: api-1.healthcheck.interval: bare number 5 is not a duration: add a unit, e.g. "5s" or "5ms" (GoDoxy would read 5 as nanoseconds)`,
      `${F}:15: api-2.load_balance.weight: must be ≥ 0, got -1`,
      `${F}:16: api: service "api" is also defined by load_balance.link of route "api-1"`,
      `${F}:19: Bad_Alias: service name "bad_alias" must be a DNS label (lowercase letters, digits and "-", at most 63, no "-" at either end): it is matched against the first label of Host (or set load_balance.link)`,
    ]);
  });

  test("host with a port, and IPv6 hosts", () => {
    assert.deepEqual(problems(`a:\n  host: 10.0.0.1:80\n`), [
      `${F}:2: a.host: give the host without a port (the port goes in \`port\`)`,
    ]);
    const c = parseConfig(`a:\n  host: "::1"\n  port: 81\nb:\n  host: "[::2]"\n`, F, {}, {});
    assert.equal(c.services.a.servers[0].url, "http://[::1]:81");
    assert.equal(c.services.b.servers[0].url, "http://[::2]");
  });

  test("two members on the same backend are refused", () => {
    assert.deepEqual(
      problems(
        `a:\n  host: h\n  port: 80\n  load_balance: { link: x }\nb:\n  host: H\n  load_balance: { link: x }\n`,
      ),
      [`${F}:5: b: same backend h:80 as route "a" in service "x"`],
    );
  });

  test("homepage is accepted and ignored; a file with `services` is never a route file", () => {
    const c = parseConfig(`a:\n  host: 10.0.0.1\n  homepage: { name: A }\n`, F, {}, {});
    assert.equal(c.services.a.servers[0].url, "http://10.0.0.1");
    assert.deepEqual(problems(`services:\n  a:\n    host: 10.0.0.1\n`), [
      `${F}:2: services.a: no servers: add \`servers:\` with at least one { url }`,
      `${F}:3: services.a.host: unknown key; did you mean "hosts"?`,
    ]);
  });
});

describe("GoDoxy route files as GoDoxy runs them", () => {
  const load = (text: string) => parseConfig(text, F, {}, {});

  test("top-level x- keys are YAML anchors, not routes (they used to become services on localhost:80)", () => {
    const c = load(`x-base: &base
  host: 10.0.0.1
  healthcheck: { path: /up }
X-Other:
  port: 81
app:
  <<: *base
  port: 82
`);
    assert.deepEqual(Object.keys(c.services), ["app"]);
    assert.equal(c.services.app.servers[0].url, "http://10.0.0.1:82");
    assert.equal(c.services.app.healthcheck.path, "/up");
  });

  test("healthcheck.disabled (GoDoxy's alias of disable) and retries: -1", () => {
    const c = load(
      `a:\n  host: h\n  healthcheck: { disabled: true }\nb:\n  host: h\n  port: 81\n  healthcheck: { retries: -1 }\n`,
    );
    assert.equal(c.services.a.healthcheck.enabled, false);
    assert.equal(c.services.b.healthcheck.retries, -1);
    assert.deepEqual(problems(`a:\n  host: h\n  healthcheck: { disable: true, disabled: true }\n`), [
      `${F}:3: a.healthcheck.disabled: same key as "disable"`,
    ]);
  });

  test("disabling the check of a balanced or idle route is refused, as GoDoxy does", () => {
    assert.deepEqual(
      problems(`a:\n  host: h\n  healthcheck: { disabled: true }\n  load_balance: { link: x }\n`),
      [
        `${F}:3: a.healthcheck: cannot disable healthcheck when loadbalancer or idle watcher is enabled (GoDoxy refuses it too: balancing and idle wake need the check)`,
      ],
    );
  });

  test("GoDoxy's defaults: host localhost, port 80/443, scheme https for *443 ports, by alias", () => {
    const c = load(
      `a:\n  port: 8443\nb:\n  scheme: https\nportainer:\n  host: 10.0.0.9\nd:\n  port: "3000"\ne:\n  host: 10.0.0.1\nf: {}\n`,
    );
    assert.equal(c.services.f.servers[0].url, "http://localhost");
    assert.equal(c.services.a.servers[0].url, "https://localhost:8443");
    assert.equal(c.services.b.servers[0].url, "https://localhost");
    assert.equal(c.services.portainer.servers[0].url, "https://10.0.0.9:9443");
    assert.equal(c.services.d.servers[0].url, "http://localhost:3000");
    assert.equal(c.services.e.servers[0].url, "http://10.0.0.1");
  });

  test("a listening port, and stream and file-server schemes, are refused by name", () => {
    assert.deepEqual(
      problems(
        `a:\n  port: "8080:80"\nb:\n  scheme: tcp\n  port: "2222:22"\nc:\n  scheme: fileserver\n  root: /srv\n`,
      ),
      [
        `${F}:2: a.port: "8080:80": a listening port is for GoDoxy stream routes; switchyard listens on \`listen\` for every service: give only the backend's port`,
        `${F}:4: b.scheme: GoDoxy scheme "tcp" is not supported: stream routes: switchyard proxies HTTP only`,
        `${F}:7: c.scheme: GoDoxy scheme "fileserver" is not supported: file-server routes: serve the files with a web server and put it behind switchyard as a backend`,
        `${F}:8: c.root: GoDoxy key "root" is not supported: file-server routes: serve the files with a web server and put it behind switchyard as a backend`,
      ],
    );
  });

  test("full domain names and wildcards as aliases and links are that host", () => {
    const c = load(`App.Example.com:
  host: 10.0.0.1
"*.example.org":
  host: 10.0.0.2
m-1:
  host: 10.0.0.3
  load_balance: { link: api.example.net }
m-2:
  host: 10.0.0.4
  load_balance: { link: api.example.net }
`);
    assert.deepEqual(c.services["app.example.com"].hosts, ["app.example.com"]);
    assert.deepEqual(c.services["*.example.org"].hosts, ["*.example.org"]);
    assert.deepEqual(c.services["api.example.net"].hosts, ["api.example.net"]);
    assert.equal(c.services["api.example.net"].servers.length, 2);
    assert.deepEqual(problems(`"a..b":\n  host: h\n`), [
      `${F}:1: ["a..b"]: "a..b" is not a first label, a full domain name or a wildcard such as "*.example.com"`,
    ]);
  });

  test("response_header_timeout is the service's timeout; members must agree", () => {
    const c = load(`a:\n  host: h\n  response_header_timeout: 30s\n`);
    assert.deepEqual(c.services.a.timeouts, { responseHeader: 30_000 });
    assert.deepEqual(
      problems(
        `a-1:\n  host: h1\n  response_header_timeout: 30s\n  load_balance: { link: a }\na-2:\n  host: h2\n  response_header_timeout: 10s\n  load_balance: { link: a }\n`,
      ),
      [
        `${F}:7: a-2.response_header_timeout: response_header_timeout (response_header_timeout 10s vs 30s) conflicts with the one set by route "a-1" (members of service "a" must agree)`,
      ],
    );
  });

  test("sticky_max_age defaults to GoDoxy's documented 1h", () => {
    const c = load(`a:\n  host: h\n  load_balance: { link: x, sticky: true }\n`);
    assert.equal(c.services.x.stickyMaxAge, 3_600_000);
  });

  test("every other GoDoxy key is refused by name with what switchyard offers; a typo still gets a did-you-mean", () => {
    const got = problems(`a:
  host: h
  bind: 0.0.0.0
  agent: 10.0.0.5:8890
  access_log: { path: /x.log }
  inbound_mtls_profile: corp
  Path_Patterns: [GET /]
`);
    assert.equal(got.length, 5);
    assert.match(
      got[0],
      /:3: a\.bind: GoDoxy key "bind" is not supported: switchyard listens on the top-level `listen`/,
    );
    assert.match(got[1], /:4: a\.agent: GoDoxy key "agent" is not supported: /);
    assert.match(got[2], /:5: a\.access_log: GoDoxy key "access_log" is not supported: /);
    assert.match(got[3], /:6: a\.inbound_mtls_profile: GoDoxy key "inbound_mtls_profile" is not supported: /);
    assert.match(
      got[4],
      /:7: a\.Path_Patterns: GoDoxy key "Path_Patterns" is not supported/,
      "matched ignoring case and _",
    );
    // values that ask for what switchyard does anyway are accepted
    const c = load(
      `a:\n  host: h\n  no_tls_verify: false\n  ssl_server_name: ""\n  ssl_protocols: [tlsv1.3, tlsv1.2]\n  disable_compression: true\n  spa: false\n`,
    );
    assert.equal(c.services.a.servers.length, 1);
    assert.deepEqual(problems(`a:\n  host: h\n  helthcheck: {}\n`), [
      `${F}:3: a.helthcheck: unknown key; did you mean "healthcheck"?`,
    ]);
  });

  test("GoDoxy's main config.yml given as a route file says so", () => {
    assert.deepEqual(problems(`providers:\n  include: [a.yml]\nentrypoint: {}\n`), [
      `${F}:1: providers: this is GoDoxy's main config.yml, not a route file ("providers" is one of its keys): its route files are listed under \`providers.include\`: give switchyard one of those with -c`,
      `${F}:3: entrypoint: this is GoDoxy's main config.yml, not a route file ("entrypoint" is one of its keys): switchyard's listener is \`listen\` (with \`tls\` and \`proxy_protocol\`) in a switchyard.yaml, or --listen`,
    ]);
  });

  test("idlewatcher: docker is the provider, proxmox and notify are refused by name", () => {
    const c = load(`a:
  host: h
  idlewatcher:
    idle_timeout: 10m
    stop_method: pause
    docker: { container_id: abc123, container_name: app-a }
`);
    const s = c.services.a.servers[0];
    assert.deepEqual(s.provider, { kind: "docker", container: "app-a", socketPath: undefined });
    assert.equal(s.idle?.idleTimeout, 600_000);
    assert.equal(s.idle?.stopMethod, "pause");
    const got = problems(`a:
  host: h
  idlewatcher:
    idle_timeout: 10m
    proxmox: { node: pve, vmid: 101 }
    notify: { to: [gotify] }
`);
    assert.match(got[0], /:3: a\.idlewatcher: idle settings need a provider/);
    assert.match(
      got[1],
      /:5: a\.idlewatcher\.proxmox: GoDoxy key "proxmox" is not supported: start and stop the LXC with an `exec` provider/,
    );
    assert.match(got[2], /:6: a\.idlewatcher\.notify: GoDoxy key "notify" is not supported: /);
  });
});

describe("GoDoxy backend TLS and h2c", () => {
  const load = (text: string) => parseConfig(text, F, {}, {});
  const dir = mkdtempSync(join(tmpdir(), "switchyard-godoxy-tls-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const pem = selfSigned();
  writeFileSync(join(dir, "ca.pem"), pem.cert);
  writeFileSync(join(dir, "key.pem"), pem.key);

  test("no_tls_verify and ssl_* keys are the server's tls; scheme h2c is protocol h2c", () => {
    const c = load(`a:
  scheme: https
  host: 10.0.0.1
  no_tls_verify: true
  ssl_server_name: api.internal
  ssl_trusted_certificate: ${dir}/ca.pem
  ssl_certificate: ${dir}/ca.pem
  ssl_certificate_key: ${dir}/key.pem
b:
  scheme: h2c
  host: 10.0.0.2
  port: 50051
`);
    assert.deepEqual(c.services.a.servers[0].tls, {
      ca: join(dir, "ca.pem"),
      servername: "api.internal",
      cert: join(dir, "ca.pem"),
      key: join(dir, "key.pem"),
      insecureSkipVerify: true,
    });
    assert.equal(c.services.b.servers[0].url, "http://10.0.0.2:50051");
    assert.equal(c.services.b.servers[0].protocol, "h2c");
  });

  test("ssl_* on an http route, missing files, a lone key and SNI off are problems at their line", () => {
    const got = problems(`a:
  host: 10.0.0.1
  ssl_trusted_certificate: ${dir}/ca.pem
  no_tls_verify: true
b:
  scheme: https
  host: 10.0.0.2
  ssl_trusted_certificate: ${dir}/missing.pem
  ssl_certificate_key: ${dir}/key.pem
  ssl_server_name: "off"
`);
    assert.equal(got.length, 4, got.join("\n"));
    assert.match(got[0], /:3: a\.ssl_trusted_certificate: applies to https backends only/);
    assert.match(got[1], /:8: b\.ssl_trusted_certificate: cannot read .*missing\.pem: no such file/);
    assert.match(got[2], /:9: b\.ssl_certificate_key: `ssl_certificate_key` needs `ssl_certificate`/);
    assert.match(got[3], /:10: b\.ssl_server_name: ssl_server_name "off" \(no SNI\) is not offered/);
  });
});

describe("GoDoxy middlewares and rules", () => {
  const load = (text: string) => parseConfig(text, F, {}, {});

  test("middlewares map onto switchyard's, in GoDoxy's priority order, names in any case", () => {
    const c = load(`a:
  host: h
  middlewares:
    RateLimit: { average: 10, burst: 20, period: 1m }
    cidrWhitelist: { allow: [10.0.0.0/8, 127.0.0.1], priority: 1 }
    request:
      set_headers: { X-Env: prod }
      add_headers: { X-Via: godoxy }
      hide_headers: [X-Debug]
    modify_response: { setHeaders: { X-Frame-Options: DENY }, hideHeaders: [Server] }
    redirectHTTP: {}
    real_ip: { header: X-Forwarded-For, from: [10.0.0.0/8], recursive: true }
    set_x_forwarded: {}
    hideXForwarded: {}
`);
    assert.deepEqual(c.services.a.middlewares, [
      { kind: "allow", cidrs: ["10.0.0.0/8", "127.0.0.1"] },
      { kind: "rate_limit", limit: 10, period: 60_000, burst: 20 },
      { kind: "request_headers", set: { "X-Env": "prod" }, add: { "X-Via": "godoxy" }, remove: ["X-Debug"] },
      { kind: "response_headers", set: { "X-Frame-Options": "DENY" }, add: {}, remove: ["Server"] },
      { kind: "redirect_https", status: 308, port: undefined },
      { kind: "hide_forwarded" },
    ]);
    assert.deepEqual(c.services.a.options, {
      header: "X-Forwarded-For",
      from: ["10.0.0.0/8"],
      recursive: true,
    });
  });

  test("middlewares switchyard does not have, bypass, variables and odd statuses are refused by name", () => {
    const got = problems(`a:
  host: h
  middlewares:
    oidc: {}
    hide_x_forwarded: { headers: [X-Forwarded-For] }
    cidr_whitelist: { allow: [10.0.0.0/8], status_code: 404, bypass: [{ remote: 10.0.0.1 }] }
    request: { set_headers: { X-Path: $req_path }, add_prefix: /v1 }
    cidr_whitelst: {}
`);
    assert.equal(got.length, 7, got.join("\n"));
    assert.match(
      got[0],
      /:4: a\.middlewares\.oidc: GoDoxy middleware "oidc" is not supported: no OpenID Connect/,
    );
    assert.match(
      got[1],
      /:5: a\.middlewares\.hide_x_forwarded\.headers: hide_x_forwarded takes no options in GoDoxy/,
    );
    assert.match(got[2], /:6: a\.middlewares\.cidr_whitelist\.bypass: GoDoxy key "bypass" is not supported/);
    assert.match(
      got[3],
      /:6: a\.middlewares\.cidr_whitelist\.status_code: switchyard's `allow` answers 403 only/,
    );
    assert.match(got[4], /:7: a\.middlewares\.request\.add_prefix: GoDoxy key "add_prefix" is not supported/);
    assert.match(got[5], /:7: a\.middlewares\.request\.set_headers\.X-Path: GoDoxy variables/);
    assert.match(
      got[6],
      /:8: a\.middlewares\.cidr_whitelst: unknown GoDoxy middleware "cidr_whitelst"; did you mean "cidr_whitelist"\?/,
    );
  });

  test("real_ip must agree with load_balance.options (one real-IP setting per service)", () => {
    const got = problems(`a:
  host: h
  load_balance: { link: x, options: { from: [10.0.0.0/8] } }
  middlewares:
    real_ip: { from: [172.16.0.0/12] }
`);
    assert.equal(got.length, 1);
    assert.match(
      got[0],
      /:5: a\.middlewares: real_ip \(from \["172\.16\.0\.0\/12"\] vs \["10\.0\.0\.0\/8"\]\) conflicts with load_balance\.options/,
    );
  });

  test("rules become one rules middleware, before the route's middlewares (GoDoxy wraps the proxy in them)", () => {
    const hash = "$2b$10$abcdefghijklmnopqrstuu5Qy0c1o8b0aFd4yWZB9o5eUu6lN2/dG";
    const c = load(`a:
  host: h
  middlewares:
    response: { set_headers: { X-A: "1" } }
  rules:
    - name: internal only
      on: |
        !remote 10.0.0.0/8
        !remote 127.0.0.1
      do: error 403 "Access Denied"
    - name: api
      on: path glob("/api/*") & method GET | method HEAD
      do: |
        rewrite /api/ /v2/
        set header X-Api yes
    - name: login
      on: "!basic_auth admin ${hash}"
      do: require_basic_auth "Admin area"
    - name: old
      on: header X-Legacy 1
      do: route b
    - name: default
      do: |
        set header X-Env prod
        remove header X-Debug
        set resp_header X-Served-By switchyard
        pass
b:
  host: h2
`);
    const mws = c.services.a.middlewares!;
    assert.deepEqual(
      mws.map((m) => m.kind),
      ["rules", "response_headers"],
    );
    const rules = mws[0].kind === "rules" ? mws[0].rules : [];
    assert.deepEqual(
      rules.map((r) => [r.name, r.default, r.on.length, r.do.map((d) => d.do)]),
      [
        ["internal only", false, 2, ["error"]],
        ["api", false, 2, ["rewrite", "set"]],
        ["login", false, 1, ["require_basic_auth"]],
        ["old", false, 1, ["route"]],
        ["default", true, 0, ["set", "remove", "set", "pass"]],
      ],
    );
    assert.deepEqual(rules[0].on, [
      [{ on: "remote", negate: true, cidr: "10.0.0.0/8" }],
      [{ on: "remote", negate: true, cidr: "127.0.0.1/32" }],
    ]);
    assert.deepEqual(rules[1].on, [
      [{ on: "path", negate: false, value: { type: "glob", expr: "/api/*", negate: false } }],
      [
        { on: "method", negate: false, method: "GET" },
        { on: "method", negate: false, method: "HEAD" },
      ],
    ]);
    assert.deepEqual(rules[0].do, [{ do: "error", status: 403, text: "Access Denied" }]);
    assert.deepEqual(rules[2].on, [[{ on: "basic_auth", negate: true, user: "admin", hash }]]);
    assert.deepEqual(rules[3].do, [{ do: "route", service: "b" }]);
  });

  test("a list whose only rule is a default pass adds nothing (GoDoxy skips the rules then too)", () => {
    const c = load(`a:
  host: h
  rules:
    - name: default
      do: pass
`);
    assert.equal(c.services.a.middlewares, undefined);
  });

  test("unknown conditions and commands, bad globs, regexes, statuses and routes are file:line problems", () => {
    const got = problems(`a:
  host: h
  load_balance: { link: pool }
  rules:
    - name: api
      on: paht /api
      do: pass
    - name: glob
      on: path glob("/a/[b")
      do: error 404 "no"
    - name: regex
      on: header X-Key regex("^(sk-")
      do: error 99 "bad"
    - name: cmds
      on: method GET
      do: |
        set header X-A 1
        teleport /x
        error 403 nope
        pass
    - name: go
      on: method POST
      do: route nowhere
    - name: member
      on: method PUT
      do: route a
    - name: body
      on: form user alice
      do: serve /var/www
    - name: vars
      on: method DELETE
      do: set header X-Path $req_path
`);
    const want: [number, RegExp][] = [
      [6, /a\.rules\[0\]\.on: GoDoxy rule "api": unknown condition "paht"; did you mean "path"\?/],
      [9, /a\.rules\[1\]\.on: GoDoxy rule "glob": bad glob "\/a\/\[b": a "\[" without its "\]"/],
      [12, /a\.rules\[2\]\.on: GoDoxy rule "regex": bad regex "\^\(sk-"/],
      [13, /a\.rules\[2\]\.do: GoDoxy rule "regex": "99" is not a status code for an answer \(200-599\)/],
      [18, /a\.rules\[3\]\.do: GoDoxy rule "cmds": unknown command "teleport"/],
      [
        19,
        /a\.rules\[3\]\.do: GoDoxy rule "cmds": `error 403 nope` ends the request, so it must be the last command/,
      ],
      [23, /a\.rules\[4\]\.do: GoDoxy rule "go": `route nowhere` names no service of this file \(pool\)/],
      [
        26,
        /a\.rules\[5\]\.do: GoDoxy rule "member": `route a`: "a" is a member of load_balance\.link "pool"; route to "pool"/,
      ],
      [
        28,
        /a\.rules\[6\]\.on: GoDoxy rule "body": condition `form` is not supported: it reads the request body/,
      ],
      [
        29,
        /a\.rules\[6\]\.do: GoDoxy rule "body": command `serve` is not supported: switchyard serves no files/,
      ],
      [32, /a\.rules\[7\]\.do: GoDoxy rule "vars": GoDoxy variables/],
    ];
    assert.equal(got.length, want.length, got.join("\n"));
    want.forEach(([line, re], i) => {
      assert.match(got[i], new RegExp(`:${line}: `), got[i]);
      assert.match(got[i], re);
    });
  });

  test("two default rules, and a rule an earlier one with the same condition always ends, are refused", () => {
    const got = problems(`a:
  host: h
  rules:
    - name: default
      do: pass
    - on: method POST | method PUT
      do: error 405 "read only"
    - name: later
      on: method PUT | method POST
      do: pass
    - on: default
      do: error 403 no
`);
    assert.equal(got.length, 2, got.join("\n"));
    assert.match(
      got[0],
      /:9: a\.rules\[2\]\.on: rule "later" can never run: rule "rules\[1\]" has the same condition/,
    );
    assert.match(got[1], /:11: a\.rules\[3\]: a second default rule \(the first is rules\[0\]\)/);
  });

  test("GoDoxy's block syntax is refused naming the YAML form", () => {
    const got = problems(`a:
  host: h
  rules: |
    path /x { pass }
`);
    assert.equal(got.length, 1);
    assert.match(
      got[0],
      /:3: a\.rules: GoDoxy's block syntax .* is not supported: write the rules as a YAML list/,
    );
  });
});

describe("GoDoxy custom_error_page", () => {
  test("the pages of GoDoxy's error_pages/ folder (beside the route file or one up) become error_pages", () => {
    const root = mkdtempSync(join(tmpdir(), "switchyard-godoxy-pages-"));
    after(() => rmSync(root, { recursive: true, force: true }));
    mkdirSync(join(root, "config"));
    mkdirSync(join(root, "error_pages"));
    writeFileSync(join(root, "error_pages", "404.html"), "<h1>not here</h1>");
    writeFileSync(join(root, "error_pages", "503.html"), "<h1>later</h1>");
    writeFileSync(join(root, "error_pages", "style.css"), "");
    const file = join(root, "config", "routes.yml");
    const c = parseConfig(`a:\n  host: h\n  middlewares:\n    errorPage: {}\n`, file, {}, {});
    assert.deepEqual(c.services.a.middlewares, [
      {
        kind: "error_pages",
        pages: { 404: join(root, "error_pages", "404.html"), 503: join(root, "error_pages", "503.html") },
      },
    ]);
    try {
      parseConfig(
        `a:\n  host: h\n  middlewares:\n    custom_error_page:\n`,
        join(tmpdir(), "routes.yml"),
        {},
        {},
      );
      assert.fail("expected a problem");
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      assert.match(
        err.problems[0],
        /a\.middlewares\.custom_error_page: custom_error_page: no error_pages\/ folder/,
      );
    }
  });
});
