/**
 * Backend TLS (SPEC "Backend TLS, protocols and the edge"): certificates of https:// servers are
 * verified by default, with real certificates made at test time: a CA and a server certificate it
 * signed, a self-signed one, one for another host name, an expired one, and an mTLS backend that
 * requires a client certificate. A refused certificate is a 502 whose log line names the server and
 * the TLS reason; the health checker uses the same settings.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, test } from "node:test";
import type { TLSSocket } from "node:tls";
import { pino } from "pino";
import { Server, type ServerOptions } from "../../src/balancer/server.ts";
import { HttpHealthMonitor } from "../../src/health/http-monitor.ts";
import { LoadBalancer } from "../../src/load-balancer.ts";
import { type Cleanup, cleanupAfter, listen } from "../support/cleanup.ts";
import { send } from "../support/http.ts";
import { testPki } from "../support/tls.ts";

let dir: string;
let pki: ReturnType<typeof testPki>;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "switchyard-pki-"));
  pki = testPki(dir);
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** An https backend with `pem`; answers with the client certificate's CN when one was given. */
async function tlsBackend(
  c: Cleanup,
  pem: { certPem: string; keyPem: string },
  extra: https.ServerOptions = {},
): Promise<{ port: number; hits: number; names: (string | false)[] }> {
  const b = { port: 0, hits: 0, names: [] as (string | false)[] };
  const server = https.createServer({ cert: pem.certPem, key: pem.keyPem, ...extra }, (req, res) => {
    b.hits++;
    b.names.push((req.socket as TLSSocket).servername ?? false);
    const peer = (req.socket as TLSSocket).getPeerCertificate();
    res.end(peer?.subject?.CN ? `client ${peer.subject.CN}` : "ok");
  });
  b.port = await listen(server, c);
  return b;
}

type LogLine = Record<string, unknown> & { msg: string; level: number };

/** A balancer with one server behind a node:http listener; its log lines are collected. */
async function proxyTo(
  c: Cleanup,
  url: string,
  server: Partial<ServerOptions> = {},
): Promise<{ port: number; logs: LogLine[]; lb: LoadBalancer; server: Server }> {
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split("\n")) if (line) logs.push(JSON.parse(line));
      cb();
    },
  });
  const lb = new LoadBalancer({ link: "secure", logger: pino({ level: "debug" }, sink) });
  const s = new Server({ name: "b1", url, ...server });
  lb.addServer(s);
  const ac = new AbortController();
  lb.start(ac.signal);
  c.add(() => ac.abort());
  const port = await listen(http.createServer(lb.handle), c);
  return { port, logs, lb, server: s };
}

function refusal(logs: LogLine[]): LogLine | undefined {
  return logs.find((l) => l.msg === "backend TLS refused");
}

test("a certificate from an unknown CA is refused by default (502, logged with the reason); with `ca` it is trusted", async (t) => {
  const c = cleanupAfter(t);
  const b = await tlsBackend(c, pki.server);
  const strict = await proxyTo(c, `https://localhost:${b.port}`);
  const r = await send(strict.port);
  assert.equal(r.status, 502);
  assert.doesNotMatch(
    r.body.toString(),
    /localhost|127\.0\.0\.1|certificate/i,
    "the body says nothing of the backend",
  );
  const line = refusal(strict.logs);
  assert.ok(line, "a log line for the refused certificate");
  assert.equal(line.server, "b1");
  assert.equal(line.service, "secure");
  assert.match(String(line.tls), /UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify/i);
  assert.equal(b.hits, 0, "nothing reached the backend");

  const trusting = await proxyTo(c, `https://localhost:${b.port}`, { tls: { ca: pki.ca.certPem } });
  const ok = await send(trusting.port);
  assert.equal(ok.status, 200);
  assert.equal(ok.body.toString(), "ok");
  // by IP address too: the certificate carries IP:127.0.0.1
  const byIp = await proxyTo(c, `https://127.0.0.1:${b.port}`, { tls: { ca: pki.ca.certPem } });
  assert.equal((await send(byIp.port)).status, 200);
});

test("self-signed, wrong host name and expired certificates are each refused with their own reason", async (t) => {
  const c = cleanupAfter(t);
  const cases = [
    { pem: pki.selfSigned, reason: /SELF_SIGNED|self-signed/i },
    { pem: pki.wrongHost, reason: /ERR_TLS_CERT_ALTNAME_INVALID|does not match/i },
    { pem: pki.expired, reason: /CERT_HAS_EXPIRED|expired/i },
  ];
  for (const k of cases) {
    const b = await tlsBackend(c, k.pem);
    // the CA is trusted: only the certificate's own fault remains
    const p = await proxyTo(c, `https://localhost:${b.port}`, { tls: { ca: pki.ca.certPem } });
    const r = await send(p.port);
    assert.equal(r.status, 502, String(k.reason));
    assert.match(String(refusal(p.logs)?.tls), k.reason);
    assert.equal(b.hits, 0);
  }
});

test("`servername` sets SNI and the name checked: a certificate for other.example is accepted under that name", async (t) => {
  const c = cleanupAfter(t);
  const b = await tlsBackend(c, pki.wrongHost);
  const p = await proxyTo(c, `https://127.0.0.1:${b.port}`, {
    tls: { ca: pki.ca.certPem, servername: "other.example" },
  });
  const r = await send(p.port);
  assert.equal(r.status, 200);
  assert.deepEqual(b.names, ["other.example"]);
});

test("insecureSkipVerify accepts any certificate and warns once, naming the service", async (t) => {
  const c = cleanupAfter(t);
  const b = await tlsBackend(c, pki.selfSigned);
  const b2 = await tlsBackend(c, pki.expired);
  const p = await proxyTo(c, `https://localhost:${b.port}`, { tls: { insecureSkipVerify: true } });
  p.lb.addServer(
    new Server({ name: "b2", url: `https://localhost:${b2.port}`, tls: { insecureSkipVerify: true } }),
  );
  for (let i = 0; i < 4; i++) assert.equal((await send(p.port)).status, 200);
  assert.ok(b.hits > 0 && b2.hits > 0, "both reached");
  const warns = p.logs.filter((l) => l.level === 40 && /not verified/.test(l.msg));
  assert.equal(warns.length, 1, "one warn for the service");
  assert.match(warns[0].msg, /service secure/);
});

test("mTLS: a backend that requires a client certificate gets the configured one; without it the request is a 502", async (t) => {
  const c = cleanupAfter(t);
  const b = await tlsBackend(c, pki.server, {
    requestCert: true,
    rejectUnauthorized: true,
    ca: pki.clientCa.certPem,
  });
  const without = await proxyTo(c, `https://localhost:${b.port}`, { tls: { ca: pki.ca.certPem } });
  assert.equal((await send(without.port)).status, 502);
  assert.equal(b.hits, 0);
  const withCert = await proxyTo(c, `https://localhost:${b.port}`, {
    tls: { ca: pki.ca.certPem, cert: pki.client.certPem, key: pki.client.keyPem },
  });
  const r = await send(withCert.port);
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), "client switchyard");
});

test("bad TLS options are refused when the Server is made: cert without key, a cert that does not match its key", () => {
  assert.throws(
    () => new Server({ name: "x", url: "https://localhost:1", tls: { cert: pki.client.certPem } }),
    /cert and tls\.key go together/,
  );
  assert.throws(
    () =>
      new Server({
        name: "x",
        url: "https://localhost:1",
        tls: { cert: pki.client.certPem, key: pki.server.keyPem },
      }),
    /does not match its key/,
  );
  assert.throws(
    () => new Server({ name: "x", url: "http://localhost:1", protocol: "h2" }),
    /h2 needs an https/,
  );
});

test("health checks verify as the proxy does: self-signed is unhealthy with the reason; with `ca` healthy", async (t) => {
  const c = cleanupAfter(t);
  const self = await tlsBackend(c, pki.selfSigned);
  const signed = await tlsBackend(c, pki.server);
  const refused = new HttpHealthMonitor(`https://localhost:${self.port}`, { retries: -1 });
  assert.equal(await refused.check(), "unhealthy");
  assert.match(refused.detail(), /SELF_SIGNED/);
  const unknownCa = new HttpHealthMonitor(`https://localhost:${signed.port}`, { retries: -1 });
  assert.equal(await unknownCa.check(), "unhealthy");
  const trusted = new HttpHealthMonitor(`https://localhost:${signed.port}`, {
    retries: -1,
    tls: { ca: pki.ca.certPem },
  });
  assert.equal(await trusted.check(), "healthy");
  const skipping = new HttpHealthMonitor(`https://localhost:${self.port}`, {
    retries: -1,
    tls: { insecureSkipVerify: true },
  });
  assert.equal(await skipping.check(), "healthy");
  for (const m of [refused, unknownCa, trusted, skipping]) {
    const ac = new AbortController();
    m.start(ac.signal);
    ac.abort();
  }
});
