import * as assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { HealthStatus } from "../../src/health/status.ts";
import { type Backend, backend, backends } from "../support/backend.ts";
import { addServer, counts, fakeReq, startBalancer } from "../support/balancer.ts";
import { cleanupAfter } from "../support/cleanup.ts";
import { bodyOf, get, requestHead } from "../support/http.ts";
import { until } from "../support/until.ts";

async function sequence(port: number, n: number, headers = {}): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await get(port, "/", { headers: headers });
    assert.equal(r.status, 200);
    out.push(r.body);
  }
  return out;
}

describe("round_robin over real HTTP", { timeout: 30000 }, () => {
  test("weights 5,1,1 give a a b a c a a", async (t) => {
    const c = cleanupAfter(t);
    const [a, b, cc] = await backends(["a", "b", "c"], { cleanup: c });
    const { lb, port } = await startBalancer(c, [], { mode: "round_robin" });
    addServer(lb, { name: "a", url: a.url, weight: 5 });
    addServer(lb, { name: "b", url: b.url, weight: 1 });
    addServer(lb, { name: "c", url: cc.url, weight: 1 });
    assert.equal((await sequence(port, 7)).join(""), "aabacaa");
  });

  test("50/30/20: every 100 requests give exactly the weights, also right after an add and a remove", async (t) => {
    const c = cleanupAfter(t);
    const [a, b, cc, d] = await backends(["a", "b", "c", "d"], { cleanup: c });
    const { lb, port } = await startBalancer(c);
    addServer(lb, { name: "a", url: a.url, weight: 50 });
    addServer(lb, { name: "b", url: b.url, weight: 30 });
    addServer(lb, { name: "c", url: cc.url, weight: 20 });
    const first = await sequence(port, 100);
    assert.deepEqual(counts(first), { a: 50, b: 30, c: 20 });
    assert.ok(!/aaa|bb|cc/.test(first.join("")), "smoothly interleaved");
    addServer(lb, { name: "d", url: d.url, weight: 25 }); // → 40/24/16/20
    assert.deepEqual(counts(await sequence(port, 100)), { a: 40, b: 24, c: 16, d: 20 });
    assert.equal(lb.removeServer(`127.0.0.1:${b.port}`), true); // → 50,20,25 of 95: 52,21,26 + 1
    assert.deepEqual(counts(await sequence(port, 100)), { a: 53, c: 21, d: 26 });
    assert.equal(b.received.length, 30 + 24, "no request reached b after its removal");
  });
});

describe("least_conn over real HTTP with held requests", { timeout: 30000 }, () => {
  test("the least-loaded server relative to its weight gets the next request", async (t) => {
    const c = cleanupAfter(t);
    const [a, b] = await backends(["a", "b"], { cleanup: c });
    a.hold = b.hold = true;
    const { lb, port } = await startBalancer(c, [], { mode: "least_conn" });
    addServer(lb, { name: "a", url: a.url, weight: 3 }); // 75
    addServer(lb, { name: "b", url: b.url, weight: 1 }); // 25
    const open: Promise<unknown>[] = [];
    const send = async (expect: Backend, n: number) => {
      open.push(requestHead(port).then(({ res }) => bodyOf(res)));
      await expect.waitHeld(n);
    };
    // in-flight/weight: 0/75 = 0/25 tie → a (first by position); 1/75 > 0/25 → b; 1/75 < 1/25 → a;
    // 2/75 < 3/75 → a; 3/75 = 1/25 and picks/weight 3/75 = 1/25 → a; 4/75 > 3/75 → b
    await send(a, 1);
    await send(b, 1);
    await send(a, 2);
    await send(a, 3);
    await send(a, 4);
    await send(b, 2);
    assert.equal(a.held.length, 4);
    assert.equal(b.held.length, 2);
    assert.equal(lb.servers[0].inflight, 4);
    assert.equal(lb.servers[1].inflight, 2);
    // releasing b's requests makes b the least loaded
    b.release();
    await until(() => lb.servers[1].inflight === 0, 5000, "b's requests to finish");
    await send(b, 1);
    await send(b, 2);
    a.release();
    b.release();
    await Promise.all(open);
  });

  test("ties rotate and weights hold when idle", async (t) => {
    const c = cleanupAfter(t);
    const [a, b, cc] = await backends(["a", "b", "c"], { cleanup: c });
    const { lb, port } = await startBalancer(c, [], { mode: "least-conn" });
    addServer(lb, { name: "a", url: a.url, weight: 1 });
    addServer(lb, { name: "b", url: b.url, weight: 1 });
    assert.equal((await sequence(port, 6)).join(""), "ababab");
    lb.removeServer(lb.servers[1]);
    addServer(lb, { name: "b", url: b.url, weight: 30 });
    addServer(lb, { name: "c", url: cc.url, weight: 20 });
    lb.removeServer(lb.servers[0]);
    addServer(lb, { name: "a", url: a.url, weight: 50 });
    const seq = await sequence(port, 100);
    assert.deepEqual(counts(seq), { a: 50, b: 30, c: 20 });
  });
});

describe("ip_hash with real-IP resolution", { timeout: 60000 }, () => {
  test("removing 1 of 5 servers moves only its clients (10,000 IPv4 + 10,000 IPv6 through lb.pick)", async () => {
    const { LoadBalancer } = await import("../../src/load-balancer.ts");
    const { Server } = await import("../../src/balancer/server.ts");
    const lb = new LoadBalancer({
      link: "h",
      mode: "ip_hash",
      options: { header: "X-Forwarded-For", from: ["10.0.0.0/8"], recursive: true },
    });
    for (let i = 0; i < 5; i++)
      lb.addServer(new Server({ name: `s${i}`, url: `http://10.1.0.${i}:80`, weight: i + 1 }));
    const addrs: string[] = [];
    for (let i = 0; i < 10000; i++)
      addrs.push(`${(i % 200) + 20}.${(i >> 8) & 255}.${i & 255}.${(i * 7) & 255}`);
    for (let i = 0; i < 10000; i++)
      addrs.push(`2001:db8:${((i * 31) & 0xffff).toString(16)}::${i.toString(16)}`);
    // the client sits behind a trusted proxy chain; recursion finds it
    const pickFor = (ip: string) => lb.pick(fakeReq("10.0.0.1", { "x-forwarded-for": `${ip}, 10.9.9.9` }))!;
    const before = new Map(addrs.map((ip) => [ip, pickFor(ip)]));
    const shares = counts([...before.values()].map((s) => s.name));
    // weights 1..5 of 15
    for (let i = 0; i < 5; i++) {
      const expected = (20000 * (i + 1)) / 15;
      const got = shares[`s${i}`];
      assert.ok(Math.abs(got - expected) < expected * 0.15, `s${i}: ${got} vs ${expected}`);
    }
    const gone = lb.servers[2];
    lb.removeServer(gone);
    let moved = 0;
    for (const [ip, s] of before) {
      const now = pickFor(ip);
      if (s === gone) {
        assert.notEqual(now, gone);
        moved++;
      } else assert.equal(now, s, `${ip} moved from ${s.name} to ${now.name}`);
    }
    assert.equal(moved, shares.s2);
    // an untrusted peer's header is ignored: the peer address is the client
    const peer = lb.pick(fakeReq("192.0.2.1", { "x-forwarded-for": "1.1.1.1" }));
    for (const ip of addrs.slice(0, 50)) {
      assert.equal(lb.pick(fakeReq("192.0.2.1", { "x-forwarded-for": ip })), peer);
    }
  });

  test("an unhealthy hashed server's clients go to another good server (no 503) and come back", async (t) => {
    const c = cleanupAfter(t);
    const bs = await backends(["a", "b", "c"], { cleanup: c });
    const { lb, port } = await startBalancer(c, [], { mode: "ip_hash", options: { from: ["127.0.0.1"] } });
    const state: Record<string, HealthStatus> = { a: "healthy", b: "healthy", c: "healthy" };
    for (const b of bs) addServer(lb, { name: b.name, url: b.url, health: { status: () => state[b.name] } });
    const clients = Array.from({ length: 60 }, (_, i) => `198.51.100.${i + 1}`);
    const home = new Map<string, string>();
    for (const ip of clients) {
      const r = await get(port, "/", { headers: { "x-real-ip": ip } });
      assert.equal(r.status, 200);
      home.set(ip, r.body);
      assert.equal(
        (await get(port, "/", { headers: { "x-real-ip": ip } })).body,
        r.body,
        "the same client stays",
      );
    }
    const victim = [...home.values()][0];
    state[victim] = "unhealthy";
    for (const ip of clients) {
      const r = await get(port, "/", { headers: { "x-real-ip": ip } });
      assert.equal(r.status, 200);
      if (home.get(ip) === victim) assert.notEqual(r.body, victim);
      else assert.equal(r.body, home.get(ip));
    }
    state[victim] = "healthy";
    for (const ip of clients)
      assert.equal((await get(port, "/", { headers: { "x-real-ip": ip } })).body, home.get(ip));
    // none good: 503
    state.a = state.b = state.c = "error";
    assert.equal((await get(port, "/", { headers: { "x-real-ip": clients[0] } })).status, 503);
  });
});

describe("health flips and passive health", { timeout: 30000 }, () => {
  test("a custom health object with only status() takes effect on the very next pick", async (t) => {
    const c = cleanupAfter(t);
    const [a, b] = await backends(["a", "b"], { cleanup: c });
    for (const mode of ["round_robin", "least_conn", "ip_hash"]) {
      const { lb, port } = await startBalancer(c, [], { mode });
      let st: HealthStatus = "healthy";
      addServer(lb, { name: "a", url: a.url, health: { status: () => st } });
      addServer(lb, { name: "b", url: b.url });
      st = "unhealthy";
      for (let i = 0; i < 6; i++) assert.equal((await get(port)).body, "b", mode);
      assert.equal(lb.detail(), "1/2 servers are healthy");
      st = "napping"; // good: can take requests
      const seen = new Set<string>();
      for (let i = 0; i < 20; i++) seen.add(lb.pick(fakeReq(`192.0.2.${i}`))!.name);
      assert.ok(seen.has("a"), `${mode}: a is back at once`);
    }
  });

  test("a refused connection takes the server out at once; it returns when an active check succeeds", async (t) => {
    const c = cleanupAfter(t);
    const { HttpHealthMonitor } = await import("../../src/health/http-monitor.ts");
    const [live, checks] = await backends(["live", "checks"], { cleanup: c });
    checks.status = 500; // the checker sees failures below `retries`: still "healthy", never a success
    const dead = await backend("dead"); // closed at once below: its port refuses
    await new Promise((r) => dead.server.close(r));
    const { lb, port } = await startBalancer(c, [], { mode: "round_robin" });
    const monitor = new HttpHealthMonitor(checks.url, { interval: "1h", retries: 5 });
    const deadServer = addServer(lb, { name: "dead", url: dead.url, health: monitor });
    addServer(lb, { name: "live", url: live.url });
    for (let i = 0; i < 4; i++) {
      const r = await get(port);
      assert.equal(r.status, 200, "a refused request is retried elsewhere");
      assert.equal(r.body, "live");
    }
    assert.equal(deadServer.available, false);
    assert.equal(deadServer.status(), "unhealthy");
    assert.equal(lb.detail(), "1/2 servers are healthy");
    // a failing check does not bring it back; a successful one does
    await monitor.check();
    assert.equal(deadServer.available, false);
    checks.status = 200;
    await monitor.check();
    assert.equal(deadServer.available, true);
  });

  test("without an active checker, a passively ejected server returns after the cooldown", async (t) => {
    const c = cleanupAfter(t);
    const [live] = await backends(["live"], { cleanup: c });
    const dead = await backend("dead");
    await new Promise((r) => dead.server.close(r));
    const { lb, port } = await startBalancer(c, [], { passiveCooldown: "150ms" });
    const deadServer = addServer(lb, { name: "dead", url: dead.url });
    addServer(lb, { name: "live", url: live.url });
    assert.equal((await get(port)).body, "live");
    assert.equal((await get(port)).body, "live");
    assert.equal(deadServer.available, false);
    await until(() => deadServer.available, 5000, "the cooldown to end");
  });
});
