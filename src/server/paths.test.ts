import * as assert from "node:assert/strict";
import { test } from "node:test";
import { PathTable, stripPrefix } from "./paths.ts";

const table = new PathTable([
  { prefix: "/api", target: "api" },
  { prefix: "/api/v2", target: "v2" },
  { prefix: "/static/img", target: "img" },
  { prefix: "/", target: "root" },
]);

test("the longest matching prefix wins, by whole segments", () => {
  const cases: [string, string, number][] = [
    ["/api", "api", 4],
    ["/api/", "api", 4],
    ["/api/users?x=1", "api", 4],
    ["/api?x=1", "api", 4],
    ["/api/v2", "v2", 7],
    ["/api/v2/things/1", "v2", 7],
    ["/api/v20", "api", 4],
    ["/apis", "root", 0],
    ["/static/img/a.png", "img", 11],
    ["/static/image", "root", 0],
    ["/", "root", 0],
    ["*", "root", 0],
    ["/API", "root", 0],
  ];
  for (const [url, want, len] of cases) {
    assert.equal(table.match(url), want, url);
    assert.equal(table.matched, len, url);
  }
});

test("a host without a root service answers nothing outside its prefixes", () => {
  const t = new PathTable([{ prefix: "/a", target: 1 }]);
  assert.equal(t.match("/a/b"), 1);
  assert.equal(t.match("/b"), undefined);
  assert.deepEqual(table.prefixes(), ["/static/img", "/api/v2", "/api"]);
});

test("stripPrefix keeps origin-form", () => {
  assert.equal(stripPrefix("/api/users?x", 4), "/users?x");
  assert.equal(stripPrefix("/api", 4), "/");
  assert.equal(stripPrefix("/api?x=1", 4), "/?x=1");
  assert.equal(stripPrefix("/x", 0), "/x");
});
