import * as assert from "node:assert/strict";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ConfigError } from "../errors.ts";
import { checkConfig, demoConfig, loadConfig, parseConfig } from "./load.ts";

const F = "switchyard.yaml";

/** The problems of a text that must be refused. */
function problems(text: string, env: Record<string, string> = {}, file = F): readonly string[] {
  try {
    parseConfig(text, file, {}, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    assert.equal(err.code, "ERR_SWITCHYARD_CONFIG");
    return err.problems;
  }
  assert.fail("expected the configuration to be refused");
}

const MINIMAL = `services:
  api:
    servers: ["http://127.0.0.1:3000"]
`;

describe("defaults", () => {
  test("a minimal file gets every default", () => {
    const c = parseConfig(MINIMAL, F, {}, {});
    assert.equal(c.file, F);
    assert.deepEqual(c.listen, [{ address: "0.0.0.0:8080", host: "0.0.0.0", port: 8080, tls: undefined }]);
    assert.deepEqual(c.admin, { address: "127.0.0.1:8081", host: "127.0.0.1", port: 8081, token: undefined });
    assert.deepEqual(c.timeouts, {
      connect: 5000,
      responseHeader: 60000,
      idle: 60000,
      clientHeader: 30000,
      shutdown: 30000,
      tunnel: 3_600_000,
    });
    assert.equal(c.workers, 1);
    assert.equal(c.logLevel, "info");
    assert.deepEqual(c.services.api, {
      name: "api",
      hosts: [],
      mode: "round_robin",
      sticky: false,
      stickyMaxAge: 86_400_000,
      stickySecret: undefined,
      options: { header: "X-Real-IP", from: [], recursive: false },
      healthcheck: { path: "/", useGet: false, interval: 5000, timeout: 5000, retries: 0, enabled: true },
      slowStart: 0,
      panicThreshold: 0,
      passiveCooldown: 10_000,
      accessLog: true,
      servers: [{ name: "api-1", url: "http://127.0.0.1:3000", weight: 0, backup: false }],
    });
    assert.equal(c.accessLog, true);
  });

  test("access_log top-level and per service; passive_cooldown per service, validated", () => {
    const c = parseConfig(
      `access_log: false\nservices:\n  a: { servers: [http://a:1] }\n  b: { access_log: true, passive_cooldown: 2m30s, servers: [http://b:1] }\n`,
      F,
      {},
      {},
    );
    assert.equal(c.accessLog, false);
    assert.equal(c.services.a.accessLog, false, "a service without its own takes the top-level switch");
    assert.equal(c.services.b.accessLog, true);
    assert.equal(c.services.a.passiveCooldown, 10_000);
    assert.equal(c.services.b.passiveCooldown, 150_000);
    assert.throws(
      () =>
        parseConfig(
          `access_log: "no"\nservices:\n  a:\n    passive_cooldown: 10\n    servers: [http://a:1]\n  b:\n    passive_cooldown: -1s\n    servers: [http://b:1]\n`,
          F,
          {},
          {},
        ),
      (err: ConfigError) => {
        assert.equal(err.problems.length, 3, err.message);
        assert.match(err.problems[0], /:1: access_log: /);
        assert.match(err.problems[1], /:4: services\.a\.passive_cooldown: bare number 10 is not a duration/);
        assert.match(err.problems[2], /:7: services\.b\.passive_cooldown: /);
        return true;
      },
    );
  });

  test("empty sections (`key:` with nothing) mean the defaults", () => {
    const c = parseConfig(
      `timeouts:\nservices:\n  api:\n    healthcheck:\n    options:\n    servers: [http://a:1]\n`,
      F,
      {},
      {},
    );
    assert.equal(c.timeouts.connect, 5000);
    assert.equal(c.services.api.healthcheck.interval, 5000);
    assert.equal(c.services.api.options.header, "X-Real-IP");
  });
});

test("the SPEC's example configuration parses to what it says", () => {
  const c = parseConfig(
    `listen: 0.0.0.0:8080            # default; or a list of addresses and { address, tls: { cert: FILE, key: FILE } }
admin: 127.0.0.1:8081           # default; admin API + dashboard
timeouts: { connect: 5s, response_header: 60s, idle: 60s }
services:
  api:
    hosts: [api.example.com]    # exact, "*.example.com", or "*" (any Host)
    mode: least_conn
    sticky: true
    sticky_max_age: 1h
    sticky_secret: change-me
    options: { header: X-Forwarded-For, from: [10.0.0.0/8], recursive: true }
    healthcheck: { path: /healthz, use_get: false, interval: 5s, timeout: 2s, retries: 3 }
    servers:
      - { name: api-1, url: "http://10.0.0.11:3000", weight: 30 }
      - { name: api-2, url: "http://10.0.0.12:3000", weight: 70 }
`,
    F,
    {},
    {},
  );
  const api = c.services.api;
  assert.deepEqual(api.hosts, ["api.example.com"]);
  assert.equal(api.mode, "least_conn");
  assert.equal(api.sticky, true);
  assert.equal(api.stickyMaxAge, 3_600_000);
  assert.equal(api.stickySecret, "change-me");
  assert.deepEqual(api.options, { header: "X-Forwarded-For", from: ["10.0.0.0/8"], recursive: true });
  assert.deepEqual(api.healthcheck, {
    path: "/healthz",
    useGet: false,
    interval: 5000,
    timeout: 2000,
    retries: 3,
    enabled: true,
  });
  assert.deepEqual(api.servers, [
    { name: "api-1", url: "http://10.0.0.11:3000", weight: 30, backup: false },
    { name: "api-2", url: "http://10.0.0.12:3000", weight: 70, backup: false },
  ]);
});

describe("every key", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "switchyard-config-"));
    await writeFile(join(dir, "cert.pem"), "cert");
    await writeFile(join(dir, "key.pem"), "key");
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test("all keys set, TLS paths resolved against the file's folder", () => {
    const file = join(dir, "switchyard.yaml");
    const c = parseConfig(
      `listen:
  - 127.0.0.1:8080
  - "[::1]:8080"
  - { address: ":8443", tls: { cert: cert.pem, key: ./key.pem } }
  - { address: ":8444", proxy_protocol: { trusted: [10.0.0.0/8, "::1"], timeout: 2s } }
admin: { address: 0.0.0.0:9090, token: s3cret }
timeouts: { connect: 1s, response_header: 2m, idle: 1h30m, client_header: 10s, shutdown: 0s, tunnel: 10m }
workers: 4
log_level: DEBUG
services:
  web:
    hosts: [WWW.Example.com, "*.example.org", "*"]
    mode: IPHash
    sticky: true
    sticky_max_age: 90m
    sticky_secret: abc
    options: { header: X-Forwarded-For, from: "10.0.0.0/8, ::1, 192.168.1.1", recursive: true }
    healthcheck: { path: /up, use_get: true, interval: 500ms, timeout: 250ms, retries: -1, disable: true }
    servers:
      - http://10.0.0.1:80
      - { url: "https://10.0.0.2", weight: 0 }
      - { name: big, url: "http://10.0.0.3:8080/", weight: 5 }
`,
      file,
      {},
      {},
    );
    assert.deepEqual(c.listen, [
      { address: "127.0.0.1:8080", host: "127.0.0.1", port: 8080, tls: undefined },
      { address: "[::1]:8080", host: "::1", port: 8080, tls: undefined },
      {
        address: "0.0.0.0:8443",
        host: "0.0.0.0",
        port: 8443,
        tls: { cert: join(dir, "cert.pem"), key: join(dir, "key.pem") },
      },
      {
        address: "0.0.0.0:8444",
        host: "0.0.0.0",
        port: 8444,
        tls: undefined,
        proxyProtocol: { trusted: ["10.0.0.0/8", "::1"], timeout: 2000 },
      },
    ]);
    assert.deepEqual(c.admin, { address: "0.0.0.0:9090", host: "0.0.0.0", port: 9090, token: "s3cret" });
    assert.deepEqual(c.timeouts, {
      connect: 1000,
      responseHeader: 120_000,
      idle: 5_400_000,
      clientHeader: 10_000,
      shutdown: 0,
      tunnel: 600_000,
    });
    assert.equal(c.workers, 4);
    assert.equal(c.logLevel, "debug");
    const web = c.services.web;
    assert.deepEqual(web.hosts, ["www.example.com", "*.example.org", "*"]);
    assert.equal(web.mode, "ip_hash");
    assert.equal(web.stickyMaxAge, 5_400_000);
    assert.deepEqual(web.options.from, ["10.0.0.0/8", "::1", "192.168.1.1"]);
    assert.deepEqual(web.healthcheck, {
      path: "/up",
      useGet: true,
      interval: 500,
      timeout: 250,
      retries: -1,
      enabled: false,
    });
    assert.deepEqual(web.servers, [
      { name: "web-1", url: "http://10.0.0.1", weight: 0, backup: false },
      { name: "web-2", url: "https://10.0.0.2", weight: 0, backup: false },
      { name: "big", url: "http://10.0.0.3:8080", weight: 5, backup: false },
    ]);
  });

  test("an unreadable TLS file is reported with its path and the reason", async () => {
    const file = join(dir, "tls.yaml");
    const text = `listen:\n  - address: 127.0.0.1:8443\n    tls:\n      cert: nope.pem\n      key: key.pem\n${MINIMAL}`;
    assert.deepEqual(problems(text, {}, file), [
      `${file}:4: listen[0].tls.cert: cannot read ${join(dir, "nope.pem")}: no such file (ENOENT)`,
    ]);
    assert.deepEqual(
      problems(`listen:\n  - { address: ":1", tls: { cert: cert.pem } }\n${MINIMAL}`, {}, file),
      [`${file}:2: listen[0].tls: missing \`key\` (a PEM file)`],
    );
  });

  test("admin token may come from the environment through VAR substitution", () => {
    const c = parseConfig(`admin: { token: "\${TOKEN}" }\n${MINIMAL}`, F, {}, { TOKEN: "t0k" });
    assert.equal(c.admin.token, "t0k");
    assert.equal(c.admin.address, "127.0.0.1:8081");
  });
});

test("traffic policies: slow_start, panic_threshold and backup are read", () => {
  const c = parseConfig(
    `services:\n  api:\n    slow_start: 30s\n    panic_threshold: 25%\n    servers:\n      - http://a:1\n      - { url: "http://b:1", backup: true }\n`,
    F,
  );
  assert.equal(c.services.api.slowStart, 30_000);
  assert.equal(c.services.api.panicThreshold, 25);
  assert.deepEqual(
    c.services.api.servers.map((s) => s.backup),
    [false, true],
  );
  assert.equal(
    parseConfig(`services:\n  api:\n    panic_threshold: 12.5\n    servers: [http://a:1]\n`, F).services.api
      .panicThreshold,
    12.5,
  );
});

describe("mistakes are reported as file:line: path: message", () => {
  const cases: [string, string, string][] = [
    [
      "server URL that is not http(s)",
      `services:\n  api:\n    servers:\n      - url: http://a:1\n      - url: ftp://b\n`,
      `${F}:5: services.api.servers[1].url: not an http(s) URL: "ftp://b"`,
    ],
    [
      "server URL with a path",
      `services:\n  api:\n    servers: ["http://a:1/x"]\n`,
      `${F}:3: services.api.servers[0]: "http://a:1/x": give only scheme://host:port (no path, query or credentials)`,
    ],
    [
      "negative weight",
      `services:\n  api:\n    servers:\n      - { url: "http://a:1", weight: -5 }\n`,
      `${F}:4: services.api.servers[0].weight: must be ≥ 0, got -5`,
    ],
    [
      "fractional weight",
      `services:\n  api:\n    servers:\n      - { url: "http://a:1", weight: 1.5 }\n`,
      `${F}:4: services.api.servers[0].weight: expected an integer, got a number (1.5)`,
    ],
    [
      "unknown mode",
      `services:\n  api:\n    mode: random\n    servers: [http://a:1]\n`,
      `${F}:3: services.api.mode: unknown load-balancing mode "random"; valid modes: round_robin, least_conn, ip_hash (case and "_"/"-" ignored)`,
    ],
    [
      "bare number as a duration",
      `services:\n  api:\n    sticky_max_age: 3600\n    servers: [http://a:1]\n`,
      `${F}:3: services.api.sticky_max_age: bare number 3600 is not a duration: add a unit, e.g. "3600s" or "3600ms" (GoDoxy would read 3600 as nanoseconds)`,
    ],
    [
      "bad duration",
      `timeouts:\n  connect: 5 seconds\n${MINIMAL}`,
      `${F}:2: timeouts.connect: invalid duration "5 seconds" (use Go syntax such as 500ms, 30s, 5m, 1h30m; units ns us ms s m h)`,
    ],
    [
      "bad tunnel timeout",
      `timeouts:\n  tunnel: 1 hour\n${MINIMAL}`,
      `${F}:2: timeouts.tunnel: invalid duration "1 hour" (use Go syntax such as 500ms, 30s, 5m, 1h30m; units ns us ms s m h)`,
    ],
    [
      "negative per-service tunnel timeout",
      `services:\n  api:\n    timeouts: { tunnel: -1s }\n    servers: [http://a:1]\n`,
      `${F}:3: services.api.timeouts.tunnel: must be ≥ 0`,
    ],
    [
      "zero interval",
      `services:\n  api:\n    healthcheck: { interval: 0s }\n    servers: [http://a:1]\n`,
      `${F}:3: services.api.healthcheck.interval: must be greater than 0`,
    ],
    [
      "unknown key with a hint",
      `services:\n  api:\n    stickyMaxAge: 1h\n    servers: [http://a:1]\n`,
      `${F}:3: services.api.stickyMaxAge: unknown key; did you mean "sticky_max_age"?`,
    ],
    [
      "unknown key with a typo",
      `${MINIMAL}timeout:\n  connect: 1s\n`,
      `${F}:4: timeout: unknown key; did you mean "timeouts"?`,
    ],
    [
      "unknown key with nothing close",
      `${MINIMAL}zzz: 1\n`,
      `${F}:4: zzz: unknown key (known: listen, admin, timeouts, workers, log_level, access_log, services)`,
    ],
    [
      "duplicate server host:port",
      `services:\n  api:\n    servers:\n      - http://a:80\n      - http://A\n`,
      `${F}:5: services.api.servers[1]: same host:port a:80 as servers[0]`,
    ],
    [
      "duplicate server name",
      `services:\n  api:\n    servers:\n      - { name: x, url: "http://a:1" }\n      - { name: x, url: "http://b:1" }\n`,
      `${F}:5: services.api.servers[1]: duplicate server name "x" (also servers[0])`,
    ],
    [
      "host used by two services",
      `services:\n  a:\n    hosts: [x.com]\n    servers: [http://a:1]\n  b:\n    hosts: [X.com]\n    servers: [http://b:1]\n`,
      `${F}:6: services.b.hosts[0]: host "x.com" is already used by service "a" (give one of them \`paths\` to share it)`,
    ],
    [
      "host with a port",
      `services:\n  a:\n    hosts: ["x.com:8080"]\n    servers: [http://a:1]\n`,
      `${F}:3: services.a.hosts[0]: hosts are matched without the port: write "x.com"`,
    ],
    [
      "bad host pattern",
      `services:\n  a:\n    hosts: ["foo.*.com"]\n    servers: [http://a:1]\n`,
      `${F}:3: services.a.hosts[0]: "foo.*.com" is not a host name, "*.example.com" (one label in front) or "*" (any Host)`,
    ],
    [
      "bad CIDR in options.from",
      `services:\n  a:\n    options:\n      from:\n        - 10.0.0.0/8\n        - 10.0.0.0/40\n    servers: [http://a:1]\n`,
      `${F}:6: services.a.options.from[1]: "10.0.0.0/40" has an invalid prefix length (0-32)`,
    ],
    [
      "not an IP in options.from (comma string)",
      `services:\n  a:\n    options: { from: "10.0.0.1, example.com" }\n    servers: [http://a:1]\n`,
      `${F}:3: services.a.options.from: "example.com" is not an IP address or CIDR`,
    ],
    [
      "bad header name",
      `services:\n  a:\n    options: { header: "X Real" }\n    servers: [http://a:1]\n`,
      `${F}:3: services.a.options.header: not a valid header name`,
    ],
    [
      "service name that is not a DNS label",
      `services:\n  My_API:\n    servers: [http://a:1]\n`,
      `${F}:2: services.My_API: service name "My_API" must be a DNS label (lowercase letters, digits and "-", at most 63, no "-" at either end): it is matched against the first label of Host`,
    ],
    [
      "no services key",
      `listen: 127.0.0.1:1\n`,
      `${F}:1: services: no services: add \`services:\` with at least one service`,
    ],
    ["empty services", `services: {}\n`, `${F}:1: services: no services: add at least one`],
    ["empty file", ``, `${F}: services: no services: add \`services:\` with at least one service`],
    [
      "service without servers",
      `services:\n  api:\n    mode: least_conn\n`,
      `${F}:2: services.api: no servers: add \`servers:\` with at least one { url }`,
    ],
    [
      "server without url",
      `services:\n  api:\n    servers:\n      - name: x\n`,
      `${F}:4: services.api.servers[0]: missing \`url\` (e.g. http://10.0.0.11:3000)`,
    ],
    [
      "wrong type",
      `services:\n  api:\n    sticky: "yes"\n    servers: [http://a:1]\n`,
      `${F}:3: services.api.sticky: expected true or false, got a string ("yes")`,
    ],
    [
      "number where a string is expected",
      `services:\n  api:\n    sticky_secret: 1234\n    servers: [http://a:1]\n`,
      `${F}:3: services.api.sticky_secret: expected a string, got a number (1234); put it in quotes`,
    ],
    [
      "bad listen address",
      `listen: localhost\n${MINIMAL}`,
      `${F}:1: listen: "localhost" is not a host:port address (e.g. 0.0.0.0:8080)`,
    ],
    [
      "listen port out of range",
      `listen: ":70000"\n${MINIMAL}`,
      `${F}:1: listen: ":70000": port must be 0-65535`,
    ],
    [
      "duplicate listen address",
      `listen: [":8080", "0.0.0.0:8080"]\n${MINIMAL}`,
      `${F}:1: listen[1]: duplicate listen address 0.0.0.0:8080`,
    ],
    [
      "proxy_protocol without trusted",
      `listen:\n  - { address: ":8080", proxy_protocol: { timeout: 1s } }\n${MINIMAL}`,
      `${F}:2: listen[0].proxy_protocol: missing \`trusted\` (addresses or CIDRs of the balancers that send the PROXY header)`,
    ],
    [
      "proxy_protocol with a bad CIDR",
      `listen:\n  - address: ":8080"\n    proxy_protocol:\n      trusted: [10.0.0.0/8, lb.example]\n${MINIMAL}`,
      `${F}:4: listen[0].proxy_protocol.trusted[1]: "lb.example" is not an IP address or CIDR`,
    ],
    [
      "proxy_protocol with an empty trusted list",
      `listen:\n  - { address: ":8080", proxy_protocol: { trusted: [] } }\n${MINIMAL}`,
      `${F}:2: listen[0].proxy_protocol.trusted: no trusted address: every connection would be refused`,
    ],
    [
      "proxy_protocol unknown key",
      `listen:\n  - { address: ":8080", proxy_protocol: { trusted: [10.0.0.1], version: 2 } }\n${MINIMAL}`,
      `${F}:2: listen[0].proxy_protocol.version: unknown key (known: trusted, timeout)`,
    ],
    ["workers 0", `workers: 0\n${MINIMAL}`, `${F}:1: workers: must be ≥ 1, got 0`],
    [
      "bad log level",
      `log_level: loud\n${MINIMAL}`,
      `${F}:1: log_level: must be one of "fatal", "error", "warn", "info", "debug", "trace", "silent", got a string ("loud")`,
    ],
    ["top level is a list", `- a\n- b\n`, `${F}:1: expected a map, got a list`],
    [
      "YAML syntax error",
      `services:\n  api:\n    servers: [http://a:1\n  web: {}\n`,
      `${F}:4: YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]`,
    ],
    [
      "duplicate YAML key",
      `services:\n  api:\n    servers: [http://a:1]\n  api:\n    servers: [http://b:1]\n`,
      `${F}:4: YAML syntax error: Map keys must be unique`,
    ],
    [
      "slow_start without a unit",
      `services:\n  api:\n    slow_start: 30\n    servers: [http://a:1]\n`,
      `${F}:3: services.api.slow_start: bare number 30 is not a duration: add a unit, e.g. "30s" or "30ms" (GoDoxy would read 30 as nanoseconds)`,
    ],
    [
      "panic_threshold over 100%",
      `services:\n  api:\n    panic_threshold: 150%\n    servers: [http://a:1]\n`,
      `${F}:3: services.api.panic_threshold: expected a percentage from 0% to 100%, got "150%"`,
    ],
    [
      "backup that is not a boolean",
      `services:\n  api:\n    servers:\n      - { url: "http://a:1", backup: "yes" }\n`,
      `${F}:4: services.api.servers[0].backup: expected true or false, got a string ("yes")`,
    ],
    [
      "two YAML documents",
      `${MINIMAL}---\nworkers: 2\n`,
      `${F}:4: YAML syntax error: more than one YAML document (a second \`---\`): a configuration is one document`,
    ],
    [
      "unknown YAML anchor",
      `services:\n  api:\n    options: *opts\n    servers: [http://a:1]\n`,
      `${F}:3: services.api.options: unknown YAML anchor "*opts"`,
    ],
    [
      "unset environment variable",
      `services:\n  api:\n    sticky_secret: \${NOPE}\n    servers: [http://a:1]\n`,
      `${F}:3: services.api.sticky_secret: environment variable NOPE is not set`,
    ],
  ];
  for (const [name, text, expected] of cases) {
    test(name, () => assert.deepEqual(problems(text), [expected]));
  }

  test("a file with three different mistakes reports all three, in line order", () => {
    const text = `listen: 0.0.0.0:8080
admin: 127.0.0.1:8081
services:
  api:
    mode: least_conn
    sticky_max_age: 24
    servers:
      - { name: api-1, url: "http://10.0.0.11:3000", weight: 30 }
      - { name: api-2, url: "10.0.0.12:3000", weight: 70 }
  web:
    servers:
      - { url: "http://10.0.0.21:3000", wieght: 2 }
`;
    const p = problems(text);
    assert.equal(p.length, 3);
    assert.match(
      p[0],
      /^switchyard\.yaml:6: services\.api\.sticky_max_age: bare number 24 is not a duration/,
    );
    assert.equal(p[1], `${F}:9: services.api.servers[1].url: not an http(s) URL: "10.0.0.12:3000"`);
    assert.equal(p[2], `${F}:12: services.web.servers[0].wieght: unknown key; did you mean "weight"?`);
  });

  test("the ConfigError message names the file, the count, and every problem", () => {
    try {
      parseConfig(`workers: 0\nlog_level: x\n${MINIMAL}`, F, {}, {});
      assert.fail("accepted");
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      assert.match(
        err.message,
        /^switchyard\.yaml: invalid configuration \(2 problems\)\n {2}switchyard\.yaml:1: workers/,
      );
      assert.match(err.message, /\n {2}switchyard\.yaml:2: log_level/);
    }
  });
});

describe("values", () => {
  test("a zero duration without a unit is accepted", () => {
    assert.equal(parseConfig(`timeouts: { shutdown: 0 }\n${MINIMAL}`, F, {}, {}).timeouts.shutdown, 0);
  });

  test("timeouts.tunnel: 0 (never) at the top, a service's own over it", () => {
    const c = parseConfig(
      `timeouts: { tunnel: 0 }\nservices:\n  api:\n    timeouts: { tunnel: 90s }\n    servers: [http://a:1]\n  b:\n    servers: [http://b:1]\n`,
      F,
      {},
      {},
    );
    assert.equal(c.timeouts.tunnel, 0);
    assert.deepEqual(c.services.api.timeouts, { tunnel: 90_000 });
    assert.equal(c.services.b.timeouts, undefined);
  });

  test("environment substitution: typed when unquoted, literal when escaped with $$", () => {
    const c = parseConfig(
      `listen: \${ADDR}\nworkers: \${N}\nservices:\n  api:\n    sticky_secret: "pre-$\${X}-\${S}"\n    servers: ["http://\${BACKEND}"]\n`,
      F,
      {},
      { ADDR: "127.0.0.1:9000", N: "3", S: "sec", BACKEND: "10.1.1.1:81" },
    );
    assert.equal(c.listen[0].address, "127.0.0.1:9000");
    assert.equal(c.workers, 3);
    assert.equal(c.services.api.stickySecret, `pre-\${X}-sec`);
    assert.equal(c.services.api.servers[0].url, "http://10.1.1.1:81");
  });

  test("YAML anchors and merge keys work, with lines still right", () => {
    const text = `x-defaults: &d
  mode: least_conn
  sticky: true
services:
  a:
    <<: *d
    servers: [http://a:1]
  b:
    <<: *d
    sticky: false
    servers: [http://b:1]
`;
    // x-defaults is not a switchyard key: report it, then drop it and check the merge
    assert.deepEqual(problems(text), [
      `${F}:1: x-defaults: unknown key (known: listen, admin, timeouts, workers, log_level, access_log, services)`,
    ]);
    const c = parseConfig(
      text.replace(
        "x-defaults: &d\n  mode: least_conn\n  sticky: true\nservices:",
        "services:\n  z:\n    <<: &d { mode: least_conn, sticky: true }\n    servers: [http://z:1]",
      ),
      F,
      {},
      {},
    );
    assert.equal(c.services.a.mode, "least_conn");
    assert.equal(c.services.a.sticky, true);
    assert.equal(c.services.b.sticky, false);
  });

  test("hosts may be a single string or a comma list", () => {
    const c = parseConfig(
      `services:\n  a:\n    hosts: "a.com, *.b.com"\n    servers: [http://a:1]\n`,
      F,
      {},
      {},
    );
    assert.deepEqual(c.services.a.hosts, ["a.com", "*.b.com"]);
  });
});

describe("overrides", () => {
  test("command-line flags beat the file", () => {
    const c = parseConfig(
      `listen: 0.0.0.0:80\nadmin: { address: 0.0.0.0:81, token: t }\nworkers: 2\nlog_level: warn\n${MINIMAL}`,
      F,
      { listen: ["127.0.0.1:0", "[::1]:0"], admin: "127.0.0.1:0", workers: 3, logLevel: "debug" },
      {},
    );
    assert.deepEqual(
      c.listen.map((l) => l.address),
      ["127.0.0.1:0", "[::1]:0"],
    );
    assert.deepEqual(c.admin, { address: "127.0.0.1:0", host: "127.0.0.1", port: 0, token: "t" });
    assert.equal(c.workers, 3);
    assert.equal(c.logLevel, "debug");
  });

  test("bad flags are problems too, alongside the file's", () => {
    try {
      parseConfig(`workers: 0\n${MINIMAL}`, F, { listen: ["nope"], admin: "x:y", logLevel: "loud" }, {});
      assert.fail("accepted");
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      assert.deepEqual(err.problems, [
        `--listen: "nope" is not a host:port address (e.g. 0.0.0.0:8080)`,
        `--admin: "x:y" has no port (e.g. x:8080)`,
        `--log-level: must be one of fatal, error, warn, info, debug, trace, silent, got "loud"`,
        `${F}:1: workers: must be ≥ 1, got 0`,
      ]);
    }
  });
});

test("the result is deeply frozen", () => {
  const c = parseConfig(MINIMAL, F, {}, {});
  assert.ok(Object.isFrozen(c));
  assert.ok(Object.isFrozen(c.listen[0]));
  assert.ok(Object.isFrozen(c.services.api.servers));
  assert.ok(Object.isFrozen(c.services.api.servers[0]));
  assert.ok(Object.isFrozen(c.services.api.options.from));
  assert.throws(() => {
    (c.services.api as { mode: string }).mode = "ip_hash";
  }, TypeError);
  assert.throws(() => (c.services.api.servers as unknown[]).push({}), TypeError);
});

describe("files", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "switchyard-config-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test("loadConfig reads a file; a missing one names the file and the reason", async () => {
    const file = join(dir, "ok.yaml");
    await writeFile(file, MINIMAL);
    const c = await loadConfig(file, { workers: 2 }, {});
    assert.equal(c.file, file);
    assert.equal(c.workers, 2);
    const missing = join(dir, "missing.yaml");
    await assert.rejects(loadConfig(missing), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.message, `${missing}: cannot read configuration file: no such file (ENOENT)`);
      assert.equal((err.cause as NodeJS.ErrnoException).code, "ENOENT");
      return true;
    });
    await assert.rejects(loadConfig(dir), /cannot read configuration file: is a directory \(EISDIR\)/);
  });

  test("an unreadable file gives the OS reason", {
    skip: process.getuid?.() === 0 && "root reads anything",
  }, async () => {
    const file = join(dir, "secret.yaml");
    await writeFile(file, MINIMAL);
    await chmod(file, 0o000);
    await assert.rejects(loadConfig(file), /permission denied \(EACCES\)/);
  });

  test("checkConfig: a summary when valid, every problem when not", async () => {
    const good = join(dir, "good.yaml");
    await writeFile(
      good,
      `services:\n  api:\n    hosts: [api.example.com]\n    mode: least_conn\n    sticky: true\n    servers:\n      - { url: "http://127.0.0.1:3001", weight: 3 }\n      - http://127.0.0.1:3002\n  web:\n    healthcheck: { disable: true }\n    servers: [http://127.0.0.1:4000]\n`,
    );
    const ok = await checkConfig(good, {});
    assert.equal(ok.ok, true);
    assert.equal(
      ok.output,
      [
        `${good}: OK — 2 services, 3 servers`,
        "  listen 0.0.0.0:8080; admin 127.0.0.1:8081",
        "  api (api.example.com; least_conn, sticky 24h0m0s, health HEAD / every 5s)",
        "    api-1 http://127.0.0.1:3001 weight 3",
        "    api-2 http://127.0.0.1:3002",
        "  web (web.*; round_robin, health checks off, passive_cooldown 10s)",
        "    web-1 http://127.0.0.1:4000",
      ].join("\n"),
    );
    const bad = join(dir, "bad.yaml");
    await writeFile(bad, `workers: -1\nservices:\n  api:\n    servers: [ftp://x]\n`);
    const r = await checkConfig(bad, {});
    assert.equal(r.ok, false);
    assert.equal(
      r.output,
      `${bad}: invalid configuration (2 problems)\n  ${bad}:1: workers: must be ≥ 1, got -1\n  ${bad}:4: services.api.servers[0]: not an http(s) URL: "ftp://x"`,
    );
    const missing = await checkConfig(join(dir, "nope.yaml"), {});
    assert.equal(missing.ok, false);
    assert.match(missing.output, /nope\.yaml: cannot read configuration file: no such file/);
  });
});

test("demoConfig: one service on any Host over the given backends, flags applied", () => {
  const c = demoConfig(
    [
      { name: "demo-1", url: "http://127.0.0.1:40001" },
      { name: "demo-2", url: "http://127.0.0.1:40002" },
      { name: "demo-3", url: "http://127.0.0.1:40003" },
    ],
    { listen: ["127.0.0.1:0"] },
  );
  assert.equal(c.file, undefined);
  assert.deepEqual(Object.keys(c.services), ["demo"]);
  assert.deepEqual(c.services.demo.hosts, ["*"]);
  assert.equal(c.services.demo.servers.length, 3);
  assert.equal(c.services.demo.servers[2].url, "http://127.0.0.1:40003");
  assert.equal(c.listen[0].address, "127.0.0.1:0");
  assert.equal(c.admin.address, "127.0.0.1:8081");
  assert.ok(Object.isFrozen(c.services.demo.servers[0]));
  assert.throws(() => demoConfig([], { admin: "bad" }), ConfigError);
});
