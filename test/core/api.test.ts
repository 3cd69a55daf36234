import * as assert from "node:assert/strict";
import { once } from "node:events";
import * as http from "node:http";
import { describe, test } from "node:test";
import { Server } from "../../src/balancer/server.ts";
import { HttpHealthMonitor } from "../../src/health/http-monitor.ts";
import type { HealthStatus } from "../../src/health/status.ts";
import { LoadBalancer } from "../../src/load-balancer.ts";
import { STICKY_COOKIE } from "../../src/selectors/index.ts";
import { backend } from "../support/backend.ts";
import { addServer, fakeReq, startBalancer } from "../support/balancer.ts";
import { type Cleanup, cleanupAfter } from "../support/cleanup.ts";
import { get, rawRequest, requestHead } from "../support/http.ts";
import { until } from "../support/until.ts";

describe("real client IP through real HTTP (nginx realip)", { timeout: 30000 }, () => {
  async function echoIp(options: ConstructorParameters<typeof LoadBalancer>[0]["options"], c: Cleanup) {
    const f = await startBalancer(c, [], { options });
    addServer(f.lb, {
      name: "echo",
      url: "http://127.0.0.1:9",
      handler: (req, res) => res.end(f.lb.clientIp(req)),
    });
    return f;
  }
  const raw = (headerLines: string[]) =>
    `GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${headerLines.map((l) => `${l}\r\n`).join("")}\r\n`;

  test("untrusted peer: the header is never believed", async (t) => {
    const c = cleanupAfter(t);
    const { port } = await echoIp({ from: ["10.0.0.0/8"] }, c);
    assert.equal((await get(port, "/", { headers: { "x-real-ip": "9.9.9.9" } })).body, "127.0.0.1");
    const none = await echoIp({}, c);
    assert.equal((await get(none.port, "/", { headers: { "x-real-ip": "9.9.9.9" } })).body, "127.0.0.1");
  });

  test("trusted peer: non-recursive takes the last address of repeated lines and lists", async (t) => {
    const c = cleanupAfter(t);
    const { port } = await echoIp({ header: "X-Forwarded-For", from: ["127.0.0.1"] }, c);
    assert.equal(
      (await get(port, "/", { headers: { "x-forwarded-for": "1.1.1.1, 2.2.2.2" } })).body,
      "2.2.2.2",
    );
    const text = await rawRequest(
      port,
      raw(["X-Forwarded-For: 1.1.1.1, 2.2.2.2", "X-Forwarded-For: 3.3.3.3:4567", "X-Other: 1"]),
    );
    assert.equal(text.body, "3.3.3.3");
    assert.equal(
      (await get(port, "/", { headers: { "x-forwarded-for": "[2001:db8::7]:80" } })).body,
      "2001:db8::7",
    );
    assert.equal((await get(port, "/", { headers: { "x-forwarded-for": "not-an-ip" } })).body, "127.0.0.1");
  });

  test("trusted peer: recursive takes the right-most untrusted across repeated lines; all trusted → left-most", async (t) => {
    const c = cleanupAfter(t);
    const { port } = await echoIp(
      { header: "X-Forwarded-For", from: ["127.0.0.0/8", "10.0.0.0/8", "fd00::/8"], recursive: true },
      c,
    );
    const text = await rawRequest(
      port,
      raw([
        "X-Forwarded-For: 5.5.5.5, 6.6.6.6",
        "X-Forwarded-For: 10.1.1.1",
        "X-Forwarded-For: [fd00::2]:443",
      ]),
    );
    assert.equal(text.body, "6.6.6.6");
    const allTrusted = await rawRequest(
      port,
      raw(["X-Forwarded-For: 10.0.0.9, 10.1.1.1", "X-Forwarded-For: fd00::3"]),
    );
    assert.equal(allTrusted.body, "10.0.0.9");
    assert.equal(
      (await get(port, "/", { headers: { "x-forwarded-for": "1.2.3.4, garbage" } })).body,
      "127.0.0.1",
    );
  });
});

describe("IPv4-mapped peers on a dual-stack listener", { timeout: 30000 }, () => {
  test("a peer seen as ::ffff:127.0.0.1 is trusted by 127.0.0.1 and reported as 127.0.0.1", async (t) => {
    const c = cleanupAfter(t);
    const lb = new LoadBalancer({ link: "v6", options: { from: ["127.0.0.1"] } });
    let peer = "";
    lb.addServer(
      new Server({
        name: "echo",
        url: "http://127.0.0.1:9",
        handler: (req, res) => {
          peer = req.socket.remoteAddress ?? "";
          res.end(lb.clientIp(req));
        },
      }),
    );
    const server = http.createServer(lb.handle);
    try {
      server.listen({ port: 0, host: "::", ipv6Only: false });
      await once(server, "listening");
    } catch {
      t.skip("no IPv6 dual-stack sockets here");
      return;
    }
    c.add(() => new Promise((r) => server.close(r)));
    const port = (server.address() as { port: number }).port;
    assert.equal((await get(port, "/", { headers: { "x-real-ip": "203.0.113.4" } })).body, "203.0.113.4");
    assert.equal((await get(port, "/")).body, "127.0.0.1");
    assert.equal(peer, "::ffff:127.0.0.1", "the socket really saw an IPv4-mapped peer");
  });
});

describe("health aggregation and the health JSON", { timeout: 30000 }, () => {
  test("status, detail, latency (mean over good), uptime and toJSON in the SPEC's shape", async (t) => {
    const c = cleanupAfter(t);
    const [a, b] = await Promise.all([backend("a", { cleanup: c }), backend("b", { cleanup: c })]);
    const lb = new LoadBalancer({ link: "api", mode: "least-conn", sticky: true, stickyMaxAge: "1h" });
    assert.equal(lb.status(), "unknown");
    assert.equal(lb.detail(), "0/0 servers are healthy");
    assert.equal(lb.uptime(), 0);
    const controller = new AbortController();
    c.add(() => controller.abort());
    const monitor = new HttpHealthMonitor(a.url, { interval: "1h", path: "/healthz" });
    lb.addServer(new Server({ name: "api-1", url: a.url, weight: 30, health: monitor }));
    let st: HealthStatus = "healthy";
    lb.addServer(
      new Server({ name: "api-2", url: b.url, weight: 70, health: { status: () => st, latency: () => 30 } }),
    );
    lb.addServer(
      new Server({
        name: "api-3",
        url: "http://127.0.0.1:9",
        health: { status: () => "error", latency: () => 999 },
      }),
    );
    lb.start(controller.signal);
    await until(
      () => a.received.some((r) => r.method === "HEAD" && r.url === "/healthz"),
      5000,
      "the first check at start",
    );
    await until(() => monitor.latency() > 0, 5000, "a latency figure");
    assert.equal(lb.status(), "healthy");
    assert.equal(lb.detail(), "2/3 servers are healthy");
    assert.ok(Math.abs(lb.latency() - (monitor.latency() + 30) / 2) < 1e-9, "mean over good servers only");
    assert.ok(lb.uptime() >= 0);
    const json = JSON.parse(JSON.stringify(lb));
    assert.equal(json.name, "api");
    assert.equal(json.status, "healthy");
    assert.equal(json.detail, "2/3 servers are healthy");
    assert.match(json.started, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.match(json.uptime, /^(\d+h)?(\d+m)?\d+(\.\d+)?s$/);
    assert.match(json.latency, /^\d+(\.\d+)?(ms|µs|s)$/);
    assert.equal(json.extra.config.link, "api");
    assert.equal(json.extra.config.mode, "least_conn", "the mode is canonical");
    assert.equal(json.extra.config.sticky, true);
    assert.equal(json.extra.config.sticky_max_age, "1h0m0s");
    const pool = json.extra.pool;
    assert.deepEqual(Object.keys(pool), [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`, "127.0.0.1:9"]);
    const first = pool[`127.0.0.1:${a.port}`];
    assert.equal(first.name, "api-1");
    assert.equal(first.url, a.url);
    assert.equal(first.weight, 21); // 30, 70 and 0 (→ mean 50) of 150 → 20, 46, 33; the 1 left goes to the first
    assert.equal(first.status, "healthy");
    assert.match(first.latency, /^\d+(\.\d+)?(ms|µs|s)$/);
    assert.equal(pool[`127.0.0.1:${b.port}`].latency, "30ms");
    assert.equal(pool["127.0.0.1:9"].status, "error");
    assert.equal(pool[`127.0.0.1:${b.port}`].weight, 46);
    // the polled status flips at once
    st = "unhealthy";
    assert.equal(lb.pick(fakeReq("192.0.2.1"))?.name, "api-1");
    assert.equal(lb.detail(), "1/3 servers are healthy");
    a.status = 500;
    await monitor.check();
    await monitor.check();
    await monitor.check();
    assert.equal(lb.status(), "unhealthy");
    assert.equal(lb.detail(), "0/3 servers are healthy");
    assert.equal(lb.latency(), 0);
    assert.equal(lb.pick(fakeReq("192.0.2.1")), undefined);
    a.status = 200;
    await monitor.check();
    assert.equal(lb.detail(), "1/3 servers are healthy", "one success heals");
  });

  test("an HttpHealthMonitor going unhealthy takes its server out of live traffic, and back", async (t) => {
    const c = cleanupAfter(t);
    const [a, b] = await Promise.all([backend("a", { cleanup: c }), backend("b", { cleanup: c })]);
    const { lb, port } = await startBalancer(c);
    const monitor = new HttpHealthMonitor(a.url, { interval: "20ms", retries: 2 });
    addServer(lb, { name: "a", url: a.url, health: monitor });
    addServer(lb, { name: "b", url: b.url });
    a.status = 503;
    await until(() => lb.servers[0].status() === "unhealthy", 5000, "a to turn unhealthy");
    for (let i = 0; i < 4; i++) assert.equal((await get(port)).body, "b");
    a.status = 200;
    await until(() => lb.servers[0].available, 5000, "a to heal");
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) seen.add((await get(port)).body);
    assert.deepEqual([...seen].sort(), ["a", "b"]);
  });
});

describe("idle wake", { timeout: 30000 }, () => {
  function parseFrames(text: string): unknown[] {
    assert.ok(text.endsWith("\n\n"), "frames end with a blank line");
    return text
      .split("\n\n")
      .filter((f) => f !== "")
      .map((f) => {
        assert.match(f, /^data: /);
        return JSON.parse(f.slice(6));
      });
  }

  test("server.tryWake wakes a napping server and the next request is served", async (t) => {
    const c = cleanupAfter(t);
    const [a] = await Promise.all([backend("a", { cleanup: c })]);
    let st: HealthStatus = "napping";
    let wakes = 0;
    const { lb, port } = await startBalancer(c);
    const s = addServer(lb, {
      name: "a",
      url: a.url,
      health: { status: () => st },
      wake: async () => {
        wakes++;
        st = "healthy";
      },
    });
    const r = await get(port);
    assert.equal(r.status, 200);
    assert.equal(r.body, "a");
    assert.equal(wakes, 1, "the request woke it first");
    await s.tryWake(); // healthy: nothing to do
    assert.equal(wakes, 1);
    st = "napping";
    await s.tryWake();
    assert.equal(wakes, 2);
    const failing = new Server({
      name: "f",
      url: "http://127.0.0.1:9",
      health: { status: () => "starting" },
      wake: async () => {
        throw new Error("no power");
      },
    });
    await assert.rejects(failing.tryWake(), (err: Error) => {
      assert.match(err.message, /failed to wake server "f"/);
      assert.equal((err.cause as Error).message, "no power");
      return true;
    });
  });

  test("/$switchyard/wake-events streams one frame per napping server, then ready; no cookie", async (t) => {
    const c = cleanupAfter(t);
    const { lb, port } = await startBalancer(c, [], { sticky: true });
    const st: Record<string, HealthStatus> = { a: "napping", b: "napping", c: "healthy" };
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    for (const name of ["a", "b", "c"]) {
      addServer(lb, {
        name,
        url: `http://127.0.0.1:${name.charCodeAt(0)}`,
        health: { status: () => st[name] },
        wake: async () => {
          if (name === "b") await gate; // b wakes after a: frames arrive as servers wake
          st[name] = "healthy";
        },
      });
    }
    const { res } = await requestHead(port, "/$switchyard/wake-events");
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers["content-type"]), /^text\/event-stream/);
    assert.equal(res.headers["set-cookie"], undefined);
    res.setEncoding("utf8");
    let text = "";
    res.on("data", (d: string) => {
      text += d;
      if (text.includes('"a"')) release();
    });
    await new Promise((r) => res.on("end", r));
    assert.deepEqual(parseFrames(text), [
      { server: "a", action: "ready" },
      { server: "b", action: "ready" },
      { action: "ready" },
    ]);
    assert.equal(st.a, "healthy");
    assert.equal(st.b, "healthy");
  });

  test("wake-events: the last frame is an error carrying every failure", async (t) => {
    const c = cleanupAfter(t);
    const { lb, port } = await startBalancer(c);
    for (const [name, fail] of [
      ["a", "disk on fire"],
      ["b", ""],
      ["c", "no route to rack"],
    ] as const) {
      addServer(lb, {
        name,
        url: `http://127.0.0.1:${name.charCodeAt(0)}`,
        health: { status: () => "napping" },
        wake: async () => {
          if (fail) throw new Error(fail);
        },
      });
    }
    const r = await get(port, "/$switchyard/wake-events?x=1", {
      headers: { cookie: `${STICKY_COOKIE}=zzz` },
    });
    assert.equal(r.headers["set-cookie"], undefined);
    const frames = parseFrames(r.body) as { server?: string; action: string; error?: string }[];
    assert.equal(frames.length, 4);
    const byServer = Object.fromEntries(frames.filter((f) => f.server).map((f) => [f.server, f]));
    assert.equal(byServer.a.action, "error");
    assert.match(byServer.a.error!, /disk on fire/);
    assert.equal(byServer.b.action, "ready");
    assert.equal(byServer.c.action, "error");
    const last = frames[3];
    assert.equal(last.action, "error");
    assert.equal(last.server, undefined);
    assert.match(last.error!, /disk on fire/);
    assert.match(last.error!, /no route to rack/);
    assert.match(last.error!, /2 of 3/);
  });
});

describe("library API surface and errors", () => {
  test("unknown mode and bad options are clear errors", () => {
    assert.throws(
      () => new LoadBalancer({ link: "x", mode: "fastest" }),
      (err: Error) => {
        assert.match(err.message, /unknown load-balancing mode "fastest"/);
        assert.match(err.message, /round_robin/);
        assert.match(err.message, /least_conn/);
        assert.match(err.message, /ip_hash/);
        return true;
      },
    );
    assert.throws(() => new LoadBalancer({ link: "" }), /link/);
    assert.throws(() => new LoadBalancer({ link: "x", stickyMaxAge: "forever" }), /stickyMaxAge/);
    assert.throws(() => new LoadBalancer({ link: "x", stickyMaxAge: -1 }), /stickyMaxAge must be >= 0/);
    assert.throws(
      () => new LoadBalancer({ link: "x", options: { from: ["10.0.0.300"] } }),
      /"10\.0\.0\.300"/,
    );
    assert.throws(() => new LoadBalancer({ link: "x", timeouts: { connect: "soon" } }), /timeouts\.connect/);
    assert.throws(() => new Server({ name: "a", url: "ftp://x" }), /url must be http: or https:/);
    assert.throws(() => new Server({ name: "a", url: "::nope" }), /invalid url/);
    assert.throws(() => new Server({ name: "", url: "http://x" }), /name/);
    assert.throws(() => new Server({ name: "a", url: "http://x", health: {} as never }), /status\(\)/);
    const lb = new LoadBalancer({ link: "x" });
    assert.throws(() => lb.addServer({} as never), /expected a Server/);
    assert.throws(() => lb.updateConfig({ mode: "nope" }), /valid modes/);
    assert.equal(lb.config.mode, "round_robin", "a failed update leaves the config");
  });

  test("servers, same-key replacement, removeServer(server|key), updateConfig mode change", () => {
    const lb = new LoadBalancer({ link: "x" });
    const a = new Server({ name: "a", url: "http://10.0.0.1:80", weight: 1 });
    const b = new Server({ name: "b", url: "http://10.0.0.2", weight: 3 });
    lb.addServer(a);
    lb.addServer(b);
    assert.equal(b.key, "10.0.0.2:80");
    assert.deepEqual(
      lb.servers.map((s) => [s.name, s.weight]),
      [
        ["a", 25],
        ["b", 75],
      ],
    );
    const a2 = new Server({ name: "a2", url: "http://10.0.0.1", weight: 1 });
    lb.addServer(a2);
    assert.deepEqual(
      lb.servers.map((s) => s.name),
      ["a2", "b"],
      "same key replaces in place",
    );
    const names = new Set<string>();
    for (let i = 0; i < 8; i++) names.add(lb.pick(fakeReq("192.0.2.1"))!.name);
    assert.deepEqual([...names].sort(), ["a2", "b"]);
    lb.updateConfig({ mode: "IP-Hash", options: { from: ["192.0.2.0/24"] } });
    assert.equal(lb.config.mode, "ip_hash");
    assert.equal(lb.toJSON().extra.config.mode, "ip_hash");
    const first = lb.pick(fakeReq("192.0.2.1", { "x-real-ip": "203.0.113.9" }));
    for (let i = 0; i < 20; i++)
      assert.equal(lb.pick(fakeReq("192.0.2.1", { "x-real-ip": "203.0.113.9" })), first);
    assert.equal(lb.removeServer("10.0.0.2:80"), true);
    assert.equal(lb.removeServer(a), false, "a was replaced already");
    assert.equal(lb.removeServer(a2), true);
    assert.equal(lb.servers.length, 0);
    assert.equal(lb.pick(fakeReq("192.0.2.1")), undefined);
  });

  test("updateConfig on a live balancer: sticky on/off, mode and real-IP options take effect at once", async (t) => {
    const c = cleanupAfter(t);
    const [a, b] = await Promise.all([backend("a", { cleanup: c }), backend("b", { cleanup: c })]);
    const { lb, port } = await startBalancer(c);
    addServer(lb, { name: "a", url: a.url });
    addServer(lb, { name: "b", url: b.url });
    assert.equal((await get(port)).headers["set-cookie"], undefined);
    lb.updateConfig({ sticky: true, stickyMaxAge: 60_000 });
    const r = await get(port);
    assert.match(
      String(r.headers["set-cookie"]),
      /^switchyard_lb_sticky=[\w-]+; Path=\/; Max-Age=60; HttpOnly; SameSite=Lax$/,
    );
    lb.updateConfig({ sticky: false, mode: "ip_hash", options: { from: ["127.0.0.1"] } });
    assert.equal(lb.config.mode, "ip_hash");
    const seen = new Set<string>();
    for (let i = 0; i < 40; i++)
      seen.add((await get(port, "/", { headers: { "x-real-ip": `198.51.100.${i}` } })).body);
    assert.deepEqual([...seen].sort(), ["a", "b"], "the real IP now spreads clients");
    const one = (await get(port, "/", { headers: { "x-real-ip": "198.51.100.77" } })).body;
    for (let i = 0; i < 5; i++)
      assert.equal((await get(port, "/", { headers: { "x-real-ip": "198.51.100.77" } })).body, one);
    assert.equal(lb.servers.length, 2, "servers stay across config changes");
  });

  test("lb.pick has no side effects beyond the algorithm's state", () => {
    const lb = new LoadBalancer({ link: "x", sticky: true, mode: "least_conn" });
    lb.addServer(new Server({ name: "a", url: "http://10.0.0.1" }));
    lb.addServer(new Server({ name: "b", url: "http://10.0.0.2" }));
    const req = fakeReq("192.0.2.1", { cookie: "a=1" });
    const before = JSON.stringify(req);
    for (let i = 0; i < 10; i++) lb.pick(req);
    assert.equal(JSON.stringify(req), before, "the request is untouched");
    assert.deepEqual(
      lb.servers.map((s) => s.inflight),
      [0, 0],
      "no request counted",
    );
  });

  test("start(signal) starts monitors of existing and later servers; removing a server stops its monitor", async (t) => {
    const c = cleanupAfter(t);
    const a = await backend("a", { cleanup: c });
    const lb = new LoadBalancer({ link: "x" });
    const m1 = new HttpHealthMonitor(a.url, { interval: "1h" });
    lb.addServer(new Server({ name: "one", url: a.url, health: m1 }));
    assert.equal(m1.running, false, "not before start");
    const controller = new AbortController();
    c.add(() => controller.abort());
    lb.start(controller.signal);
    assert.equal(m1.running, true);
    const m2 = new HttpHealthMonitor(a.url, { interval: "1h" });
    const signals: AbortSignal[] = [];
    lb.addServer(new Server({ name: "two", url: "http://127.0.0.1:7", health: m2 }));
    lb.addServer(
      new Server({
        name: "three",
        url: "http://127.0.0.1:8",
        health: { status: () => "healthy", start: (s) => signals.push(s) },
      }),
    );
    assert.equal(m2.running, true, "started on add");
    assert.equal(signals.length, 1);
    lb.removeServer("127.0.0.1:7");
    assert.equal(m2.running, false, "stopped on remove");
    controller.abort();
    assert.equal(m1.running, false);
    assert.equal(signals[0].aborted, true, "a custom health's signal aborts when the balancer stops");
    // a balancer started with an already-aborted signal starts nothing
    const lb2 = new LoadBalancer({ link: "y" });
    const m3 = new HttpHealthMonitor(a.url, { interval: "1h" });
    lb2.addServer(new Server({ name: "one", url: a.url, health: m3 }));
    lb2.start(AbortSignal.abort());
    assert.equal(m3.running, false);
  });
});
