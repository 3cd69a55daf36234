import * as assert from "node:assert/strict";
import { after, test } from "node:test";
import { runCli, tempDir } from "../support/switchyard.ts";

const tmp = tempDir();
after(() => tmp.remove());

test("switchyard check: every path and middleware mistake as file:line, exit 1", async () => {
  const file = tmp.write(
    "switchyard.yaml",
    `services:
  a:
    hosts: [example.com]
    paths: [/api/]
    servers: ["http://127.0.0.1:3000"]
  b:
    hosts: [example.com]
    paths: [/api, "v2"]
    middlewares:
      - basic_auth: { users: { admin: "plaintext" } }
      - rate_limit: { rate: 100/fortnight }
      - gzip: true
      - response_headers: { set: { "X Bad": 1 } }
    servers: ["http://127.0.0.1:3001"]
`,
  );
  const r = await runCli(["check", "-c", file]);
  assert.equal(r.code, 1);
  const out = r.stdout + r.stderr;
  for (const line of [
    `${file}:8: services.b.paths[1]: path prefix "v2" must start with "/"`,
    `${file}:8: services.b.paths[0]: path prefix "/api" on host "example.com" is already used by service "a"`,
    `${file}:10: services.b.middlewares[0].basic_auth.users.admin: not a bcrypt hash`,
    `${file}:11: services.b.middlewares[1].rate_limit.rate: unknown rate period "fortnight"`,
    `${file}:12: services.b.middlewares[2].gzip: unknown middleware "gzip"`,
    `${file}:13: services.b.middlewares[3].response_headers.set["X Bad"]: "X Bad" is not a valid header name`,
  ])
    assert.ok(out.includes(line), `missing: ${line}\n${out}`);
});

test("switchyard check: a good file lists paths and middlewares", async () => {
  const file = tmp.write(
    "ok.yaml",
    `services:
  api:
    hosts: [example.com]
    paths: [/api/]
    strip_prefix: true
    middlewares: [{ allow: [10.0.0.0/8] }, { compress: true }]
    servers: ["http://127.0.0.1:3000"]
`,
  );
  const r = await runCli(["check", "-c", file]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /paths \/api \(stripped\), middlewares allow → compress/);
});
