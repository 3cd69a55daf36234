import * as assert from "node:assert/strict";
import * as https from "node:https";
import { describe, test } from "node:test";
import { Server } from "../../src/balancer/server.ts";
import type { HealthStatus } from "../../src/health/status.ts";
import { LoadBalancer } from "../../src/load-balancer.ts";
import { STICKY_COOKIE, stickyValue } from "../../src/selectors/index.ts";
import { backend, backends } from "../support/backend.ts";
import { addServer, startBalancer } from "../support/balancer.ts";
import { cleanupAfter, listen } from "../support/cleanup.ts";
import { get, type Reply, send } from "../support/http.ts";
import { selfSigned } from "../support/tls.ts";

const COOKIE_RE = new RegExp(
  `^${STICKY_COOKIE}=([A-Za-z0-9_-]+); Path=/; Max-Age=(\\d+); HttpOnly; SameSite=Lax(; Secure)?$`,
);

function stickyCookie(r: Reply): { value: string; maxAge: number; secure: boolean; raw: string } | undefined {
  const set = r.headers["set-cookie"];
  if (!set) return undefined;
  const mine = set.filter((c) => c.startsWith(`${STICKY_COOKIE}=`));
  assert.equal(mine.length, 1, `one sticky cookie: ${set}`);
  const m = COOKIE_RE.exec(mine[0]);
  assert.ok(m, `cookie has exactly the SPEC's attributes: ${mine[0]}`);
  return { value: m[1], maxAge: Number(m[2]), secure: m[3] !== undefined, raw: mine[0] };
}

describe("sticky sessions", { timeout: 30000 }, () => {
  test("first response sets the cookie with the SPEC's attributes; a valid cookie pins without a new Set-Cookie", async (t) => {
    const c = cleanupAfter(t);
    const bs = await backends(["a", "b", "c"], { cleanup: c });
    const { lb, port } = await startBalancer(c, [], { sticky: true });
    for (const b of bs) addServer(lb, { name: b.name, url: b.url });
    const first = await get(port);
    const cookie = stickyCookie(first);
    assert.ok(cookie, "a cookie is set");
    assert.equal(cookie.maxAge, 86400, "default max age is 24h");
    assert.equal(cookie.secure, false, "plain HTTP from an untrusted peer is not Secure");
    for (let i = 0; i < 10; i++) {
      const r = await get(port, "/x", {
        headers: { cookie: `other=1; ${STICKY_COOKIE}=${cookie.value}; more=2` },
      });
      assert.equal(r.body, first.body, "the same server every time");
      assert.equal(r.headers["set-cookie"], undefined, "no new cookie for a valid one");
    }
    // every server has its own value; each pins to its server
    const values = new Map<string, string>();
    for (let i = 0; i < 6; i++) {
      const r = await get(port);
      const v = stickyCookie(r)!.value;
      values.set(v, r.body);
    }
    assert.equal(values.size, 3);
    for (const [v, name] of values) {
      assert.equal((await get(port, "/", { headers: { cookie: `${STICKY_COOKIE}=${v}` } })).body, name);
    }
  });

  test("sticky: false sets no cookie, not even on /favicon.ico, unless a server of the service can be woken", async (t) => {
    const c = cleanupAfter(t);
    const [a, b] = await Promise.all(["a", "b"].map((n) => backend(n, { cleanup: c })));
    const { lb, port } = await startBalancer(c, [], { sticky: false });
    addServer(lb, { name: a.name, url: a.url });
    for (const path of ["/", "/favicon.ico", "/$switchyard/loading.css", "/$switchyard/loading.js"]) {
      const r = await get(port, path);
      assert.equal(r.status, 200, path);
      assert.equal(r.headers["set-cookie"], undefined, `no cookie on ${path}`);
    }
    // a server that can be woken: the idle-wake paths take the sticky path (the loading page's own
    // requests must reach the server being woken); other paths still get none
    addServer(lb, { name: b.name, url: b.url, wake: async () => {} });
    assert.ok(stickyCookie(await get(port, "/favicon.ico")), "a cookie on /favicon.ico");
    assert.equal((await get(port, "/")).headers["set-cookie"], undefined);
  });

  test("sticky_max_age is honoured and the value never contains the address, even encoded", async (t) => {
    const c = cleanupAfter(t);
    const [a] = await backends(["a", "b", "c"], { cleanup: c });
    for (const secret of [undefined, "s3cret"]) {
      const { lb, port } = await startBalancer(c, [], {
        sticky: true,
        stickyMaxAge: "1h30m",
        stickySecret: secret,
      });
      const s = addServer(lb, { name: "a", url: a.url });
      const cookie = stickyCookie(await get(port))!;
      assert.equal(cookie.maxAge, 5400);
      const forms = [s.key, s.url.hostname, String(a.port), s.url.href];
      for (const f of forms) {
        for (const enc of ["utf8", "hex", "base64", "base64url"] as const) {
          const encoded = Buffer.from(f).toString(enc).replace(/=+$/, "");
          assert.ok(!cookie.value.includes(encoded), `value ${cookie.value} contains ${f} as ${enc}`);
        }
      }
      for (const enc of ["base64url", "hex"] as const) {
        const decoded = Buffer.from(cookie.value, enc).toString("latin1");
        assert.ok(!decoded.includes("127.0.0.1") && !decoded.includes(String(a.port)));
      }
    }
  });

  test("same key and secret → same value on another instance; a different secret → a different value", () => {
    const make = (secret?: string) => {
      const lb = new LoadBalancer({ link: "s", sticky: true, stickySecret: secret });
      lb.addServer(new Server({ name: "x", url: "http://10.0.0.11:3000" }));
      lb.addServer(new Server({ name: "y", url: "http://10.0.0.12:3000" }));
      return lb;
    };
    const value = (lb: LoadBalancer, i: number) => {
      const headers: Record<string, string[]> = {};
      const res = {
        getHeader: (n: string) => headers[n],
        setHeader: (n: string, v: string | string[]) => {
          headers[n] = Array.isArray(v) ? v : [v];
        },
      };
      lb.setStickyCookie(
        { socket: { remoteAddress: "192.0.2.1" }, headers: {} } as never,
        res as never,
        lb.servers[i],
      );
      return headers["set-cookie"][0].split(";")[0].split("=")[1];
    };
    const one = make("k1");
    const two = make("k1");
    assert.equal(value(one, 0), value(two, 0));
    assert.equal(value(one, 1), value(two, 1));
    assert.notEqual(value(one, 0), value(one, 1));
    assert.notEqual(value(make("k2"), 0), value(one, 0));
    assert.notEqual(value(make(), 0), value(one, 0));
    assert.equal(value(make(), 0), value(make(), 0));
    assert.equal(value(one, 0), stickyValue("10.0.0.11:3000", "k1"));
  });

  test("missing, malformed, forged and stale cookies get a fresh pick and a new cookie, never an error", async (t) => {
    const c = cleanupAfter(t);
    const bs = await backends(["a", "b", "c"], { cleanup: c });
    const { lb, port } = await startBalancer(c, [], { sticky: true, stickySecret: "secret" });
    const state: Record<string, HealthStatus> = { a: "healthy", b: "healthy", c: "healthy" };
    for (const b of bs) addServer(lb, { name: b.name, url: b.url, health: { status: () => state[b.name] } });
    const unsigned = stickyValue(lb.servers[0].key, undefined);
    for (const bad of ["", "garbage", "%%%", "a".repeat(5000), unsigned, `${unsigned}x`]) {
      const r = await get(port, "/", { headers: { cookie: `${STICKY_COOKIE}=${bad}` } });
      assert.equal(r.status, 200, `cookie ${bad.slice(0, 20)}`);
      const cookie = stickyCookie(r);
      assert.ok(cookie && cookie.value !== bad, "a new cookie");
    }
    // stale: its server is not good, then removed
    const pinned = await get(port);
    const v = stickyCookie(pinned)!.value;
    state[pinned.body] = "unhealthy";
    const moved = await get(port, "/", { headers: { cookie: `${STICKY_COOKIE}=${v}` } });
    assert.equal(moved.status, 200);
    assert.notEqual(moved.body, pinned.body);
    assert.notEqual(stickyCookie(moved)!.value, v);
    state[pinned.body] = "healthy";
    assert.equal(
      (await get(port, "/", { headers: { cookie: `${STICKY_COOKIE}=${v}` } })).body,
      pinned.body,
      "back",
    );
    lb.removeServer(lb.servers.find((s) => s.name === pinned.body)!);
    const gone = await get(port, "/", { headers: { cookie: `${STICKY_COOKIE}=${v}` } });
    assert.equal(gone.status, 200);
    assert.notEqual(gone.body, pinned.body);
    assert.ok(stickyCookie(gone));
  });

  test("Secure for a trusted peer that sent X-Forwarded-Proto: https, not for an untrusted one", async (t) => {
    const c = cleanupAfter(t);
    const [a] = await backends(["a", "b", "c"], { cleanup: c });
    const trusted = await startBalancer(c, [], { sticky: true, options: { from: ["127.0.0.0/8"] } });
    addServer(trusted.lb, { name: "a", url: a.url });
    assert.equal(
      stickyCookie(await get(trusted.port, "/", { headers: { "x-forwarded-proto": "https" } }))!.secure,
      true,
    );
    assert.equal(
      stickyCookie(await get(trusted.port, "/", { headers: { "x-forwarded-proto": "HTTPS" } }))!.secure,
      true,
    );
    assert.equal(
      stickyCookie(await get(trusted.port, "/", { headers: { "x-forwarded-proto": "http" } }))!.secure,
      false,
    );
    assert.equal(stickyCookie(await get(trusted.port))!.secure, false);
    const untrusted = await startBalancer(c, [], { sticky: true, options: { from: ["10.0.0.0/8"] } });
    addServer(untrusted.lb, { name: "a", url: a.url });
    assert.equal(
      stickyCookie(await get(untrusted.port, "/", { headers: { "x-forwarded-proto": "https" } }))!.secure,
      false,
    );
  });

  test("Secure when the client connection is TLS", async (t) => {
    let tls: { key: string; cert: string };
    try {
      tls = selfSigned();
    } catch {
      t.skip("openssl is not available to make a test certificate");
      return;
    }
    const c = cleanupAfter(t);
    const [a] = await backends(["a", "b", "c"], { cleanup: c });
    const lb = new LoadBalancer({ link: "tls", sticky: true });
    lb.addServer(new Server({ name: "a", url: a.url }));
    const controller = new AbortController();
    lb.start(controller.signal);
    c.add(() => controller.abort());
    const server = https.createServer(tls, lb.handle);
    const port = await listen(server, c);
    const reply = await send(port, { protocol: "https:", rejectUnauthorized: false, agent: false });
    assert.equal(reply.status, 200);
    assert.equal(reply.body, "a");
    assert.equal(stickyCookie(reply)!.secure, true);
  });

  test("the loading-page paths and /favicon.ico take the sticky path even when sticky is off, on a service that can be woken", async (t) => {
    const c = cleanupAfter(t);
    const bs = await backends(["a", "b", "c"], { cleanup: c });
    const { lb, port } = await startBalancer(c, [], { sticky: false });
    for (const b of bs) addServer(lb, { name: b.name, url: b.url, wake: async () => {} });
    const plain = await get(port, "/");
    assert.equal(plain.headers["set-cookie"], undefined, "no cookie when sticky is off");
    for (const path of ["/$switchyard/loading.css", "/$switchyard/loading.js?v=1", "/favicon.ico"]) {
      const first = await get(port, path);
      const cookie = stickyCookie(first);
      assert.ok(cookie, `${path} sets the sticky cookie`);
      for (let i = 0; i < 4; i++) {
        const again = await get(port, path, { headers: { cookie: `${STICKY_COOKIE}=${cookie.value}` } });
        assert.equal(again.body, first.body, `${path} keeps its server`);
        assert.equal(again.headers["set-cookie"], undefined);
      }
      const pinned = lb.pick({
        socket: { remoteAddress: "127.0.0.1" },
        headers: { cookie: `${STICKY_COOKIE}=${cookie.value}` },
        url: path,
      } as never);
      assert.equal(pinned?.name, first.body, "lb.pick agrees");
    }
    // other paths ignore the cookie when sticky is off: round robin continues
    const names = new Set<string>();
    const v = stickyValue(lb.servers[0].key, undefined);
    for (let i = 0; i < 6; i++)
      names.add((await get(port, "/", { headers: { cookie: `${STICKY_COOKIE}=${v}` } })).body);
    assert.equal(names.size, 3);
  });
});
