import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import * as http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Cleanup, listen } from "../../test/support/cleanup.ts";
import { DASHBOARD_CSP, serveDashboard } from "./dashboard.ts";

const run = promisify(execFile);

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A server that answers with serveDashboard, or 404 "not mine" when it returns false. */
async function start(
  cleanup: Cleanup,
): Promise<(path: string, init?: http.RequestOptions) => Promise<Reply>> {
  const server = http.createServer((req, res) => {
    if (serveDashboard(req, res, (req.url ?? "/").split("?")[0])) return;
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("not mine");
  });
  const port = await listen(server, cleanup);
  return (path, init = {}) =>
    new Promise((ok, fail) => {
      const req = http.request({ host: "127.0.0.1", port, path, agent: false, ...init }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => ok({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on("error", fail);
      req.end();
    });
}

test("GET / answers the HTML shell with a strict CSP, nosniff, no-cache and an ETag", async (t) => {
  const cleanup = new Cleanup();
  t.after(() => cleanup.run());
  const get = await start(cleanup);
  const r = await get("/");
  assert.equal(r.status, 200);
  assert.equal(r.headers["content-type"], "text/html; charset=utf-8");
  assert.equal(r.headers["content-security-policy"], DASHBOARD_CSP);
  assert.match(DASHBOARD_CSP, /script-src 'self';/);
  assert.doesNotMatch(DASHBOARD_CSP, /unsafe/);
  assert.equal(r.headers["x-content-type-options"], "nosniff");
  assert.equal(r.headers["cache-control"], "no-cache");
  assert.match(String(r.headers.etag), /^"[A-Za-z0-9_-]{27}"$/);
  assert.equal(Number(r.headers["content-length"]), Buffer.byteLength(r.body));
  assert.match(r.body, /<script type="module" src="\/dashboard\/app\.js"><\/script>/);
  // a query string does not change what is served
  const q = await get("/?x=1");
  assert.equal(q.headers.etag, r.headers.etag);
});

test("If-None-Match with the current ETag gets a 304 without a body; another tag gets the file", async (t) => {
  const cleanup = new Cleanup();
  t.after(() => cleanup.run());
  const get = await start(cleanup);
  const first = await get("/dashboard/app.js");
  assert.equal(first.status, 200);
  assert.equal(first.headers["content-type"], "text/javascript; charset=utf-8");
  const etag = String(first.headers.etag);

  const again = await get("/dashboard/app.js", { headers: { "if-none-match": etag } });
  assert.equal(again.status, 304);
  assert.equal(again.body, "");
  assert.equal(again.headers.etag, etag);
  assert.equal(again.headers["content-security-policy"], DASHBOARD_CSP);

  const listed = await get("/dashboard/app.js", { headers: { "if-none-match": `"other", W/${etag}` } });
  assert.equal(listed.status, 304);

  const stale = await get("/dashboard/app.js", { headers: { "if-none-match": '"stale"' } });
  assert.equal(stale.status, 200);
  assert.equal(stale.body, first.body);

  // each asset has its own tag
  const css = await get("/dashboard/app.css");
  assert.equal(css.status, 200);
  assert.equal(css.headers["content-type"], "text/css; charset=utf-8");
  assert.notEqual(css.headers.etag, etag);
});

test("HEAD answers the headers only", async (t) => {
  const cleanup = new Cleanup();
  t.after(() => cleanup.run());
  const get = await start(cleanup);
  const full = await get("/dashboard/app.css");
  const head = await get("/dashboard/app.css", { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(head.body, "");
  assert.equal(head.headers["content-length"], full.headers["content-length"]);
  assert.equal(head.headers.etag, full.headers.etag);
});

test("unknown paths and other methods are left to the caller (false)", async (t) => {
  const cleanup = new Cleanup();
  t.after(() => cleanup.run());
  const get = await start(cleanup);
  for (const path of [
    "/dashboard/nope.js",
    "/dashboard/",
    "/dashboard",
    "/index.html",
    "/api/health",
    "/dashboard/../app.js",
  ]) {
    const r = await get(path);
    assert.equal(r.status, 404, path);
    assert.equal(r.body, "not mine", path);
  }
  for (const method of ["POST", "PUT", "DELETE"]) {
    const r = await get("/", { method });
    assert.equal(r.status, 404, method);
    assert.equal(r.body, "not mine", method);
  }
});

test("the shell references only assets that are served, and has no inline script or style (the CSP would block them)", async (t) => {
  const cleanup = new Cleanup();
  t.after(() => cleanup.run());
  const get = await start(cleanup);
  const html = (await get("/")).body;
  const refs = [...html.matchAll(/(?:src|href)="(\/dashboard\/[^"]+)"/g)].map((m) => m[1]);
  assert.ok(refs.length >= 3, `assets referenced: ${refs.join(", ")}`);
  for (const ref of refs) assert.equal((await get(ref)).status, 200, ref);
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, "inline <script>");
  assert.doesNotMatch(html, /<style/, "inline <style>");
  assert.doesNotMatch(html, /\sstyle=/, "style attribute");
  assert.doesNotMatch(html, /\son[a-z]+=/, "inline event handler");
  assert.doesNotMatch(html, /https?:\/\//, "no CDN or other origin");
  // every file in the asset folder is one the module serves
  const files = readdirSync(new URL("./dashboard/", import.meta.url));
  for (const f of files) {
    const path = f === "index.html" ? "/" : `/dashboard/${f}`;
    assert.equal((await get(path)).status, 200, f);
  }
  const js = readFileSync(new URL("./dashboard/app.js", import.meta.url), "utf8");
  assert.doesNotMatch(js, /https?:\/\/(?!www\.w3\.org\/2000\/svg)/, "app.js fetches nothing off-origin");
});

test("the build copies every asset beside the compiled module (npm run build runs scripts/copy-assets.ts)", async (t) => {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
  assert.match(pkg.scripts.build, /tsc -p tsconfig\.build\.json && node scripts\/copy-assets\.ts$/);
  assert.deepEqual(pkg.files, ["dist", "docs", "examples", "README.md"]);
  const out = mkdtempSync(join(tmpdir(), "switchyard-assets-"));
  t.after(() => rmSync(out, { recursive: true, force: true }));
  await run(process.execPath, [fileURLToPath(new URL("../../scripts/copy-assets.ts", import.meta.url)), out]);
  const src = new URL("./dashboard/", import.meta.url);
  const files = readdirSync(src).sort();
  assert.deepEqual(readdirSync(join(out, "admin/dashboard")).sort(), files);
  for (const f of files) {
    assert.ok(readFileSync(join(out, "admin/dashboard", f)).equals(readFileSync(new URL(f, src))), f);
  }
});
