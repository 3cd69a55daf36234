/**
 * Admin actions, events and stats against a real `switchyard serve` with real backends: every
 * effect is checked by the traffic the backends see, not only by the answers.
 */
import * as assert from "node:assert/strict";
import { test } from "node:test";
import { openEvents, serverAction, waitForHealth } from "../support/admin.ts";
import { eventually, get, serveYaml, spread, startBackend, yamlConfig } from "../support/switchyard.ts";

type Stats = Record<
  string,
  {
    rps: number;
    inflight: number;
    status: Record<string, number>;
    p50_ms: number;
    p99_ms: number;
    servers: Record<
      string,
      { rps: number; inflight: number; status: Record<string, number>; p99_ms: number }
    >;
  }
>;

test("drain, maint, ready, weight, wake/stop; events and stats, over HTTP", {
  timeout: 60_000,
}, async (t) => {
  const a1 = await startBackend("a-1", 0, t);
  const a2 = await startBackend("a-2", 0, t);
  const sy = await serveYaml(
    t,
    yamlConfig(
      {
        web: {
          hosts: ["*"],
          servers: [
            { name: "a-1", url: a1.url },
            { name: "a-2", url: a2.url },
          ],
        },
      },
      "timeouts: { shutdown: 2s }\n",
    ),
    [],
    { cleanExit: true },
  );
  const admin = sy.admin!;
  const act = (server: string, action: string, body?: unknown) =>
    serverAction(admin, "web", server, action, body);
  const stats = async () => (await get(admin, "/api/stats")).json<Stats>();
  await waitForHealth(admin, "web", "2/2 servers are healthy");
  const events = await openEvents(admin);
  t.after(() => events.close());

  // stats: what was served, per service and server
  assert.deepEqual(await spread(sy.proxy[0], 10), { "a-1": 5, "a-2": 5 });
  const s1 = (await stats()).web;
  assert.equal(s1.status["2xx"], 10);
  assert.equal(s1.servers["a-1"].status["2xx"] + s1.servers["a-2"].status["2xx"], 10);
  assert.ok(s1.rps > 0 && s1.p50_ms > 0 && s1.p99_ms >= s1.p50_ms, JSON.stringify(s1));
  assert.equal(s1.inflight, 0);

  // maint: no requests at all
  const maint = await act("a-2", "maint");
  assert.equal(maint.status, 200);
  assert.equal(maint.json().admin_state, "maint");
  assert.deepEqual(await spread(sy.proxy[0], 6), { "a-1": 6 });
  const health = JSON.parse((await get(admin, "/api/health/web")).body);
  const entry = Object.values(
    health.extra.pool as Record<string, { name: string; admin_state: string }>,
  ).find((s) => s.name === "a-2");
  assert.equal(entry?.admin_state, "maint");
  await events.waitFor((e) => e.action === "maint" && e.server === "a-2" && e.service === "web");

  // ready again
  assert.equal((await act("a-2", "ready")).json().admin_state, "ready");
  assert.deepEqual(await spread(sy.proxy[0], 4), { "a-1": 2, "a-2": 2 });
  await events.waitFor((e) => e.action === "ready" && e.server === "a-2");

  // a runtime weight changes the split
  const w = await act("a-1", "weight", { weight: 90 });
  assert.equal(w.status, 200);
  assert.equal(w.json().weight, 90);
  assert.equal(w.json().configured_weight, 0);
  await act("a-2", "weight", { weight: 10 });
  const split = await spread(sy.proxy[0], 20);
  assert.equal(split["a-1"], 18, JSON.stringify(split));
  await events.waitFor((e) => e.action === "weight" && e.server === "a-1");
  await act("a-1", "weight", { weight: 0 });
  await act("a-2", "weight", { weight: 0 });

  // drain with wait: a request held on a-1, the drain answers once it is done
  await act("a-2", "maint");
  const held = get(sy.proxy[0], "/hold");
  await eventually(async () => (await stats()).web.servers["a-1"].inflight === 1, 5000, "a-1 holding one");
  assert.equal((await stats()).web.inflight, 1);
  await act("a-2", "ready");
  const draining = act("a-1", "drain", { wait: "2s" });
  await events.waitFor((e) => e.action === "drain" && e.server === "a-1", 5000, "the drain event");
  // draining: new clients go elsewhere
  assert.deepEqual(await spread(sy.proxy[0], 4), { "a-2": 4 });
  a1.release();
  const drained = await draining;
  assert.equal(drained.status, 200);
  assert.equal(drained.json().drained, true);
  assert.equal((await held).status, 200);
  await events.waitFor((e) => e.action === "drained" && e.server === "a-1");

  // drain whose deadline comes first: 202 with the in-flight count; a wait past the shutdown timeout is capped
  await act("a-1", "ready");
  await act("a-2", "maint");
  const held2 = get(sy.proxy[0], "/hold");
  await eventually(async () => (await stats()).web.servers["a-1"].inflight === 1, 5000, "a-1 holding one");
  await act("a-2", "ready");
  const late = await act("a-1", "drain", { wait: "100ms" });
  assert.equal(late.status, 202);
  assert.deepEqual([late.json().drained, late.json().inflight], [false, 1]);
  const capped = await act("a-1", "drain", { wait: "1h" });
  assert.equal(capped.status, 202);
  assert.match(String(capped.json().wait_capped), /shutdown timeout.*2s/);
  const now = await act("a-1", "drain");
  assert.equal(now.status, 202, "no wait: answered at once");
  a1.release();
  assert.equal((await held2).status, 200);
  await act("a-1", "ready");

  // wake/stop need an idle provider
  for (const action of ["wake", "stop"]) {
    const r = await act("a-1", action);
    assert.equal(r.status, 409);
    assert.match(String(r.json().error), /^server a-1 of service web has no idle provider$/);
  }

  // a reload is an event too
  sy.child.kill("SIGHUP");
  await events.waitFor((e) => e.action === "reload", 10_000, "the reload event");

  // a new client gets the kept events first
  const later = await openEvents(admin);
  t.after(() => later.close());
  await later.waitFor((e) => e.action === "drained", 5000, "the replay");
  assert.ok(later.events.length >= 8);
  for (const e of later.events) {
    assert.ok(!Number.isNaN(Date.parse(e.timestamp)));
    assert.ok(["info", "warn", "error"].includes(e.level));
    assert.equal(typeof e.message, "string");
  }

  // every request of the last minute, by class, and per server
  const s2 = (await stats()).web;
  assert.deepEqual(s2.status, { "2xx": 46, "3xx": 0, "4xx": 0, "5xx": 0 });
  assert.equal(s2.servers["a-1"].status["2xx"] + s2.servers["a-2"].status["2xx"], 46);
  assert.equal(s2.inflight, 0);
});
