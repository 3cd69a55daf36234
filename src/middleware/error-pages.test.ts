import * as assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { ErrorPages } from "./error-pages.ts";

const dir = mkdtempSync(join(tmpdir(), "sy-pages-"));
after(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, "503.html"), "<p>later</p>");
writeFileSync(join(dir, "429.json"), '{"error":"slow down"}');
const pages = new ErrorPages({
  kind: "error_pages",
  pages: { 503: join(dir, "503.html"), 429: join(dir, "429.json") },
});
const req = {} as IncomingMessage;
const res = {} as ServerResponse;

test("a listed status: the page replaces the body; meaningful headers stay", () => {
  const h = ["content-type", "text/plain", "content-length", "99", "Retry-After", "3", "x-backend", "b"];
  const f = pages.head(req, res, 503, h);
  assert.ok(f);
  assert.deepEqual(h, [
    "Retry-After",
    "3",
    "content-type",
    "text/html; charset=utf-8",
    "content-length",
    "12",
    "cache-control",
    "no-store",
  ]);
  const out: string[] = [];
  f.next = { write: () => assert.fail("nothing before the end"), end: (c) => out.push(String(c)) };
  assert.equal(f.write(Buffer.from("backend body")), true);
  f.end(undefined);
  assert.deepEqual(out, ["<p>later</p>"]);
  const j = ["content-type", "text/plain"];
  pages.head(req, res, 429, j);
  assert.equal(j[j.indexOf("content-type") + 1], "application/json");
});

test("another status is left alone", () => {
  const h = ["content-type", "text/plain"];
  assert.equal(pages.head(req, res, 502, h), undefined);
  assert.deepEqual(h, ["content-type", "text/plain"]);
});
