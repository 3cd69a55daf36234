import * as assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { test } from "node:test";
import {
  type Backend,
  eventually,
  get,
  type Running,
  startBackend,
  startSwitchyard,
  tempDir,
  yamlConfig,
} from "../support/switchyard.ts";

const CLIENTS = 1000;
const clientIp = (i: number) => `203.0.${(i >> 8) & 255}.${i & 255}`;
const reloaded = (pattern: RegExp) => (r: Record<string, unknown>) =>
  typeof r.msg === "string" && r.msg.startsWith("config reloaded") && pattern.test(r.msg);

/** Runs `fn` over 0..n-1, `width` at a time. */
async function pool<T>(n: number, width: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

/** The backend each client IP reaches through `sy` (X-Forwarded-For from a trusted loopback peer). */
function byIp(sy: Running): Promise<string[]> {
  return pool(CLIENTS, 16, async (i) => {
    const r = await get(sy.proxy[0], "/", { host: "hash.test", headers: { "x-forwarded-for": clientIp(i) } });
    assert.equal(r.status, 200);
    return r.body.trim();
  });
}

/** The backend a sticky cookie reaches through `sy`, and the cookie it was (re)set to, if any. */
async function withCookie(
  sy: Running,
  cookie: string | undefined,
): Promise<{ server: string; cookie?: string }> {
  const r = await get(sy.proxy[0], "/", { host: "sticky.test", headers: cookie ? { cookie } : {} });
  assert.equal(r.status, 200);
  const set = r.headers["set-cookie"]?.find((c) => c.startsWith("switchyard_lb_sticky="));
  return { server: r.body.trim(), cookie: set?.split(";")[0] };
}

test("two instances (one with --workers 2) agree on sticky cookies and client IPs; removing a server moves only its clients", {
  timeout: 240_000,
}, async () => {
  const tmp = tempDir();
  const backends: Backend[] = [];
  for (let i = 1; i <= 5; i++) backends.push(await startBackend(`b-${i}`));
  const weights = [1, 2, 3, 1, 2];
  const conf = (list: Backend[]) => {
    const servers = list.map((b) => ({ name: b.name, url: b.url, weight: weights[backends.indexOf(b)] }));
    return yamlConfig({
      hash: {
        hosts: ["hash.test"],
        servers,
        extra: "    mode: ip_hash\n    options: { header: X-Forwarded-For, from: [127.0.0.1] }\n",
      },
      sticky: { hosts: ["sticky.test"], servers, extra: "    sticky: true\n    sticky_secret: s3cret\n" },
    });
  };
  const file = tmp.write("s.yaml", conf(backends));
  const [one, two] = await Promise.all([
    startSwitchyard(["serve", "-c", file], { timeoutMs: 90_000 }),
    startSwitchyard(["serve", "-c", file, "--workers", "2"], { timeoutMs: 90_000 }),
  ]);
  try {
    // the same client IP reaches the same server on either instance (and on either worker)
    const ipsOne = await byIp(one);
    const ipsTwo = await byIp(two);
    assert.deepEqual(ipsTwo, ipsOne, "both instances send every client IP to the same server");
    const spread = new Set(ipsOne);
    assert.equal(spread.size, 5, "the clients are spread over all servers");

    // a sticky cookie set by one instance reaches the same server on the other, for 1,000 clients
    const sticky = await pool(CLIENTS, 16, async (i) => {
      const first = await withCookie(i % 2 ? one : two, undefined);
      assert.ok(first.cookie, "a first request gets a cookie");
      const other = await withCookie(i % 2 ? two : one, first.cookie);
      assert.equal(other.server, first.server, `client ${i}: the other instance honours the cookie`);
      assert.equal(other.cookie, undefined, "and does not re-set it");
      return first;
    });

    // remove b-3 from the file; wait until both instances (and both workers) have applied it
    const gone = "b-3";
    writeFileSync(file, conf(backends.filter((b) => b.name !== gone)));
    await Promise.all([one.waitForLog(reloaded(/-b-3/)), two.waitForLog(reloaded(/-b-3/))]);
    const movedClient = ipsOne.indexOf(gone);
    await eventually(
      async () => {
        for (let k = 0; k < 20; k++) {
          const r = await get(two.proxy[0], "/", {
            host: "hash.test",
            headers: { "x-forwarded-for": clientIp(movedClient) },
          });
          if (r.body.trim() === gone) return false;
        }
        return true;
      },
      20_000,
      "both workers of the second instance dropped b-3",
    );

    const afterOne = await byIp(one);
    const afterTwo = await byIp(two);
    assert.deepEqual(afterTwo, afterOne, "the instances still agree after the removal");
    let moved = 0;
    for (let i = 0; i < CLIENTS; i++) {
      if (ipsOne[i] === gone) {
        assert.notEqual(afterOne[i], gone);
        moved++;
      } else assert.equal(afterOne[i], ipsOne[i], `client ${clientIp(i)} did not move`);
    }
    assert.ok(moved > 0, "b-3 had clients, and only they moved");

    // sticky: cookies of the remaining servers still pin on both; b-3's cookie gets a fresh pick
    const cookies = new Map(sticky.map((s) => [s.server, s.cookie!]));
    for (const [server, cookie] of cookies) {
      for (const sy of [one, two]) {
        const r = await withCookie(sy, cookie);
        if (server === gone) {
          assert.notEqual(r.server, gone);
          assert.ok(r.cookie && r.cookie !== cookie, "a stale cookie is replaced");
        } else {
          assert.equal(r.server, server, `${server}'s cookie still pins after the reload`);
          assert.equal(r.cookie, undefined);
        }
      }
    }
  } finally {
    const exits = await Promise.all([one.stop(), two.stop()]);
    await Promise.all(backends.map((b) => b.stop()));
    tmp.remove();
    for (const e of exits) assert.equal(e.code, 0);
  }
});
