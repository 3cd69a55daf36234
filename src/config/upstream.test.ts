import * as assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { testPki } from "../../test/support/tls.ts";
import { ConfigError } from "../errors.ts";
import { checkConfig, parseConfig } from "./load.ts";

let dir: string;
let file: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "switchyard-upstream-"));
  testPki(dir); // ca.pem, client.pem, server-key.pem, ... next to the config file
  file = join(dir, "switchyard.yaml");
});
after(() => rmSync(dir, { recursive: true, force: true }));

function problems(text: string, f = file): readonly string[] {
  try {
    parseConfig(text, f, {}, {});
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return err.problems;
  }
  assert.fail("expected the configuration to be refused");
}

describe("backend protocol and tls", () => {
  test("service tls applies to its https servers, files relative to the config's folder; a server's own keys win", () => {
    const c = parseConfig(
      `services:
  api:
    protocol: h2
    tls: { ca: ca.pem, servername: api.internal, cert: client.pem, key: client-key.pem }
    servers:
      - { name: a, url: "https://10.0.0.1:443" }
      - { name: b, url: "https://10.0.0.2:443", tls: { servername: b.internal } }
      - { name: c, url: "http://10.0.0.3:80", protocol: h2c }
`,
      file,
      {},
      {},
    );
    const [a, b, cc] = c.services.api.servers;
    assert.equal(a.protocol, "h2");
    assert.deepEqual(a.tls, {
      ca: join(dir, "ca.pem"),
      servername: "api.internal",
      cert: join(dir, "client.pem"),
      key: join(dir, "client-key.pem"),
      insecureSkipVerify: false,
    });
    assert.equal(b.tls?.servername, "b.internal");
    assert.equal(b.tls?.ca, join(dir, "ca.pem"));
    assert.equal(cc.protocol, "h2c");
    assert.equal(cc.tls, undefined, "service tls means nothing to an http:// server");
  });

  test("a missing CA file, a file that is not PEM, a cert that does not match its key: file:line errors", () => {
    const list = problems(`services:
  api:
    tls:
      ca: missing-ca.pem
    servers:
      - url: "https://10.0.0.1"
        tls:
          cert: client.pem
          key: server-key.pem
      - url: "https://10.0.0.2"
        tls: { ca: switchyard.yaml }
`);
    assert.equal(list.length, 3, list.join("\n"));
    assert.match(
      list[0],
      /switchyard\.yaml:4: services\.api\.tls\.ca: cannot read .*missing-ca\.pem: no such file/,
    );
    assert.match(
      list[1],
      /switchyard\.yaml:8: services\.api\.servers\[0\]\.tls\.cert: .*client\.pem with .*server-key\.pem: the certificate does not match its key/,
    );
    assert.match(
      list[2],
      /switchyard\.yaml:11: services\.api\.servers\[1\]\.tls\.ca: .*not a PEM file|switchyard\.yaml:11: .*tls\.ca/,
    );
  });

  test("protocol against the url's scheme, unknown protocols, cert without key, tls on a plain server", () => {
    const list = problems(`services:
  api:
    servers:
      - { url: "http://10.0.0.1", protocol: h2 }
      - { url: "https://10.0.0.2", protocol: h2c }
      - { url: "https://10.0.0.3", protocol: spdy }
      - { url: "https://10.0.0.4", tls: { cert: client.pem } }
      - { url: "http://10.0.0.5", tls: { insecure_skip_verify: true } }
`);
    const text = list.join("\n");
    assert.match(text, /:4: services\.api\.servers\[0\]\.protocol: protocol h2 needs an https:\/\/ server/);
    assert.match(text, /:5: services\.api\.servers\[1\]\.protocol: protocol h2c is cleartext/);
    assert.match(text, /:6: services\.api\.servers\[2\]\.protocol: unknown protocol "spdy"/);
    assert.match(text, /:7: services\.api\.servers\[3\]\.tls: `cert` needs `key`/);
    assert.match(text, /:8: services\.api\.servers\[4\]\.tls: tls settings need an https:\/\/ url/);
  });

  test("`switchyard check` names insecure servers and the protocol in its summary", async () => {
    const f = join(dir, "check.yaml");
    const { writeFileSync } = await import("node:fs");
    writeFileSync(
      f,
      `services:
  api:
    protocol: h2
    tls: { insecure_skip_verify: true }
    servers: ["https://10.0.0.1"]
`,
    );
    const r = await checkConfig(f, {});
    assert.equal(r.ok, true, r.output);
    assert.match(r.output, /https:\/\/10\.0\.0\.1 h2 \(TLS not verified\)/);
  });

  test("GoDoxy route files: no_tls_verify: true is insecure_skip_verify on that route's server", () => {
    const c = parseConfig(
      `app1:
  scheme: https
  host: 10.0.0.1
  port: 8443
  no_tls_verify: true
  load_balance: { link: app }
app2:
  scheme: https
  host: 10.0.0.2
  port: 8443
  load_balance: { link: app }
`,
      join(dir, "routes.yml"),
      {},
      {},
    );
    const [a, b] = c.services.app.servers;
    assert.equal(a.tls?.insecureSkipVerify, true);
    assert.equal(b.tls, undefined, "verified, as GoDoxy does without the key");
  });
});

describe("allow_h2c_upgrade", () => {
  test("off by default, on for HTTP/1.1 services, shown by `check`", async () => {
    const c = parseConfig(
      `services:
  plain:
    servers: ["http://10.0.0.1"]
  legacy:
    allow_h2c_upgrade: true
    servers: ["http://10.0.0.2", "https://10.0.0.3"]
`,
      file,
      {},
      {},
    );
    assert.equal(c.services.plain.allowH2cUpgrade, undefined);
    assert.equal(c.services.legacy.allowH2cUpgrade, true);
    const f = join(dir, "h2c.yaml");
    const { writeFileSync } = await import("node:fs");
    writeFileSync(f, `services:\n  legacy:\n    allow_h2c_upgrade: true\n    servers: ["http://10.0.0.2"]\n`);
    const r = await checkConfig(f, {});
    assert.equal(r.ok, true, r.output);
    assert.match(r.output, /legacy \(.*h2c upgrade allowed/);
  });

  test("a wrong type, and the key with HTTP/2 servers, are refused at their line", () => {
    const text = problems(`services:
  a:
    allow_h2c_upgrade: "yes"
    servers: ["http://10.0.0.1"]
  b:
    protocol: h2c
    allow_h2c_upgrade: true
    servers: ["http://10.0.0.2"]
  c:
    allow_h2c_upgrade: true
    servers:
      - "http://10.0.0.3"
      - { name: grpc, url: "https://10.0.0.4", protocol: h2 }
  d:
    protocol: h2c
    allow_h2c_upgrade: false
    servers: ["http://10.0.0.5"]
`).join("\n");
    assert.match(text, /:3: services\.a\.allow_h2c_upgrade: expected true or false, got a string/);
    assert.match(
      text,
      /:7: services\.b\.allow_h2c_upgrade: `allow_h2c_upgrade` needs HTTP\/1\.1 servers: server "b-1" speaks h2c/,
    );
    assert.match(text, /:10: services\.c\.allow_h2c_upgrade: .*server "grpc" speaks h2/);
    assert.doesNotMatch(text, /services\.d/, "false is fine with any protocol");
  });
});
