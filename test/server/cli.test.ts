import * as assert from "node:assert/strict";
import { describe, test } from "node:test";
import { freePort } from "../support/ports.ts";
import {
  get,
  runCli,
  startBackend,
  startSwitchyard,
  tempDir,
  tempDirFor,
  yamlConfig,
} from "../support/switchyard.ts";

describe("switchyard CLI", { timeout: 240_000 }, () => {
  test("check: a file with three different mistakes exits 1 and lists all three with lines", async (t) => {
    const tmp = tempDirFor(t);
    const file = tmp.write(
      "bad.yaml",
      [
        "listen: 127.0.0.1:8080",
        "services:",
        "  api:",
        "    mode: fastest",
        "    servers:",
        '      - { name: a, url: "ftp://10.0.0.1" }',
        "      - { name: b, url: http://10.0.0.2, weight: -3 }",
        "",
      ].join("\n"),
    );
    const r = await runCli(["check", "-c", file]);
    assert.equal(r.code, 1);
    const out = r.stdout + r.stderr;
    assert.match(out, /bad\.yaml:4: services\.api\.mode: /);
    assert.match(out, /bad\.yaml:6: services\.api\.servers\[0\]\.url: /);
    assert.match(out, /bad\.yaml:7: services\.api\.servers\[1\]\.weight: /);
  });

  test("check: a good file exits 0", async (t) => {
    const tmp = tempDirFor(t);
    const file = tmp.write(
      "good.yaml",
      yamlConfig({ api: { servers: [{ name: "a", url: "http://10.0.0.1:80" }] } }),
    );
    const r = await runCli(["check", "-c", file]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /OK/);
  });

  test("--help, --version, unknown command, serve with a bad file", async () => {
    const help = await runCli(["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /switchyard serve \[-c FILE\]/);
    assert.doesNotMatch(help.stdout, /npx switchyard/);
    const v = await runCli(["--version"]);
    assert.equal(v.code, 0);
    assert.match(v.stdout, /^switchyard \d+\.\d+\.\d+/);
    const bad = await runCli(["frobnicate"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown command/);
    const tmp = tempDir();
    try {
      const file = tmp.write("x.yaml", "services:\n  api:\n    mode: nope\n    servers: []\n");
      const r = await runCli(["serve", "-c", file]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /x\.yaml:3: services\.api\.mode/);
    } finally {
      tmp.remove();
    }
  });

  test("a GoDoxy route file is served: routes sharing a link are one service, matched by first label", async () => {
    const tmp = tempDir();
    const a = await startBackend("app-1");
    const b = await startBackend("app-2");
    const file = tmp.write(
      "routes.yml",
      [
        "app-1:",
        "  scheme: http",
        "  host: 127.0.0.1",
        `  port: ${a.port}`,
        "  healthcheck: { interval: 200ms }",
        "  load_balance: { link: app, mode: round_robin }",
        "app-2:",
        "  scheme: http",
        "  host: 127.0.0.1",
        `  port: ${b.port}`,
        "  healthcheck: { interval: 200ms }",
        "  load_balance: { link: app }",
        "",
      ].join("\n"),
    );
    const sy = await startSwitchyard([
      "serve",
      "-c",
      file,
      "--listen",
      "127.0.0.1:0",
      "--admin",
      "127.0.0.1:0",
    ]);
    try {
      const bodies = new Set<string>();
      for (let i = 0; i < 4; i++)
        bodies.add((await get(sy.proxy[0], "/", { host: "app.example.com" })).body.trim());
      assert.deepEqual([...bodies].sort(), ["app-1", "app-2"]);
      assert.equal((await get(sy.proxy[0], "/", { host: "other.example.com" })).status, 404);
    } finally {
      const exit = await sy.stop();
      await a.stop();
      await b.stop();
      tmp.remove();
      assert.equal(exit.code, 0);
    }
  });

  test("serve without a config in an empty folder runs the demo: answers rotate over three backends", async () => {
    const tmp = tempDir();
    const [p, ap] = [await freePort(), await freePort()];
    const sy = await startSwitchyard(["serve", "--listen", `127.0.0.1:${p}`, "--admin", `127.0.0.1:${ap}`], {
      cwd: tmp.dir,
    });
    try {
      assert.deepEqual(sy.proxy, [`127.0.0.1:${p}`]);
      const bodies: string[] = [];
      for (let i = 0; i < 6; i++) bodies.push((await get(sy.proxy[0], "/", { host: "anything.test" })).body);
      const names = bodies.map((b) => /demo-\d/.exec(b)?.[0]);
      assert.deepEqual(new Set(names), new Set(["demo-1", "demo-2", "demo-3"]));
      assert.deepEqual(names.slice(0, 3).sort(), ["demo-1", "demo-2", "demo-3"]);
      const text = sy.lines.join("\n");
      assert.match(text, new RegExp(`curl http://127\\.0\\.0\\.1:${p}/`));
      assert.match(text, new RegExp(`http://127\\.0\\.0\\.1:${ap}/api/health`));
      assert.match(text, /switchyard serve -c switchyard\.yaml/);
      assert.match(text, /npm start -- -c FILE/);
      assert.doesNotMatch(text, /npx switchyard/);
      const health = JSON.parse((await get(sy.admin!, "/api/health")).body);
      assert.equal(health.demo.detail, "3/3 servers are healthy");
    } finally {
      const exit = await sy.stop();
      tmp.remove();
      assert.equal(exit.code, 0);
    }
  });

  test("serve without -c reads ./switchyard.yaml", async () => {
    const tmp = tempDir();
    const a = await startBackend("from-cwd");
    tmp.write("switchyard.yaml", yamlConfig({ web: { hosts: ["*"], servers: [{ name: "x", url: a.url }] } }));
    const sy = await startSwitchyard(["serve"], { cwd: tmp.dir });
    try {
      assert.equal((await get(sy.proxy[0], "/")).body, "from-cwd\n");
    } finally {
      const exit = await sy.stop();
      await a.stop();
      tmp.remove();
      assert.equal(exit.code, 0);
    }
  });

  test("admin on a non-loopback address: refuses to start without a token; with one, requires it", async () => {
    const tmp = tempDir();
    const a = await startBackend("guarded");
    const file = tmp.write(
      "s.yaml",
      yamlConfig({ web: { hosts: ["*"], servers: [{ name: "g", url: a.url }] } }),
    );
    try {
      const refused = await runCli(["serve", "-c", file, "--admin", "0.0.0.0:0"]);
      assert.equal(refused.code, 1);
      assert.match(refused.stdout + refused.stderr, /SWITCHYARD_ADMIN_TOKEN/);

      const sy = await startSwitchyard(["serve", "-c", file, "--admin", "0.0.0.0:0"], {
        env: { SWITCHYARD_ADMIN_TOKEN: "s3cret" },
      });
      try {
        const port = sy.admin!.split(":").pop()!;
        const local = `127.0.0.1:${port}`;
        const no = await get(local, "/api/health");
        assert.equal(no.status, 401);
        const wrong = await get(local, "/api/health", { headers: { authorization: "Bearer nope" } });
        assert.equal(wrong.status, 401);
        const yes = await get(local, "/api/health", { headers: { authorization: "Bearer s3cret" } });
        assert.equal(yes.status, 200);
        assert.equal(JSON.parse(yes.body).web.status, "healthy");
        const metrics = await get(local, "/metrics", { headers: { authorization: "Bearer s3cret" } });
        assert.equal(metrics.status, 200);
        await sy.waitForLog((r) => /requires Authorization: Bearer/.test(String(r.msg)));
      } finally {
        assert.equal((await sy.stop()).code, 0);
      }
    } finally {
      await a.stop();
      tmp.remove();
    }
  });
});
