/**
 * The admin surface's refusals, against a real `switchyard serve`: a set token on a loopback
 * address (it used to be ignored there), Host (DNS rebinding) and Origin checks, JSON-only
 * writes, bad bodies and unknown names; the token never reaches the logs.
 */
import * as assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { openEvents } from "../support/admin.ts";
import {
  type Backend,
  get,
  type Running,
  serveYaml,
  startBackend,
  startSwitchyard,
  tempDir,
  yamlConfig,
} from "../support/switchyard.ts";

const TOKEN = "t0ken-Zq8-admin-secret";
const auth = { authorization: `Bearer ${TOKEN}` };

describe("admin security: token in the file, admin on loopback", () => {
  const tmp = tempDir();
  let backend: Backend;
  let sy: Running;
  let port: string;

  before(async () => {
    backend = await startBackend("sec-1");
    const yaml = yamlConfig({
      web: { hosts: ["*"], servers: [{ name: "web-1", url: backend.url }] },
    }).replace("admin: 127.0.0.1:0\n", `admin: { address: "127.0.0.1:0", token: "${TOKEN}" }\n`);
    sy = await startSwitchyard(["serve", "-c", tmp.write("s.yaml", yaml)]);
    port = sy.admin!.split(":").pop()!;
  });
  after(async () => {
    const exit = await sy.stop();
    await backend.stop();
    tmp.remove();
    assert.equal(exit.code, 0);
    // never the token in any log line or on stderr
    assert.ok(!sy.lines.join("\n").includes(TOKEN), "the token is not logged");
    assert.ok(!sy.stderr().includes(TOKEN), "the token is not on stderr");
  });

  test("the start-up log says a token is required (it said 'no token' on loopback)", async () => {
    const rec = await sy.waitForLog((r) => r.component === "admin" && typeof r.auth === "string");
    assert.equal(rec.auth, "bearer token");
    assert.match(String(rec.msg), /requires Authorization: Bearer <token>/);
  });

  test("a loopback admin with a token set refuses requests without it: 401 + WWW-Authenticate: Bearer", async () => {
    for (const path of ["/api/health", "/api/health/web", "/metrics", "/api/stats", "/api/events", "/nope"]) {
      const r = await get(sy.admin!, path);
      assert.equal(r.status, 401, path);
      assert.match(String(r.headers["www-authenticate"]), /^Bearer/);
      assert.match(String(r.headers["content-type"]), /application\/json/);
      assert.ok(JSON.parse(r.body).error);
    }
    const wrong = await get(sy.admin!, "/api/health", { headers: { authorization: "Bearer wrong" } });
    assert.equal(wrong.status, 401);
    const prefix = await get(sy.admin!, "/api/health", {
      headers: { authorization: `Bearer ${TOKEN.slice(0, -1)}` },
    });
    assert.equal(prefix.status, 401, "a prefix of the token is not the token");
    const longer = await get(sy.admin!, "/api/health", { headers: { authorization: `Bearer ${TOKEN}x` } });
    assert.equal(longer.status, 401);
    const bare = await get(sy.admin!, "/api/health", { headers: { authorization: TOKEN } });
    assert.equal(bare.status, 401, "the token without the Bearer scheme");
    const write = await get(sy.admin!, "/api/services/web/servers/web-1/maint", {
      method: "POST",
      headers: { "content-type": "application/json" },
    });
    assert.equal(write.status, 401);
    const ok = await get(sy.admin!, "/api/health", { headers: auth });
    assert.equal(ok.status, 200);
    assert.equal(JSON.parse(ok.body).web.status, "healthy");
    const lower = await get(sy.admin!, "/api/health", { headers: { authorization: `bearer ${TOKEN}` } });
    assert.equal(lower.status, 200, "the scheme is case-insensitive");
  });

  test("Host must be the admin itself, localhost or loopback (DNS rebinding): else 403", async () => {
    for (const host of [
      "evil.example",
      `evil.example:${port}`,
      "localhost.evil.example",
      "10.1.2.3",
      "[::2]",
    ]) {
      const r = await get(sy.admin!, "/api/health", { host, headers: auth });
      assert.equal(r.status, 403, host);
      assert.match(JSON.parse(r.body).error, /Host/);
    }
    // refused before the token is looked at: the token does not help a rebinding page
    const noToken = await get(sy.admin!, "/api/health", { host: "evil.example" });
    assert.equal(noToken.status, 403);
    for (const host of [
      `localhost:${port}`,
      `127.0.0.1:${port}`,
      "127.0.0.1",
      `[::1]:${port}`,
      "LOCALHOST",
      "127.1.2.3",
    ]) {
      const r = await get(sy.admin!, "/api/health", { host, headers: auth });
      assert.equal(r.status, 200, host);
    }
  });

  test("a foreign Origin gets 403; the admin's own origin is fine", async () => {
    for (const origin of [
      "http://evil.example",
      `http://evil.example:${port}`,
      "null",
      `https://127.0.0.1:${port}`,
      `http://127.0.0.1:${Number(port) + 1}`,
    ]) {
      const r = await get(sy.admin!, "/api/health", { headers: { ...auth, origin } });
      assert.equal(r.status, 403, origin);
      assert.match(JSON.parse(r.body).error, /Origin/);
      const w = await get(sy.admin!, "/api/services/web/servers/web-1/maint", {
        method: "POST",
        headers: { ...auth, origin, "content-type": "application/json" },
      });
      assert.equal(w.status, 403, `write from ${origin}`);
    }
    const same = await get(sy.admin!, "/api/health", {
      headers: { ...auth, origin: `http://127.0.0.1:${port}` },
    });
    assert.equal(same.status, 200);
  });

  test("the dashboard shell and assets load without the token, behind the Host/Origin checks; its data needs it", async () => {
    for (const path of ["/", "/dashboard/app.js", "/dashboard/app.css"]) {
      const r = await get(sy.admin!, path);
      assert.equal(r.status, 200, path);
      assert.ok(!r.body.includes(TOKEN));
      const rebound = await get(sy.admin!, path, { host: "evil.example" });
      assert.equal(rebound.status, 403, `${path} with a foreign Host`);
      const framed = await get(sy.admin!, path, { headers: { origin: "http://evil.example" } });
      assert.equal(framed.status, 403, `${path} from a foreign Origin`);
    }
    assert.match((await get(sy.admin!, "/")).headers["content-type"] ?? "", /text\/html/);
    assert.equal((await get(sy.admin!, "/dashboard/nope.js")).status, 401, "not an asset: the API's rules");
    assert.equal((await get(sy.admin!, "/api/stats")).status, 401);
    const post = await get(sy.admin!, "/", {
      method: "POST",
      headers: { "content-type": "application/json" },
    });
    assert.equal(post.status, 401, "only GET/HEAD of the shell go without the token");
  });

  test("writes take JSON only (415), malformed JSON is 400, unknown names 404, wrong method 405", async () => {
    const url = "/api/services/web/servers/web-1/drain";
    const post = (path: string, headers: Record<string, string>, body?: string, method = "POST") =>
      new Promise<{ status: number; body: string; headers: Record<string, unknown> }>((ok, fail) => {
        import("node:http").then(({ request }) => {
          const [h, p] = [sy.admin!.slice(0, sy.admin!.lastIndexOf(":")), Number(port)];
          const req = request({ host: h, port: p, path, method, headers: { ...auth, ...headers } }, (res) => {
            let text = "";
            res.setEncoding("utf8");
            res.on("data", (c: string) => (text += c));
            res.on("end", () => ok({ status: res.statusCode ?? 0, body: text, headers: res.headers }));
          });
          req.on("error", fail);
          req.end(body);
        }, fail);
      });
    for (const type of [
      undefined,
      "text/plain",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
    ]) {
      const r = await post(url, type ? { "content-type": type } : {}, '{"wait":"1s"}');
      assert.equal(r.status, 415, String(type));
      assert.match(JSON.parse(r.body).error, /application\/json/);
    }
    const bad = await post(url, { "content-type": "application/json" }, "{wait: 1s");
    assert.equal(bad.status, 400);
    assert.match(JSON.parse(bad.body).error, /malformed JSON/);
    const notObject = await post(url, { "content-type": "application/json" }, "[1]");
    assert.equal(notObject.status, 400);
    const badWait = await post(url, { "content-type": "application/json" }, '{"wait":"soon"}');
    assert.equal(badWait.status, 400);
    assert.match(JSON.parse(badWait.body).error, /wait/);
    for (const weight of ["-1", "1.5", '"30"', "null"]) {
      const r = await post(
        "/api/services/web/servers/web-1/weight",
        { "content-type": "application/json" },
        `{"weight":${weight}}`,
        "PUT",
      );
      assert.equal(r.status, 400, weight);
      assert.match(JSON.parse(r.body).error, /weight/);
    }
    const svc = await post(
      "/api/services/nope/servers/web-1/maint",
      { "content-type": "application/json" },
      "{}",
    );
    assert.equal(svc.status, 404);
    assert.match(JSON.parse(svc.body).error, /no service named "nope"/);
    const srv = await post(
      "/api/services/web/servers/nope/maint",
      { "content-type": "application/json" },
      "{}",
    );
    assert.equal(srv.status, 404);
    assert.match(JSON.parse(srv.body).error, /no server named "nope"/);
    const action = await post(
      "/api/services/web/servers/web-1/explode",
      { "content-type": "application/json" },
      "{}",
    );
    assert.equal(action.status, 404);
    const health = await get(sy.admin!, "/api/health/nope", { headers: auth });
    assert.equal(health.status, 404);
    assert.ok(JSON.parse(health.body).error);
    const getWrite = await get(sy.admin!, url, { headers: auth });
    assert.equal(getWrite.status, 405);
    assert.equal(getWrite.headers.allow, "POST");
    const putRead = await post("/api/health", { "content-type": "application/json" }, "{}", "PUT");
    assert.equal(putRead.status, 405);
    const big = await post(url, { "content-type": "application/json" }, `{"x":"${"a".repeat(20_000)}"}`);
    assert.equal(big.status, 413);
  });
});

test("SWITCHYARD_ADMIN_TOKEN is required on a loopback admin too", async (t) => {
  const backend = await startBackend("sec-env", 0, t);
  const yaml = yamlConfig({ web: { hosts: ["*"], servers: [{ name: "e-1", url: backend.url }] } });
  const sy = await serveYaml(t, yaml, [], { env: { SWITCHYARD_ADMIN_TOKEN: TOKEN } });
  assert.equal((await get(sy.admin!, "/api/health")).status, 401);
  assert.equal((await get(sy.admin!, "/api/health", { headers: auth })).status, 200);
  assert.equal((await sy.stop()).code, 0);
  assert.ok(!sy.lines.join("\n").includes(TOKEN));
});

test("a token changed by a reload: the old one is refused and event streams opened with it end", async (t) => {
  const backend = await startBackend("sec-reload", 0, t);
  const yaml = (token: string) =>
    yamlConfig({ web: { hosts: ["*"], servers: [{ name: "r-1", url: backend.url }] } }).replace(
      "admin: 127.0.0.1:0\n",
      `admin: { address: "127.0.0.1:0", token: "${token}" }\n`,
    );
  const sy = await serveYaml(t, yaml("first-token"));
  const stream = await openEvents(sy.admin!, { authorization: "Bearer first-token" });
  const ended = new Promise<void>((ok) => stream.response.once("close", () => ok()));
  writeFileSync(sy.file, yaml("second-token"));
  sy.child.kill("SIGHUP");
  await sy.waitForLog((r) => /config reloaded: .*admin token/.test(String(r.msg)), 10_000);
  await ended;
  const old = await get(sy.admin!, "/api/health", { headers: { authorization: "Bearer first-token" } });
  assert.equal(old.status, 401);
  const fresh = await get(sy.admin!, "/api/health", { headers: { authorization: "Bearer second-token" } });
  assert.equal(fresh.status, 200);
  assert.equal((await sy.stop()).code, 0);
  assert.ok(!sy.lines.join("\n").includes("first-token") && !sy.lines.join("\n").includes("second-token"));
});
