/**
 * Helpers for end-to-end server tests: real backends on loopback, the real CLI as a child
 * process (ports learned from its machine-readable "listening" log line), small HTTP clients.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLI, type CliProcess, listening, NODE, ROOT, spawnCli, track } from "./cli.ts";
import { type Reply, send } from "./http.ts";

export interface Backend {
  name: string;
  url: string;
  port: number;
  /** Requests seen, by method. */
  counts: Record<string, number>;
  /** Answers every request held on `/hold`. */
  release(): void;
  server: http.Server;
  stop(): Promise<void>;
}

/** A backend answering every request with its name; `/slow?ms=N` waits N ms first, `/hold` until release(). */
export async function startBackend(name: string, port = 0): Promise<Backend> {
  const counts: Record<string, number> = {};
  const held: (() => void)[] = [];
  const server = http.createServer((req, res) => {
    const m = req.method ?? "GET";
    counts[m] = (counts[m] ?? 0) + 1;
    const url = new URL(req.url ?? "/", "http://x");
    const send = () => {
      const body = `${name}\n`;
      res.writeHead(200, { "content-type": "text/plain", "x-backend": name, "content-length": body.length });
      res.end(m === "HEAD" ? undefined : body);
    };
    if (url.pathname === "/slow") setTimeout(send, Number(url.searchParams.get("ms") ?? 1000));
    else if (url.pathname === "/hold") held.push(send);
    else send();
  });
  await new Promise<void>((ok, fail) => {
    server.once("error", fail);
    server.listen(port, "127.0.0.1", () => ok());
  });
  const p = (server.address() as AddressInfo).port;
  return {
    name,
    url: `http://127.0.0.1:${p}`,
    port: p,
    counts,
    server,
    release: () => {
      for (const f of held.splice(0)) f();
    },
    stop: () =>
      new Promise<void>((r) => {
        if (!server.listening) return r();
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
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

export { type Reply, splitAddress } from "./http.ts";

const agent = new http.Agent({ keepAlive: false });

/** One HTTP/1.1 request to `address` (host:port) with the given Host header. */
export function get(
  address: string,
  path = "/",
  options: { host?: string; method?: string; headers?: http.OutgoingHttpHeaders } = {},
): Promise<Reply> {
  const headers = { ...(options.host ? { host: options.host } : {}), ...options.headers };
  return send(address, { path, method: options.method ?? "GET", agent, headers });
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

export { selfSignedCert } from "./tls.ts";

/** A YAML config with fast health checks for tests. */
export function yamlConfig(
  services: Record<
    string,
    { hosts?: string[]; servers: { name: string; url: string; weight?: number }[]; extra?: string }
  >,
  top = "",
): string {
  let out = `listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\n${top}services:\n`;
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

/** Runs `switchyard serve` on `yaml` (written to a temporary file); both are undone after test `t`. */
export async function serveYaml(
  t: { after(fn: () => unknown): void },
  yaml: string,
  args: string[] = [],
): Promise<Running> {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const sy = await startSwitchyard(["serve", "-c", tmp.write("s.yaml", yaml), ...args]);
  t.after(() => sy.stop("SIGKILL"));
  return sy;
}
