/**
 * The admin API under `--workers 2`: reads add up every worker, writes reach every worker before
 * they are answered, a drain's wait counts the in-flight requests of both, events come once.
 */
import * as assert from "node:assert/strict";
import { test } from "node:test";
import { openEvents, serverAction, waitForHealth } from "../support/admin.ts";
import { workerPids } from "../support/cli.ts";
import { eventually, get, serveYaml, spread, startBackend, yamlConfig } from "../support/switchyard.ts";

test("--workers 2: stats and in-flight summed, actions applied in every worker, one event each", {
  timeout: 180_000,
}, async (t) => {
  const b1 = await startBackend("b-1", 0, t);
  const b2 = await startBackend("b-2", 0, t);
  const c1 = await startBackend("c-1", 0, t);
  const c2 = await startBackend("c-2", 0, t);
  // "rare": probed once an hour, so only a worker's passive failure notices a dead server
  const rare = `  rare:
    hosts: ["rare.test"]
    healthcheck: { interval: 1h, timeout: 2s }
    servers:
      - { name: c-1, url: "${c1.url}" }
      - { name: c-2, url: "${c2.url}" }
`;
  const sy = await serveYaml(
    t,
    yamlConfig({
      web: {
        hosts: ["*"],
        servers: [
          { name: "b-1", url: b1.url },
          { name: "b-2", url: b2.url },
        ],
      },
    }) + rare,
    ["--workers", "2", "--log-level", "debug"],
    { timeoutMs: 90_000, cleanExit: true },
  );
  const admin = sy.admin!;
  const act = (server: string, action: string, body?: unknown) =>
    serverAction(admin, "web", server, action, body);
  type Stats = Record<
    string,
    {
      inflight: number;
      status: Record<string, number>;
      servers: Record<string, { inflight: number; status: Record<string, number> }>;
    }
  >;
  const stats = async () => (await get(admin, "/api/stats")).json<Stats>();
  /**
   * Access-log records since line `from` (whose path carries `tag`, when given): which worker served
   * what (`worker`: cluster's number; a replacement worker gets a new one). Access lines are batched (up to 1 s), so lines of earlier requests may come after `from`.
   */
  const served = (from: number, tag?: string) =>
    sy.lines
      .slice(from)
      .filter((l) => l.startsWith("{") && l.includes('"msg":"request"'))
      .map((l) => JSON.parse(l) as { worker: number; server: string; path: string })
      .filter((r) => tag === undefined || r.path.includes(tag));
  await waitForHealth(admin, "web", "2/2 servers are healthy");
  const events = await openEvents(admin);
  t.after(() => events.close());

  // an event only a worker sees reaches the primary's stream: a passive ejection
  await c2.stop();
  for (let i = 0; i < 4; i++) {
    const r = await get(sy.proxy[0], "/", { host: "rare.test" });
    assert.equal(r.status, 200, "a refused GET is retried on c-1");
    assert.equal(r.body.trim(), "c-1");
  }
  const ejected = await events.waitFor((e) => e.action === "ejected" && e.server === "c-2", 5000, "ejected");
  assert.equal(ejected.service, "rare");
  assert.equal(ejected.level, "warn");

  // reads: stats of both workers added up
  let mark = sy.lines.length;
  await spread(sy.proxy[0], 20, { path: "/?reads" });
  await eventually(() => served(mark, "reads").length === 20, 5000, "20 access-log lines");
  assert.equal(new Set(served(mark, "reads").map((r) => r.worker)).size, 2, "both workers served");
  const s1 = (await stats()).web;
  assert.equal(s1.status["2xx"], 20, "stats summed over the workers");
  assert.equal((await stats()).rare.status["2xx"], 4);
  assert.equal(s1.servers["b-1"].status["2xx"] + s1.servers["b-2"].status["2xx"], 20);

  // writes: maint reaches both workers before the answer
  const maint = await act("b-2", "maint");
  assert.equal(maint.status, 200);
  mark = sy.lines.length;
  assert.deepEqual(await spread(sy.proxy[0], 20, { path: "/?maint" }), { "b-1": 20 });
  await eventually(() => served(mark, "maint").length === 20, 5000, "20 access-log lines");
  assert.equal(new Set(served(mark, "maint").map((r) => r.worker)).size, 2, "both workers skipped b-2");
  const pool = JSON.parse((await get(admin, "/api/health/web")).body).extra.pool as Record<
    string,
    { name: string; admin_state: string }
  >;
  assert.equal(Object.values(pool).find((s) => s.name === "b-2")?.admin_state, "maint");

  // in-flight of both workers: 6 held requests on b-1, over 6 connections
  mark = sy.lines.length;
  // one connection at a time: cluster's round robin hands each to the worker free the longest, so
  // they alternate (six at once could all reach one worker when the other was slow to take its
  // previous one: seen once on a loaded machine)
  const held: ReturnType<typeof get>[] = [];
  for (let i = 1; i <= 6; i++) {
    held.push(get(sy.proxy[0], "/hold"));
    await eventually(async () => (await stats()).web.servers["b-1"].inflight === i, 10_000, `${i} in flight`);
  }
  assert.equal((await stats()).web.inflight, 6);
  const pool6 = JSON.parse((await get(admin, "/api/health/web")).body).extra.pool as Record<
    string,
    { name: string; inflight: number }
  >;
  assert.equal(
    Object.values(pool6).find((s) => s.name === "b-1")?.inflight,
    6,
    "health JSON in-flight summed",
  );
  await act("b-2", "ready");
  const late = await act("b-1", "drain", { wait: "100ms" });
  assert.equal(late.status, 202);
  assert.deepEqual([late.json().drained, late.json().inflight], [false, 6], "the drain counts both workers");
  // draining in both workers: new clients go to b-2
  assert.deepEqual(await spread(sy.proxy[0], 6), { "b-2": 6 });
  const draining = act("b-1", "drain", { wait: "20s" });
  await sy.waitForLog((r) => r.msg === "admin: drain web/b-1" && r !== undefined, 5000);
  b1.release();
  const drained = await draining;
  assert.equal(drained.status, 200);
  assert.equal(drained.json().drained, true);
  for (const h of held) assert.equal((await h).status, 200);
  await eventually(() => served(mark, "/hold").length === 6, 5000, "the held requests' lines");
  const holders = new Set(served(mark, "/hold").map((r) => r.worker));
  assert.equal(holders.size, 2, "the held requests were in both workers");
  await events.waitFor((e) => e.action === "drained" && e.server === "b-1", 5000, "drained");

  // runtime weights reach both workers: 90/10 in each
  await act("b-1", "ready");
  await act("b-1", "weight", { weight: 90 });
  await act("b-2", "weight", { weight: 10 });
  const split = await spread(sy.proxy[0], 40);
  assert.ok((split["b-2"] ?? 0) <= 6, `b-2 gets about a tenth in each worker: ${JSON.stringify(split)}`);

  // each action is one event, not one per process
  await events.waitFor((e) => e.action === "weight" && e.server === "b-2");
  const count = (action: string, server: string) =>
    events.events.filter((e) => e.action === action && e.server === server).length;
  assert.equal(count("maint", "b-2"), 1);
  assert.equal(count("drain", "b-1"), 1);
  assert.equal(count("drained", "b-1"), 1);
  assert.equal(count("weight", "b-1"), 1);

  // a replacement worker starts with the admin states the others hold
  await act("b-2", "maint");
  const workers = new Set(served(0).map((r) => r.worker));
  const primary = (await sy.waitForLog((r) => r.msg === "listening")).pid;
  const children = workerPids(Number(primary));
  assert.equal(children.length, 2, `two workers: ${children}`);
  process.kill(children[0], "SIGKILL");
  await sy.waitForLog((r) => /exited unexpectedly/.test(String(r.msg)), 10_000);
  mark = sy.lines.length;
  const wrong: string[] = [];
  await eventually(
    async () => {
      const r = await get(sy.proxy[0], "/").catch(() => undefined);
      if (r && (r.status !== 200 || r.body.trim() !== "b-1")) wrong.push(`${r.status} ${r.body.trim()}`);
      return served(mark).some((x) => !workers.has(x.worker));
    },
    60_000,
    "the replacement worker serving",
  );
  assert.deepEqual(wrong, [], "the replacement worker keeps b-2 in maintenance");

  // a health change is one event, though three processes' balancers see it
  await act("b-2", "ready");
  await b2.stop();
  const down = (e: { action: string; server?: string; message: string }) =>
    e.action === "health" && e.server === "b-2" && / is unhealthy/.test(e.message);
  await events.waitFor(down, 10_000, "b-2 unhealthy");
  // a marker after it: anything the workers sent about b-2's health has arrived by then
  await act("b-1", "weight", { weight: 50 });
  await events.waitFor((e) => e.action === "weight" && / set to 50/.test(e.message), 5000, "the marker");
  assert.equal(events.events.filter(down).length, 1);
});
