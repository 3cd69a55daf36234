/**
 * The configuration loader: switchyard YAML files and GoDoxy route files → one frozen
 * `SwitchyardConfig`. Every problem in a file is reported at once as `file:line: path: message`.
 */
import { readFile } from "node:fs/promises";
import { dirname } from "node:path";
import * as v from "valibot";
import { formatDuration } from "../duration.ts";
import { ConfigError } from "../errors.ts";
import {
  address,
  bool,
  DEFAULTS,
  duration,
  type Entry,
  field,
  hostPattern,
  isMapValue,
  LOG_LEVELS,
  modeSchema,
  nonEmptyString,
  nonNegativeInt,
  osReason,
  parseAddress,
  percentSchema,
  plainListen,
  positiveInt,
  readHealthcheck,
  readListen,
  readMap,
  readOptions,
  serverUrl,
  serviceNameProblem,
} from "./fields.ts";
import { isGoDoxyRouteFile, readGoDoxy } from "./godoxy.ts";
import {
  checkIdleGraph,
  type IdlePartial,
  noteDeps,
  readIdleBlock,
  readProvider,
  resolveIdle,
} from "./idle.ts";
import { readMiddlewares, readPaths, readServiceTimeouts } from "./middlewares.ts";
import { checkRoutes, type RouteRef } from "./rules.ts";
import { describe, type Env, type Path, Problems, readYaml } from "./source.ts";
import type {
  AdminConfig,
  ListenConfig,
  ServerConfig,
  ServiceConfig,
  SwitchyardConfig,
  TimeoutsConfig,
} from "./types.ts";
import { readProtocol, readUpstreamTls, resolveUpstream, type UpstreamPartial } from "./upstream.ts";

/** What command-line flags give; they beat the file. */
export interface ConfigOverrides {
  listen?: readonly string[];
  admin?: string;
  workers?: number;
  logLevel?: string;
}

type Draft = { -readonly [K in keyof SwitchyardConfig]: SwitchyardConfig[K] };

const TOP_KEYS = ["listen", "admin", "timeouts", "workers", "log_level", "access_log", "services"] as const;
const TIMEOUT_KEYS = ["connect", "response_header", "idle", "client_header", "shutdown", "tunnel"] as const;
const SERVICE_KEYS = [
  "hosts",
  "mode",
  "sticky",
  "sticky_max_age",
  "sticky_secret",
  "options",
  "healthcheck",
  "slow_start",
  "panic_threshold",
  "passive_cooldown",
  "access_log",
  "servers",
  "idle",
  "paths",
  "strip_prefix",
  "timeouts",
  "middlewares",
  "protocol",
  "tls",
  "allow_h2c_upgrade",
] as const;
const SERVER_KEYS = [
  "name",
  "url",
  "weight",
  "backup",
  "idle",
  "run",
  "exec",
  "docker",
  "protocol",
  "tls",
] as const;

const logLevelSchema = v.pipe(v.string(), v.toLowerCase(), v.picklist(LOG_LEVELS));

/**
 * Parses a configuration text. `file` names it in problems and anchors relative TLS paths.
 * Throws `ConfigError` listing every problem.
 */
export function parseConfig(
  text: string,
  file: string,
  overrides: ConfigOverrides = {},
  env: Env = process.env,
): SwitchyardConfig {
  const p = new Problems(file);
  const source = readYaml(text, p, env);
  p.source = source;
  let draft: Draft | undefined;
  if (source.ok) {
    draft = isGoDoxyRouteFile(source.value)
      ? { ...defaultsDraft(file), services: readGoDoxy(p, source.value) }
      : readSwitchyard(p, source.value, file);
  }
  if (draft) checkIdleGraph(p, draft.services);
  applyOverrides(p, draft ?? defaultsDraft(file), overrides);
  if (p.size > 0 || !draft) {
    const n = p.size;
    throw new ConfigError(`${file}: invalid configuration (${n} problem${n === 1 ? "" : "s"})`, p.list());
  }
  return deepFreeze(draft);
}

/** Reads and parses a file; an unreadable file is a `ConfigError` naming it and the OS reason. */
export async function loadConfig(
  file: string,
  overrides: ConfigOverrides = {},
  env: Env = process.env,
): Promise<SwitchyardConfig> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new ConfigError(`${file}: cannot read configuration file: ${osReason(err)}`, [], { cause: err });
  }
  return parseConfig(text, file, overrides, env);
}

/** The embedded demo: one service `demo` on any Host, balancing the given local backends. */
export function demoConfig(
  backends: readonly { name: string; url: string; weight?: number }[],
  overrides: ConfigOverrides = {},
): SwitchyardConfig {
  const draft = defaultsDraft(undefined);
  draft.services = {
    demo: {
      name: "demo",
      hosts: ["*"],
      mode: "round_robin",
      sticky: false,
      stickyMaxAge: DEFAULTS.stickyMaxAge,
      stickySecret: undefined,
      options: { header: DEFAULTS.header, from: [], recursive: false },
      healthcheck: { ...DEFAULTS.healthcheck, interval: 2_000, timeout: 1_000 },
      slowStart: 0,
      panicThreshold: 0,
      passiveCooldown: DEFAULTS.passiveCooldown,
      accessLog: DEFAULTS.accessLog,
      servers: backends.map((b) => ({ name: b.name, url: b.url, weight: b.weight ?? 0, backup: false })),
    },
  };
  const p = new Problems("demo");
  applyOverrides(p, draft, overrides);
  if (p.size) throw new ConfigError("invalid command-line options", p.list());
  return deepFreeze(draft);
}

/**
 * The problems of command-line flag values alone (`--listen: "x" is not a host:port ...`), so
 * the CLI can refuse them (exit 2) before it reads a file.
 */
export function flagProblems(overrides: ConfigOverrides): string[] {
  const p = new Problems("flags");
  applyOverrides(p, defaultsDraft(undefined), overrides);
  return p.list();
}

/** `switchyard check -c FILE`: a summary when valid, every problem when not. */
export async function checkConfig(
  file: string,
  env: Env = process.env,
): Promise<{ ok: boolean; output: string; config?: SwitchyardConfig }> {
  try {
    const config = await loadConfig(file, {}, env);
    return { ok: true, output: summarize(config), config };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return { ok: false, output: err.message };
  }
}

/** A few lines describing a configuration, for `check` and startup logs. */
export function summarize(config: SwitchyardConfig): string {
  const services = Object.values(config.services);
  const servers = services.reduce((n, s) => n + s.servers.length, 0);
  const lines = [
    `${config.file ?? "configuration"}: OK — ${services.length} service${services.length === 1 ? "" : "s"}, ${servers} server${servers === 1 ? "" : "s"}`,
    `  listen ${config.listen.map((l) => `${l.address}${l.tls ? " (TLS)" : ""}${l.proxyProtocol ? " (PROXY protocol)" : ""}`).join(", ")}; admin ${config.admin.address}${config.admin.token ? " (token)" : ""}`,
  ];
  for (const s of services) {
    const hosts = s.hosts.length ? s.hosts.join(", ") : `${s.name}.*`;
    const flags = [
      s.mode,
      s.sticky ? `sticky ${formatDuration(s.stickyMaxAge)}` : "",
      s.healthcheck.enabled
        ? `health ${s.healthcheck.useGet ? "GET" : "HEAD"} ${s.healthcheck.path} every ${formatDuration(s.healthcheck.interval)}`
        : `health checks off, passive_cooldown ${formatDuration(s.passiveCooldown)}`,
      s.slowStart ? `slow start ${formatDuration(s.slowStart)}` : "",
      s.panicThreshold ? `panic below ${s.panicThreshold}%` : "",
      s.paths?.length ? `paths ${s.paths.join(" ")}${s.stripPrefix ? " (stripped)" : ""}` : "",
      s.middlewares?.length ? `middlewares ${s.middlewares.map((m) => m.kind).join(" → ")}` : "",
      s.accessLog ? "" : "access log off",
      s.allowH2cUpgrade ? "h2c upgrade allowed" : "",
    ].filter(Boolean);
    lines.push(`  ${s.name} (${hosts}; ${flags.join(", ")})`);
    for (const v of s.servers) {
      const idle = v.provider
        ? ` (${v.provider.kind}, ${v.idle?.idleTimeout ? `idle ${formatDuration(v.idle.idleTimeout)}` : "always on"})`
        : "";
      const proto = v.protocol ? ` ${v.protocol}` : "";
      const insecure = v.tls?.insecureSkipVerify ? " (TLS not verified)" : "";
      lines.push(
        `    ${v.name} ${v.url}${v.weight ? ` weight ${v.weight}` : ""}${v.backup ? " backup" : ""}${proto}${insecure}${idle}`,
      );
    }
  }
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------

function defaultsDraft(file: string | undefined): Draft {
  const a = plainListen(DEFAULTS.admin);
  return {
    file,
    listen: [plainListen(DEFAULTS.listen)],
    admin: { address: a.address, host: a.host, port: a.port, token: undefined },
    timeouts: { ...DEFAULTS.timeouts },
    services: {},
    workers: DEFAULTS.workers,
    logLevel: DEFAULTS.logLevel,
    accessLog: DEFAULTS.accessLog,
  };
}

function readSwitchyard(p: Problems, value: unknown, file: string): Draft | undefined {
  const m = readMap(p, value, [], TOP_KEYS);
  if (!m) return undefined;
  const draft = defaultsDraft(file);
  draft.listen = readListen(p, m.listen, dirname(file));
  draft.admin = readAdmin(p, m.admin) ?? draft.admin;
  draft.timeouts = readTimeouts(p, m.timeouts);
  draft.workers = field(p, m.workers, positiveInt, DEFAULTS.workers);
  draft.logLevel = field(p, m.log_level, logLevelSchema, DEFAULTS.logLevel);
  draft.accessLog = field(p, m.access_log, bool, DEFAULTS.accessLog);
  draft.services = readServices(p, m.services, draft.accessLog);
  return draft;
}

function readAdmin(p: Problems, entry: Entry | undefined): AdminConfig | undefined {
  if (!entry) return undefined;
  let addrEntry: Entry | undefined = entry;
  let token: string | undefined;
  if (isMapValue(entry.value)) {
    const m = readMap(p, entry.value, entry.path, ["address", "token"] as const);
    if (!m) return undefined;
    addrEntry = m.address;
    token = m.token && p.parse(nonEmptyString, m.token.value, m.token.path);
  }
  const a = addrEntry ? p.parse(address, addrEntry.value, addrEntry.path) : plainListen(DEFAULTS.admin);
  if (!a) return undefined;
  return { address: a.address, host: a.host, port: a.port, token };
}

function readTimeouts(p: Problems, entry: Entry | undefined): TimeoutsConfig {
  const d = DEFAULTS.timeouts;
  const m = entry ? readMap(p, entry.value, entry.path, TIMEOUT_KEYS) : undefined;
  if (!m) return { ...d };
  return {
    connect: field(p, m.connect, duration("positive"), d.connect),
    responseHeader: field(p, m.response_header, duration("positive"), d.responseHeader),
    idle: field(p, m.idle, duration("positive"), d.idle),
    clientHeader: field(p, m.client_header, duration("positive"), d.clientHeader),
    shutdown: field(p, m.shutdown, duration("non-negative"), d.shutdown),
    tunnel: field(p, m.tunnel, duration("non-negative"), d.tunnel),
  };
}

function readServices(
  p: Problems,
  entry: Entry | undefined,
  accessLog: boolean,
): Record<string, ServiceConfig> {
  const services: Record<string, ServiceConfig> = {};
  if (!entry) {
    p.add(
      p.source?.lineOf([]) ?? undefined,
      "services",
      "no services: add `services:` with at least one service",
    );
    return services;
  }
  if (!isMapValue(entry.value)) {
    p.at(entry.path, `expected a map of service names to services, got ${describe(entry.value)}`);
    return services;
  }
  const names = Object.keys(entry.value);
  if (names.length === 0) p.at(entry.path, "no services: add at least one");
  const hostOwner = new Map<string, string>();
  const routes: RouteRef[] = [];
  for (const name of names) {
    const path = [...entry.path, name];
    const bad = serviceNameProblem(name);
    if (bad) p.at(path, bad, "key");
    const svc = readService(p, name, entry.value[name], path, hostOwner, accessLog, routes);
    if (svc && !bad) services[name] = svc;
  }
  checkRoutes(p, routes, new Set(names));
  return services;
}

function readService(
  p: Problems,
  name: string,
  value: unknown,
  path: Path,
  hostOwner: Map<string, string>,
  accessLog: boolean,
  routes: RouteRef[],
): ServiceConfig | undefined {
  if (value === null) {
    p.at(path, "empty service: give at least `servers`");
    return undefined;
  }
  const m = readMap(p, value, path, SERVICE_KEYS);
  if (!m) return undefined;
  const hosts: string[] = [];
  const paths = readPaths(p, m.paths);
  if (m.hosts) {
    const items: Entry[] = Array.isArray(m.hosts.value)
      ? m.hosts.value.map((v, i) => ({ value: v, path: [...m.hosts!.path, i] }))
      : typeof m.hosts.value === "string"
        ? m.hosts.value.split(",").map((v) => ({ value: v, path: m.hosts!.path }))
        : [m.hosts];
    for (const item of items) {
      const h = p.parse(hostPattern, item.value, item.path);
      if (h === undefined) continue;
      if (hosts.includes(h)) {
        p.at(item.path, `duplicate host "${h}"`);
        continue;
      }
      hosts.push(h);
      // services may share a host when their path prefixes differ (no `paths` = the prefix "/")
      for (const { prefix, path: at } of paths.length ? paths : [{ prefix: "/", path: item.path }]) {
        const key = `${h} ${prefix}`;
        const owner = hostOwner.get(key);
        if (owner === undefined) hostOwner.set(key, name);
        else if (prefix === "/" && paths.length === 0)
          p.at(
            at,
            `host "${h}" is already used by service "${owner}" (give one of them \`paths\` to share it)`,
          );
        else p.at(at, `path prefix "${prefix}" on host "${h}" is already used by service "${owner}"`);
      }
    }
  } else if (paths.length) {
    p.at(
      m.paths!.path,
      "`paths` needs `hosts`: a service matched by its name already has the host to itself",
      "key",
    );
  }
  const extra: {
    -readonly [K in
      | "paths"
      | "stripPrefix"
      | "timeouts"
      | "middlewares"
      | "allowH2cUpgrade"]?: ServiceConfig[K];
  } = {};
  if (paths.length) extra.paths = paths.map((x) => x.prefix);
  if (m.strip_prefix) {
    const strip = field(p, m.strip_prefix, bool, false);
    if (strip && !paths.length) p.at(m.strip_prefix.path, "`strip_prefix` needs `paths`", "key");
    if (strip) extra.stripPrefix = true;
  }
  const timeouts = readServiceTimeouts(p, m.timeouts);
  if (timeouts) extra.timeouts = timeouts;
  const middlewares = readMiddlewares(p, m.middlewares, dirname(p.file), routes);
  if (middlewares.length) extra.middlewares = middlewares;
  const servers = readServers(p, name, m.servers, path, readIdleBlock(p, m.idle, false), {
    protocol: readProtocol(p, m.protocol),
    tls: readUpstreamTls(p, m.tls, dirname(p.file)),
  });
  if (m.allow_h2c_upgrade && field(p, m.allow_h2c_upgrade, bool, false)) {
    // the tunnel is an HTTP/1.1 connection's 101: an HTTP/2 server has no such thing
    const h2 = servers.find((s) => s.protocol !== undefined);
    if (h2 !== undefined)
      p.at(
        m.allow_h2c_upgrade.path,
        `\`allow_h2c_upgrade\` needs HTTP/1.1 servers: server "${h2.name}" speaks ${h2.protocol} (an h2c upgrade switches an HTTP/1.1 connection)`,
      );
    else extra.allowH2cUpgrade = true;
  }
  return {
    name,
    hosts,
    mode: field(p, m.mode, modeSchema, "round_robin"),
    sticky: field(p, m.sticky, bool, false),
    stickyMaxAge: field(p, m.sticky_max_age, duration("positive"), DEFAULTS.stickyMaxAge),
    stickySecret: m.sticky_secret && p.parse(nonEmptyString, m.sticky_secret.value, m.sticky_secret.path),
    options: readOptions(p, m.options, false) ?? { header: DEFAULTS.header, from: [], recursive: false },
    healthcheck: readHealthcheck(p, m.healthcheck, false) ?? { ...DEFAULTS.healthcheck },
    slowStart: field(p, m.slow_start, duration("non-negative"), 0),
    panicThreshold: field(p, m.panic_threshold, percentSchema, 0),
    passiveCooldown: field(p, m.passive_cooldown, duration("positive"), DEFAULTS.passiveCooldown),
    accessLog: field(p, m.access_log, bool, accessLog),
    servers,
    ...extra,
  };
}

function readServers(
  p: Problems,
  service: string,
  entry: Entry | undefined,
  svcPath: Path,
  svcIdle: IdlePartial,
  svcUpstream: UpstreamPartial = {},
): ServerConfig[] {
  const servers: ServerConfig[] = [];
  if (!entry) {
    p.at(svcPath, "no servers: add `servers:` with at least one { url }", "key");
    return servers;
  }
  if (!Array.isArray(entry.value)) {
    p.at(entry.path, `expected a list of servers, got ${describe(entry.value)}`);
    return servers;
  }
  if (entry.value.length === 0) p.at(entry.path, "no servers: add at least one { url }");
  const byKey = new Map<string, number>();
  const byName = new Map<string, number>();
  entry.value.forEach((item: unknown, i: number) => {
    const path = [...entry.path, i];
    let urlEntry: Entry | undefined;
    let name = `${service}-${i + 1}`;
    let weight = 0;
    let backup = false;
    let extra: Pick<ServerConfig, "provider" | "idle"> = {};
    let ownUpstream: UpstreamPartial = {};
    if (typeof item === "string") urlEntry = { value: item, path };
    else if (item === null) {
      p.at(path, "empty server: give at least `url`");
      return;
    } else {
      const m = readMap(p, item, path, SERVER_KEYS);
      if (!m) return;
      urlEntry = m.url;
      if (!urlEntry) p.at(path, "missing `url` (e.g. http://10.0.0.11:3000)");
      name = field(p, m.name, nonEmptyString, name);
      weight = field(p, m.weight, nonNegativeInt, 0);
      backup = field(p, m.backup, bool, false);
      ownUpstream = {
        protocol: readProtocol(p, m.protocol),
        tls: readUpstreamTls(p, m.tls, dirname(p.file)),
      };
      const provider = readProvider(p, m, dirname(p.file), false);
      const own = readIdleBlock(p, m.idle, false);
      if (provider) {
        extra = { provider, idle: resolveIdle(svcIdle, own) };
        noteDeps(p, service, name, own, svcIdle);
      } else if (provider === undefined && m.idle) {
        p.at(m.idle.path, "idle settings need a provider on this server (`run`, `exec` or `docker`)", "key");
      }
    }
    const u = urlEntry && p.parse(serverUrl, urlEntry.value, urlEntry.path);
    if (!u) return;
    const sameKey = byKey.get(u.key);
    const sameName = byName.get(name);
    if (sameKey !== undefined) p.at(urlEntry!.path, `same host:port ${u.key} as servers[${sameKey}]`);
    else if (sameName !== undefined)
      p.at(path, `duplicate server name "${name}" (also servers[${sameName}])`);
    else {
      byKey.set(u.key, i);
      byName.set(name, i);
      const upstream = resolveUpstream(p, u.url, urlEntry!.path, svcUpstream, ownUpstream);
      servers.push({ name, url: u.url, weight, backup, ...extra, ...upstream });
    }
  });
  return servers;
}

function applyOverrides(p: Problems, draft: Draft, o: ConfigOverrides): void {
  if (o.listen !== undefined) {
    const listen: ListenConfig[] = [];
    if (o.listen.length === 0) p.flag("--listen", "no address given");
    for (const l of o.listen) {
      const a = parseAddress(l);
      if (typeof a === "string") p.flag("--listen", a);
      else listen.push({ ...a, tls: undefined });
    }
    draft.listen = listen;
  }
  if (o.admin !== undefined) {
    const a = parseAddress(o.admin);
    if (typeof a === "string") p.flag("--admin", a);
    else draft.admin = { ...draft.admin, address: a.address, host: a.host, port: a.port };
  }
  if (o.workers !== undefined) {
    if (!Number.isInteger(o.workers) || o.workers < 1)
      p.flag("--workers", `must be an integer ≥ 1, got ${o.workers}`);
    else draft.workers = o.workers;
  }
  if (o.logLevel !== undefined) {
    const r = v.safeParse(logLevelSchema, o.logLevel);
    if (!r.success) p.flag("--log-level", `must be one of ${LOG_LEVELS.join(", ")}, got "${o.logLevel}"`);
    else draft.logLevel = r.output;
  }
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
