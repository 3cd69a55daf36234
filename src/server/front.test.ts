import assert from "node:assert/strict";
import { test } from "node:test";
import { hundredths, jsonString } from "./front.ts";

test("jsonString quotes like JSON.stringify: plain strings directly, the rest escaped", () => {
  const cases = [
    "",
    "/",
    "/api/v1/items?id=7&x=%20",
    "127.0.0.1",
    "[::1]:8080",
    'say "hi"',
    "back\\slash",
    "tab\tnew\nline\r",
    "\u0000\u001f\u007f",
    "latin1 bytes: \u00c3\u00a9\u00ff",
    "emoji \ud83d\ude00",
    "lone \ud800 surrogate",
    "lone \udc00 low",
  ];
  for (const s of cases) {
    assert.equal(jsonString(s), JSON.stringify(s), JSON.stringify(s));
    assert.equal(JSON.parse(jsonString(s)), s);
  }
});

test("hundredths prints n / 100 as JavaScript does", () => {
  for (const n of [0, 1, 5, 10, 50, 76, 99, 100, 101, 110, 150, 199, 200, 1234, 100000, 123456789]) {
    assert.equal(hundredths(n), String(n / 100), String(n));
  }
});
