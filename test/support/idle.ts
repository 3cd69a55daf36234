/**
 * Idle-managed servers in end-to-end tests: the app fixture (test/idle/fixtures/app.mjs) as a
 * `run:` command, a one-service config around it, concurrent first requests, process checks.
 */
import { readFileSync } from "node:fs";
import * as http from "node:http";
import { join } from "node:path";
import { NODE } from "./cli.ts";
import { get, splitAddress } from "./http.ts";
import { freePort } from "./ports.ts";
import { type Running, serveYaml, yamlHead } from "./switchyard.ts";

export const IDLE_FIXTURES = join(import.meta.dirname, "../idle/fixtures");
/** A small HTTP app: answers JSON `{ pid, path, … }`; env PORT, NAME, READY_DELAY, READY_FILE, EXIT_CODE, IGNORE_TERM; `POST /__exit` ends it (code 0). */
export const APP = join(IDLE_FIXTURES, "app.mjs");

/** The `run:` flow map starting the app fixture on `port`. */
export function runApp(port: number, env: Record<string, string | number> = {}): string {
  const e = Object.entries({ PORT: port, ...env })
    .map(([k, v]) => `${k}: "${v}"`)
    .join(", ");
  return `{ command: [${JSON.stringify(NODE)}, ${JSON.stringify(APP)}], env: { ${e} } }`;
}

export interface IdleAppOptions {
  /** The service's `idle:` flow map, e.g. `{ idle_timeout: 1m }`. */
  idle: string;
  /** Environment of the app fixture (READY_DELAY, NAME …). */
  env?: Record<string, string | number>;
  /** The service's name (`app`). */
  service?: string;
  /** A `healthcheck:` flow map for the service. */
  healthcheck?: string;
  /** More arguments for `switchyard serve` (e.g. --workers 2). */
  args?: string[];
}

/**
 * `switchyard serve` with one idle-managed service (`app`, every host) whose servers are the
 * YAML lines `servers` (indented as list items under `servers:`); both are undone after test `t`.
 */
export function serveIdleService(
  t: { after(fn: () => unknown): void },
  servers: string,
  options: Omit<IdleAppOptions, "env">,
): Promise<Running> {
  const check = options.healthcheck ? `    healthcheck: ${options.healthcheck}\n` : "";
  return serveYaml(
    t,
    `${yamlHead()}  ${options.service ?? "app"}:
    hosts: ["*"]
${check}    idle: ${options.idle}
    servers:
${servers}`,
    options.args,
  );
}

/**
 * `serveIdleService` with one server `name` that runs the app fixture on a free port, napping
 * until a request wakes it.
 */
export async function serveIdleApp(
  t: { after(fn: () => unknown): void },
  name: string,
  options: IdleAppOptions,
): Promise<{ sy: Running; port: number }> {
  const port = await freePort();
  const line = `      - { name: ${name}, url: "http://127.0.0.1:${port}", run: ${runApp(port, options.env)} }\n`;
  return { sy: await serveIdleService(t, line, options), port };
}

/**
 * `n` concurrent JSON GETs to `address`, each on a new connection (so a cluster hands them to
 * every worker); the status of each and the pid the app answered with (0 unless 200).
 */
export function concurrentPids(
  address: string,
  n: number,
  path: (i: number) => string = () => "/",
): Promise<{ status: number; pid: number }[]> {
  const agent = new http.Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY });
  const [host, port] = splitAddress(address);
  const one = (i: number) =>
    new Promise<{ status: number; pid: number }>((ok, fail) => {
      const req = http.request(
        { host, port, path: path(i), agent, headers: { accept: "application/json" } },
        (res) => {
          let b = "";
          res.setEncoding("utf8").on("data", (c: string) => (b += c));
          res.on("end", () =>
            ok({ status: res.statusCode ?? 0, pid: res.statusCode === 200 ? JSON.parse(b).pid : 0 }),
          );
        },
      );
      req.on("error", fail);
      req.end();
    });
  return Promise.all(Array.from({ length: n }, (_, i) => one(i)));
}

/** Whether a process with this pid exists (and is not a zombie). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return procState(pid) !== "Z";
  } catch {
    return false;
  }
}

/** The one-letter state of a process (R, S, T = stopped, Z = zombie …). */
export function procState(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2)[0];
}

/** The log records saying a process was started. */
export function processStarts(sy: Running): Record<string, unknown>[] {
  return sy.logs.filter((l) => typeof l.msg === "string" && l.msg.startsWith("process started"));
}

/** The wake-events stream of the service answering `address` (read to its end), as frames. */
export async function wakeFrames(address: string): Promise<Record<string, unknown>[]> {
  const ev = await get(address, "/$switchyard/wake-events");
  return ev.body
    .split("\n\n")
    .filter(Boolean)
    .map((f) => JSON.parse(f.replace(/^data: /, "")));
}

/** The wake-events stream as `server:action` (or the bare action of a frame without a server). */
export async function wakeActions(address: string): Promise<string[]> {
  return (await wakeFrames(address)).map((f) => (f.server ? `${f.server}:${f.action}` : String(f.action)));
}
