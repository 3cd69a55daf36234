import * as assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { checkConfig, loadConfig, parseConfig } from "./load.ts";

const example = (name: string) => fileURLToPath(new URL(`../../examples/${name}`, import.meta.url));

test("examples/switchyard.yaml passes check and sets every key", async () => {
  const file = example("switchyard.yaml");
  const r = await checkConfig(file, {});
  assert.equal(r.ok, true, r.output);
  assert.match(r.output, /OK — 4 services, 7 servers/);
  const c = await loadConfig(file, {}, {});
  assert.deepEqual(
    c.listen.map((l) => l.address),
    ["0.0.0.0:8080", "[::1]:8080"],
  );
  assert.equal(c.timeouts.shutdown, 30_000);
  assert.equal(c.services.api.stickySecret, "change-me");
  assert.equal(c.services.api.healthcheck.retries, 3);
  assert.deepEqual(c.services.web.options.from, ["10.0.0.0/8", "192.168.0.0/16"]);
  assert.deepEqual(c.services.sites.hosts, ["*.example.com"]);
  assert.deepEqual(c.services.fallback.hosts, ["*"]);
  assert.equal(c.services.fallback.healthcheck.enabled, false);
});

test("examples/godoxy-routes.yaml passes check and groups by link", async () => {
  const file = example("godoxy-routes.yaml");
  const r = await checkConfig(file, {});
  assert.equal(r.ok, true, r.output);
  const c = await loadConfig(file, {}, {});
  assert.deepEqual(Object.keys(c.services), ["app", "whoami"]);
  assert.equal(c.services.app.mode, "least_conn");
  assert.equal(c.services.app.healthcheck.path, "/healthz");
  assert.deepEqual(
    c.services.app.servers.map((s) => [s.name, s.url, s.weight]),
    [
      ["app-1", "http://127.0.0.1:3001", 2],
      ["app-2", "http://127.0.0.1:3002", 1],
      ["app-3", "http://127.0.0.1:3003", 0],
    ],
  );
});

test("the README's config example and the GoDoxy example of docs/configuration.md parse as shown", async () => {
  const read = (f: string) => readFile(fileURLToPath(new URL(`../../${f}`, import.meta.url)), "utf8");
  const md = (await read("README.md")) + (await read("docs/configuration.md"));
  const blocks = [...md.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]);
  const configs = blocks.filter((b) => /^services:/m.test(b));
  const routes = blocks.filter((b) => /load_balance:/.test(b));
  assert.ok(configs.length >= 1 && routes.length >= 1, "README has a config example and a GoDoxy example");
  const main = parseConfig(configs[0], "README.md", {}, {});
  assert.equal(main.services.api.servers.length, 2);
  const godoxy = parseConfig(routes[0], "README.md", {}, {});
  assert.deepEqual(
    godoxy.services.app.servers.map((s) => s.weight),
    [2, 1],
  );
});

test("examples/idle.yaml passes check: run and exec servers, depends_on", async () => {
  const file = example("idle.yaml");
  const r = await checkConfig(file, {});
  assert.equal(r.ok, true, r.output);
  const c = await loadConfig(file, {}, {});
  const [a1, a2] = c.services.app.servers;
  assert.equal(a1.provider?.kind, "run");
  assert.deepEqual(a1.idle?.dependsOn, ["db"]);
  assert.equal(a2.idle?.noLoadingPage, true);
  assert.equal(a2.idle?.idleTimeout, 900_000);
  assert.equal(c.services.db.servers[0].idle?.stopMethod, "pause");
});
