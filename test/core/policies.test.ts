import * as assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Server } from "../../src/balancer/server.ts";
import type { HealthStatus } from "../../src/health/status.ts";
import { type BalancerEvent, LoadBalancer } from "../../src/load-balancer.ts";
import { STICKY_COOKIE, stickyValue } from "../../src/selectors/index.ts";
import { fakeReq } from "../support/balancer.ts";

const MODES = ["round_robin", "least_conn", "ip_hash"] as const;
const ip = (i: number) => `198.51.${(i >> 8) & 255}.${i & 255}`;

/** A server whose health the test sets (polled by the balancer before each pick). */
function server(name: string, i: number, opts: { weight?: number; backup?: boolean } = {}) {
  const state = { status: "healthy" as HealthStatus };
  const s = new Server({
    name,
    url: `http://10.0.0.${i}:80`,
    weight: opts.weight,
    backup: opts.backup,
    health: { status: () => state.status },
  });
  return Object.assign(s, { set: (st: HealthStatus) => (state.status = st) });
}

function shareOf(lb: LoadBalancer, name: string, n: number, from = 0): number {
  let hits = 0;
  for (let i = 0; i < n; i++) if (lb.pick(fakeReq(ip(from + i)))?.name === name) hits++;
  return hits / n;
}

describe("slow start", () => {
  for (const mode of ["round_robin", "least_conn"] as const) {
    test(`${mode}: a server added to a running pool gets a share that rises linearly with its weight over the window`, () => {
      let now = 1_000_000;
      const lb = new LoadBalancer({ link: "s", mode, slowStart: "10s", now: () => now });
      lb.addServer(server("a", 1));
      lb.addServer(server("b", 2));
      lb.start(new AbortController().signal);
      const start = now;
      lb.addServer(server("c", 3));
      assert.equal(shareOf(lb, "c", 300), 0, "at the start of its ramp it takes ~nothing");
      const shares: number[] = [];
      for (let k = 0; k < 10; k++) {
        now = start + k * 1000 + 500;
        const f = (k * 1000 + 500) / 10_000;
        const got = shareOf(lb, "c", 300, k * 300);
        // its weight (33 of 100) scaled by the part of the window elapsed, among the others' 67
        const want = (33 * f) / (67 + 33 * f);
        assert.ok(
          Math.abs(got - want) < 0.03,
          `window ${k}: share ${got.toFixed(3)}, expected ${want.toFixed(3)}`,
        );
        shares.push(got);
      }
      for (let k = 1; k < shares.length; k++) assert.ok(shares[k] > shares[k - 1], `rises: ${shares}`);
      now = start + 10_000;
      assert.ok(Math.abs(shareOf(lb, "c", 300) - 0.33) < 0.01, "full weight at the end of the window");
      assert.equal(lb.toJSON().extra.pool["10.0.0.3:80"].slow_start, null);
    });
  }

  test("ip_hash: clients move to the new server gradually, and only clients that end on it move", () => {
    let now = 5_000;
    const lb = new LoadBalancer({ link: "s", mode: "ip_hash", slowStart: 10_000, now: () => now });
    lb.addServer(server("a", 1));
    lb.addServer(server("b", 2));
    lb.start(new AbortController().signal);
    const N = 3000;
    const before = Array.from({ length: N }, (_, i) => lb.pick(fakeReq(ip(i)))!.name);
    const start = now;
    lb.addServer(server("c", 3));
    const final = (() => {
      now = start + 10_000;
      return Array.from({ length: N }, (_, i) => lb.pick(fakeReq(ip(i)))!.name);
    })();
    // the same pool without slow start decides where everyone ends
    for (let i = 0; i < N; i++) assert.ok(final[i] === before[i] || final[i] === "c", "only moves to c");
    const finalOnC = final.filter((n) => n === "c").length;
    assert.ok(finalOnC > N * 0.25 && finalOnC < N * 0.42, `c ends with about a third: ${finalOnC}`);

    // replay the ramp on a fresh balancer (same keys and weights: same hashing)
    now = 5_000;
    const lb2 = new LoadBalancer({ link: "s", mode: "ip_hash", slowStart: 10_000, now: () => now });
    lb2.addServer(server("a", 1));
    lb2.addServer(server("b", 2));
    lb2.start(new AbortController().signal);
    lb2.addServer(server("c", 3));
    let prevOnC = new Set<number>();
    const counts: number[] = [];
    for (let k = 0; k <= 10; k++) {
      now = 5_000 + k * 1000;
      const onC = new Set<number>();
      for (let i = 0; i < N; i++) {
        const s = lb2.pick(fakeReq(ip(i)))!.name;
        if (s === "c") onC.add(i);
        else assert.equal(s, before[i], `client ${i} stays on its server unless it moves to c`);
      }
      for (const i of prevOnC) assert.ok(onC.has(i), `a client that moved to c stays there (step ${k})`);
      for (const i of onC) assert.equal(final[i], "c", "only clients that end on c move to it");
      counts.push(onC.size);
      prevOnC = onC;
    }
    assert.equal(counts[0], 0);
    assert.equal(counts[10], finalOnC);
    assert.ok(counts[3] > 0 && counts[3] < counts[7] && counts[7] < counts[10], `gradual: ${counts}`);
  });

  test("a server replaced in place (same host:port, e.g. a reload that changes its weight) does not ramp again", () => {
    let now = 0;
    const lb = new LoadBalancer({ link: "s", slowStart: "10s", now: () => now });
    lb.addServer(server("a", 1));
    lb.addServer(server("b", 2));
    lb.start(new AbortController().signal);
    lb.addServer(server("b", 2, { weight: 1 }));
    assert.equal(lb.servers[1].ramp, 1, "a full-weight server stays at full weight");
    lb.addServer(server("c", 3));
    now = 5000;
    shareOf(lb, "c", 10);
    lb.addServer(server("c", 3, { weight: 2 }));
    assert.equal(lb.servers[2].ramp, 0.5, "a ramping one keeps its place in the ramp");
  });

  for (const mode of MODES) {
    test(`${mode}: a server at the start of its ramp still serves when it is the only one`, () => {
      const now = 0;
      const lb = new LoadBalancer({ link: "s", mode, slowStart: "10s", now: () => now });
      const a = server("a", 1);
      lb.addServer(a);
      lb.start(new AbortController().signal);
      a.set("unhealthy");
      assert.equal(lb.pick(fakeReq("192.0.2.1")), undefined);
      a.set("healthy");
      for (let i = 0; i < 20; i++) assert.equal(lb.pick(fakeReq(ip(i)))?.name, "a");
      assert.equal(a.ramp, 0);
      assert.equal(now, 0);
    });
  }

  test("a server that fails during its ramp starts over when it recovers; maint → ready ramps too", () => {
    let now = 0;
    const lb = new LoadBalancer({ link: "s", slowStart: "10s", now: () => now });
    const a = server("a", 1);
    const b = server("b", 2);
    lb.addServer(a);
    lb.addServer(b);
    lb.start(new AbortController().signal);
    b.set("unhealthy");
    assert.equal(shareOf(lb, "b", 100), 0);
    b.set("healthy"); // recovered: ramps from 0 (from when the balancer sees it: the next pick)
    assert.equal(shareOf(lb, "b", 10), 0);
    now = 6000;
    const mid = shareOf(lb, "b", 200);
    assert.ok(mid > 0.3 && mid < 0.45, `60% into the ramp: ${mid}`);
    b.set("unhealthy");
    assert.equal(shareOf(lb, "b", 100), 0);
    b.set("healthy");
    assert.equal(shareOf(lb, "b", 100), 0, "fails during the ramp: starts over");
    now = 16_000;
    assert.equal(shareOf(lb, "b", 100), 0.5);
    lb.setAdminState("b", "maint");
    assert.equal(shareOf(lb, "b", 100), 0);
    lb.setAdminState("b", "ready");
    assert.equal(shareOf(lb, "b", 100), 0, "back from maint: ramps from ~0");
    assert.equal(lb.toJSON().extra.pool["10.0.0.2:80"].slow_start, "0%");
  });
});

describe("backup servers", () => {
  for (const mode of MODES) {
    test(`${mode}: used only while no primary is good; a sticky client of a backup goes back to the primaries`, () => {
      const lb = new LoadBalancer({ link: "s", mode, sticky: true });
      const a = server("a", 1);
      const b = server("b", 2);
      const z = server("z", 9, { backup: true });
      for (const s of [a, b, z]) lb.addServer(s);
      assert.equal(shareOf(lb, "z", 300), 0, "a backup takes nothing while a primary is good");
      a.set("unhealthy");
      assert.equal(shareOf(lb, "z", 300), 0, "one good primary is enough");
      b.set("unhealthy");
      assert.equal(shareOf(lb, "z", 300), 1, "no good primary: the backups take everything");
      const cookie = `${STICKY_COOKIE}=${stickyValue(z.key, undefined)}`;
      assert.equal(lb.pick(fakeReq("192.0.2.1", { cookie }))?.name, "z");
      a.set("healthy");
      assert.equal(lb.pick(fakeReq("192.0.2.1", { cookie }))?.name, "a", "back to the primaries");
      assert.equal(shareOf(lb, "z", 300), 0);
      // a primary in maintenance is not good for this: the backup takes over
      lb.setAdminState("a", "maint");
      assert.equal(shareOf(lb, "z", 100), 1);
    });
  }
});

describe("panic threshold", () => {
  for (const mode of MODES) {
    test(`${mode}: below the threshold every server takes requests, logged once entering and leaving`, () => {
      const events: BalancerEvent[] = [];
      const lb = new LoadBalancer({ link: "s", mode, panicThreshold: "50%", onEvent: (e) => events.push(e) });
      const servers = [1, 2, 3, 4].map((i) => server(`s${i}`, i));
      for (const s of servers) lb.addServer(s);
      servers[0].set("unhealthy");
      servers[1].set("unhealthy");
      // 2 of 4 good = 50%: not below
      assert.equal(shareOf(lb, "s1", 400), 0);
      assert.equal(lb.panic, false);
      servers[2].set("unhealthy");
      const seen = new Set<string>();
      for (let i = 0; i < 400; i++) seen.add(lb.pick(fakeReq(ip(i)))!.name);
      assert.deepEqual([...seen].sort(), ["s1", "s2", "s3", "s4"], "panic: every server takes requests");
      assert.equal(lb.panic, true);
      assert.equal(lb.toJSON().extra.panic, true);
      servers[0].set("healthy");
      assert.equal(shareOf(lb, "s2", 400), 0, "out of panic: only good servers");
      assert.equal(lb.panic, false);
      const panicEvents = events.filter((e) => /panic/.test(e.message));
      assert.equal(panicEvents.length, 2, `once in, once out: ${panicEvents.map((e) => e.message)}`);
      assert.equal(panicEvents[0].level, "warn");
    });
  }

  test("off by default: no good server means no server", () => {
    const lb = new LoadBalancer({ link: "s" });
    const a = server("a", 1);
    lb.addServer(a);
    a.set("unhealthy");
    assert.equal(lb.pick(fakeReq("192.0.2.1")), undefined);
    assert.equal(lb.toJSON().extra.panic, false);
  });
});
