/**
 * A program that only picks never starts the HTTP/1 client: the path decision (and the parser
 * binding's capability check) happens at the first request that is forwarded. Shown with an
 * invalid SWITCHYARD_HTTP1, which that decision refuses.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { promisify } from "node:util";

const run = promisify(execFile);
const index = new URL("../../src/index.ts", import.meta.url).href;

test("pick() alone never decides the HTTP/1 path; the first forwarded request does", async () => {
  const script = `
    import http from "node:http";
    const { LoadBalancer, Server } = await import(${JSON.stringify(index)});
    const lb = new LoadBalancer({ link: "api" });
    lb.addServer(new Server({ name: "a", url: "http://127.0.0.1:9" }));
    console.log("picked", lb.pick(new http.IncomingMessage(null)).name);
    const req = Object.assign(new http.IncomingMessage(null), { method: "GET", url: "/", headers: { host: "x" }, rawHeaders: ["Host", "x"] });
    try {
      lb.handle(req, new http.ServerResponse(req));
      console.log("forwarded");
    } catch (err) {
      console.log("refused:", err.message);
    }
  `;
  const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], {
    env: { ...process.env, SWITCHYARD_HTTP1: "bogus" },
    timeout: 30_000,
  });
  const lines = stdout.trim().split("\n");
  assert.equal(lines[0], "picked a");
  assert.match(lines[1], /^refused: SWITCHYARD_HTTP1=bogus: expected native, fallback or auto/);
});

test("the library never loads the HTTP/1 front; the client's parser binding waits for the first forwarded request", async () => {
  const script = `
    import { registerHooks } from "node:module";
    const loaded = [];
    const asked = [];
    registerHooks({
      resolve(specifier, context, next) {
        asked.push(specifier);
        return next(specifier, context);
      },
      load(url, context, next) {
        loaded.push(url);
        return next(url, context);
      },
    });
    const http = await import("node:http");
    const { LoadBalancer, Server } = await import(${JSON.stringify(index)});
    const http1 = () => loaded.filter((u) => u.includes("/src/http1/")).map((u) => u.slice(u.lastIndexOf("/") + 1));
    const binding = () => asked.includes("_http_common");
    const lb = new LoadBalancer({ link: "api" });
    lb.addServer(new Server({ name: "a", url: "http://127.0.0.1:9" }));
    lb.pick(new http.IncomingMessage(null));
    console.log(JSON.stringify({ modules: http1(), binding: binding() }));
    const front = http.createServer(lb.handle).listen(0, "127.0.0.1");
    await new Promise((ok) => front.once("listening", ok));
    const res = await fetch("http://127.0.0.1:" + front.address().port + "/");
    await res.text();
    front.close();
    console.log(JSON.stringify({ modules: http1(), binding: binding(), status: res.status }));
  `;
  const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], {
    env: { ...process.env, SWITCHYARD_HTTP1: "native" },
    timeout: 30_000,
  });
  const [picked, forwarded] = stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { modules: string[]; binding: boolean; status?: number });
  const front = [
    "front.ts",
    "server.ts",
    "server-connection.ts",
    "server-events.ts",
    "request.ts",
    "response.ts",
    "fallback-server.ts",
  ];
  for (const f of front) assert.ok(!picked.modules.includes(f), `pick() loaded the front's ${f}`);
  assert.equal(picked.binding, false, "pick() reached the parser binding");
  // the client's modules are loaded with the library (a static import), idle until then
  assert.ok(picked.modules.includes("client.ts"));
  // a forwarded request (to a closed port: 502) starts the client on the binding, still without the front
  assert.equal(forwarded.status, 502);
  assert.equal(forwarded.binding, true, "the first forwarded request checks the parser binding");
  for (const f of front) assert.ok(!forwarded.modules.includes(f), `forwarding loaded the front's ${f}`);
});
