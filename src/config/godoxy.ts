/**
 * GoDoxy route files: a top-level map of aliases. Routes that share `load_balance.link` become
 * one service named by the link; a route without a link is a one-server service named by its
 * alias. Keys match ignoring case and underscores, as GoDoxy does. Unlike GoDoxy (whose first
 * member to start wins, in no fixed order) members that disagree on a service setting are errors.
 */
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { dirname, resolve } from "node:path";
import { isDeepStrictEqual } from "node:util";
import * as v from "valibot";
import { formatDuration } from "../duration.ts";
import { tlsProblem } from "../upstream-tls.ts";
import {
  bool,
  DEFAULTS,
  duration,
  type Entry,
  field,
  hostPattern,
  isMapValue,
  modeSchema,
  nonEmptyString,
  nonNegativeInt,
  osReason,
  readHealthcheck,
  readMap,
  readOptions,
  serverUrl,
  serviceNameProblem,
} from "./fields.ts";
import { readGoDoxyMiddlewares, readGoDoxyRules } from "./godoxy-middlewares.ts";
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
import { checkRoutes, type RouteRef } from "./rules.ts";
import { checked, type Path, type Problems } from "./source.ts";
import type {
  HealthcheckConfig,
  MiddlewareConfig,
  ProviderConfig,
  ServerConfig,
  ServiceConfig,
  ServiceTimeouts,
  UpstreamTlsConfig,
} from "./types.ts";

/** GoDoxy's backend TLS keys, mapped onto a server's `tls` (SPEC "Backend TLS"). */
const TLS_KEYS = [
  "no_tls_verify",
  "ssl_server_name",
  "ssl_trusted_certificate",
  "ssl_certificate",
  "ssl_certificate_key",
] as const;

const ROUTE_KEYS = [
  "alias",
  "scheme",
  "host",
  "port",
  "healthcheck",
  "load_balance",
  "homepage",
  "middlewares",
  "rules",
  "response_header_timeout",
  "disable_compression",
  ...TLS_KEYS,
  ...IDLE_KEYS,
  ...PROVIDER_KEYS,
  "idlewatcher",
] as const;
const LB_KEYS = ["link", "mode", "weight", "sticky", "sticky_max_age", "sticky_secret", "options"] as const;

/**
 * GoDoxy route keys switchyard does not offer, with what it offers instead. Every one is refused
 * by name (SPEC "Paths and middlewares"): `GoDoxy key "bind" is not supported: …`.
 */
export const GODOXY_REFUSED: Readonly<Record<string, string>> = {
  bind: "switchyard listens on the top-level `listen` addresses (or --listen) for every service, not per route",
  root: "file-server routes: serve the files with a web server and put it behind switchyard as a backend",
  spa: "file-server routes: serve the files with a web server and put it behind switchyard as a backend",
  index: "file-server routes: serve the files with a web server and put it behind switchyard as a backend",
  relay_proxy_protocol_header:
    "stream (tcp/udp) routes: switchyard proxies HTTP only; it reads PROXY protocol on a listener (`listen: [{ proxy_protocol }]`) but does not send it",
  path_patterns:
    "GoDoxy's ServeMux patterns (methods, {$}) have no equivalent; switchyard routes path prefixes to services with `paths` in a switchyard file",
  rule_file:
    "rule files and embed:// presets: write the rules inline under `rules` (see docs/godoxy-migration.md for the rules switchyard maps)",
  access_log:
    "per-route access logs: switchyard writes one access log line per request for every service (top-level `access_log`)",
  agent:
    "GoDoxy agents: run switchyard where the backend is reachable, or start remote backends with an `exec` provider (ssh …)",
  inbound_mtls_profile: "client certificates on the listener are not offered",
  container:
    "Docker discovery metadata: give the container to the route as `docker: { container: NAME }` (idle wake) and its address in `host`/`port`",
  provider: "GoDoxy fills this in itself; remove it",
  ssl_protocols:
    "switchyard speaks TLS 1.2 and 1.3 to backends (Node's defaults); the list cannot be changed",
};

/** Keys of GoDoxy's main `config.yml` that never name a route. */
const MAIN_CONFIG_KEYS: Readonly<Record<string, string>> = {
  providers: "its route files are listed under `providers.include`: give switchyard one of those with -c",
  entrypoint:
    "switchyard's listener is `listen` (with `tls` and `proxy_protocol`) in a switchyard.yaml, or --listen",
  autocert:
    "switchyard does not obtain certificates: give `listen: [{ address, tls: { cert, key } }]` in a switchyard.yaml",
  match_domains:
    "switchyard matches a route alias as the first label of any Host, or a full name given as the alias",
  timeout_shutdown: "switchyard drains on SIGTERM for `timeouts.shutdown` (a switchyard.yaml)",
  acl: "use the `allow`/`deny` middlewares per service (a switchyard.yaml)",
};

/** GoDoxy's defaults by alias (routes without scheme or port; route/common.go). */
const ALIAS_DEFAULTS: Readonly<Record<string, { scheme: string; port: number }>> = {
  portainer: { scheme: "https", port: 9443 },
  crafty: { scheme: "https", port: 8080 },
};

const ROUTE_HINT_KEYS = new Set(["scheme", "host", "port", "loadbalance", "healthcheck"]);

/** A top-level map without `services` whose values look like routes, or GoDoxy's main config.yml. */
export function isGoDoxyRouteFile(value: unknown): value is Record<string, unknown> {
  if (!isMapValue(value) || Object.hasOwn(value, "services")) return false;
  if (mainConfigKey(value) !== undefined) return true;
  const routes = Object.entries(value).filter(([k]) => !isAnchorKey(k));
  if (routes.length === 0) return false;
  let looksLikeRoute = false;
  for (const [, r] of routes) {
    if (r === null) continue;
    if (!isMapValue(r)) return false;
    if (Object.keys(r).some((k) => ROUTE_HINT_KEYS.has(k.toLowerCase().replace(/_/g, ""))))
      looksLikeRoute = true;
  }
  return looksLikeRoute;
}

/** GoDoxy skips top-level keys starting with `x-`: they hold YAML anchors, not routes. */
const isAnchorKey = (k: string) => k.trim().toLowerCase().startsWith("x-");

function mainConfigKey(value: Record<string, unknown>): string | undefined {
  return Object.keys(value).find((k) => {
    const v = value[k];
    return (
      Object.hasOwn(MAIN_CONFIG_KEYS, k) &&
      !(isMapValue(v) && Object.keys(v).some((x) => ROUTE_HINT_KEYS.has(x.toLowerCase().replace(/_/g, ""))))
    );
  });
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

type SettingName =
  | "mode"
  | "sticky"
  | "stickyMaxAge"
  | "stickySecret"
  | "options"
  | "healthcheck"
  | "timeouts"
  | "middlewares";

const SETTING_LABEL: Record<SettingName, string> = {
  mode: "mode",
  sticky: "sticky",
  stickyMaxAge: "sticky_max_age",
  stickySecret: "sticky_secret",
  options: "options",
  healthcheck: "healthcheck",
  timeouts: "response_header_timeout",
  middlewares: "middlewares and rules",
};

/** GoDoxy's sticky_max_age default as its docs give it (SPEC: a GoDoxy file gets 1h). */
const GODOXY_STICKY_MAX_AGE = 3_600_000;

/** Returns the services of a route file (problems go to `p`). */
export function readGoDoxy(p: Problems, routes: Record<string, unknown>): Record<string, ServiceConfig> {
  const main = Object.keys(routes).filter(
    (k) => Object.hasOwn(MAIN_CONFIG_KEYS, k) && mainConfigKey({ [k]: routes[k] }) !== undefined,
  );
  if (main.length) {
    for (const k of main)
      p.at(
        [k],
        `this is GoDoxy's main config.yml, not a route file ("${k}" is one of its keys): ${MAIN_CONFIG_KEYS[k]}`,
        "key",
      );
    return {};
  }
  const groups = new Map<string, { members: Member[]; definedBy: Path; linked: boolean; hosts: string[] }>();
  const aliases = new Map<string, string>();
  const routeRefs: RouteRef[] = [];
  /** Alias of a load_balance member → its link (a `route` must name the link). */
  const memberOf = new Map<string, string>();
  for (const [rawAlias, route] of Object.entries(routes)) {
    if (isAnchorKey(rawAlias)) continue;
    const path: Path = [rawAlias];
    // GoDoxy lowercases and trims aliases
    const alias = rawAlias.trim().toLowerCase();
    const prev = aliases.get(alias);
    if (prev !== undefined) {
      p.at(path, `same alias as "${prev}" (GoDoxy lowercases aliases)`, "key");
      continue;
    }
    aliases.set(alias, rawAlias);
    if (route === null) {
      p.at(path, "empty route: give at least `host` and `port`");
      continue;
    }
    const kept: Record<string, unknown> = {};
    if (isMapValue(route)) {
      for (const [k, v] of Object.entries(route)) {
        const why = refusal(k, v);
        if (why) p.at([...path, k], `GoDoxy key "${k}" is not supported: ${why}`, "key");
        else if (why === undefined) kept[k] = v;
      }
    }
    const r = readMap(p, isMapValue(route) ? kept : route, path, ROUTE_KEYS, { loose: true });
    if (!r) continue;
    if (r.alias && String(r.alias.value).trim().toLowerCase() !== alias)
      p.at(
        r.alias.path,
        `GoDoxy names a route by its key ("${alias}"); remove \`alias\` or make it the same`,
      );
    const lbEntry = r.load_balance;
    const lb = lbEntry ? readMap(p, lbEntry.value, lbEntry.path, LB_KEYS, { loose: true }) : {};
    const member = readMember(p, alias, path, r, lb ?? {}, routeRefs);
    if (!member) continue;
    let name: string;
    let linked = false;
    let at: Path = path;
    if (lb?.link) {
      const link = p.parse(nonEmptyString, lb.link.value, lb.link.path);
      if (link === undefined) continue;
      name = link.trim().toLowerCase();
      linked = true;
      at = lb.link.path;
      if (name !== alias) memberOf.set(alias, name);
    } else name = alias;
    const hosts = hostsOf(p, name, at, linked);
    if (hosts === undefined) continue;
    const group = groups.get(name);
    if (!group) groups.set(name, { members: [member], definedBy: at, linked, hosts });
    else if (group.linked && linked) group.members.push(member);
    else p.at(at, `service "${name}" is also defined by ${describeOrigin(group)}`, "key");
    if (member.server.provider) noteDeps(p, name, member.alias, member.idle, {});
  }

  const services: Record<string, ServiceConfig> = {};
  for (const [name, group] of groups) services[name] = buildService(p, name, group.members, group.hosts);
  checkRoutes(p, routeRefs, new Set(groups.keys()), memberOf);
  return services;
}

/** Why a GoDoxy key is refused; "" when it is one of those keys with the value switchyard runs anyway. */
function refusal(key: string, value: unknown): string | undefined {
  const n = key.toLowerCase().replace(/_/g, "");
  for (const [k, why] of Object.entries(GODOXY_REFUSED)) {
    if (k.replace(/_/g, "") !== n) continue;
    return isGoDoxyDefault(k, value) ? "" : why;
  }
  return undefined;
}

/** Values of refused keys that ask for what switchyard does anyway: accepted. */
function isGoDoxyDefault(key: string, value: unknown): boolean {
  switch (key) {
    case "spa":
    case "relay_proxy_protocol_header":
      return value === false || value === null;
    case "ssl_protocols": {
      // Node speaks TLS 1.2 and 1.3
      const list = Array.isArray(value) ? value : typeof value === "string" ? value.split(",") : null;
      return (
        list !== null &&
        list.length > 0 &&
        list.every((v) => typeof v === "string" && /^tlsv1\.[23]$/i.test(v.trim())) &&
        new Set(list.map((v) => String(v).trim().toLowerCase())).size === 2
      );
    }
    default:
      return false;
  }
}

/**
 * A route alias (or link) is a first label (`app`: matched as `app.<anything>`), a full domain
 * name (`app.example.com`: that host) or a wildcard (`*.example.com`). Returns the service's
 * `hosts` (empty for a first label), or undefined after a problem.
 */
function hostsOf(p: Problems, name: string, at: Path, linked: boolean): string[] | undefined {
  if (name.includes(".") || name.includes("*")) {
    const h = v.safeParse(hostPattern, name);
    if (!h.success) {
      p.at(
        at,
        `"${name}" is not a first label, a full domain name or a wildcard such as "*.example.com"`,
        linked ? "value" : "key",
      );
      return undefined;
    }
    return [h.output];
  }
  const bad = serviceNameProblem(name);
  if (bad) {
    p.at(at, linked ? bad : `${bad} (or set load_balance.link)`, linked ? "value" : "key");
    return undefined;
  }
  return [];
}

function describeOrigin(group: { members: Member[]; linked: boolean }): string {
  return group.linked
    ? `load_balance.link of route "${group.members[0].alias}"`
    : `route "${group.members[0].alias}"`;
}

const SCHEME_REFUSED: Readonly<Record<string, string>> = {
  tcp: "stream routes: switchyard proxies HTTP only",
  udp: "stream routes: switchyard proxies HTTP only",
  fileserver:
    "file-server routes: serve the files with a web server and put it behind switchyard as a backend",
};

/** GoDoxy's `host`: a name or an address, without a port. */
const routeHost = checked(nonEmptyString, (value, fail) => {
  const h = value.trim().toLowerCase();
  if (h.includes(":") && isIP(h.replace(/^\[|\]$/g, "")) !== 6)
    fail("give the host without a port (the port goes in `port`)");
  return h;
});

/** GoDoxy's `port`: "[listening:]target" or a number. */
const portSchema = checked(v.union([v.number(), v.string()]), (value, fail): number => {
  const text = String(value).trim();
  if (/^\d+:\d+$/.test(text)) {
    fail(
      `"${text}": a listening port is for GoDoxy stream routes; switchyard listens on \`listen\` for every service: give only the backend's port`,
    );
    return 0;
  }
  if (!/^\d+$/.test(text)) {
    fail(`expected a port number, got ${JSON.stringify(value)}`);
    return 0;
  }
  const n = Number(text);
  if (n > 65535) fail(`must be ≤ 65535, got ${n}`);
  return n;
});

function readMember(
  p: Problems,
  alias: string,
  path: Path,
  r: Partial<Record<(typeof ROUTE_KEYS)[number], Entry>>,
  lb: Partial<Record<(typeof LB_KEYS)[number], Entry>>,
  routes: RouteRef[],
): Member | undefined {
  let scheme: string | undefined;
  // a refused scheme is reported, and the rest of the route is still read for more problems
  let failed = false;
  let stream = false;
  let h2c = false;
  if (r.scheme) {
    const s = p.parse(nonEmptyString, r.scheme.value, r.scheme.path)?.trim().toLowerCase();
    if (s === undefined) failed = true;
    else if (SCHEME_REFUSED[s]) {
      p.at(r.scheme.path, `GoDoxy scheme "${s}" is not supported: ${SCHEME_REFUSED[s]}`);
      failed = true;
      stream = s === "tcp" || s === "udp";
    } else if (s === "h2c") {
      // cleartext HTTP/2 with prior knowledge: an http:// server with protocol h2c
      scheme = "http";
      h2c = true;
    } else if (s !== "http" && s !== "https") {
      p.at(r.scheme.path, `unknown scheme "${s}": switchyard balances "http" and "https" routes`);
      failed = true;
    } else scheme = s;
  }
  const host = field(p, r.host, routeHost, "localhost");
  // a stream route's "listen:target" port is part of what its scheme refusal already says
  let port = r.port && !stream ? p.parse(portSchema, r.port.value, r.port.path) : 0;
  if (port === undefined || port > 65535) return undefined;
  // GoDoxy's defaults (route.Finalize): by alias, then 443 → https, then http on 80
  const byAlias = ALIAS_DEFAULTS[alias];
  if (scheme === undefined && byAlias) scheme = byAlias.scheme;
  if (port === 0 && byAlias) port = byAlias.port;
  if (scheme === undefined) scheme = port % 1000 === 443 ? "https" : "http";
  if (port === 0) port = scheme === "https" ? 443 : 80;
  const hostPart = isIP(host) === 6 && !host.startsWith("[") ? `[${host}]` : host;
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
  const healthcheck = readHealthcheck(p, r.healthcheck, true);
  set("healthcheck", r.healthcheck, healthcheck);
  if (r.response_header_timeout) {
    const t = p.parse(duration("positive"), r.response_header_timeout.value, r.response_header_timeout.path);
    set("timeouts", r.response_header_timeout, t === undefined ? undefined : { responseHeader: t });
  }
  if (r.disable_compression) p.parse(bool, r.disable_compression.value, r.disable_compression.path);
  const mapped = readGoDoxyMiddlewares(p, r.middlewares, p.file);
  const fromRules = readGoDoxyRules(p, r.rules, routes);
  // GoDoxy wraps the proxy in the rules, and the middlewares patch the proxy: rules run first
  const middlewares = [...fromRules, ...mapped.middlewares];
  if (middlewares.length) set("middlewares", r.middlewares ?? r.rules, middlewares);
  if (mapped.realIp) {
    const prev = settings.options;
    if (prev && !isDeepStrictEqual(prev.value, mapped.realIp))
      p.at(
        r.middlewares!.path,
        `real_ip (${fieldDiff(mapped.realIp, prev.value)}) conflicts with load_balance.options: switchyard has one real-IP setting per service`,
      );
    else settings.options = { value: mapped.realIp, path: r.middlewares!.path };
  }
  const weight = field(p, lb.weight, nonNegativeInt, 0);
  const watcher = readIdlewatcher(p, r.idlewatcher);
  const idle: IdlePartial = { ...readIdleEntries(p, r), ...watcher.idle };
  let provider = readProvider(p, r, dirname(p.file), true);
  if (watcher.docker) {
    if (provider)
      p.at(
        r.idlewatcher!.path,
        "the route gives its provider twice: `idlewatcher.docker` and a route-level provider",
      );
    else if (provider === undefined) provider = watcher.docker;
  }
  const hasIdleKeys = IDLE_KEYS.some((k) => r[k] !== undefined) || Object.keys(watcher.idle).length > 0;
  if (provider === undefined && hasIdleKeys) {
    p.at(
      r.idlewatcher?.path ?? path,
      "idle settings need a provider on the route (`idlewatcher.docker`, or `run`, `exec` or `docker`)",
      "key",
    );
  }
  // GoDoxy refuses this combination (routevalidate: "cannot disable healthcheck when loadbalancer or idle watcher is enabled")
  if (healthcheck && !healthcheck.enabled && (lb.link || (idle.idleTimeout ?? 0) > 0))
    p.at(
      r.healthcheck!.path,
      "cannot disable healthcheck when loadbalancer or idle watcher is enabled (GoDoxy refuses it too: balancing and idle wake need the check)",
    );
  const tls = readGoDoxyTls(p, r, scheme === "https", dirname(p.file));
  const upstream = { ...(h2c ? { protocol: "h2c" as const } : {}), ...(tls ? { tls } : {}) };
  const server: ServerConfig = provider
    ? {
        name: alias,
        url: target.url,
        weight,
        backup: false,
        provider,
        idle: resolveIdle({}, idle),
        ...upstream,
      }
    : { name: alias, url: target.url, weight, backup: false, ...upstream };
  return failed ? undefined : { alias, path, key: target.key, server, settings, idle };
}

/**
 * `no_tls_verify` and the `ssl_*` keys → the server's `tls`. GoDoxy uses them for https routes
 * only; on an http route `no_tls_verify` means nothing (accepted, as there), the others are a
 * problem since they name files that would never be used.
 */
function readGoDoxyTls(
  p: Problems,
  r: Partial<Record<(typeof ROUTE_KEYS)[number], Entry>>,
  https: boolean,
  baseDir: string,
): UpstreamTlsConfig | undefined {
  const insecure = r.no_tls_verify ? p.parse(bool, r.no_tls_verify.value, r.no_tls_verify.path) : undefined;
  let servername: string | undefined;
  if (r.ssl_server_name) {
    const name = p.parse(v.string(), r.ssl_server_name.value, r.ssl_server_name.path)?.trim();
    if (name === "off")
      p.at(
        r.ssl_server_name.path,
        'ssl_server_name "off" (no SNI) is not offered: switchyard always sends SNI (the URL\'s host, or this name)',
      );
    else if (name) servername = name;
  }
  const file = (e: Entry | undefined): { file: string; text: Buffer } | undefined => {
    if (!e) return undefined;
    const rel = p.parse(nonEmptyString, e.value, e.path);
    if (rel === undefined) return undefined;
    const abs = resolve(baseDir, rel);
    try {
      return { file: abs, text: readFileSync(abs) };
    } catch (err) {
      p.at(e.path, `cannot read ${abs}: ${osReason(err)}`);
      return undefined;
    }
  };
  const fileKeys = [r.ssl_trusted_certificate, r.ssl_certificate, r.ssl_certificate_key];
  if (!https) {
    for (const e of [r.ssl_server_name && servername ? r.ssl_server_name : undefined, ...fileKeys])
      if (e)
        p.at(
          e.path,
          "applies to https backends only (GoDoxy does not use it on an http route either): remove it, or set `scheme: https`",
        );
    return undefined;
  }
  if (fileKeys.every((e) => e === undefined) && servername === undefined && !insecure) return undefined;
  let ca: string | undefined;
  const caFile = file(r.ssl_trusted_certificate);
  if (caFile) {
    try {
      process.getBuiltinModule("node:tls").createSecureContext({ ca: caFile.text });
      ca = caFile.file;
    } catch (err) {
      p.at(r.ssl_trusted_certificate!.path, `${caFile.file}: ${tlsProblem(err)}`);
    }
  }
  let cert: string | undefined;
  let key: string | undefined;
  if (r.ssl_certificate && !r.ssl_certificate_key)
    p.at(
      r.ssl_certificate.path,
      "`ssl_certificate` needs `ssl_certificate_key` (the client certificate's private key)",
    );
  if (r.ssl_certificate_key && !r.ssl_certificate)
    p.at(
      r.ssl_certificate_key.path,
      "`ssl_certificate_key` needs `ssl_certificate` (the client certificate)",
    );
  const c = file(r.ssl_certificate);
  const k = file(r.ssl_certificate_key);
  if (c && k) {
    try {
      process.getBuiltinModule("node:tls").createSecureContext({ cert: c.text, key: k.text });
      cert = c.file;
      key = k.file;
    } catch (err) {
      p.at(r.ssl_certificate!.path, `${c.file} with ${k.file}: ${tlsProblem(err)}`);
    }
  }
  return { ca, servername, cert, key, insecureSkipVerify: insecure ?? false };
}

/** `idlewatcher:` — the idle keys, plus GoDoxy's `docker` (mapped), `proxmox` and `notify` (refused). */
function readIdlewatcher(
  p: Problems,
  entry: Entry | undefined,
): { idle: IdlePartial; docker?: ProviderConfig } {
  if (!entry || !isMapValue(entry.value)) return { idle: readIdleBlock(p, entry, true) };
  const rest: Record<string, unknown> = {};
  let docker: ProviderConfig | undefined;
  for (const [k, v] of Object.entries(entry.value)) {
    const kp = [...entry.path, k];
    const n = k.toLowerCase().replace(/_/g, "");
    if (n === "proxmox")
      p.at(
        kp,
        'GoDoxy key "proxmox" is not supported: start and stop the LXC with an `exec` provider on the route (`exec: { start: "pct start ID", stop: "pct shutdown ID", status: "pct status ID | grep -q running" }`)',
        "key",
      );
    else if (n === "notify")
      p.at(
        kp,
        'GoDoxy key "notify" is not supported: switchyard streams wake and idle-stop events on the admin API (GET /api/events)',
        "key",
      );
    else if (n === "docker") {
      const d = readMap(p, v, kp, ["container_id", "container_name", "container", "socket"] as const, {
        loose: true,
      });
      if (!d) continue;
      const c = d.container_name ?? d.container ?? d.container_id;
      if (!c) {
        p.at(kp, "missing `container_name` (or `container_id`)");
        continue;
      }
      const container = p.parse(nonEmptyString, c.value, c.path);
      const socketPath = d.socket && p.parse(nonEmptyString, d.socket.value, d.socket.path);
      if (container !== undefined) docker = { kind: "docker", container, socketPath };
    } else rest[k] = v;
  }
  const m = readMap(p, rest, entry.path, IDLE_KEYS, { loose: true });
  return { idle: m ? readIdleEntries(p, m) : {}, docker };
}

function buildService(p: Problems, name: string, members: Member[], hosts: string[]): ServiceConfig {
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
            : k === "middlewares"
              ? "middlewares and rules differ from the ones"
              : k === "options" || k === "healthcheck" || k === "timeouts"
                ? `${SETTING_LABEL[k]} (${fieldDiff(s.value, prev.value)}) conflicts with the one`
                : `${SETTING_LABEL[k]} ${show(k, s.value)} conflicts with ${show(k, prev.value)}`;
        p.at(s.path, `${what} set by route "${prev.by}" (members of service "${name}" must agree)`);
      }
    }
  }
  const get = <T>(k: SettingName, fallback: T): T => (chosen[k] ? (chosen[k].value as T) : fallback);
  const service: ServiceConfig = {
    name,
    hosts,
    mode: get("mode", "round_robin"),
    sticky: get("sticky", false),
    stickyMaxAge: get("stickyMaxAge", GODOXY_STICKY_MAX_AGE),
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
  const timeouts = get<ServiceTimeouts | undefined>("timeouts", undefined);
  const middlewares = get<MiddlewareConfig[] | undefined>("middlewares", undefined);
  return {
    ...service,
    ...(timeouts ? { timeouts } : {}),
    ...(middlewares?.length ? { middlewares } : {}),
  };
}

const SNAKE: Record<string, string> = {
  useGet: "use_get",
  enabled: "disable",
  responseHeader: "response_header_timeout",
};

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
        : (k === "interval" || k === "timeout" || k === "responseHeader") && typeof v === "number"
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
