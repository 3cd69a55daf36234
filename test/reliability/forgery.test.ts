/**
 * Forged sticky cookies and spoofed client-address headers: with `sticky_secret` set no value
 * a client makes up selects a server of its choice, and an untrusted peer's X-Forwarded-For /
 * X-Real-IP is believed neither by ip_hash nor in the headers sent upstream.
 */
import * as assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { after, before, test } from "node:test";
import { request } from "undici";
import { STICKY_COOKIE, stickyValue } from "../../src/index.ts";
import { type Backend, backend } from "../support/backend.ts";
import { record } from "./summary.ts";
import { type Proxy as SwitchyardProxy, startProxy } from "./switchyards.ts";

const SECRET = "reliability-secret";
const backends: Backend[] = [];
let proxy: SwitchyardProxy;

before(async () => {
  for (const n of ["s1", "s2", "s3"]) backends.push(await backend(n));
  const servers = backends.map((b) => ({ name: b.name, url: b.url }));
  proxy = await startProxy({
    services: {
      sticky: { sticky: true, sticky_secret: SECRET, servers },
      iphash: { mode: "ip_hash", servers },
      // trusts 10/8 only: the loopback peer of this test is untrusted
      iphashx: {
        mode: "ip_hash",
        options: { header: "X-Forwarded-For", from: ["10.0.0.0/8"], recursive: true },
        servers,
      },
      // control: trusts loopback, so the same headers must move clients
      trusted: { mode: "ip_hash", options: { header: "X-Real-IP", from: ["127.0.0.1"] }, servers },
    },
  });
});

after(async () => {
  await proxy.close();
  for (const b of backends) await b.stop();
});

async function get(host: string, headers: Record<string, string | string[]> = {}) {
  const res = await request(`${proxy.url}/`, { headers: { host, ...headers } });
  const body = await res.body.text();
  const sc = res.headers["set-cookie"];
  const setCookie = Array.isArray(sc) ? sc.join("\n") : sc;
  return { status: res.statusCode, body, setCookie };
}

function cookieValueOf(setCookie: string | undefined): string | undefined {
  const m = setCookie && new RegExp(`${STICKY_COOKIE}=([^;]*)`).exec(setCookie);
  return m ? m[1] : undefined;
}

test("forged or tampered sticky cookies never select a chosen server", { timeout: 30_000 }, async () => {
  const target = backends[2];
  const key = `127.0.0.1:${target.port}`;
  // the genuine value for the target, as a client would receive it
  let genuine: string | undefined;
  for (let i = 0; i < 6 && genuine === undefined; i++) {
    const r = await get("sticky.test");
    if (r.body === target.name) genuine = cookieValueOf(r.setCookie);
  }
  assert.ok(genuine, "the target hands out a cookie");
  // control: the genuine value is honoured (no new cookie, same server, every time)
  for (let i = 0; i < 4; i++) {
    const r = await get("sticky.test", { cookie: `${STICKY_COOKIE}=${genuine}` });
    assert.equal(r.body, target.name);
    assert.equal(r.setCookie, undefined);
  }
  const g = Buffer.from(genuine, "base64url");
  const flip = (bit: number) => {
    const b = Buffer.from(g);
    b[bit >> 3] ^= 1 << (bit & 7);
    return b.toString("base64url");
  };
  const addr = `127.0.0.1:${target.port}`;
  const forged: [string, string][] = [
    ["computed without the secret", stickyValue(key, undefined)],
    ["computed with another secret", stickyValue(key, "another-secret")],
    ["computed with an empty secret", stickyValue(key, "")],
    [
      "HMAC of the address with the secret as data",
      createHmac("sha256", key).update(SECRET).digest("base64url"),
    ],
    ["full-length HMAC with the secret", createHmac("sha256", SECRET).update(key).digest("base64url")],
    ["the plain key", key],
    ["the backend URL", target.url],
    ["base64 of the address", Buffer.from(addr).toString("base64")],
    ["base64url of the address", Buffer.from(addr).toString("base64url")],
    ["hex of the address", Buffer.from(addr).toString("hex")],
    ["the server name", target.name],
    ["the server index", "2"],
    ["truncated genuine value", genuine.slice(0, -1)],
    ["genuine value with padding", `${genuine}==`],
    ["genuine value upper-cased", genuine.toUpperCase()],
    ["genuine value quoted", `"${genuine}"`],
    ["genuine value doubled", genuine + genuine],
    ["very long value (6 KiB)", "A".repeat(6 * 1024)],
    ["empty value", ""],
    ...Array.from({ length: 16 }, (_, i): [string, string] => [`bit flip ${i * 8 + 3}`, flip(i * 8 + 3)]),
  ];
  let honoured = 0;
  const outcomes: string[] = [];
  for (const [name, value] of forged) {
    if (value === genuine) continue;
    const served = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const r = await get("sticky.test", { cookie: `${STICKY_COOKIE}=${value}` });
      assert.equal(r.status, 200, `${name}: a forged cookie is never an error`);
      served.add(r.body);
      // not honoured: a fresh pick and a fresh, genuine cookie for whatever was picked
      const fresh = cookieValueOf(r.setCookie);
      if (fresh === undefined) honoured++;
      else {
        const picked = backends.find((b) => b.name === r.body)!;
        assert.equal(
          fresh,
          stickyValue(`127.0.0.1:${picked.port}`, SECRET),
          `${name}: the new cookie is genuine`,
        );
      }
    }
    // round robin over three servers: three fresh picks cannot all be the chosen one
    outcomes.push(`${name}: ${[...served].join(",")}`);
    assert.ok(served.size > 1 || !served.has(target.name), `${name}: pinned to ${[...served]}`);
  }
  record({
    suite: "forgery",
    scenario: "forged sticky cookies (sticky_secret set)",
    requests: forged.length * 3,
    faults: forged.length,
    outcome:
      honoured === 0 ? "none honoured; each got a fresh pick and a genuine cookie" : `${honoured} honoured`,
    expected: "none honoured",
    ok: honoured === 0,
  });
  assert.equal(honoured, 0, "no forged cookie was honoured");
  // an untrusted peer's X-Forwarded-Proto: https does not make the cookie Secure
  const r = await get("sticky.test", { "x-forwarded-proto": "https" });
  assert.ok(r.setCookie && !/;\s*Secure/i.test(r.setCookie), r.setCookie);
});

const SPOOFED = Array.from(
  { length: 40 },
  (_, i) => `${11 + i}.${(i * 37) % 256}.${(i * 91) % 256}.${1 + i}`,
);

for (const host of ["iphash.test", "iphashx.test"]) {
  test(`spoofed X-Forwarded-For / X-Real-IP from an untrusted peer are never believed (${host})`, {
    timeout: 30_000,
  }, async () => {
    const baseline = (await get(host)).body;
    let moved = 0;
    const seen: Received[] = [];
    for (const ip of SPOOFED) {
      const variants: Record<string, string | string[]>[] = [
        { "x-forwarded-for": ip },
        { "x-real-ip": ip },
        { "x-forwarded-for": [ip, "10.1.2.3"] },
        { "x-forwarded-for": `${ip}, 10.1.2.3`, "x-real-ip": ip },
      ];
      for (const headers of variants) {
        const r = await get(host, {
          ...headers,
          "x-forwarded-host": "evil.example",
          "x-forwarded-proto": "https",
        });
        if (r.body !== baseline) moved++;
        const b = backends.find((x) => x.name === r.body)!;
        seen.push(b.received[b.received.length - 1]);
      }
    }
    for (const rec of seen) {
      assert.equal(
        rec.headers["x-forwarded-for"],
        "127.0.0.1",
        "X-Forwarded-For is replaced, not appended to",
      );
      assert.equal(rec.headers["x-real-ip"], "127.0.0.1", "X-Real-IP is the peer");
      assert.equal(rec.headers["x-forwarded-host"], host, "X-Forwarded-Host is what switchyard saw");
      assert.equal(rec.headers["x-forwarded-proto"], "http", "X-Forwarded-Proto is what switchyard saw");
    }
    record({
      suite: "forgery",
      scenario: `spoofed X-Forwarded-For / X-Real-IP, untrusted peer (${host === "iphash.test" ? "default options" : "from: 10.0.0.0/8, recursive"})`,
      requests: SPOOFED.length * 4,
      faults: SPOOFED.length * 4,
      outcome:
        moved === 0 ? "same server as without the header; upstream headers replaced" : `${moved} moved`,
      expected: "never believed",
      ok: moved === 0,
    });
    assert.equal(moved, 0, "ip_hash picks the same server as without the header");
  });
}

test("control: the same headers from a trusted peer do move clients", { timeout: 30_000 }, async () => {
  const picks = new Set<string>();
  for (const ip of SPOOFED) picks.add((await get("trusted.test", { "x-real-ip": ip })).body);
  assert.ok(picks.size > 1, "a trusted X-Real-IP spreads clients over the servers");
});

type Received = Backend["received"][number];
