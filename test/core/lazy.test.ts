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
