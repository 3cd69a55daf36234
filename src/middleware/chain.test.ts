import * as assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { after, before, test } from "node:test";
import { pino } from "pino";
import { RealIpResolver } from "../balancer/realip.ts";
import { Chain, type Next } from "./chain.ts";
import { kRerouted, type Middleware, Reroute, type ReroutedRequest } from "./types.ts";

const lines: Record<string, unknown>[] = [];
const logger = pino(
  { level: "info" },
  new Writable({
    write(chunk, _enc, done) {
      lines.push(JSON.parse(String(chunk)));
      done();
    },
  }),
);
const counted: string[] = [];

/** Throws on /boom (request phase) and /boom-head (response head). */
const flaky: Middleware = {
  kind: "request_headers",
  request(req) {
    if (req.url === "/boom") throw new Error("bad middleware");
    return undefined;
  },
  head(req) {
    if (req.url === "/boom-head") throw new Error("bad head");
    return undefined;
  },
};
const chain = new Chain([flaky], logger, (m, s) => counted.push(`${m} ${s}`));
/** Where requests go after the chain: answers like a backend would. */
const next: Next = {
  handle(_req, res) {
    res.writeHead(200, ["content-type", "text/plain", "content-length", "2"]);
    res.end("ok");
  },
  handleUpgrade(_req, socket) {
    socket.end();
  },
  clientIp: () => "127.0.0.1",
  realIp: new RealIpResolver(),
};
const server = http.createServer((req, res) => chain.handle(req, res, next));
let base: string;
before(async () => {
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => server.close());

test("a middleware that throws answers 500 for that request only and is logged once a minute", async () => {
  for (let i = 0; i < 5; i++) {
    const r = await fetch(`${base}/boom`);
    assert.equal(r.status, 500);
    assert.equal(await r.text(), "Internal Server Error\n");
    const ok = await fetch(`${base}/fine`);
    assert.equal(ok.status, 200);
    assert.equal(await ok.text(), "ok");
  }
  const head = await fetch(`${base}/boom-head`);
  assert.equal(head.status, 500);
  assert.equal(await head.text(), "Internal Server Error\n");
  const logged = lines.filter((l) => typeof l.msg === "string" && l.msg.startsWith("middleware"));
  // six failures of one middleware within a minute: one line, not one per request
  assert.equal(logged.length, 1, JSON.stringify(logged));
  assert.equal(logged[0].middleware, "request_headers");
  assert.equal(counted.filter((c) => c === "request_headers 500").length, 5);
});

test("a Reroute goes to the target bound for its service name; an unbound name answers 500", async () => {
  const rerouting: Middleware = {
    kind: "rules",
    request(req) {
      if (req.url === "/route") return new Reroute("other");
      if (req.url === "/nowhere") return new Reroute("nowhere");
      return undefined;
    },
  };
  const c = new Chain([rerouting], logger, () => {});
  let routed = 0;
  c.bindRoutes(
    (name) =>
      name === "other"
        ? {
            handle(req, res) {
              routed++;
              res.writeHead(200, ["content-length", "6"]);
              res.end(`routed`);
              assert.equal((req as ReroutedRequest)[kRerouted], 1);
            },
            handleUpgrade(_req, socket) {
              socket.end();
            },
          }
        : undefined,
    ["other", "nowhere"],
  );
  const s = http.createServer((req, res) => c.handle(req, res, next));
  await new Promise<void>((ok) => s.listen(0, "127.0.0.1", ok));
  after(() => s.close());
  const at = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  const r = await fetch(`${at}/route`);
  assert.deepEqual([r.status, await r.text()], [200, "routed"]);
  assert.equal(routed, 1);
  const own = await fetch(`${at}/own`);
  assert.deepEqual([own.status, await own.text()], [200, "ok"]);
  const bad = await fetch(`${at}/nowhere`);
  assert.equal(bad.status, 500);
  await bad.text();
  const logged = lines.filter((l) => l.middleware === "rules");
  assert.equal(logged.length, 1);
  assert.match(String((logged[0].err as { message: string }).message), /`route nowhere` names no service/);
});
