import * as assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  type Backend,
  get,
  type Running,
  spread,
  startBackend,
  startSwitchyard,
  tempDir,
  yamlConfig,
} from "../support/switchyard.ts";

describe("switchyard serve: routing, balancing, admin", { timeout: 120_000 }, () => {
  const tmp = tempDir();
  let backends: Record<string, Backend>;
  let sy: Running;

  before(async () => {
    backends = {};
    const gone = await startBackend("gone");
    const deadUrl = gone.url;
    await gone.stop();
    for (const n of ["exact", "wild", "label", "any", "rr-1", "rr-2", "rr-3", "down-1"]) {
      backends[n] = await startBackend(n);
    }
    const file = tmp.write(
      "switchyard.yaml",
      yamlConfig({
        exact: { hosts: ["api.example.com"], servers: [{ name: "exact", url: backends.exact.url }] },
        wild: { hosts: ["*.example.com"], servers: [{ name: "wild", url: backends.wild.url }] },
        shop: { servers: [{ name: "label", url: backends.label.url }] },
        rr: {
          hosts: ["rr.test"],
          servers: ["rr-1", "rr-2", "rr-3"].map((n) => ({ name: n, url: backends[n].url })),
        },
        dead: { hosts: ["dead.test"], servers: [{ name: "down-1", url: backends["down-1"].url }] },
      }).replace(
        "services:\n",
        // no active check: only the proxy's own retry and passive health deal with the refused port
        `services:\n  retry:\n    hosts: [retry.test]\n    healthcheck: { disable: true }\n    servers:\n      - { name: refused, url: "${deadUrl}" }\n      - { name: live, url: "${backends["rr-1"].url}" }\n`,
      ),
    );
    // the "*" service only for the catch-all test: a second file would need a second process
    sy = await startSwitchyard(["serve", "-c", file]);
  });

  after(async () => {
    const exit = await sy?.stop();
    await Promise.all(Object.values(backends).map((b) => b.stop()));
    tmp.remove();
    assert.equal(exit?.code, 0);
  });

  test("Host routing: exact, then wildcard, then first label; case and port ignored; else 404", async () => {
    const p = sy.proxy[0];
    assert.equal((await get(p, "/", { host: "api.example.com" })).body, "exact\n");
    assert.equal((await get(p, "/", { host: "API.Example.COM:8080" })).body, "exact\n");
    assert.equal((await get(p, "/", { host: "www.example.com" })).body, "wild\n");
    // one label only, and not the bare domain
    assert.equal((await get(p, "/", { host: "a.b.example.com" })).status, 404);
    assert.equal((await get(p, "/", { host: "example.com" })).status, 404);
    assert.equal((await get(p, "/", { host: "shop.internal" })).body, "label\n");
    assert.equal((await get(p, "/", { host: "shop" })).body, "label\n");
    assert.equal((await get(p, "/", { host: "Shop.Internal:443" })).body, "label\n");
    const miss = await get(p, "/", { host: "nothing.test" });
    assert.equal(miss.status, 404);
    assert.match(miss.body, /^Not Found/);
    assert.ok(miss.body.length < 100);
    assert.equal((await get(p, "/", { host: "[::1]:8080" })).status, 404);
  });

  test("round robin through the proxy: every server gets an equal share", async () => {
    assert.deepEqual(await spread(sy.proxy[0], 30, { host: "rr.test" }), {
      "rr-1": 10,
      "rr-2": 10,
      "rr-3": 10,
    });
  });

  test("admin: /api/health, /api/health/<service>, unknown service 404, / the dashboard, other paths 404", async () => {
    const all = JSON.parse((await get(sy.admin!, "/api/health")).body);
    assert.deepEqual(Object.keys(all).sort(), ["dead", "exact", "retry", "rr", "shop", "wild"]);
    assert.equal(all.rr.detail, "3/3 servers are healthy");
    assert.equal(all.rr.extra.config.mode, "round_robin");
    const one = await get(sy.admin!, "/api/health/rr");
    assert.equal(one.status, 200);
    assert.equal(JSON.parse(one.body).name, "rr");
    const unknown = await get(sy.admin!, "/api/health/nope");
    assert.equal(unknown.status, 404);
    assert.match(unknown.headers["content-type"] ?? "", /json/);
    assert.match(JSON.parse(unknown.body).error, /nope/);
    const page = await get(sy.admin!, "/");
    assert.equal(page.status, 200);
    assert.match(page.headers["content-type"] ?? "", /text\/html/);
    const nothing = await get(sy.admin!, "/nope");
    assert.equal(nothing.status, 404);
    assert.ok(JSON.parse(nothing.body).error);
  });

  test("all servers down → 503 with a short body that names no address", async () => {
    await backends["down-1"].stop();
    const r = await get(sy.proxy[0], "/", { host: "dead.test" });
    // refused: nothing else to retry on
    assert.ok(r.status === 502 || r.status === 503, `status ${r.status}`);
    const r2 = await get(sy.proxy[0], "/", { host: "dead.test" });
    assert.equal(r2.status, 503);
    assert.doesNotMatch(r2.body, /127\.0\.0\.1|:\d{2,5}/);
    const h = JSON.parse((await get(sy.admin!, "/api/health/dead")).body);
    assert.equal(h.status, "unhealthy");
    assert.equal(h.detail, "0/1 servers are healthy");
  });

  test("a refused connection is retried on another server, counted, and the server is taken out", async () => {
    for (let i = 0; i < 4; i++) {
      const r = await get(sy.proxy[0], "/", { host: "retry.test" });
      assert.equal(r.status, 200);
      assert.equal(r.body, "rr-1\n");
    }
    const m = (await get(sy.admin!, "/metrics")).body;
    assert.match(m, /switchyard_upstream_retries_total\{service="retry"\} 1$/m);
    assert.match(m, /switchyard_server_healthy\{service="retry",server="refused"\} 0/);
    assert.match(m, /switchyard_requests_total\{service="retry",server="live",code_class="2xx"\} 4/);
  });

  test("metrics: requests by service/server/class, histogram, in-flight, health, reloads, process", async () => {
    const m = await get(sy.admin!, "/metrics");
    assert.equal(m.status, 200);
    assert.match(m.headers["content-type"] ?? "", /text\/plain/);
    const text = m.body;
    assert.match(text, /^switchyard_requests_total\{service="rr",server="rr-1",code_class="2xx"\} (\d+)$/m);
    const rr1 = Number(
      /switchyard_requests_total\{service="rr",server="rr-1",code_class="2xx"\} (\d+)/.exec(text)![1],
    );
    assert.ok(rr1 >= 10);
    assert.match(text, /switchyard_requests_total\{service="dead",server="none",code_class="5xx"\} [1-9]/);
    assert.match(text, /switchyard_request_duration_seconds_bucket\{le="\+Inf",service="rr"\} \d+/);
    assert.match(text, /switchyard_request_duration_seconds_count\{service="rr"\} \d+/);
    assert.match(text, /switchyard_requests_in_flight\{service="rr"\} 0/);
    assert.match(text, /switchyard_server_healthy\{service="rr",server="rr-2"\} 1/);
    assert.match(text, /switchyard_server_healthy\{service="dead",server="down-1"\} 0/);
    assert.match(text, /switchyard_upstream_retries_total\{service="rr"\} 0/);
    assert.match(text, /switchyard_config_reloads_total\{result="ok"\} 0/);
    assert.match(text, /^process_cpu_user_seconds_total /m);
    // 404s (no service) are not a service's requests
    assert.doesNotMatch(text, /service="nothing/);
  });
});

describe("switchyard serve: the '*' service", { timeout: 90_000 }, () => {
  test("'*' catches any Host, but exact names still win", async () => {
    const tmp = tempDir();
    const a = await startBackend("star");
    const b = await startBackend("named");
    const file = tmp.write(
      "s.yaml",
      yamlConfig({
        all: { hosts: ["*"], servers: [{ name: "star", url: a.url }] },
        named: { hosts: ["named.test"], servers: [{ name: "named", url: b.url }] },
      }),
    );
    const sy = await startSwitchyard(["serve", "-c", file]);
    try {
      assert.equal((await get(sy.proxy[0], "/", { host: "whatever.example" })).body, "star\n");
      assert.equal((await get(sy.proxy[0], "/", { host: "named.test" })).body, "named\n");
    } finally {
      assert.equal((await sy.stop()).code, 0);
      await a.stop();
      await b.stop();
      tmp.remove();
    }
  });
});
