import * as assert from "node:assert/strict";
import { test } from "node:test";
import { HeaderEditor } from "./headers.ts";

test("set replaces every line of a name, add appends, remove drops every line; names ignore case", () => {
  const e = new HeaderEditor({ set: { "X-Env": "prod" }, add: { "Set-Cookie": "b=2" }, remove: ["server"] });
  const h = [
    "x-env",
    "dev",
    "Server",
    "nginx",
    "set-cookie",
    "a=1",
    "X-ENV",
    "stage",
    "content-type",
    "text/plain",
  ];
  e.apply(h);
  assert.deepEqual(h, [
    "set-cookie",
    "a=1",
    "content-type",
    "text/plain",
    "X-Env",
    "prod",
    "Set-Cookie",
    "b=2",
  ]);
});
