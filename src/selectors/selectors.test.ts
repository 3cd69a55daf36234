import * as assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Server } from "../balancer/server.ts";
import { effectiveWeights, rebalance } from "../balancer/weights.ts";
import {
  createSelector,
  MODES,
  normalizeMode,
  parseMode,
  readCookie,
  StickySelector,
  stickyValue,
} from "./index.ts";
import { IpHashSelector } from "./ip-hash.ts";
import { LeastConnSelector } from "./least-conn.ts";
import { RoundRobinSelector, smoothSchedule, smoothScheduleReference } from "./round-robin.ts";
import type { PickContext, Selector } from "./selector.ts";

/** Servers with weights rebalanced as the balancer does. */
function pool(weights: readonly number[], firstPort = 2000, firstName = "a"): Server[] {
  const servers = weights.map(
    (w, i) =>
      new Server({
        name: String.fromCharCode(firstName.charCodeAt(0) + i),
        url: `http://127.0.0.1:${firstPort + i}`,
        weight: w,
      }),
  );
  applyWeights(servers);
  return servers;
}

function applyWeights(servers: Server[]): void {
  const configured = servers.map((s) => s.configuredWeight);
  const w = rebalance(configured);
  const e = effectiveWeights(configured);
  servers.forEach((s, i) => {
    s.weight = w[i];
    s.effectiveWeight = e[i];
    s.index = i;
  });
}

/** Rebuilds `sel` over `servers` and wires load notifications, as the balancer does. */
function use(sel: Selector, servers: Server[]): Selector {
  const inner = sel instanceof StickySelector ? sel.inner : sel;
  for (const s of servers) s.onLoadChange = inner.loadChanged ? (x) => inner.loadChanged!(x) : undefined;
  sel.rebuild({ servers });
  return sel;
}

const ctx = (
  ip = "192.0.2.1",
  tried: Server[] | null = null,
  cookie?: string,
): PickContext & { cookie?: string } => ({
  ip,
  tried,
  cookie,
});

function picks(sel: Selector, n: number, ipOf: (i: number) => string = () => "192.0.2.1"): Server[] {
  const out: Server[] = [];
  for (let i = 0; i < n; i++) {
    const s = sel.pick(ctx(ipOf(i)));
    assert.ok(s, `pick ${i} returned a server`);
    out.push(s);
  }
  return out;
}

const names = (list: readonly (Server | undefined)[]) => list.map((s) => s?.name ?? "-").join("");
const share = (list: readonly Server[]) => {
  const out: Record<string, number> = {};
  for (const s of list) out[s.name] = (out[s.name] ?? 0) + 1;
  return out;
};
const ipv4 = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
const ipv6 = (i: number) => `2001:db8:${((i * 7919) & 0xffff).toString(16)}::${(i & 0xffff).toString(16)}`;

const FACTORIES: [string, () => Selector][] = [
  ["round_robin", () => new RoundRobinSelector()],
  ["least_conn", () => new LeastConnSelector()],
  ["ip_hash", () => new IpHashSelector()],
  ["sticky(round_robin)", () => new StickySelector(new RoundRobinSelector(), undefined)],
  ["sticky(least_conn)", () => new StickySelector(new LeastConnSelector(), "s3cret")],
  ["sticky(ip_hash)", () => new StickySelector(new IpHashSelector(), undefined)],
];

for (const [label, make] of FACTORIES) {
  describe(`selector contract: ${label}`, () => {
    test("empty pool → undefined", () => {
      const sel = use(make(), []);
      assert.equal(sel.pick(ctx()), undefined);
      assert.equal(sel.pick(ctx("2001:db8::1")), undefined);
    });

    test("all unavailable → undefined", () => {
      const servers = pool([1, 1, 1]);
      for (const s of servers) s.available = false;
      const sel = use(make(), servers);
      for (let i = 0; i < 50; i++) assert.equal(sel.pick(ctx(ipv4(i))), undefined);
    });

    test("only available servers are picked, and every available one is", () => {
      const servers = pool([1, 2, 3, 4, 5]);
      servers[1].available = false;
      servers[3].available = false;
      const sel = use(make(), servers);
      const got = picks(sel, 3000, ipv4);
      assert.ok(
        got.every((s) => s.available),
        `only available: ${names(got.slice(0, 40))}`,
      );
      assert.deepEqual(Object.keys(share(got)).sort(), ["a", "c", "e"]);
      // and back again once available and rebuilt
      servers[1].available = true;
      sel.rebuild({ servers });
      assert.ok(picks(sel, 3000, ipv4).some((s) => s === servers[1]));
    });

    test("tried servers are never re-picked; all tried → undefined", () => {
      const servers = pool([3, 2, 1, 4]);
      const sel = use(make(), servers);
      for (let mask = 0; mask < 16; mask++) {
        const tried = servers.filter((_, i) => mask & (1 << i));
        for (let i = 0; i < 40; i++) {
          const s = sel.pick(ctx(ipv4(i * 31), tried));
          if (tried.length === servers.length) assert.equal(s, undefined);
          else {
            assert.ok(s, `a server for mask ${mask}`);
            assert.ok(!tried.includes(s), `mask ${mask}: ${s.name} was already tried`);
          }
        }
      }
    });

    test("configured weight 0 means an equal share", () => {
      const servers = pool([0, 0, 0, 0]);
      assert.deepEqual(
        servers.map((s) => s.weight),
        [25, 25, 25, 25],
      );
      const sel = use(make(), servers);
      const got = share(picks(sel, 4000, ipv4));
      for (const s of servers) {
        const n = got[s.name] ?? 0;
        assert.ok(n > 700 && n < 1300, `${s.name} got ${n} of 4000`);
      }
    });

    test("a server rounded down to weight 0 still serves when it is the only one left", () => {
      const servers = pool([200, 1]);
      assert.deepEqual(
        servers.map((s) => s.weight),
        [100, 0],
      );
      const sel = use(make(), servers);
      // tried (a retry) and unavailable both leave only b
      assert.equal(sel.pick(ctx("192.0.2.9", [servers[0]])), servers[1]);
      servers[0].available = false;
      sel.rebuild({ servers });
      assert.equal(sel.pick(ctx("192.0.2.9")), servers[1]);
    });

    test("slow start: a ramping server gets its weight times its ramp; at 0 it serves only when alone", () => {
      const servers = pool([1, 1, 1, 1]);
      const sel = use(make(), servers);
      const full = (share(picks(sel, 4000, ipv4)).d ?? 0) / 4000;
      servers[3].ramp = 0.5;
      sel.rebuild({ servers, step: true });
      const half = (share(picks(sel, 4000, ipv4)).d ?? 0) / 4000;
      // 25 × 0.5 among 75: 1/7 of the picks (ip_hash: of the clients), against 1/4 at full weight
      assert.ok(Math.abs(full - 0.25) < 0.03, `full weight: ${full}`);
      assert.ok(Math.abs(half - 1 / 7) < 0.03, `half way through its ramp: ${half}`);
      servers[3].ramp = 0;
      sel.rebuild({ servers, step: true });
      assert.equal(share(picks(sel, 2000, ipv4)).d, undefined, "at 0 it takes nothing while others can");
      for (const s of servers.slice(0, 3)) s.available = false;
      sel.rebuild({ servers });
      assert.equal(sel.pick(ctx("192.0.2.7")), servers[3], "but serves when it is the only one left");
    });

    test("a pool that shrinks to nothing and grows again works", () => {
      const servers = pool([1, 1]);
      const sel = use(make(), servers);
      assert.ok(sel.pick(ctx()));
      use(sel, []);
      assert.equal(sel.pick(ctx()), undefined);
      const again = pool([1], 3000);
      use(sel, again);
      assert.equal(sel.pick(ctx()), again[0]);
    });
  });
}

describe("round_robin: nginx smooth weighted round robin", () => {
  test("weights 5,1,1 give a a b a c a a", () => {
    const servers = pool([5, 1, 1]);
    assert.equal(
      names(smoothSchedule(servers.map((s, i) => Object.assign(s, { weight: [5, 1, 1][i] })))),
      "aabacaa",
    );
    // and the balancer's rebalanced 72,14,14 starts the same way
    applyWeights(servers);
    const sel = use(new RoundRobinSelector(), servers);
    assert.equal(names(picks(sel, 7)), "aabacaa");
  });

  test("every run of 100 picks gives exactly the weights, smoothly interleaved", () => {
    const servers = pool([50, 30, 20]);
    const sel = use(new RoundRobinSelector(), servers);
    const seq = picks(sel, 300);
    for (let run = 0; run < 3; run++) {
      assert.deepEqual(share(seq.slice(run * 100, run * 100 + 100)), { a: 50, b: 30, c: 20 });
    }
    const text = names(seq);
    assert.equal(text.slice(0, 10), "abcaabacba"); // nginx's sequence for 5:3:2
    // smooth: no server runs twice in a row more than its share allows, and every 10 picks hold 5/3/2 ± 1
    assert.ok(!/aaa|bb|cc/.test(text), `interleaved: ${text.slice(0, 40)}`);
    for (let i = 0; i + 10 <= 100; i++) {
      const w = share(seq.slice(i, i + 10));
      assert.ok(
        Math.abs((w.a ?? 0) - 5) <= 1 && Math.abs((w.b ?? 0) - 3) <= 1 && Math.abs((w.c ?? 0) - 2) <= 1,
      );
    }
  });

  test("right after an add or a remove, the next 100 picks follow the new weights exactly", () => {
    const servers = pool([50, 30, 20]);
    const sel = use(new RoundRobinSelector(), servers);
    picks(sel, 37); // somewhere in the middle of a period
    const grown = [...servers, ...pool([25], 2100, "d")];
    applyWeights(grown); // 50,30,20,25 of 125 → 40,24,16,20
    assert.deepEqual(
      grown.map((s) => s.weight),
      [40, 24, 16, 20],
    );
    use(sel, grown);
    assert.deepEqual(share(picks(sel, 100)), { a: 40, b: 24, c: 16, [grown[3].name]: 20 });
    picks(sel, 13);
    const shrunk = [grown[0], grown[2], grown[3]];
    applyWeights(shrunk); // 50,20,25 of 95 → 52,21,26 + 1
    use(sel, shrunk);
    assert.deepEqual(share(picks(sel, 100)), { a: 53, c: 21, [grown[3].name]: 26 });
  });

  test("the per-weight-class schedule equals nginx's plain loop for random pools", () => {
    let seed = 7;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    for (let k = 0; k < 300; k++) {
      const n = k % 10 === 0 ? 101 + rnd(300) : 1 + rnd(12);
      const servers = pool(Array.from({ length: n }, () => (rnd(4) === 0 ? 0 : rnd(k % 3 === 0 ? 3 : 60))));
      if (rnd(5) === 0) for (const s of servers) s.weight = 0; // all rounded down to 0
      const fast = smoothSchedule(servers);
      const slow = smoothScheduleReference(servers);
      assert.equal(fast.length, slow.length);
      for (let i = 0; i < fast.length; i++)
        assert.equal(fast[i], slow[i], `pool ${k} (${n} servers), pick ${i}`);
    }
  });

  test("an unavailable server's share goes to the others in their ratio", () => {
    const servers = pool([50, 30, 20]);
    servers[0].available = false;
    const sel = use(new RoundRobinSelector(), servers);
    assert.deepEqual(share(picks(sel, 50)), { b: 30, c: 20 });
  });
});

describe("least_conn", () => {
  test("idle: ties rotate and follow the weights exactly over total-weight picks", () => {
    const servers = pool([50, 30, 20]);
    const sel = use(new LeastConnSelector(), servers);
    const seq = picks(sel, 200);
    assert.notEqual(names(seq.slice(0, 3)), "aaa");
    assert.deepEqual(share(seq.slice(0, 100)), { a: 50, b: 30, c: 20 });
    assert.deepEqual(share(seq.slice(100)), { a: 50, b: 30, c: 20 });
    const equal = use(new LeastConnSelector(), pool([1, 1, 1]));
    assert.equal(names(picks(equal, 9)), "abcabcabc");
  });

  test("the server with the fewest in-flight requests relative to its weight wins", () => {
    const servers = pool([50, 30, 20]);
    const sel = use(new LeastConnSelector(), servers);
    const [a, b, c] = servers;
    a.inflight = 5; // 0.1
    b.inflight = 2; // 0.0667
    c.inflight = 1; // 0.05
    assert.equal(sel.pick(ctx()), c);
    c.inflight = 2; // 0.1 → b is lowest
    assert.equal(sel.pick(ctx()), b);
    b.inflight = 10;
    a.inflight = 0;
    assert.equal(sel.pick(ctx()), a);
    // simulate a proxy: every pick adds one in-flight request that stays open
    for (const s of servers) s.inflight = 0;
    const got: Server[] = [];
    for (let i = 0; i < 100; i++) {
      const s = sel.pick(ctx())!;
      s.inflight++;
      got.push(s);
    }
    assert.deepEqual(share(got), { a: 50, b: 30, c: 20 });
    // releasing c's requests makes c the least loaded
    c.inflight = 0;
    assert.equal(sel.pick(ctx()), c);
  });

  test("random load changes: every pick has the lowest inflight/weight among the servers it may use", () => {
    let seed = 99;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    for (const n of [1, 2, 7, 40, 150]) {
      const servers = pool(Array.from({ length: n }, () => rnd(10)));
      const sel = use(new LeastConnSelector(), servers);
      for (let step = 0; step < 3000; step++) {
        const op = rnd(10);
        if (op < 4) {
          const s = servers[rnd(n)];
          s.inflight = Math.max(0, s.inflight + (rnd(2) ? 1 : -1) * (1 + rnd(3)));
        } else if (op === 4) {
          const s = servers[rnd(n)];
          s.available = !s.available;
          sel.rebuild({ servers });
        }
        const tried = rnd(4) === 0 ? servers.filter(() => rnd(3) === 0) : null;
        const got = sel.pick(ctx("192.0.2.1", tried));
        const usable = servers.filter((s) => s.available && !tried?.includes(s));
        if (usable.length === 0) {
          assert.equal(got, undefined);
          continue;
        }
        assert.ok(got && usable.includes(got), `step ${step}: picked a usable server`);
        const weighted = usable.filter((s) => s.weight > 0);
        const field = got.weight > 0 ? weighted : usable;
        if (got.weight === 0)
          assert.equal(weighted.length, 0, "weight 0 only when no weighted server is usable");
        const w = (s: Server) => (got.weight > 0 ? s.weight : 1);
        for (const s of field) {
          assert.ok(
            got.inflight * w(s) <= s.inflight * w(got),
            `step ${step}: ${got.name} (${got.inflight}/${got.weight}) over ${s.name} (${s.inflight}/${s.weight})`,
          );
        }
      }
    }
  });

  test("ties between loaded servers rotate instead of always going to the first", () => {
    const servers = pool([1, 1, 1, 1]); // 25 each: equal loads are exact ties
    const sel = use(new LeastConnSelector(), servers);
    for (const s of servers) s.inflight = 3;
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const s = sel.pick(ctx())!;
      seen.add(s.name);
    }
    assert.equal(seen.size, 4);
  });
});

describe("ip_hash: weighted consistent hashing", () => {
  const ADDRS = [
    ...Array.from({ length: 10000 }, (_, i) => ipv4(i * 37 + 11)),
    ...Array.from({ length: 10000 }, (_, i) => ipv6(i)),
  ];

  function assign(sel: Selector): Map<string, Server> {
    const out = new Map<string, Server>();
    for (const ip of ADDRS) out.set(ip, sel.pick(ctx(ip))!);
    return out;
  }

  for (const weights of [
    [0, 0, 0, 0, 0],
    [10, 20, 30, 25, 15],
  ]) {
    test(`removing 1 of 5 servers moves only that server's clients (weights ${weights})`, () => {
      const servers = pool(weights);
      const sel = use(new IpHashSelector(), servers);
      const before = assign(sel);
      for (let gone = 0; gone < 5; gone++) {
        const rest = servers.filter((_, i) => i !== gone);
        applyWeights(rest);
        use(sel, rest);
        const after = assign(sel);
        let moved = 0;
        let movedOthers = 0;
        for (const [ip, s] of before) {
          if (after.get(ip) !== s) {
            moved++;
            if (s !== servers[gone]) movedOthers++;
          }
        }
        assert.equal(movedOthers, 0, `removing ${servers[gone].name} moved clients of other servers`);
        assert.ok(moved > 1000, `the removed server's clients moved (${moved})`);
        applyWeights(servers);
        use(sel, servers);
        assert.deepEqual(
          [...assign(sel)].filter(([ip, s]) => before.get(ip) !== s).length,
          0,
          "re-adding restores",
        );
      }
    });
  }

  test("shares follow the weights", () => {
    const servers = pool([10, 20, 30, 40]);
    const sel = use(new IpHashSelector(), servers);
    const got = share([...assign(sel).values()]);
    const total = ADDRS.length;
    for (const s of servers) {
      const expected = (total * s.weight) / 100;
      const n = got[s.name] ?? 0;
      assert.ok(Math.abs(n - expected) < expected * 0.15, `${s.name}: ${n}, expected about ${expected}`);
    }
  });

  test("rebalancing to 100 moves nobody: weights 1,1,1 and 20,20,20 (and 3:1 vs 75:25) hash the same", () => {
    const one = use(new IpHashSelector(), pool([1, 1, 1]));
    const twenty = use(new IpHashSelector(), pool([20, 20, 20]));
    const a = assign(one);
    const b = assign(twenty);
    for (const [ip, s] of a) assert.equal(b.get(ip)!.key, s.key);
    const x = assign(use(new IpHashSelector(), pool([3, 1])));
    const y = assign(use(new IpHashSelector(), pool([75, 25])));
    for (const [ip, s] of x) assert.equal(y.get(ip)!.key, s.key);
  });

  test("adding a server only takes clients for itself", () => {
    const servers = pool([1, 1, 1, 1]);
    const sel = use(new IpHashSelector(), servers);
    const before = assign(sel);
    const grown = [...servers, ...pool([1], 2500, "e")];
    applyWeights(grown);
    use(sel, grown);
    const after = assign(sel);
    let toNew = 0;
    for (const [ip, s] of before) {
      const now = after.get(ip)!;
      if (now !== s) {
        assert.equal(now, grown[4]);
        toNew++;
      }
    }
    assert.ok(toNew > 2500 && toNew < 5500, `about a fifth moved to the new server (${toNew})`);
  });

  test("an unavailable server's clients go to their next choice and come back; nobody else moves", () => {
    const servers = pool([1, 1, 1, 1, 1]);
    const sel = use(new IpHashSelector(), servers);
    const before = assign(sel);
    servers[2].available = false;
    sel.rebuild({ servers });
    const during = assign(sel);
    // the next choice is the same server that removal would give
    const removed = use(new IpHashSelector(), [servers[0], servers[1], servers[3], servers[4]]);
    const byRemoval = assign(removed);
    for (const [ip, s] of before) {
      const now = during.get(ip)!;
      assert.notEqual(now, servers[2]);
      if (s !== servers[2]) assert.equal(now, s);
      assert.equal(now, byRemoval.get(ip));
    }
    assert.deepEqual(assign(sel), during, "the next choices are stable (and cached)");
    // a second outage: both servers' clients go where removing both would send them
    servers[0].available = false;
    sel.rebuild({ servers });
    const twoDown = assign(sel);
    const removedTwo = assign(use(new IpHashSelector(), [servers[1], servers[3], servers[4]]));
    for (const [ip, s] of twoDown) assert.equal(s, removedTwo.get(ip));
    servers[0].available = true;
    servers[2].available = true;
    sel.rebuild({ servers });
    const after = assign(sel);
    for (const [ip, s] of before) assert.equal(after.get(ip), s);
  });

  test("a retry goes to the client's next choice, not the tried server", () => {
    const servers = pool([1, 1, 1]);
    const sel = use(new IpHashSelector(), servers);
    for (const ip of ADDRS.slice(0, 200)) {
      const first = sel.pick(ctx(ip))!;
      const second = sel.pick(ctx(ip, [first]))!;
      assert.notEqual(second, first);
      assert.equal(sel.pick(ctx(ip, [first])), second, "the next choice is stable");
    }
  });
});

describe("sticky wrapper and cookie value", () => {
  test("a cookie naming an available server selects it; unavailable or tried → inner pick", () => {
    const servers = pool([1, 1, 1]);
    const sticky = use(new StickySelector(new RoundRobinSelector(), "k"), servers) as StickySelector;
    const value = sticky.valueFor(servers[2]);
    for (let i = 0; i < 10; i++) assert.equal(sticky.pick(ctx("1.1.1.1", null, value)), servers[2]);
    assert.equal(sticky.lookup(value), servers[2]);
    assert.equal(sticky.lookup("nope"), undefined);
    assert.notEqual(sticky.pick(ctx("1.1.1.1", [servers[2]], value)), servers[2]);
    servers[2].available = false;
    sticky.rebuild({ servers });
    for (let i = 0; i < 10; i++) assert.notEqual(sticky.pick(ctx("1.1.1.1", null, value)), servers[2]);
    assert.equal(sticky.pick(ctx("1.1.1.1", null, "garbage!")) !== undefined, true);
  });

  test("values are opaque, stable across instances, and keyed by the secret", () => {
    const key = "127.0.0.1:2001";
    const v = stickyValue(key, undefined);
    assert.equal(stickyValue(key, undefined), v);
    assert.notEqual(stickyValue(key, "a"), stickyValue(key, "b"));
    assert.notEqual(stickyValue(key, "a"), v);
    assert.notEqual(stickyValue("127.0.0.1:2002", "a"), stickyValue(key, "a"));
    assert.match(v, /^[A-Za-z0-9_-]{16,}$/);
    for (const value of [v, stickyValue(key, "a")]) {
      for (const enc of ["utf8", "hex", "base64", "base64url"] as const) {
        const addr = Buffer.from(key).toString(enc);
        assert.ok(
          !value.includes(addr) && !Buffer.from(value, "base64url").toString("latin1").includes("127.0.0.1"),
        );
      }
    }
  });

  test("readCookie finds one cookie among many", () => {
    assert.equal(readCookie("a=1; switchyard_lb_sticky=xyz; b=2", "switchyard_lb_sticky"), "xyz");
    assert.equal(readCookie("switchyard_lb_sticky=xyz", "switchyard_lb_sticky"), "xyz");
    assert.equal(
      readCookie("x_switchyard_lb_sticky=no; switchyard_lb_sticky=yes", "switchyard_lb_sticky"),
      "yes",
    );
    assert.equal(readCookie("x_switchyard_lb_sticky=no", "switchyard_lb_sticky"), undefined);
    assert.equal(readCookie(undefined, "switchyard_lb_sticky"), undefined);
    assert.equal(readCookie("", "switchyard_lb_sticky"), undefined);
  });
});

describe("modes", () => {
  test("every accepted spelling maps to its canonical mode", () => {
    const cases: [string, string][] = [
      ["round_robin", "round_robin"],
      ["roundrobin", "round_robin"],
      ["RoundRobin", "round_robin"],
      ["round-robin", "round_robin"],
      ["ROUND_ROBIN", "round_robin"],
      ["least_conn", "least_conn"],
      ["leastconn", "least_conn"],
      ["least-conn", "least_conn"],
      ["LeastConn", "least_conn"],
      ["ip_hash", "ip_hash"],
      ["iphash", "ip_hash"],
      ["ip-hash", "ip_hash"],
      ["IPHash", "ip_hash"],
    ];
    for (const [input, mode] of cases) {
      assert.equal(parseMode(input), mode, input);
      assert.equal(createSelector(parseMode(input)).mode, mode);
    }
    assert.equal(parseMode(undefined), "round_robin");
    assert.equal(normalizeMode("random"), undefined);
  });

  test("an unknown mode is an error naming the valid modes", () => {
    assert.throws(
      () => parseMode("random"),
      (err: Error) => {
        assert.match(err.message, /unknown load-balancing mode "random"/);
        for (const m of MODES) assert.ok(err.message.includes(m), `names ${m}`);
        return true;
      },
    );
  });
});
