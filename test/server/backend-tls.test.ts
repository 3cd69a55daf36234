/**
 * `switchyard serve` with backend TLS from the config file: a `ca` relative to the file's folder,
 * `insecure_skip_verify` (one warn at start-up naming the service), and a self-signed backend with
 * nothing configured (verified by default: 502, a log line naming the server and the TLS reason,
 * and its health check fails for the same reason).
 */
import * as assert from "node:assert/strict";
import * as https from "node:https";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { get, type Running, startSwitchyard, tempDir } from "../support/switchyard.ts";
import { testPki } from "../support/tls.ts";
import { until } from "../support/until.ts";

describe("switchyard serve: backend TLS from the config file", { timeout: 120_000 }, () => {
  const tmp = tempDir();
  const servers: https.Server[] = [];
  let sy: Running;

  async function backend(pem: { certPem: string; keyPem: string }, name: string): Promise<number> {
    const s = https.createServer({ cert: pem.certPem, key: pem.keyPem }, (_req, res) => res.end(`${name}\n`));
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
    return (s.address() as AddressInfo).port;
  }

  before(async () => {
    const pki = testPki(tmp.dir);
    const signed = await backend(pki.server, "signed");
    const self = await backend(pki.selfSigned, "self");
    const file = tmp.write(
      "tls.yaml",
      `listen: 127.0.0.1:0
admin: 127.0.0.1:0
services:
  secure:
    hosts: [secure.test]
    tls: { ca: ca.pem }
    healthcheck: { interval: 200ms, retries: 1 }
    servers: [{ name: signed-1, url: "https://localhost:${signed}" }]
  lax:
    hosts: [lax.test]
    tls: { insecure_skip_verify: true }
    servers:
      - { name: self-1, url: "https://localhost:${self}" }
      - { name: self-2, url: "https://127.0.0.1:${self}" }
  strict:
    hosts: [strict.test]
    healthcheck: { disable: true }
    servers: [{ name: self-strict, url: "https://localhost:${self}" }]
  checked:
    hosts: [checked.test]
    healthcheck: { interval: 200ms, retries: 1 }
    servers: [{ name: self-checked, url: "https://localhost:${self}" }]
`,
    );
    sy = await startSwitchyard(["serve", "-c", file]);
  });

  after(async () => {
    const exit = await sy?.stop();
    for (const s of servers) {
      s.closeAllConnections();
      s.close();
    }
    tmp.remove();
    assert.equal(exit?.code, 0);
  });

  test("a CA file named relative to the config verifies its backend", async () => {
    const r = await get(sy.proxy[0], "/", { host: "secure.test" });
    assert.equal(r.status, 200);
    assert.equal(r.body, "signed\n");
  });

  test("insecure_skip_verify: any certificate, one warn at start-up naming the service", async () => {
    const r = await get(sy.proxy[0], "/", { host: "lax.test" });
    assert.equal(r.status, 200);
    const warns = sy.logs.filter((l) => l.level === 40 && /not verified/.test(String(l.msg)));
    assert.equal(warns.length, 1, JSON.stringify(warns));
    assert.equal(warns[0].service, "lax");
    assert.match(String(warns[0].msg), /service lax/);
  });

  test("verified by default: a self-signed backend is a 502 logged with the server and the TLS reason; its health check fails too", async () => {
    const r = await get(sy.proxy[0], "/", { host: "strict.test" });
    assert.equal(r.status, 502);
    assert.doesNotMatch(r.body, /certificate|localhost/i);
    const line = await sy.waitForLog(
      (l) => l.msg === "backend TLS refused" && l.server === "self-strict",
      5000,
    );
    assert.equal(line.service, "strict");
    assert.match(String(line.tls), /SELF_SIGNED|self-signed/i);
    // the checker verifies as the proxy does: the same backend is unhealthy, for the same reason
    let pool: { status: string; detail?: string }[] = [];
    await until(
      async () => {
        const health = await get(sy.admin!, "/api/health/checked");
        type Health = { extra: { pool: Record<string, { status: string; detail?: string }> } };
        pool = Object.values((JSON.parse(health.body) as Health).extra.pool);
        return pool[0]?.status === "unhealthy";
      },
      10_000,
      "the checker to find the self-signed backend unhealthy",
    );
    assert.equal(pool[0]?.status, "unhealthy");
    assert.equal((await get(sy.proxy[0], "/", { host: "checked.test" })).status, 503);
  });
});
