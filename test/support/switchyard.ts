/**
 * `switchyard serve` in end-to-end tests: the real CLI as a child process (ports learned from its
 * "listening" log line), a config written to a temporary file, the end-to-end backend
 * (backend.ts answering its name and a newline), and the HTTP client's `get` (http.ts).
 */
import * as assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Backend, backend } from "./backend.ts";
import type { Undo } from "./cleanup.ts";
import { CLI, type CliProcess, listening, NODE, ROOT, spawnCli, track } from "./cli.ts";
import { type GetOptions, get } from "./http.ts";

export type { Backend } from "./backend.ts";

/**
 * The end-to-end tests' backend: `backend(name)` answering `<name>\n`, on `port` (0: a free one).
 * Stop it with `stop()` (or give `cleanup`).
 */
export function startBackend(name: string, port = 0, cleanup?: Undo): Promise<Backend> {
  return backend(name, { port, body: `${name}\n`, cleanup });
}

export interface Running extends CliProcess {
  proxy: string[];
  admin: string | undefined;
}

/** Runs `switchyard <args>` and waits for its "listening" line. */
export async function startSwitchyard(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<Running> {
  const p = spawnCli(args, options);
  // generous: CI machines run two test files at once and a cluster start loads several processes
  const rec = await listening(p, options.timeoutMs ?? 45_000);
  return { ...p, proxy: rec.proxy as string[], admin: rec.admin as string | undefined };
}

/** Runs the CLI to completion (for `check`, `--help`). */
export function runCli(
  args: string[],
  cwd = ROOT,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(NODE, [CLI, ...args], { cwd, stdio: ["ignore", "pipe", "pipe"] });
    track(child);
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    child.once("exit", (code) => done({ code, stdout, stderr }));
  });
}

export { get, type Reply, splitAddress } from "./http.ts";

/**
 * `n` GETs to `address` one after the other, each on its own connection (a cluster hands them to
 * its workers in turn) and each answered 200; how many each backend answered (its name: the body
 * of `startBackend`, trimmed).
 */
export async function spread(
  address: string,
  n: number,
  options: GetOptions & { path?: string } = {},
): Promise<Record<string, number>> {
  const seen: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const r = await get(address, options.path ?? "/", options);
    assert.equal(r.status, 200, `request ${i} to ${address}: ${r.status} ${r.body}`);
    const name = r.body.trim();
    seen[name] = (seen[name] ?? 0) + 1;
  }
  return seen;
}

/** Polls `fn` until it returns a truthy value (bounded); for states that have no event. */
export async function eventually<T>(
  fn: () => Promise<T> | T,
  timeoutMs = 10_000,
  what = "condition",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function tempDir(prefix = "switchyard-test-"): {
  dir: string;
  write(name: string, text: string): string;
  remove(): void;
} {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    write(name, text) {
      const p = join(dir, name);
      writeFileSync(p, text);
      return p;
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `tempDir` removed after test `t`. */
export function tempDirFor(
  t: { after(fn: () => unknown): void },
  prefix?: string,
): ReturnType<typeof tempDir> {
  const tmp = tempDir(prefix);
  t.after(() => tmp.remove());
  return tmp;
}

export { selfSignedCert } from "./tls.ts";

/** The start of a test config: listener and admin on free loopback ports, then `top`, then `services:`. */
export function yamlHead(top = ""): string {
  return `listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\n${top}services:\n`;
}

/** A YAML config with fast health checks for tests. */
export function yamlConfig(
  services: Record<
    string,
    { hosts?: string[]; servers: { name: string; url: string; weight?: number }[]; extra?: string }
  >,
  top = "",
): string {
  let out = yamlHead(top);
  for (const [name, s] of Object.entries(services)) {
    out += `  ${name}:\n`;
    if (s.hosts) out += `    hosts: [${s.hosts.map((h) => JSON.stringify(h)).join(", ")}]\n`;
    out += "    healthcheck: { interval: 200ms, timeout: 2s, retries: 2 }\n";
    if (s.extra) out += s.extra;
    out += "    servers:\n";
    for (const v of s.servers) {
      out += `      - { name: ${v.name}, url: "${v.url}"${v.weight !== undefined ? `, weight: ${v.weight}` : ""} }\n`;
    }
  }
  return out;
}

/**
 * Runs `switchyard serve` on `yaml` (written to the temporary `file`) and waits for it to listen;
 * both are undone after test `t` (SIGKILL, or with `cleanExit` SIGTERM and exit code 0 asserted).
 */
export async function serveYaml(
  t: { after(fn: () => unknown): void },
  yaml: string,
  args: string[] = [],
  options: {
    env?: NodeJS.ProcessEnv;
    timeoutMs?: number;
    /** After the test: SIGTERM and assert exit code 0 (a clean shutdown), instead of SIGKILL. */
    cleanExit?: boolean;
  } = {},
): Promise<Running & { file: string }> {
  const tmp = tempDirFor(t);
  const file = tmp.write("s.yaml", yaml);
  const sy = await startSwitchyard(["serve", "-c", file, ...args], options);
  if (options.cleanExit) t.after(async () => assert.equal((await sy.stop()).code, 0, "a clean exit"));
  else t.after(() => sy.stop("SIGKILL"));
  return { ...sy, file };
}
