import * as assert from "node:assert/strict";
import { test } from "node:test";
import { waitForHealth } from "../support/admin.ts";
import { workerPids } from "../support/cli.ts";
import { eventually, get, serveYaml, startBackend, yamlConfig } from "../support/switchyard.ts";

const INTERVAL = 200;

test("--workers 2: health is shared (a killed backend leaves both workers) and probes run once", {
  timeout: 180_000,
}, async (t) => {
  const b = [
    await startBackend("w-1", 0, t),
    await startBackend("w-2", 0, t),
    await startBackend("w-3", 0, t),
  ];
  const sy = await serveYaml(
    t,
    yamlConfig({ web: { hosts: ["*"], servers: b.map((x) => ({ name: x.name, url: x.url })) } }),
    ["--workers", "2", "--log-level", "debug"],
    { timeoutMs: 90_000, cleanExit: true },
  );
  // no duplicate probes: over a window, each backend sees about one HEAD per interval, not one per process
  const before = b.map((x) => x.counts.HEAD ?? 0);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, INTERVAL * 8));
  const elapsed = performance.now() - t0;
  const probes = b.map((x, i) => (x.counts.HEAD ?? 0) - before[i]);
  const max = Math.ceil(elapsed / INTERVAL) + 1;
  for (const p of probes) assert.ok(p >= 2 && p <= max, `HEAD probes per backend ${probes} (max ${max})`);

  // requests reach both workers (one connection per request; cluster hands connections round robin);
  // an access line names its worker (`worker`: cluster's number, a replacement gets a new one)
  const workers = (from: number) =>
    new Set(
      sy.lines
        .slice(from)
        .map((l) => (l.startsWith("{") ? JSON.parse(l) : {}))
        .filter((r) => r.msg === "request")
        .map((r) => r.worker),
    );
  for (let i = 0; i < 12; i++) assert.equal((await get(sy.proxy[0], "/")).status, 200);
  await eventually(() => workers(0).size === 2, 5000, "requests on both workers");

  await b[1].stop();
  // the primary's monitor sees it and tells both workers
  await waitForHealth(sy.admin!, "web", "2/3 servers are healthy", 5000);
  await new Promise((r) => setTimeout(r, INTERVAL));
  const mark = sy.lines.length;
  const bodies: string[] = [];
  for (let i = 0; i < 20; i++) {
    const r = await get(sy.proxy[0], "/");
    assert.equal(r.status, 200);
    bodies.push(r.body.trim());
  }
  assert.ok(!bodies.includes("w-2"), `no worker sends to the killed backend: ${bodies}`);
  assert.deepEqual(new Set(bodies), new Set(["w-1", "w-3"]));
  await eventually(() => workers(mark).size === 2, 5000, "both workers served after the kill");
  const primary = (await sy.waitForLog((r) => r.msg === "listening")).pid;
  const transitions = sy.lines
    .filter((l) => l.includes('"msg":"server w-2 is unhealthy"'))
    .map((l) => JSON.parse(l).pid);
  assert.ok(transitions.length >= 1);
  assert.ok(
    transitions.every((pid) => pid === primary),
    "health transitions are logged by the primary only",
  );

  const metrics = (await get(sy.admin!, "/metrics")).body;
  assert.equal(requestsTotal(metrics), 32, "metrics are aggregated over the workers");
  assert.match(metrics, /switchyard_server_healthy\{service="web",server="w-2"\} 0/);

  // a worker that dies is replaced; the new one starts with the primary's view of health
  const known = workers(0);
  const children = workerPids(Number(primary));
  assert.equal(children.length, 2, `two workers: ${children}`);
  process.kill(children[0], "SIGKILL");
  await sy.waitForLog((r) => /exited unexpectedly/.test(String(r.msg)));
  // its counters stay in the totals: a counter never goes down when a worker dies
  assert.equal(requestsTotal((await get(sy.admin!, "/metrics")).body), 32, "no count lost with the worker");
  const wrong: string[] = [];
  await eventually(
    async () => {
      const r = await get(sy.proxy[0], "/").catch(() => undefined);
      if (r && (r.status !== 200 || r.body.trim() === "w-2")) wrong.push(`${r.status} ${r.body}`);
      return [...workers(0)].some((p) => !known.has(p));
    },
    60_000,
    "a replacement worker serving",
  );
  assert.deepEqual(wrong, []);
  const after = requestsTotal((await get(sy.admin!, "/metrics")).body);
  assert.ok(after > 32, `the replacement's requests add to the dead worker's: ${after}`);
});

function requestsTotal(metrics: string): number {
  return [...metrics.matchAll(/^switchyard_requests_total\{[^}]*code_class="2xx"\} (\d+)$/gm)].reduce(
    (n, m) => n + Number(m[1]),
    0,
  );
}
