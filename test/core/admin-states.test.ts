import * as assert from "node:assert/strict";
import { describe, test } from "node:test";
import { InvalidArgumentError } from "../../src/errors.ts";
import { type BalancerEvent, LoadBalancer } from "../../src/load-balancer.ts";
import { STICKY_COOKIE } from "../../src/selectors/index.ts";
import { backends } from "../support/backend.ts";
import { addServer, counts, fakeReq, startBalancer } from "../support/balancer.ts";
import { cleanupAfter } from "../support/cleanup.ts";
import { bodyOf, get, type Reply, requestHead } from "../support/http.ts";
import { freePort } from "../support/ports.ts";

function cookieOf(r: Reply): string | undefined {
  const set = r.headers["set-cookie"]?.find((c) => c.startsWith(`${STICKY_COOKIE}=`));
  return set?.slice(0, set.indexOf(";"));
}

/** Backends a, b, c behind a sticky balancer that records its events. */
async function stickyThree(t: { after(fn: () => unknown): void }) {
  const c = cleanupAfter(t);
  const bs = await backends(["a", "b", "c"], { cleanup: c });
  const events: BalancerEvent[] = [];
  const { lb, port } = await startBalancer(c, [], { sticky: true, onEvent: (e) => events.push(e) });
  for (const b of bs) addServer(lb, { name: b.name, url: b.url });
  return { c, bs, events, lb, port };
}

/** The sticky cookie of a client pinned to `name` (new clients until one lands there; up to 10). */
async function pinnedTo(port: number, name: string): Promise<string | undefined> {
  for (let i = 0; i < 10; i++) {
    const r = await get(port);
    if (r.body === name) return cookieOf(r);
  }
  return undefined;
}

describe("admin states, runtime weights and drain", { timeout: 30000 }, () => {
  test("draining: sticky clients of the server stay, new clients go elsewhere, in-flight requests finish; drain(wait) answers when in-flight reaches 0", async (t) => {
    const { bs, events, lb, port } = await stickyThree(t);
    // a client pinned to a, with one request in flight on a
    const pinned = await pinnedTo(port, "a");
    assert.ok(pinned, "some client got pinned to a");
    bs[0].hold = true;
    const inflight = requestHead(port, "/slow", { cookie: pinned });
    await bs[0].waitHeld(1);
    bs[0].hold = false;

    let settled = false;
    const waiting = lb.drain("a", 10_000).then((r) => {
      settled = true;
      return r;
    });
    assert.equal(lb.find("a")?.adminState, "draining");
    assert.ok(
      events.some((e) => e.action === "drain" && e.server === "a"),
      "a drain event names the server",
    );
    // the pinned client still reaches a, with no new cookie
    const again = await get(port, "/", { headers: { cookie: pinned } });
    assert.equal(again.body, "a", "a sticky client of a draining server stays");
    assert.equal(cookieOf(again), undefined, "and gets no new cookie");
    // new clients never do
    for (let i = 0; i < 12; i++) {
      const r = await get(port);
      assert.notEqual(r.body, "a", "a new client never lands on a draining server");
    }
    assert.equal(settled, false, "drain(wait) waits while a request is in flight");
    // the in-flight request finishes; then drain answers and `drained` is emitted
    bs[0].release();
    const { res } = await inflight;
    assert.equal(await bodyOf(res), "a");
    assert.deepEqual(await waiting, { drained: true, inflight: 0 });
    assert.ok(events.some((e) => e.action === "drained" && e.server === "a"));
    assert.equal(
      (lb.toJSON().extra.pool[lb.find("a")!.key] as { admin_state: string }).admin_state,
      "draining",
    );

    // ready again: new clients reach it
    lb.setAdminState("a", "ready");
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) seen.add((await get(port)).body);
    assert.ok(seen.has("a"), "a ready server takes new clients again");
  });

  test("drain(wait) answers at the deadline with the in-flight count when requests do not finish", async (t) => {
    const c = cleanupAfter(t);
    const bs = await backends(["a"], { cleanup: c });
    const { lb, port } = await startBalancer(c);
    addServer(lb, { name: "a", url: bs[0].url });
    bs[0].hold = true;
    const pending = requestHead(port);
    await bs[0].waitHeld(1);
    assert.deepEqual(await lb.drain("a"), { drained: false, inflight: 1 }, "without wait: at once");
    assert.deepEqual(await lb.drain("a", 50), { drained: false, inflight: 1 });
    bs[0].release();
    await bodyOf((await pending).res);
    await assert.rejects(lb.drain("nope"), InvalidArgumentError);
  });

  test("maint: no requests at all; a sticky client gets a fresh pick and a new cookie", async (t) => {
    const { bs, events, lb, port } = await stickyThree(t);
    const pinned = await pinnedTo(port, "b");
    assert.ok(pinned);
    const b = lb.setAdminState(bs[1].url.replace("http://", ""), "maint"); // by key
    assert.equal(b?.name, "b");
    assert.ok(events.some((e) => e.action === "maint" && e.server === "b"));
    const moved = await get(port, "/", { headers: { cookie: pinned } });
    assert.notEqual(moved.body, "b", "a maint server takes no sticky client");
    const fresh = cookieOf(moved);
    assert.ok(fresh && fresh !== pinned, "the client gets a new cookie");
    for (let i = 0; i < 9; i++) assert.notEqual((await get(port)).body, "b");
    assert.equal(lb.status(), "healthy");
    assert.equal(lb.detail(), "2/3 servers are healthy", "a server in maintenance is not counted");
    assert.equal(lb.setAdminState("missing", "maint"), undefined, "an unknown server: undefined");
    assert.throws(() => lb.setAdminState("a", "off" as "maint"), InvalidArgumentError);
    // back from maint: takes clients again
    lb.setAdminState(b!, "ready");
    assert.ok(events.some((e) => e.action === "ready" && e.server === "b"));
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) seen.add((await get(port)).body);
    assert.ok(seen.has("b"));
  });

  test("draining an idle server: `drain` comes before `drained` (regression: they were reversed)", () => {
    const events: BalancerEvent[] = [];
    const lb = new LoadBalancer({ link: "order", onEvent: (e) => events.push(e) });
    addServer(lb, { name: "a", url: "http://127.0.0.1:1" });
    lb.setAdminState("a", "draining");
    assert.deepEqual(
      events.map((e) => e.action),
      ["drain", "drained"],
    );
  });

  test("runtime weights: every mode follows them, rebalanced to 100; undefined restores the configured one", () => {
    for (const mode of ["round_robin", "least_conn", "ip_hash"]) {
      const events: BalancerEvent[] = [];
      const balancer = new LoadBalancer({ link: "w", mode, onEvent: (e) => events.push(e) });
      for (const n of ["a", "b"])
        addServer(balancer, { name: n, url: `http://10.0.0.${n === "a" ? 1 : 2}:80` });
      assert.equal(balancer.setWeight("a", 3)?.runtimeWeight, 3);
      balancer.setWeight("b", 1);
      assert.deepEqual(
        balancer.servers.map((s) => s.weight),
        [75, 25],
      );
      assert.ok(events.some((e) => e.action === "weight" && e.server === "a"));
      const picks: string[] = [];
      for (let i = 0; i < 4000; i++) {
        const ip = `198.51.${(i >> 8) & 255}.${i & 255}`;
        picks.push(balancer.pick(fakeReq(ip))!.name);
      }
      const share = counts(picks).a / picks.length;
      if (mode === "ip_hash") assert.ok(Math.abs(share - 0.75) < 0.04, `${mode}: a has ${share}`);
      else assert.equal(share, 0.75, `${mode}: a has exactly its share`);
      const json = balancer.toJSON().extra.pool["10.0.0.1:80"] as Record<string, unknown>;
      assert.equal(json.runtime_weight, 3);
      assert.equal(json.configured_weight, 0);
      assert.equal(json.admin_state, "ready");
      balancer.setWeight("a", undefined);
      balancer.setWeight("b", undefined);
      assert.deepEqual(
        balancer.servers.map((s) => s.weight),
        [50, 50],
      );
      assert.equal(
        (balancer.toJSON().extra.pool["10.0.0.1:80"] as Record<string, unknown>).runtime_weight,
        null,
      );
      assert.throws(() => balancer.setWeight("a", -1), InvalidArgumentError);
      assert.throws(() => balancer.setWeight("a", 1.5), InvalidArgumentError);
      assert.equal(balancer.setWeight("zzz", 1), undefined);
    }
  });
});

describe("events", { timeout: 30000 }, () => {
  test("a refused connection emits `ejected`, the status change `health` (warn), once each", async (t) => {
    const c = cleanupAfter(t);
    const [a] = await backends(["a"], { cleanup: c });
    const deadPort = await freePort(); // nobody listens there: it refuses
    const events: BalancerEvent[] = [];
    const { lb, port } = await startBalancer(c, [], { onEvent: (e) => events.push(e) });
    addServer(lb, { name: "dead", url: `http://127.0.0.1:${deadPort}` });
    addServer(lb, { name: "a", url: a.url });
    for (let i = 0; i < 4; i++) assert.equal((await get(port)).body, "a");
    const ejected = events.filter((e) => e.action === "ejected");
    assert.equal(ejected.length, 1, "ejected once");
    assert.equal(ejected[0].server, "dead");
    assert.equal(ejected[0].level, "warn");
    assert.match(ejected[0].message, /ECONNREFUSED/);
    const health = events.filter((e) => e.action === "health" && e.server === "dead");
    assert.deepEqual(
      health.map((e) => [e.level, e.message]),
      [["warn", "server dead is unhealthy"]],
    );
  });
});
