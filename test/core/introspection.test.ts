import * as assert from "node:assert/strict";
import * as http from "node:http";
import { networkInterfaces } from "node:os";
import { describe, test } from "node:test";
import { STICKY_COOKIE } from "../../src/selectors/index.ts";
import { backend } from "../support/backend.ts";
import { addServer, startBalancer } from "../support/balancer.ts";
import { cleanupAfter } from "../support/cleanup.ts";
import { get } from "../support/http.ts";
import { freePort } from "../support/ports.ts";

const DECISION = "switchyard-decision";

/** A non-loopback IPv4 address of this machine, if it has one. */
function lanAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return undefined;
}

describe("decision introspection (switchyard-debug → switchyard-decision)", { timeout: 30000 }, () => {
  test("absent without the header; with it from loopback (no token): service, server, mode, why, tries", async (t) => {
    const c = cleanupAfter(t);
    const [a, b] = await Promise.all([backend("a", { cleanup: c }), backend("b", { cleanup: c })]);
    const { lb, port } = await startBalancer(c, [], { link: "api" });
    addServer(lb, { name: "api-1", url: a.url });
    addServer(lb, { name: "api-2", url: b.url });
    const plain = await get(port);
    assert.equal(plain.headers[DECISION], undefined, "nothing leaks without the header");
    const r = await get(port, "/", { headers: { "switchyard-debug": "1" } });
    assert.match(
      String(r.headers[DECISION]),
      /^service=api; server=api-[12]; mode=round_robin; why="round robin"; tries=1$/,
    );
    assert.ok(
      String(r.headers[DECISION]).includes(`server=api-${r.body === "a" ? 1 : 2};`),
      "names the server that answered",
    );
  });

  test("ip_hash names the client address and its rank; sticky says cookie; least_conn its load", async (t) => {
    const c = cleanupAfter(t);
    const [a, b] = await Promise.all([backend("a", { cleanup: c }), backend("b", { cleanup: c })]);
    const hash = await startBalancer(c, [], {
      link: "api",
      mode: "ip_hash",
      options: { from: ["127.0.0.1"] },
    });
    addServer(hash.lb, { name: "api-1", url: a.url });
    addServer(hash.lb, { name: "api-2", url: b.url });
    const r = await get(hash.port, "/", { headers: { "switchyard-debug": "x", "x-real-ip": "203.0.113.9" } });
    assert.match(
      String(r.headers[DECISION]),
      /mode=ip_hash; why="hash 203\.0\.113\.9 -> 1st choice"; tries=1$/,
    );
    // its server out: the next choice, and the header says so
    const first = hash.lb.find(String(r.headers[DECISION]).match(/server=([^;]+)/)![1])!;
    hash.lb.setAdminState(first, "maint");
    const r2 = await get(hash.port, "/", {
      headers: { "switchyard-debug": "x", "x-real-ip": "203.0.113.9" },
    });
    assert.match(String(r2.headers[DECISION]), /why="hash 203\.0\.113\.9 -> 2nd choice"/);

    const sticky = await startBalancer(c, [], { link: "web", sticky: true });
    addServer(sticky.lb, { name: "web-1", url: a.url });
    const s1 = await get(sticky.port, "/", { headers: { "switchyard-debug": "x" } });
    const cookie = s1.headers["set-cookie"]!.find((x) => x.startsWith(STICKY_COOKIE))!.split(";")[0];
    const s2 = await get(sticky.port, "/", { headers: { "switchyard-debug": "x", cookie } });
    assert.match(String(s2.headers[DECISION]), /why="sticky cookie"/);

    const lc = await startBalancer(c, [], { link: "lc", mode: "least_conn" });
    addServer(lc.lb, { name: "lc-1", url: a.url, weight: 3 });
    addServer(lc.lb, { name: "lc-2", url: b.url, weight: 1 });
    const l = await get(lc.port, "/", { headers: { "switchyard-debug": "x" } });
    assert.match(
      String(l.headers[DECISION]),
      /server=lc-1; mode=least_conn; why="least_conn 0\/75"; tries=1/,
    );
  });

  test("a retry after a refused connection says so and counts the tries", async (t) => {
    const c = cleanupAfter(t);
    const a = await backend("a", { cleanup: c });
    const deadPort = await freePort(); // nobody listens there: it refuses
    const { lb, port } = await startBalancer(c, [], { link: "api" });
    addServer(lb, { name: "dead", url: `http://127.0.0.1:${deadPort}` });
    addServer(lb, { name: "live", url: a.url });
    const r = await get(port, "/", { headers: { "switchyard-debug": "1" } });
    assert.equal(r.body, "a");
    assert.equal(
      r.headers[DECISION],
      'service=api; server=live; mode=round_robin; why="retry after refused connection"; tries=2',
    );
  });

  test("with a token: only the token unlocks it (any client); without one, non-loopback clients never get it", async (t) => {
    const c = cleanupAfter(t);
    const a = await backend("a", { cleanup: c });
    const { lb, port } = await startBalancer(c, [], { link: "api", debugToken: "s3cret" });
    addServer(lb, { name: "api-1", url: a.url });
    assert.equal(
      (await get(port, "/", { headers: { "switchyard-debug": "1" } })).headers[DECISION],
      undefined,
    );
    assert.equal(
      (await get(port, "/", { headers: { "switchyard-debug": "s3cre" } })).headers[DECISION],
      undefined,
    );
    assert.match(
      String((await get(port, "/", { headers: { "switchyard-debug": "s3cret" } })).headers[DECISION]),
      /server=api-1/,
    );

    const lan = lanAddress();
    if (lan === undefined) {
      t.skip("this machine has no non-loopback IPv4 address to test a remote client with");
      return;
    }
    const open = await startBalancer(c, [], { link: "api" });
    addServer(open.lb, { name: "api-1", url: a.url });
    const server = http.createServer(open.lb.handle);
    server.listen(0, lan);
    await new Promise((r) => server.once("listening", r));
    c.add(() => new Promise<void>((r) => server.close(() => r())));
    const lanPort = (server.address() as { port: number }).port;
    const res = await get(`${lan}:${lanPort}`, "/", { headers: { "switchyard-debug": "1" } });
    assert.equal(res.status, 200);
    assert.equal(res.headers[DECISION], undefined, "a non-loopback client without a token set gets nothing");
    open.lb.debugToken = "t0ken";
    const ok = await get(`${lan}:${lanPort}`, "/", { headers: { "switchyard-debug": "t0ken" } });
    assert.match(String(ok.headers[DECISION]), /server=api-1/, "the token works from anywhere");
  });
});
