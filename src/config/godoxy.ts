/**
 * GoDoxy route files: a top-level map of aliases. Routes that share `load_balance.link` become
 * one service named by the link; a route without a link is a one-server service named by its
 * alias. Keys match ignoring case and underscores, as GoDoxy does. Unlike GoDoxy (whose first
 * member to start wins, in no fixed order) members that disagree on a service setting are errors.
 */
import { isIP } from "node:net";
import { dirname } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { z } from "zod";
import { formatDuration } from "../duration.ts";
import {
  bool,
  DEFAULTS,
  duration,
  type Entry,
  field,
  isMapValue,
  modeSchema,
  nonEmptyString,
  readHealthcheck,
  readMap,
  readOptions,
  serverUrl,
  serviceNameProblem,
  weightSchema,
} from "./fields.ts";
import {
  IDLE_KEYS,
  type IdlePartial,
  noteDeps,
  PROVIDER_KEYS,
  readIdleBlock,
  readIdleEntries,
  readProvider,
  resolveIdle,
} from "./idle.ts";
import type { Path, Problems } from "./source.ts";
import type { HealthcheckConfig, ServerConfig, ServiceConfig } from "./types.ts";

const ROUTE_KEYS = [
  "alias",
  "scheme",
  "host",
  "port",
  "healthcheck",
  "load_balance",
  "homepage",
  ...IDLE_KEYS,
  ...PROVIDER_KEYS,
  "idlewatcher",
] as const;
const LB_KEYS = ["link", "mode", "weight", "sticky", "sticky_max_age", "sticky_secret", "options"] as const;

const GODOXY_ONLY: Record<string, string> = {
  middlewares: "GoDoxy middlewares",
  rules: "GoDoxy rules",
  path_patterns: "path routing",
  no_tls_verify: "backend TLS options",
  response_header_timeout: "per-route timeouts (use `timeouts.response_header` in a switchyard file)",
  root: "file servers",
  spa: "file servers",
  index: "file servers",
  proxy_protocol: "stream routes",
  access_log: "per-route access logs",
  agent: "GoDoxy agents",
  container: "Docker discovery",
  bind: "per-route listeners",
  ssl: "backend TLS options",
};

const ROUTE_HINT_KEYS = new Set(["scheme", "host", "port", "loadbalance", "healthcheck"]);

/** A top-level map without `services` whose values look like routes. */
export function isGoDoxyRouteFile(value: unknown): value is Record<string, unknown> {
  if (!isMapValue(value) || Object.hasOwn(value, "services")) return false;
  const routes = Object.values(value);
  if (routes.length === 0) return false;
  let looksLikeRoute = false;
  for (const r of routes) {
    if (r === null) continue;
    if (!isMapValue(r)) return false;
    if (Object.keys(r).some((k) => ROUTE_HINT_KEYS.has(k.toLowerCase().replace(/_/g, ""))))
      looksLikeRoute = true;
  }
  return looksLikeRoute;
}

interface Member {
  alias: string;
  path: Path;
  server: ServerConfig;
  key: string;
  /** Route-level idle keys and `idlewatcher:` merged (the latter wins), for depends_on checks. */
  idle: IdlePartial;
  /** Service-level settings this member sets, each with the path to blame. */
  settings: Partial<Record<SettingName, { value: unknown; path: Path }>>;
}

type SettingName = "mode" | "sticky" | "stickyMaxAge" | "stickySecret" | "options" | "healthcheck";

const SETTING_LABEL: Record<SettingName, string> = {
  mode: "mode",
  sticky: "sticky",
  stickyMaxAge: "sticky_max_age",
  stickySecret: "sticky_secret",
  options: "options",
  healthcheck: "healthcheck",
};

/** Returns the services of a route file (problems go to `p`). */
export function readGoDoxy(p: Problems, routes: Record<string, unknown>): Record<string, ServiceConfig> {
  const groups = new Map<string, { members: Member[]; definedBy: Path; linked: boolean }>();
  for (const [alias, route] of Object.entries(routes)) {
    const path: Path = [alias];
    if (route === null) {
      p.at(path, "empty route: give at least `host` and `port`");
      continue;
    }
    const r = readMap(p, route, path, ROUTE_KEYS, {
      loose: true,
      unsupported: GODOXY_ONLY,
      ignored: ["homepage"],
    });
    if (!r) continue;
    const lbEntry = r.load_balance;
    const lb = lbEntry ? readMap(p, lbEntry.value, lbEntry.path, LB_KEYS, { loose: true }) : {};
    const member = readMember(p, alias, path, r, lb ?? {});
    if (!member) continue;
    let name: string | undefined;
    let linked = false;
    if (lb?.link) {
      name = p.parse(nonEmptyString, lb.link.value, lb.link.path);
      if (name === undefined) continue;
      const bad = serviceNameProblem(name);
      if (bad) {
        p.at(lb.link.path, bad);
        continue;
      }
      linked = true;
    } else {
      name = alias;
      const bad = serviceNameProblem(alias);
      if (bad) {
        p.at(path, `${bad} (or set load_balance.link)`, "key");
        continue;
      }
    }
    const group = groups.get(name);
    if (!group) groups.set(name, { members: [member], definedBy: lb?.link?.path ?? path, linked });
    else if (group.linked && linked) group.members.push(member);
    else p.at(lb?.link?.path ?? path, `service "${name}" is also defined by ${describeOrigin(group)}`, "key");
    if (member.server.provider) noteDeps(p, name, member.alias, member.idle, {});
  }

  const services: Record<string, ServiceConfig> = {};
  for (const [name, group] of groups) services[name] = buildService(p, name, group.members);
  return services;
}

function describeOrigin(group: { members: Member[]; linked: boolean }): string {
  return group.linked
    ? `load_balance.link of route "${group.members[0].alias}"`
    : `route "${group.members[0].alias}"`;
}

function readMember(
  p: Problems,
  alias: string,
  path: Path,
  r: Partial<Record<(typeof ROUTE_KEYS)[number], Entry>>,
  lb: Partial<Record<(typeof LB_KEYS)[number], Entry>>,
): Member | undefined {
  const scheme = field(
    p,
    r.scheme,
    z
      .string()
      .transform((s) => s.toLowerCase())
      .refine((s) => s === "http" || s === "https", {
        message: 'switchyard balances only "http" and "https" routes',
      }),
    "http",
  );
  const host = field(
    p,
    r.host,
    nonEmptyString.refine((h) => !h.includes(":") || isIP(h.replace(/^\[|\]$/g, "")) === 6, {
      message: "give the host without a port (the port goes in `port`)",
    }),
    "localhost",
  );
  const port = r.port
    ? p.parse(
        z
          .union([z.number(), z.string().regex(/^\d+$/, "expected a port number")])
          .transform(Number)
          .pipe(z.number().int().min(1).max(65535)),
        r.port.value,
        r.port.path,
      )
    : scheme === "https"
      ? 443
      : 80;
  if (port === undefined) return undefined;
  const hostPart = isIP(host) === 6 ? `[${host}]` : host;
  const target = p.parse(serverUrl, `${scheme}://${hostPart}:${port}`, r.host?.path ?? path);
  if (!target) return undefined;
  const settings: Member["settings"] = {};
  const set = (k: SettingName, entry: Entry | undefined, value: unknown) => {
    if (entry && value !== undefined) settings[k] = { value, path: entry.path };
  };
  set("mode", lb.mode, lb.mode && p.parse(modeSchema, lb.mode.value, lb.mode.path));
  set("sticky", lb.sticky, lb.sticky && p.parse(bool, lb.sticky.value, lb.sticky.path));
  set(
    "stickyMaxAge",
    lb.sticky_max_age,
    lb.sticky_max_age && p.parse(duration("positive"), lb.sticky_max_age.value, lb.sticky_max_age.path),
  );
  set(
    "stickySecret",
    lb.sticky_secret,
    lb.sticky_secret && p.parse(nonEmptyString, lb.sticky_secret.value, lb.sticky_secret.path),
  );
  set("options", lb.options, readOptions(p, lb.options, true));
  set("healthcheck", r.healthcheck, readHealthcheck(p, r.healthcheck, true));
  const weight = field(p, lb.weight, weightSchema, 0);
  const idle: IdlePartial = { ...readIdleEntries(p, r), ...readIdleBlock(p, r.idlewatcher, true) };
  const provider = readProvider(p, r, dirname(p.file), true);
  const hasIdleKeys = IDLE_KEYS.some((k) => r[k] !== undefined) || r.idlewatcher !== undefined;
  if (provider === undefined && hasIdleKeys) {
    p.at(path, "idle settings need a provider on the route (`run`, `exec` or `docker`)", "key");
  }
  const server: ServerConfig = provider
    ? { name: alias, url: target.url, weight, backup: false, provider, idle: resolveIdle({}, idle) }
    : { name: alias, url: target.url, weight, backup: false };
  return { alias, path, key: target.key, server, settings, idle };
}

function buildService(p: Problems, name: string, members: Member[]): ServiceConfig {
  const chosen: Partial<Record<SettingName, { value: unknown; by: string }>> = {};
  const servers: ServerConfig[] = [];
  const keys = new Map<string, string>();
  for (const m of members) {
    const other = keys.get(m.key);
    if (other !== undefined) {
      p.at(m.path, `same backend ${m.key} as route "${other}" in service "${name}"`, "key");
    } else {
      keys.set(m.key, m.alias);
      servers.push(m.server);
    }
    for (const [k, s] of Object.entries(m.settings) as [SettingName, { value: unknown; path: Path }][]) {
      const prev = chosen[k];
      if (!prev) chosen[k] = { value: s.value, by: m.alias };
      else if (!isDeepStrictEqual(prev.value, s.value)) {
        const what =
          k === "stickySecret"
            ? "sticky_secret differs from the one"
            : k === "options" || k === "healthcheck"
              ? `${SETTING_LABEL[k]} (${fieldDiff(s.value, prev.value)}) conflicts with the one`
              : `${SETTING_LABEL[k]} ${show(k, s.value)} conflicts with ${show(k, prev.value)}`;
        p.at(s.path, `${what} set by route "${prev.by}" (members of service "${name}" must agree)`);
      }
    }
  }
  const get = <T>(k: SettingName, fallback: T): T => (chosen[k] ? (chosen[k].value as T) : fallback);
  return {
    name,
    hosts: [],
    mode: get("mode", "round_robin"),
    sticky: get("sticky", false),
    stickyMaxAge: get("stickyMaxAge", DEFAULTS.stickyMaxAge),
    stickySecret: get<string | undefined>("stickySecret", undefined),
    options: get("options", { header: DEFAULTS.header, from: [], recursive: false }),
    healthcheck: get<HealthcheckConfig>("healthcheck", { ...DEFAULTS.healthcheck }),
    // GoDoxy has no slow start, panic mode or backup servers: off, as there
    slowStart: 0,
    panicThreshold: 0,
    passiveCooldown: DEFAULTS.passiveCooldown,
    accessLog: DEFAULTS.accessLog,
    servers,
  };
}

const SNAKE: Record<string, string> = { useGet: "use_get", enabled: "disable" };

/** `path "/y" vs "/x"` for the fields of two sections that differ. */
function fieldDiff(a: unknown, b: unknown): string {
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  const out: string[] = [];
  for (const k of Object.keys(x)) {
    if (isDeepStrictEqual(x[k], y[k])) continue;
    const fmt = (v: unknown) =>
      k === "enabled"
        ? String(!v)
        : (k === "interval" || k === "timeout") && typeof v === "number"
          ? formatDuration(v)
          : JSON.stringify(v);
    out.push(`${SNAKE[k] ?? k} ${fmt(x[k])} vs ${fmt(y[k])}`);
  }
  return out.join(", ");
}

function show(k: SettingName, v: unknown): string {
  if (k === "stickyMaxAge" && typeof v === "number") return formatDuration(v);
  return JSON.stringify(v);
}
