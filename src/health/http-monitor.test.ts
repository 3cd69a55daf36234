import * as assert from "node:assert/strict";
import { once } from "node:events";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as net from "node:net";
import { after, before, describe, test } from "node:test";
import { HttpHealthMonitor } from "./http-monitor.ts";
import type { HealthStatus } from "./status.ts";

/** A real backend whose answer the tests set. */
const seen: { method: string; url: string }[] = [];
let answer = 200;
let delay = 0;
const backend = http.createServer((req, res) => {
  seen.push({ method: req.method ?? "", url: req.url ?? "" });
  const reply = () => {
    res.statusCode = answer;
    if (answer >= 300 && answer < 400) res.setHeader("location", "/elsewhere");
    res.end("body");
  };
  if (delay) setTimeout(reply, delay);
  else reply();
});
let url = "";
let refusedUrl = "";

before(async () => {
  backend.listen(0, "127.0.0.1");
  await once(backend, "listening");
  url = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
  // a port that refuses: listen, learn the port, close
  const tmp = http.createServer().listen(0, "127.0.0.1");
  await once(tmp, "listening");
  refusedUrl = `http://127.0.0.1:${(tmp.address() as AddressInfo).port}`;
  await new Promise((r) => tmp.close(r));
});
after(async () => {
  backend.closeAllConnections();
  await new Promise((r) => backend.close(r));
});

const reset = (status = 200, ms = 0) => {
  seen.length = 0;
  answer = status;
  delay = ms;
};

describe("HttpHealthMonitor", () => {
  test("HEAD / by default; GET with useGet; the configured path", async () => {
    reset();
    assert.equal(await new HttpHealthMonitor(url).check(), "healthy");
    assert.deepEqual(seen, [{ method: "HEAD", url: "/" }]);
    reset();
    await new HttpHealthMonitor(url, { useGet: true, path: "/healthz?x=1" }).check();
    assert.deepEqual(seen, [{ method: "GET", url: "/healthz?x=1" }]);
  });

  test("2xx and 3xx are healthy; 4xx and 5xx fail", async () => {
    for (const [code, want] of [
      [200, "healthy"],
      [204, "healthy"],
      [301, "healthy"],
      [304, "healthy"],
      [404, "unhealthy"],
      [500, "unhealthy"],
      [503, "unhealthy"],
    ] as const) {
      reset(code);
      const m = new HttpHealthMonitor(url, { retries: -1 });
      assert.equal(await m.check(), want, `HTTP ${code}`);
      if (want === "unhealthy") assert.equal(m.detail(), `HTTP ${code}`);
    }
  });

  test("unhealthy only after `retries` consecutive failures; one success heals", async () => {
    reset(500);
    const m = new HttpHealthMonitor(url, { retries: 3 });
    const events: [HealthStatus, boolean][] = [];
    m.subscribe((s, changed) => events.push([s, changed]));
    assert.equal(m.status(), "healthy", "healthy until a check says otherwise");
    assert.equal(await m.check(), "healthy");
    assert.equal(await m.check(), "healthy");
    reset(200);
    assert.equal(await m.check(), "healthy", "a success resets the count");
    reset(500);
    await m.check();
    await m.check();
    assert.equal(await m.check(), "unhealthy");
    assert.equal(await m.check(), "unhealthy");
    reset(200);
    assert.equal(await m.check(), "healthy");
    assert.equal(m.detail(), "");
    assert.ok(m.lastSeen() > 0);
    // failures below `retries` notify nobody (listeners take "healthy" as a success)
    assert.deepEqual(events, [
      ["healthy", false],
      ["unhealthy", true],
      ["unhealthy", false],
      ["healthy", true],
    ]);
  });

  test("refused connections and timeouts fail; negative retries = at once", async () => {
    const refused = new HttpHealthMonitor(refusedUrl, { retries: -5 });
    assert.equal(refused.retries, 1);
    assert.equal(await refused.check(), "unhealthy");
    assert.match(refused.detail(), /ECONNREFUSED/);
    reset(200, 400);
    const slow = new HttpHealthMonitor(url, { timeout: "100ms", retries: -1 });
    assert.equal(await slow.check(), "unhealthy");
    assert.match(slow.detail(), /timeout after 100ms/);
    assert.ok(slow.latency() >= 90, `latency of the timed-out probe: ${slow.latency()}`);
  });

  test("default retries are max(1, 15s / interval)", () => {
    assert.equal(new HttpHealthMonitor(url).retries, 3);
    assert.equal(new HttpHealthMonitor(url, { interval: "1s" }).retries, 15);
    assert.equal(new HttpHealthMonitor(url, { interval: 4000 }).retries, 3);
    assert.equal(new HttpHealthMonitor(url, { interval: "20s" }).retries, 1);
    assert.equal(new HttpHealthMonitor(url, { interval: "1m", retries: 2 }).retries, 2);
    assert.equal(new HttpHealthMonitor(url).interval, 5000);
    assert.equal(new HttpHealthMonitor(url).timeout, 5000);
  });

  test("latency is the last probe's round trip", async () => {
    reset(200, 60);
    const m = new HttpHealthMonitor(url);
    await m.check();
    assert.ok(m.latency() >= 50, `slow probe: ${m.latency()}`);
    reset(200, 0);
    await m.check();
    assert.ok(m.latency() < 50, `fast probe: ${m.latency()}`);
  });

  test("the first check runs as soon as the monitor starts; aborting stops it", {
    timeout: 10000,
  }, async () => {
    reset(503);
    const m = new HttpHealthMonitor(url, { interval: "1h", retries: -1 });
    const controller = new AbortController();
    const changed = new Promise<HealthStatus>((resolve) => m.subscribe((s, c) => c && resolve(s)));
    m.start(controller.signal);
    assert.equal(m.running, true);
    assert.equal(await changed, "unhealthy");
    assert.deepEqual(seen, [{ method: "HEAD", url: "/" }]);
    controller.abort();
    assert.equal(m.running, false);
  });

  test("probes repeat every interval while running", { timeout: 10000 }, async () => {
    reset(200);
    const m = new HttpHealthMonitor(url, { interval: "20ms" });
    const controller = new AbortController();
    let n = 0;
    const five = new Promise<void>((resolve) =>
      m.subscribe(() => {
        if (++n === 5) resolve();
      }),
    );
    m.start(controller.signal);
    await five;
    controller.abort();
    assert.ok(seen.length >= 5);
  });

  test("bad options are clear errors", () => {
    assert.throws(() => new HttpHealthMonitor("not a url"), /HttpHealthMonitor: invalid url "not a url"/);
    assert.throws(() => new HttpHealthMonitor("ftp://x"), /must be http: or https:/);
    assert.throws(() => new HttpHealthMonitor(url, { path: "healthz" }), /path must start with "\/"/);
    assert.throws(() => new HttpHealthMonitor(url, { interval: "5 parsecs" }), /healthcheck\.interval/);
    assert.throws(() => new HttpHealthMonitor(url, { interval: 0 }), /interval must be > 0/);
    assert.throws(() => new HttpHealthMonitor(url, { timeout: -1 }), /timeout must be > 0/);
    assert.throws(() => new HttpHealthMonitor(url, { retries: 1.5 }), /retries must be an integer/);
  });
});

test("a kept-alive probe connection reset by the backend is retried once on a fresh one", async () => {
  let connections = 0;
  const open = new Set<net.Socket>();
  const raw = net.createServer((s) => {
    const n = ++connections;
    open.add(s);
    s.on("error", () => {});
    let probes = 0;
    s.on("data", () => {
      probes++;
      // the first connection answers once, then resets on its second probe (a backend closing an
      // idle keep-alive connection just as the probe arrives)
      if (n === 1 && probes === 2) s.resetAndDestroy();
      else s.write("HTTP/1.1 200 OK\r\ncontent-length: 0\r\nkeep-alive: timeout=60\r\n\r\n");
    });
  });
  raw.listen(0, "127.0.0.1");
  await once(raw, "listening");
  const m = new HttpHealthMonitor(`http://127.0.0.1:${(raw.address() as AddressInfo).port}`, { retries: -1 });
  try {
    assert.equal(await m.check(), "healthy");
    assert.equal(await m.check(), "healthy");
    assert.equal(connections, 2, "the second probe went out again on a new connection");
  } finally {
    for (const s of open) s.destroy();
    raw.close();
  }
});
