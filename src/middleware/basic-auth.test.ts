import * as assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { test } from "node:test";
import bcrypt from "bcryptjs";
import { BasicAuth } from "./basic-auth.ts";
import type { Answer } from "./types.ts";
import { PENDING } from "./types.ts";

const hash = bcrypt.hashSync("pw", 5);
const auth = new BasicAuth({ kind: "basic_auth", realm: "r", users: { ann: hash } });
const req = (authorization?: string) =>
  ({
    rawHeaders: authorization === undefined ? [] : ["Authorization", authorization],
  }) as unknown as IncomingMessage;
const basic = (s: string) => `Basic ${Buffer.from(s).toString("base64")}`;

function check(authorization?: string): Promise<{ pending: boolean; answer: Answer | undefined }> {
  return new Promise((ok) => {
    const r = auth.request(req(authorization), undefined, (answer) => ok({ pending: true, answer }));
    if (r !== PENDING) ok({ pending: false, answer: r });
  });
}

test("no or malformed credentials: 401 at once, with the realm", async () => {
  for (const h of [undefined, "Bearer x", basic("no-colon"), "Basic"]) {
    const { pending, answer } = await check(h);
    assert.equal(pending, false, String(h));
    assert.equal(answer?.status, 401);
    assert.ok(answer?.headers.includes('Basic realm="r", charset="UTF-8"'));
  }
});

test("an unknown user runs bcrypt like a wrong password does (no early answer that tells names apart)", async () => {
  const unknown = await check(basic("bob:pw"));
  const wrong = await check(basic("ann:nope"));
  assert.equal(unknown.pending, true);
  assert.equal(wrong.pending, true);
  assert.equal(unknown.answer?.status, 401);
  assert.equal(wrong.answer?.status, 401);
});

test("the right password passes; then it is remembered (no bcrypt run on the next request)", async () => {
  const first = await check(basic("ann:pw"));
  assert.deepEqual(first, { pending: true, answer: undefined });
  const again = await check(basic("ann:pw"));
  assert.deepEqual(again, { pending: false, answer: undefined });
  // a wrong password for the same user is still checked
  assert.equal((await check(basic("ann:pw2"))).answer?.status, 401);
});
