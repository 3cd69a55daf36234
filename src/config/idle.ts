/**
 * Idle keys (`idle:` per service with a per-server override; GoDoxy's route-level keys and
 * `idlewatcher:` block) and the providers (`run`, `exec`, `docker`) of a server. Problems are
 * reported with file:line like every other key; `depends_on` targets and cycles are checked once
 * every service is read (`checkIdleGraph`).
 */
import { resolve } from "node:path";
import * as v from "valibot";
import { normalizeSignal, SIGNAL_NAMES } from "../idle/watcher.ts";
import {
  bool,
  duration,
  type Entries,
  type Entry,
  field,
  isMapValue,
  nonEmptyString,
  pathSchema,
  readMap,
} from "./fields.ts";
import { checked, describe, type Path, type Problems } from "./source.ts";
import type { IdleConfig, ProviderConfig, ServiceConfig } from "./types.ts";

export const IDLE_KEYS = [
  "idle_timeout",
  "wake_timeout",
  "stop_timeout",
  "stop_method",
  "stop_signal",
  "start_endpoint",
  "depends_on",
  "no_loading_page",
] as const;
export type IdleKey = (typeof IDLE_KEYS)[number];
export const PROVIDER_KEYS = ["run", "exec", "docker"] as const;

export const IDLE_DEFAULTS: IdleConfig = {
  idleTimeout: 0,
  wakeTimeout: 180_000,
  stopTimeout: 60_000,
  stopMethod: "stop",
  stopSignal: undefined,
  startEndpoint: undefined,
  dependsOn: [],
  noLoadingPage: false,
};

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
/** What one block sets; `depPaths` are the lines of its depends_on entries. */
export type IdlePartial = Partial<Mutable<IdleConfig>> & { depPaths?: Path[] };

const stopMethod = checked(v.string(), (value, fail) => {
  const m = value.trim().toLowerCase();
  if (m !== "stop" && m !== "pause" && m !== "kill") {
    fail(`unknown stop_method "${value}" (stop, pause or kill)`);
    return "stop" as const;
  }
  return m;
});
const stopSignal = checked(v.string(), (value, fail) => {
  const s = normalizeSignal(value);
  if (!s) {
    fail(`unknown signal "${value}" (${SIGNAL_NAMES.join(", ")}, with or without SIG)`);
    return "SIGTERM";
  }
  return s;
});
const startEndpoint = v.pipe(
  pathSchema,
  v.transform((path: string) => path.replace(/#.*$/, "")),
);

/** Reads an `idle:` block (or `idlewatcher:`). */
export function readIdleBlock(p: Problems, entry: Entry | undefined, loose: boolean): IdlePartial {
  if (!entry) return {};
  const m = readMap(p, entry.value, entry.path, IDLE_KEYS, { loose });
  return m ? readIdleEntries(p, m) : {};
}

/** Reads idle keys already split out of a map (GoDoxy: at route level). */
export function readIdleEntries(p: Problems, m: Entries<IdleKey>): IdlePartial {
  const out: IdlePartial = {};
  if (m.idle_timeout) out.idleTimeout = field(p, m.idle_timeout, duration("non-negative"), 0);
  if (m.wake_timeout)
    out.wakeTimeout = field(p, m.wake_timeout, duration("positive"), IDLE_DEFAULTS.wakeTimeout);
  if (m.stop_timeout)
    out.stopTimeout = field(p, m.stop_timeout, duration("positive"), IDLE_DEFAULTS.stopTimeout);
  if (m.stop_method) out.stopMethod = field(p, m.stop_method, stopMethod, "stop");
  if (m.stop_signal) out.stopSignal = field(p, m.stop_signal, stopSignal, "SIGTERM");
  if (m.start_endpoint) out.startEndpoint = field(p, m.start_endpoint, startEndpoint, "/");
  if (m.no_loading_page) out.noLoadingPage = field(p, m.no_loading_page, bool, false);
  if (m.depends_on) {
    const e = m.depends_on;
    const items: Entry[] = Array.isArray(e.value)
      ? e.value.map((value, i) => ({ value, path: [...e.path, i] }))
      : typeof e.value === "string"
        ? e.value.split(",").map((value) => ({ value: value.trim(), path: e.path }))
        : [e];
    const deps: string[] = [];
    const paths: Path[] = [];
    for (const item of items) {
      const v = p.parse(nonEmptyString, item.value, item.path);
      if (v === undefined) continue;
      // compose-style conditions (GoDoxy understands them): "db:service_healthy"
      const target = v.replace(/:(service_started|service_healthy)$/, "");
      deps.push(target);
      paths.push(item.path);
    }
    out.dependsOn = deps;
    out.depPaths = paths;
  }
  return out;
}

/** Service block, then the server's own block, key by key, over the defaults. */
export function resolveIdle(service: IdlePartial, own: IdlePartial): IdleConfig {
  const pick = <K extends keyof IdleConfig>(k: K): IdleConfig[K] =>
    (own[k] !== undefined
      ? own[k]
      : service[k] !== undefined
        ? service[k]
        : IDLE_DEFAULTS[k]) as IdleConfig[K];
  return {
    idleTimeout: pick("idleTimeout"),
    wakeTimeout: pick("wakeTimeout"),
    stopTimeout: pick("stopTimeout"),
    stopMethod: pick("stopMethod"),
    stopSignal: pick("stopSignal"),
    startEndpoint: pick("startEndpoint"),
    dependsOn: pick("dependsOn"),
    noLoadingPage: pick("noLoadingPage"),
  };
}

const stringMap = v.record(
  v.string(),
  v.pipe(v.union([v.string(), v.number(), v.boolean()]), v.transform(String)),
);
const argvSchema = v.array(v.pipe(v.union([v.string(), v.number()]), v.transform(String)));
const commandSchema = v.pipe(v.string(), v.trim(), v.minLength(1, "empty command"));

/**
 * The provider of a server from its `run` / `exec` / `docker` entries: undefined when none,
 * null when a problem was reported.
 */
export function readProvider(
  p: Problems,
  m: Entries<(typeof PROVIDER_KEYS)[number]>,
  baseDir: string,
  loose: boolean,
): ProviderConfig | undefined | null {
  const given = PROVIDER_KEYS.filter((k) => m[k] !== undefined);
  if (given.length === 0) return undefined;
  if (given.length > 1) {
    p.at(
      m[given[1]]!.path,
      `a server has one provider: both \`${given[0]}\` and \`${given[1]}\` are set`,
      "key",
    );
    return null;
  }
  const kind = given[0];
  const e = m[kind]!;
  if (kind === "run") {
    let cmdEntry: Entry | undefined = e;
    let cwd: string | undefined;
    let env: Record<string, string> = {};
    if (isMapValue(e.value)) {
      const r = readMap(p, e.value, e.path, ["command", "cwd", "env"] as const, { loose });
      if (!r) return null;
      cmdEntry = r.command;
      if (!cmdEntry) {
        p.at(e.path, "missing `command` (an argv list or a string for /bin/sh -c)");
        return null;
      }
      const c = r.cwd && p.parse(nonEmptyString, r.cwd.value, r.cwd.path);
      cwd = c === undefined ? undefined : resolve(baseDir, c);
      if (r.env) env = p.parse(stringMap, r.env.value, r.env.path) ?? {};
    }
    const v = cmdEntry.value;
    if (typeof v === "string") {
      if (v.trim() === "") {
        p.at(cmdEntry.path, "empty `run` command");
        return null;
      }
      return { kind, command: v, cwd, env };
    }
    if (Array.isArray(v)) {
      if (v.length === 0 || v[0] === "" || v[0] === null) {
        p.at(cmdEntry.path, "empty `run` command");
        return null;
      }
      const argv = p.parse(argvSchema, v, cmdEntry.path);
      return argv ? { kind, command: argv, cwd, env } : null;
    }
    p.at(cmdEntry.path, `expected a command (argv list or string), got ${describe(v)}`);
    return null;
  }
  if (kind === "exec") {
    const r = readMap(p, e.value, e.path, ["start", "stop", "pause", "resume", "status"] as const, { loose });
    if (!r) return null;
    let ok = true;
    const cmd = (
      k: "start" | "stop" | "pause" | "resume" | "status",
      required: boolean,
    ): string | undefined => {
      const x = r[k];
      if (!x) {
        if (required) {
          p.at(e.path, `missing \`${k}\` command`);
          ok = false;
        }
        return undefined;
      }
      const s = p.parse(commandSchema, x.value, x.path);
      if (s === undefined) ok = false;
      return s;
    };
    const out: ProviderConfig = {
      kind,
      start: cmd("start", true) ?? "",
      stop: cmd("stop", true) ?? "",
      pause: cmd("pause", false),
      resume: cmd("resume", false),
      status: cmd("status", false),
    };
    return ok ? out : null;
  }
  // docker
  if (typeof e.value === "string") {
    const c = p.parse(nonEmptyString, e.value, e.path);
    return c === undefined ? null : { kind, container: c, socketPath: undefined };
  }
  const r = readMap(p, e.value, e.path, ["container", "socket"] as const, { loose });
  if (!r) return null;
  if (!r.container) {
    p.at(e.path, "missing `container` (name or id)");
    return null;
  }
  const container = p.parse(nonEmptyString, r.container.value, r.container.path);
  const socketPath = r.socket && p.parse(nonEmptyString, r.socket.value, r.socket.path);
  return container === undefined ? null : { kind, container, socketPath };
}

/** depends_on records per parse, checked once all services are known. */
const graphs = new WeakMap<
  Problems,
  { service: string; server: string; deps: readonly string[]; paths: readonly Path[] }[]
>();

/** Remembers a server's depends_on for `checkIdleGraph`. */
export function noteDeps(
  p: Problems,
  service: string,
  server: string,
  idle: IdlePartial,
  svcIdle: IdlePartial,
): void {
  const src = idle.dependsOn !== undefined ? idle : svcIdle;
  if (!src.dependsOn?.length) return;
  let list = graphs.get(p);
  if (!list) {
    list = [];
    graphs.set(p, list);
  }
  list.push({ service, server, deps: src.dependsOn, paths: src.depPaths ?? [] });
}

/** Every depends_on target exists and no server depends on itself through others. */
export function checkIdleGraph(p: Problems, services: Readonly<Record<string, ServiceConfig>>): void {
  const list = graphs.get(p);
  if (!list) return;
  const node = (svc: string, srv: string) => `${svc}/${srv}`;
  const edges = new Map<string, { to: string[]; paths: readonly Path[] }>();
  for (const r of list) {
    const to: string[] = [];
    r.deps.forEach((d, i) => {
      const path = r.paths[i] ?? [];
      const slash = d.indexOf("/");
      const svcName = slash < 0 ? d : d.slice(0, slash);
      const svc = services[svcName];
      if (!svc) {
        p.at(path, `depends_on: unknown service "${svcName}"`);
        return;
      }
      if (slash < 0) {
        for (const s of svc.servers) to.push(node(svcName, s.name));
      } else {
        const srvName = d.slice(slash + 1);
        if (!svc.servers.some((s) => s.name === srvName)) {
          p.at(path, `depends_on: service "${svcName}" has no server "${srvName}"`);
          return;
        }
        to.push(node(svcName, srvName));
      }
    });
    edges.set(node(r.service, r.server), { to, paths: r.paths });
  }
  // depth-first search for a cycle; each cycle reported once, at its first node's depends_on
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const reported = new Set<string>();
  const visit = (n: string): void => {
    state.set(n, 1);
    stack.push(n);
    for (const m of edges.get(n)?.to ?? []) {
      const st = state.get(m);
      if (st === 1) {
        const cycle = [...stack.slice(stack.indexOf(m)), m];
        const key = [...cycle].sort().join(" ");
        if (!reported.has(key)) {
          reported.add(key);
          const at = edges.get(m)?.paths[0] ?? [];
          p.at(at, `depends_on cycle: ${cycle.join(" → ")}`);
        }
      } else if (st === undefined) visit(m);
    }
    stack.pop();
    state.set(n, 2);
  };
  for (const n of edges.keys()) if (!state.has(n)) visit(n);
}
