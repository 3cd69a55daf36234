/**
 * Every code block in README.md and docs/*.md is checked against the code:
 * - `ts`: `<!-- example:NAME -->` blocks are examples/NAME.ts verbatim; any other ts block is a
 *   contiguous excerpt of an examples/ file. examples/library.ts runs against the package built into
 *   a temporary folder (not the checkout's dist/), resolved by its name as a user's install would.
 * - `yaml`: passes `loadConfig` (a fragment without `services` gets one minimal service);
 *   `<!-- docs-test: check FILE -->` blocks are bad files whose `switchyard check` output is the
 *   next block, verbatim.
 * - `json`: parses. `sh`: the npm scripts, files and switchyard commands it names exist.
 * - output blocks: JSON lines parse, SSE `data:` lines parse, usage lines are in `--help`; anything
 *   else must be marked `<!-- docs-test: sample -->` (a sample of output text, shown as printed).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { promisify } from "node:util";
import YAML from "yaml";
import { loadConfig } from "../src/config/load.ts";
import { testPki } from "./support/tls.ts";

const run = promisify(execFile);
const root = new URL("..", import.meta.url).pathname;
const node = process.execPath;
const tmp = mkdtempSync(join(tmpdir(), "switchyard-docs-"));
// the certificate files the TLS examples name, real ones (a CA, a client and a server certificate)
{
  const pki = join(tmp, "pki");
  mkdirSync(pki);
  const made = testPki(pki);
  cpSync(made.ca.cert, join(tmp, "internal-ca.pem"));
  cpSync(made.client.cert, join(tmp, "client.pem"));
  cpSync(made.client.key, join(tmp, "client-key.pem"));
  // a listener's certificate and key (TLS listeners in the examples)
  cpSync(made.server.cert, join(tmp, "cert.pem"));
  cpSync(made.server.key, join(tmp, "key.pem"));
  // the error pages the middleware examples name
  for (const status of [502, 503, 504]) writeFileSync(join(tmp, `${status}.html`), `<h1>${status}</h1>\n`);
}
after(() => rmSync(tmp, { recursive: true, force: true }));

interface Block {
  file: string;
  line: number;
  lang: string;
  marker: string | undefined;
  text: string;
}

function blocks(file: string): Block[] {
  const lines = readFileSync(join(root, file), "utf8").split("\n");
  const out: Block[] = [];
  let marker: string | undefined;
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(\w*)\s*$/.exec(lines[i]);
    if (open === null) {
      const m = /^\s*<!-- (.+?) -->\s*$/.exec(lines[i]);
      if (m !== null) marker = m[1];
      else if (lines[i].trim() !== "") marker = undefined;
      continue;
    }
    const indent = open[1].length;
    const body: string[] = [];
    const start = i + 1;
    for (i++; i < lines.length && !/^\s*```\s*$/.test(lines[i]); i++) body.push(lines[i].slice(indent));
    out.push({ file, line: start, lang: open[2], marker, text: body.join("\n") });
    marker = undefined;
  }
  return out;
}

const files = [
  "README.md",
  ...readdirSync(join(root, "docs"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`),
];
const all = files.flatMap(blocks);
const where = (b: Block) => `${b.file}:${b.line}`;
const examples = readdirSync(join(root, "examples"))
  .filter((f) => f.endsWith(".ts"))
  .map((f) => readFileSync(join(root, "examples", f), "utf8"));
const scripts = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).scripts as Record<
  string,
  string
>;

test("the docs have code blocks to check (the parser found them)", () => {
  assert.ok(all.length > 25, `${all.length} blocks`);
  assert.ok(all.some((b) => b.marker === "example:library"));
});

test("ts blocks: examples verbatim, or an excerpt of one", () => {
  for (const b of all.filter((x) => x.lang === "ts")) {
    const name = /^example:(\S+)$/.exec(b.marker ?? "")?.[1];
    if (name !== undefined) {
      const example = readFileSync(join(root, "examples", `${name}.ts`), "utf8");
      assert.equal(b.text.trim(), example.trim(), `${where(b)} is examples/${name}.ts verbatim`);
    } else {
      const want = b.text.trim();
      assert.ok(
        examples.some((e) => e.includes(want)),
        `${where(b)}: a ts block without a marker must be an excerpt of an examples/ file`,
      );
    }
  }
});

/** The output blocks that follow a `docs-test: check FILE` yaml block. */
const checkBlocks = new Set(
  all.filter((_, i) => i > 0 && all[i - 1].marker?.startsWith("docs-test: check ")),
);

test("yaml blocks load; marked bad files give the output shown after them", async () => {
  let n = 0;
  for (let i = 0; i < all.length; i++) {
    const b = all[i];
    if (b.lang !== "yaml") continue;
    const check = /^docs-test: check (\S+)$/.exec(b.marker ?? "")?.[1];
    if (check !== undefined) {
      const output = all[i + 1];
      assert.ok(output !== undefined && output.file === b.file, `${where(b)}: the check output follows`);
      writeFileSync(join(tmp, check), `${b.text}\n`);
      const got = await run(node, [join(root, "src/cli.ts"), "check", "-c", check], { cwd: tmp }).then(
        () => assert.fail(`${where(b)}: switchyard check accepted a file shown as bad`),
        (err: { code: number; stdout: string; stderr: string }) => {
          assert.equal(err.code, 1, `${where(b)}: check exits 1`);
          return `${err.stdout}${err.stderr}`.trim();
        },
      );
      const shown = output.text
        .split("\n")
        .filter((l) => !l.startsWith("$ "))
        .join("\n")
        .trim();
      assert.equal(got, shown, `${where(output)} is what switchyard check prints`);
      continue;
    }
    const doc = YAML.parse(b.text) as Record<string, unknown>;
    // a GoDoxy route file has none of switchyard's top-level keys
    const top = ["listen", "admin", "timeouts", "workers", "log_level"];
    const routeFile = !Object.keys(doc).some((k) => top.includes(k));
    if (!("services" in doc) && !routeFile) doc.services = { docs: { servers: ["http://127.0.0.1:9"] } };
    const file = join(tmp, `block-${n++}.yaml`);
    writeFileSync(file, YAML.stringify(doc));
    await loadConfig(file, {}, { ...process.env, SWITCHYARD_ADMIN_TOKEN: "docs-test" }).catch(
      (err: Error) => {
        assert.fail(`${where(b)} does not load: ${err.message}`);
      },
    );
  }
  assert.ok(n > 5 && checkBlocks.size >= 2, `${n} yaml blocks loaded, ${checkBlocks.size} check outputs`);
});

test("json blocks parse; sh blocks name scripts, files and commands that exist", () => {
  for (const b of all.filter((x) => x.lang === "json")) {
    assert.doesNotThrow(() => JSON.parse(b.text), `${where(b)} is JSON`);
  }
  for (const b of all.filter((x) => x.lang === "sh")) {
    for (const raw of b.text.split("\n")) {
      const line = raw.replace(/\s+#.*$/, "").trim();
      const script = /^npm run ([\w:-]+)/.exec(line)?.[1];
      if (script !== undefined) assert.ok(script in scripts, `${where(b)}: npm run ${script} exists`);
      const file = /^(?:npx )?node (\S+\.ts)/.exec(line)?.[1];
      if (file !== undefined) assert.ok(existsSync(join(root, file)), `${where(b)}: ${file} exists`);
      const cmd = /^switchyard (\S+)/.exec(line)?.[1];
      if (cmd !== undefined)
        assert.ok(["serve", "check", "--help", "--version"].includes(cmd), `${where(b)}: ${cmd}`);
    }
  }
});

test("output blocks: JSON lines and SSE frames parse, usage lines are the CLI's; the rest is marked as a sample", async () => {
  const { stdout: help } = await run(node, [join(root, "src/cli.ts"), "--help"]);
  for (const b of all.filter((x) => x.lang === "" || x.lang === "text")) {
    if (checkBlocks.has(b) || b.marker === "docs-test: sample") continue;
    const lines = b.text.split("\n").filter((l) => l.trim() !== "");
    if (lines.every((l) => l.startsWith("{"))) {
      for (const l of lines) assert.doesNotThrow(() => JSON.parse(l), `${where(b)}: ${l}`);
    } else if (lines.every((l) => l.startsWith("data: ") || l.startsWith(": "))) {
      for (const l of lines.filter((x) => x.startsWith("data: ")))
        assert.doesNotThrow(() => JSON.parse(l.slice(6)), `${where(b)}: ${l}`);
    } else if (lines.every((l) => l.startsWith("switchyard "))) {
      for (const l of lines)
        assert.ok(help.includes(`  ${l}\n`), `${where(b)}: "${l}" is in switchyard --help`);
    } else {
      assert.fail(
        `${where(b)}: an output block that is not checked; mark it <!-- docs-test: sample --> if it is one`,
      );
    }
  }
});

test("the error codes table in docs/library.md lists every code in src/errors.ts", () => {
  const errors = readFileSync(join(root, "src/errors.ts"), "utf8");
  const library = readFileSync(join(root, "docs/library.md"), "utf8");
  const codes = [...errors.matchAll(/"(ERR_SWITCHYARD_\w+)"/g)].map((m) => m[1]);
  assert.ok(codes.length > 10);
  for (const code of codes)
    assert.match(library, new RegExp(`\\|\\s*\`${code}\`\\s*\\|`), `${code} is in the table`);
});

test("the library example runs against the package built into a temporary folder", {
  timeout: 180_000,
}, async () => {
  const pkg = join(tmp, "app", "node_modules", "switchyard-lb");
  await run(
    node,
    [
      join(root, "node_modules/typescript/bin/tsc"),
      "-p",
      "tsconfig.build.json",
      "--outDir",
      join(pkg, "dist"),
    ],
    {
      cwd: root,
    },
  );
  await run(node, [join(root, "scripts/copy-assets.ts"), join(pkg, "dist")], { cwd: root });
  cpSync(join(root, "package.json"), join(pkg, "package.json"));
  // the package's own dependencies (pino, yaml, ...) as an install would provide them
  symlinkSync(join(root, "node_modules"), join(pkg, "node_modules"));
  cpSync(join(root, "examples/library.ts"), join(tmp, "app", "library.ts"));
  const { stdout } = await run(node, ["library.ts"], { cwd: join(tmp, "app"), timeout: 60_000 });
  assert.deepEqual(stdout.trim().split("\n"), [
    "hello from a",
    "hello from a",
    "hello from b",
    "hello from a",
    "2/2 servers are healthy",
  ]);
});
