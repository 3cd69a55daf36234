/**
 * What the server keeps out of its memory (docs/performance.md, RSS): a plain-HTTP server never
 * loads TLS, HTTP/2, zlib or undici (an ES import of node:http alone would load all four), and
 * `switchyard serve` runs with a small young generation.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { promisify } from "node:util";
import { NODE, spawnCli } from "../support/cli.ts";
import { tempDirFor } from "../support/switchyard.ts";

const run = promisify(execFile);
const src = (path: string) => JSON.stringify(new URL(`../../src/${path}`, import.meta.url).href);

test("a plain-HTTP server (proxy, admin API, metrics) serves without loading TLS, HTTP/2, zlib, crypto or undici", async () => {
  // the script itself takes node:http as the server does: an ES import would load them all
  const script = `
    const http = process.getBuiltinModule("node:http");
    const { parseConfig } = await import(${src("config/load.ts")});
    const { Runtime } = await import(${src("server/runtime.ts")});
    const { silentLogger } = await import(${src("log.ts")});
    const backend = http.createServer((req, res) => res.end("hello"));
    await new Promise((r) => backend.listen(0, "127.0.0.1", r));
    const yaml = "listen: 127.0.0.1:0\\nadmin: 127.0.0.1:0\\nservices:\\n  app:\\n    hosts: ['*']\\n    servers: ['http://127.0.0.1:" + backend.address().port + "']\\n";
    const rt = new Runtime({ logger: silentLogger, proxy: true, admin: true, ownsHealth: true });
    await rt.start(parseConfig(yaml, "footprint.yaml"));
    const get = (port, path) => new Promise((resolve, reject) =>
      http.get({ host: "127.0.0.1", port, path, agent: false }, (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (c) => (body += c)).on("end", () => resolve(res.statusCode + " " + body.length));
      }).on("error", reject));
    const port = (a) => Number(a.slice(a.lastIndexOf(":") + 1));
    const proxied = await get(port(rt.listeners.addresses()[0].address), "/");
    const metrics = await get(port(rt.admin.address()), "/metrics");
    const loaded = process.moduleLoadList.filter((m) => /^NativeModule (tls|http2|zlib|https|crypto|internal\\/deps\\/undici\\/undici)$/.test(m));
    console.log(JSON.stringify({ proxied, metrics, loaded }));
    await rt.shutdown();
    backend.close();
  `;
  const { stdout } = await run(NODE, ["--input-type=module", "-e", script], { timeout: 30_000 });
  const out = JSON.parse(stdout.trim().split("\n").pop()!) as {
    proxied: string;
    metrics: string;
    loaded: string[];
  };
  assert.equal(out.proxied, "200 5");
  assert.match(out.metrics, /^200 \d+$/);
  assert.deepEqual(out.loaded, []);
});

test("`switchyard serve` runs in its own process with 1 MB semi-spaces, a small first heap, one malloc arena and no Maglev; an empty SWITCHYARD_V8_FLAGS keeps Node's defaults", async (t) => {
  const tmp = tempDirFor(t, "sy-footprint-");
  const file = tmp.write(
    "switchyard.yaml",
    "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nservices:\n  app:\n    hosts: ['*']\n    servers: ['http://127.0.0.1:9']\n",
  );
  // runs in every image of the process: prints its pid, node flags and malloc arenas; at exit,
  // whether it loaded node:readline (only `run` providers need it)
  const hook = tmp.write(
    "hook.mjs",
    'process.stderr.write("FLAGS " + process.pid + " " + JSON.stringify(process.execArgv) + " " + (process.env.MALLOC_ARENA_MAX ?? "-") + "/" + (process.env.SWITCHYARD_ADDED_ENV ?? "-") + "\\n");\n' +
      'process.on("exit", () => process.stderr.write("LOADED " + JSON.stringify(process.moduleLoadList.filter((m) => /^NativeModule (readline)$/.test(m))) + "\\n"));\n',
  );
  for (const [setting, expected] of [
    [undefined, true],
    ["", false],
  ] as const) {
    const p = spawnCli(["serve", "-c", file, "--log-level", "info"], {
      nodeArgs: ["--import", hook],
      env: { SWITCHYARD_V8_FLAGS: setting },
    });
    await p.waitForLog((r) => r.msg === "listening", 20_000, "listening");
    const images = p
      .stderr()
      .split("\n")
      .filter((l) => l.startsWith("FLAGS "))
      .map((l) => {
        const [, pid, flags, arenas] = /^FLAGS (\d+) (.*) (\S+)$/.exec(l)!;
        return { pid: Number(pid), flags: JSON.parse(flags) as string[], arenas };
      });
    const last = images[images.length - 1];
    assert.equal(last.pid, p.child.pid, "the same process serves");
    for (const flag of [
      "--max-semi-space-size=1",
      "--initial-heap-size=20",
      "--heap-growing-percent=25",
      "--no-maglev",
    ])
      assert.equal(last.flags.includes(flag), expected, `${flag}: ${JSON.stringify(images)}`);
    // what serve added for itself is named, so the commands idle providers start do without it
    assert.equal(
      last.arenas,
      expected ? "1/MALLOC_ARENA_MAX,MALLOC_TRIM_THRESHOLD_" : "-/-",
      JSON.stringify(images),
    );
    assert.equal(images.length, expected ? 2 : 1);
    assert.equal((await p.stop("SIGTERM")).code, 0);
    const loaded = /^LOADED (.*)$/m.exec(p.stderr());
    assert.deepEqual(JSON.parse(loaded?.[1] ?? "null"), [], "node:readline");
  }
});
