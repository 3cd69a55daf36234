#!/usr/bin/env node
/**
 * The `switchyard` command: `serve` runs the load balancer, `check` validates a config file.
 */
import cluster from "node:cluster";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { ADDED_ENV } from "./idle/command-env.ts";

const USAGE = `Usage:
  switchyard serve [-c FILE] [--listen ADDR]... [--admin ADDR] [--workers N] [--log-level LEVEL]
  switchyard check -c FILE
  switchyard --help | --version

Commands:
  serve   Run the load balancer. Without -c it reads ./switchyard.yaml; without that file it
          runs a demo (three local backends behind one service) on the default ports.
  check   Validate a configuration file: exit 0, or print every problem and exit 1.

Options:
  -c, --config FILE     configuration file (YAML, or a GoDoxy route file)
      --listen ADDR     proxy address host:port, repeatable (default 0.0.0.0:8080; beats the file)
      --admin ADDR      admin API address (default 127.0.0.1:8081; beats the file)
      --workers N       worker processes (default 1; the primary runs health checks and admin)
      --log-level L     fatal, error, warn, info, debug (one line per request), trace or silent
  -h, --help            show this help
  -v, --version         print the version

Signals: SIGHUP reloads the configuration (so does saving the file); SIGTERM/SIGINT drain
in-flight requests (up to timeouts.shutdown, default 30s) and exit 0.
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

async function main(argv: string[]): Promise<number> {
  if (cluster.isWorker) {
    const { runWorker } = await import("./server/cluster/worker.ts");
    await runWorker();
    return -1; // keeps running; exits when the primary says so
  }
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    process.stderr.write(`switchyard: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`switchyard ${version()}\n`);
    return 0;
  }
  const [command, ...rest] = positionals;
  if (rest.length) {
    process.stderr.write(`switchyard: unexpected argument ${JSON.stringify(rest[0])}\n\n${USAGE}`);
    return 2;
  }
  switch (command) {
    case "serve": {
      serveFlags();
      let workers: number | undefined;
      if (values.workers !== undefined) {
        workers = Number(values.workers);
        if (!/^\d+$/.test(values.workers) || workers < 1) {
          process.stderr.write(`switchyard: --workers must be a whole number ≥ 1, got ${values.workers}\n`);
          return 2;
        }
      }
      const overrides = {
        listen: values.listen,
        admin: values.admin,
        workers,
        logLevel: values["log-level"],
      };
      // a bad flag value is a usage error (2), named by its flag, whatever the file says
      const { flagProblems } = await import("./config/load.ts");
      const bad = flagProblems(overrides);
      if (bad.length) {
        process.stderr.write(`${bad.map((p) => `switchyard: ${p}\n`).join("")}\n${USAGE}`);
        return 2;
      }
      const { serve } = await import("./server/serve.ts");
      return serve({ file: values.config, overrides });
    }
    case "check": {
      if (values.config === undefined) {
        process.stderr.write("switchyard check: -c FILE is required\n");
        return 2;
      }
      const { checkConfig } = await import("./config/load.ts");
      const result = await checkConfig(values.config);
      (result.ok ? process.stdout : process.stderr).write(`${result.output}\n`);
      return result.ok ? 0 : 1;
    }
    case undefined:
      process.stderr.write(USAGE);
      return 2;
    default:
      process.stderr.write(`switchyard: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
      return 2;
  }
}

/** V8 flags `serve` runs with (SWITCHYARD_V8_FLAGS replaces them; empty: Node's defaults). */
const SERVE_V8_FLAGS =
  "--max-semi-space-size=1 --initial-heap-size=20 --heap-growing-percent=25 --no-maglev --no-sparkplug";

/** glibc malloc settings `serve` runs with, each unless the environment already sets it. */
const SERVE_MALLOC_ENV = { MALLOC_ARENA_MAX: "1", MALLOC_TRIM_THRESHOLD_: "65536" };

/**
 * The server's memory (docs/performance.md). A proxy's per-request objects die young: 1 MB
 * semi-spaces keep the young generation at 2 MB (V8 grows it to 2 x 16 MB under load). V8's first
 * full collection waited until the old generation held ~58 MB (RSS climbed ~1 MB/s under load
 * for 40 s, and the pages it then freed stayed pooled): a 20 MB initial heap and a 25% growth
 * factor keep it near its live size (12 MB). Maglev and Sparkplug, V8's quicker compilers, bring
 * code of their own for a faster warm-up; TurboFan still optimizes the hot path, so a
 * long-running server loses nothing by skipping them. One malloc arena with a low trim threshold
 * gives freed socket buffers back instead of keeping an arena per thread.
 * Measured at 64 connections (same tree, alternating): RSS 84-92 MB -> 78-80 MB, flat over a
 * minute instead of climbing; CPU per request unchanged within noise.
 * These sizes are fixed when V8 starts (`v8.setFlagsFromString` no longer changes them), so
 * `serve` executes itself again in place (`process.execve`: same pid, stdio and environment)
 * with the flags, once, before loading anything. Skipped when every flag is already given (node's
 * command line or NODE_OPTIONS), when SWITCHYARD_V8_FLAGS is empty, or where `process.execve`
 * does not exist (Node < 22.15, Windows).
 */
function serveFlags(): void {
  const execve = (process as { execve?: (file: string, args: string[], env: NodeJS.ProcessEnv) => never })
    .execve;
  const flags = (process.env.SWITCHYARD_V8_FLAGS ?? SERVE_V8_FLAGS).split(/\s+/).filter(Boolean);
  if (typeof execve !== "function" || flags.length === 0) return;
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? "").split(/\s+/)].map(flagName);
  if (flags.every((f) => given.includes(flagName(f)))) return;
  const args = [...process.execArgv, ...flags, ...process.argv.slice(1)];
  try {
    // the commands idle providers start get the operator's environment back (idle/command-env.ts)
    const added = Object.keys(SERVE_MALLOC_ENV).filter((k) => process.env[k] === undefined);
    const env = { ...SERVE_MALLOC_ENV, ...process.env, [ADDED_ENV]: added.join(",") };
    execve.call(process, process.execPath, [process.execPath, ...args], env);
  } catch {
    // not permitted here (a sandbox, a seccomp filter): run with Node's defaults
  }
}

/** `--max-semi-space-size=2` -> `max-semi-space-size`, `--no-maglev` -> `maglev` (V8 reads _ as -). */
function flagName(flag: string): string {
  return flag
    .replace(/=.*/, "")
    .replace(/^--(no-)?/, "")
    .replaceAll("_", "-");
}

/** The --log-level value of a command line, read without failing on the rest. */
function logLevelArg(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--log-level") return argv[i + 1];
    if (argv[i].startsWith("--log-level=")) return argv[i].slice(12);
  }
  return undefined;
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: "string", short: "c" },
      listen: { type: "string", multiple: true },
      admin: { type: "string" },
      workers: { type: "string" },
      "log-level": { type: "string" },
      help: { type: "boolean", short: "h" },
      version: { type: "boolean", short: "v" },
    },
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err) => {
    // a stack trace only when asked for (--log-level debug or trace)
    const debug = /^(debug|trace)$/i.test(
      logLevelArg(process.argv) ?? process.env.SWITCHYARD_LOG_LEVEL ?? "",
    );
    const text = err instanceof Error ? (debug ? (err.stack ?? err.message) : err.message) : String(err);
    process.stderr.write(`switchyard: ${text}\n`);
    process.exit(1);
  },
);
