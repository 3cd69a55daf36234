/**
 * Leaf schemas (valibot) and the section readers shared by switchyard files and GoDoxy route files.
 * Every reader reports into `Problems` and returns what it could make of the value, so one pass
 * finds every mistake instead of stopping at the first.
 */
import { accessSync, constants } from "node:fs";
import { isIP } from "node:net";
import { resolve } from "node:path";
import * as v from "valibot";
import { parseDuration } from "../duration.ts";
import { parseMode } from "../selectors/index.ts";
import type { Mode } from "../selectors/selector.ts";
import { checked, closest, describe, type Path, type Problems, type Schema } from "./source.ts";
import type { HealthcheckConfig, ListenConfig, ProxyProtocolConfig, ServiceConfig } from "./types.ts";

export const DEFAULTS = {
  listen: "0.0.0.0:8080",
  admin: "127.0.0.1:8081",
  timeouts: {
    connect: 5_000,
    responseHeader: 60_000,
    idle: 60_000,
    clientHeader: 30_000,
    shutdown: 30_000,
    tunnel: 3_600_000,
  },
  workers: 1,
  logLevel: "info",
  stickyMaxAge: 24 * 3_600_000,
  passiveCooldown: 10_000,
  accessLog: true,
  header: "X-Real-IP",
  healthcheck: { path: "/", useGet: false, interval: 5_000, timeout: 5_000, retries: 0, enabled: true },
} as const;

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

// ---------------------------------------------------------------------------------------------
// Leaf schemas

/** Go duration strings → ms. Bare numbers are refused: GoDoxy reads them as nanoseconds. */
export function duration(min: "positive" | "non-negative") {
  return checked(v.unknown(), (value, fail): number => {
    let ms: number;
    if (typeof value === "number") {
      if (value !== 0) {
        fail(
          `bare number ${value} is not a duration: add a unit, e.g. "${value}s" or "${value}ms" (GoDoxy would read ${value} as nanoseconds)`,
        );
        return 0;
      }
      ms = 0;
    } else if (typeof value === "string") {
      try {
        ms = parseDuration(value);
      } catch (err) {
        fail((err as Error).message);
        return 0;
      }
    } else {
      fail(`expected a duration such as "5s", got ${describe(value)}`);
      return 0;
    }
    if (min === "positive" ? ms <= 0 : ms < 0)
      fail(`must be ${min === "positive" ? "greater than 0" : "≥ 0"}`);
    return ms;
  });
}

export const bool = v.boolean();
export const nonEmptyString = v.pipe(v.string(), v.minLength(1));
export const int = v.pipe(v.number(), v.integer());
export const nonNegativeInt = v.pipe(v.number(), v.integer(), v.minValue(0));
export const positiveInt = v.pipe(v.number(), v.integer(), v.minValue(1));
export const portNumber = v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(65535));

/** `host:port`, `[v6]:port`, `:port` or a bare port (all interfaces). */
export const address = checked(v.union([v.string(), v.number()]), (value, fail) => {
  const parsed = parseAddress(String(value));
  if (typeof parsed === "string") {
    fail(parsed);
    return { address: "", host: "", port: 0 };
  }
  return parsed;
});

export function parseAddress(text: string): { address: string; host: string; port: number } | string {
  const s = text.trim();
  let host: string;
  let portText: string;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (v6) {
    host = v6[1];
    portText = v6[2] ?? "";
    if (isIP(host) !== 6) return `"${text}" is not a valid IPv6 address`;
  } else if (/^\d+$/.test(s)) {
    host = "0.0.0.0";
    portText = s;
  } else {
    const i = s.lastIndexOf(":");
    if (i < 0 || s.indexOf(":") !== i) return `"${text}" is not a host:port address (e.g. 0.0.0.0:8080)`;
    host = s.slice(0, i) || "0.0.0.0";
    portText = s.slice(i + 1);
    if (isIP(host) === 0 && !HOSTNAME.test(host))
      return `"${text}": "${host}" is not a host name or IP address`;
  }
  if (!/^\d+$/.test(portText))
    return `"${text}" has no port (e.g. ${host.includes(":") ? `[${host}]` : host}:8080)`;
  const port = Number(portText);
  if (port > 65535) return `"${text}": port must be 0-65535`;
  return { address: host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`, host, port };
}

const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*$/;
const SERVICE_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export function serviceNameProblem(name: string): string | undefined {
  if (SERVICE_NAME.test(name)) return undefined;
  return `service name "${name}" must be a DNS label (lowercase letters, digits and "-", at most 63, no "-" at either end): it is matched against the first label of Host`;
}

/** Host patterns: exact, `*.example.com` or `*`; lowercased; a trailing dot is dropped. */
export const hostPattern = checked(v.string(), (value, fail) => {
  const h = value.trim().toLowerCase().replace(/\.$/, "");
  if (h === "*") return h;
  const m = /^(.*):(\d+)$/.exec(h);
  if (m && !h.startsWith("[")) {
    fail(`hosts are matched without the port: write "${m[1]}"`);
    return h;
  }
  const name = h.startsWith("*.") ? h.slice(2) : h;
  if (!HOSTNAME.test(name)) {
    fail(`"${value}" is not a host name, "*.example.com" (one label in front) or "*" (any Host)`);
  }
  return h;
});

/** A backend URL: http(s), a host, nothing past the origin. Returns the normalized origin and key. */
export const serverUrl = checked(v.unknown(), (value, fail) => {
  const bad = () => {
    fail(`not an http(s) URL: ${typeof value === "string" ? JSON.stringify(value) : describe(value)}`);
    return { url: "", key: "" };
  };
  if (typeof value !== "string") return bad();
  let u: URL;
  try {
    u = new URL(value.trim());
  } catch {
    return bad();
  }
  if ((u.protocol !== "http:" && u.protocol !== "https:") || !u.hostname) return bad();
  if ((u.pathname !== "/" && u.pathname !== "") || u.search || u.hash || u.username || u.password) {
    fail(`"${value}": give only scheme://host:port (no path, query or credentials)`);
  }
  const key = u.port ? u.host : `${u.host}:${u.protocol === "https:" ? 443 : 80}`;
  return { url: u.origin, key };
});

export const modeSchema = checked(v.string(), (value, fail): Mode => {
  try {
    return parseMode(value);
  } catch (err) {
    fail((err as Error).message);
    return "round_robin";
  }
});

/** A percentage: `25%`, `2.5%` or a bare number 0..100 (percent). */
export const percentSchema = checked(v.union([v.string(), v.number()]), (value, fail): number => {
  const text = typeof value === "number" ? String(value) : value.trim();
  const m = /^(\d+(?:\.\d+)?)\s*%?$/.exec(text);
  const n = m ? Number(m[1]) : Number.NaN;
  if (!Number.isFinite(n) || n < 0 || n > 100) {
    fail(`expected a percentage from 0% to 100%, got ${JSON.stringify(value)}`);
    return 0;
  }
  return n;
});

/** Trusted peers: a list, or a comma-separated string (GoDoxy), of IPs and CIDRs. */
export const fromSchema = checked(v.union([v.string(), v.array(v.string())]), (value, fail) => {
  const list = typeof value === "string" ? value.split(",") : value;
  list.forEach((e, i) => {
    const problem = cidrProblem(e.trim());
    if (problem) fail(problem, typeof value === "string" ? undefined : i);
  });
  return list.map((s) => s.trim()).filter((s) => s !== "");
});

function cidrProblem(entry: string): string | undefined {
  const [ip, prefix, extra] = entry.split("/");
  const family = isIP(ip);
  if (family === 0 || extra !== undefined) return `"${entry}" is not an IP address or CIDR`;
  if (prefix === undefined) return undefined;
  const max = family === 4 ? 32 : 128;
  if (!/^\d+$/.test(prefix) || Number(prefix) > max)
    return `"${entry}" has an invalid prefix length (0-${max})`;
  return undefined;
}

export const headerSchema = v.pipe(
  v.string(),
  v.regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, "not a valid header name"),
);

export const pathSchema = v.pipe(v.string(), v.startsWith("/", 'must start with "/"'));

// ---------------------------------------------------------------------------------------------
// Map reading

export interface MapReadOptions {
  /** GoDoxy: keys match ignoring case and underscores. */
  loose?: boolean;
  /** Keys that are understood elsewhere but not supported here, with the reason. */
  unsupported?: Readonly<Record<string, string>>;
  /** Keys accepted and ignored. */
  ignored?: readonly string[];
}

/** One entry of a map read by `readMap`: its value and its path (the key as written). */
export interface Entry {
  value: unknown;
  path: Path;
}

export type Entries<K extends string> = Partial<Record<K, Entry>>;

const normKey = (k: string) => k.toLowerCase().replace(/_/g, "");

export function isMapValue(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/**
 * Reads a map with known keys; unknown keys are reported at their own line with a "did you
 * mean" hint. Null values count as absent (`healthcheck:` with nothing after it).
 */
export function readMap<K extends string>(
  p: Problems,
  value: unknown,
  path: Path,
  known: readonly K[],
  options: MapReadOptions = {},
): Entries<K> | undefined {
  if (value === null || value === undefined) return {};
  if (!isMapValue(value)) {
    p.at(path, `expected a map, got ${describe(value)}`);
    return undefined;
  }
  const out: Entries<K> = {};
  const seen = new Map<string, string>();
  for (const [key, v] of Object.entries(value)) {
    const kpath = [...path, key];
    const canonical = options.loose
      ? known.find((k) => normKey(k) === normKey(key))
      : known.find((k) => k === key);
    if (canonical === undefined) {
      const n = normKey(key);
      if (options.ignored?.some((k) => normKey(k) === n)) continue;
      const why = options.unsupported && Object.entries(options.unsupported).find(([k]) => normKey(k) === n);
      if (why) {
        p.at(kpath, `not supported by switchyard: ${why[1]}`, "key");
        continue;
      }
      const hint = closest(key, known);
      p.at(
        kpath,
        `unknown key${hint ? `; did you mean "${hint}"?` : ` (known: ${known.join(", ")})`}`,
        "key",
      );
      continue;
    }
    if (seen.has(canonical)) {
      p.at(kpath, `same key as "${seen.get(canonical)}"`, "key");
      continue;
    }
    seen.set(canonical, key);
    if (v === null) continue;
    out[canonical] = { value: v, path: kpath };
  }
  return out;
}

/** Parses an entry with a schema, or returns the default when absent. */
export function field<T>(p: Problems, entry: Entry | undefined, schema: Schema<T>, fallback: T): T {
  if (entry === undefined) return fallback;
  const v = p.parse(schema, entry.value, entry.path);
  return v === undefined ? fallback : v;
}

// ---------------------------------------------------------------------------------------------
// Sections shared by both formats

export const OPTIONS_KEYS = ["header", "from", "recursive"] as const;

export function readOptions(
  p: Problems,
  entry: Entry | undefined,
  loose: boolean,
): ServiceConfig["options"] | undefined {
  if (!entry) return undefined;
  const m = readMap(p, entry.value, entry.path, OPTIONS_KEYS, { loose });
  if (!m) return undefined;
  return {
    header: field(p, m.header, headerSchema, DEFAULTS.header),
    from: field(p, m.from, fromSchema, []),
    recursive: field(p, m.recursive, bool, false),
  };
}

export const HEALTHCHECK_KEYS = ["path", "use_get", "interval", "timeout", "retries", "disable"] as const;

export function readHealthcheck(
  p: Problems,
  entry: Entry | undefined,
  loose: boolean,
): HealthcheckConfig | undefined {
  if (!entry) return undefined;
  // GoDoxy spells `disable` also `disabled` (an alias in its config struct)
  const keys = loose ? [...HEALTHCHECK_KEYS, "disabled" as const] : HEALTHCHECK_KEYS;
  const m = readMap(p, entry.value, entry.path, keys, {
    loose,
    unsupported: loose
      ? { use_cmd: "no command health checks", port: "checks go to the server's URL" }
      : undefined,
  });
  if (!m) return undefined;
  if (m.disable && m.disabled) p.at(m.disabled.path, 'same key as "disable"', "key");
  const d = DEFAULTS.healthcheck;
  return {
    path: field(p, m.path, pathSchema, d.path),
    useGet: field(p, m.use_get, bool, d.useGet),
    interval: field(p, m.interval, duration("positive"), d.interval),
    timeout: field(p, m.timeout, duration("positive"), d.timeout),
    retries: field(p, m.retries, int, d.retries),
    enabled: !field(p, m.disable ?? m.disabled, bool, false),
  };
}

/** Listen entries: a string, or a list of strings and `{ address, tls: { cert, key } }`. */
export function readListen(p: Problems, entry: Entry | undefined, baseDir: string): ListenConfig[] {
  if (!entry) return [plainListen(DEFAULTS.listen)];
  const items: Entry[] = Array.isArray(entry.value)
    ? entry.value.map((value, i) => ({ value, path: [...entry.path, i] }))
    : [entry];
  if (items.length === 0) {
    p.at(entry.path, "no listen address (omit `listen` for the default 0.0.0.0:8080)");
    return [];
  }
  const out: ListenConfig[] = [];
  const seen = new Map<string, Path>();
  for (const item of items) {
    let l: ListenConfig | undefined;
    if (isMapValue(item.value)) {
      const m = readMap(p, item.value, item.path, ["address", "tls", "proxy_protocol"] as const);
      if (!m) continue;
      if (!m.address) {
        p.at(item.path, "missing `address`");
        continue;
      }
      const a = p.parse(address, m.address.value, m.address.path);
      const tls = readTls(p, m.tls, baseDir);
      const pp = readProxyProtocol(p, m.proxy_protocol);
      if (a && tls !== null && pp !== null)
        l = pp === undefined ? { ...a, tls } : { ...a, tls, proxyProtocol: pp };
    } else {
      const a = p.parse(address, item.value, item.path);
      if (a) l = { ...a, tls: undefined };
    }
    if (!l) continue;
    const prev = seen.get(l.address);
    if (prev) p.at(item.path, `duplicate listen address ${l.address}`);
    else seen.set(l.address, item.path);
    out.push(l);
  }
  return out;
}

/** `proxy_protocol: { trusted: [CIDRs], timeout: 5s }` on a listen entry. */
function readProxyProtocol(p: Problems, entry: Entry | undefined): ProxyProtocolConfig | undefined | null {
  if (!entry) return undefined;
  const m = readMap(p, entry.value, entry.path, ["trusted", "timeout"] as const);
  if (!m) return null;
  if (!m.trusted) {
    p.at(entry.path, "missing `trusted` (addresses or CIDRs of the balancers that send the PROXY header)");
    return null;
  }
  const trusted = p.parse(fromSchema, m.trusted.value, m.trusted.path);
  if (trusted === undefined) return null;
  if (trusted.length === 0) {
    p.at(m.trusted.path, "no trusted address: every connection would be refused");
    return null;
  }
  const timeout = field(p, m.timeout, duration("positive"), 5000);
  return { trusted, timeout };
}

function readTls(p: Problems, entry: Entry | undefined, baseDir: string) {
  if (!entry) return undefined;
  const m = readMap(p, entry.value, entry.path, ["cert", "key"] as const);
  if (!m) return null;
  let ok = true;
  const file = (k: "cert" | "key"): string => {
    const e = m[k];
    if (!e) {
      p.at(entry.path, `missing \`${k}\` (a PEM file)`);
      ok = false;
      return "";
    }
    const rel = p.parse(nonEmptyString, e.value, e.path);
    if (rel === undefined) {
      ok = false;
      return "";
    }
    const abs = resolve(baseDir, rel);
    try {
      accessSync(abs, constants.R_OK);
    } catch (err) {
      p.at(e.path, `cannot read ${abs}: ${osReason(err)}`);
      ok = false;
    }
    return abs;
  };
  const cert = file("cert");
  const key = file("key");
  return ok ? { cert, key } : null;
}

export function plainListen(addr: string): ListenConfig {
  const a = parseAddress(addr);
  if (typeof a === "string") throw new Error(a);
  return { ...a, tls: undefined };
}

/** "no such file (ENOENT)" rather than a stack-y message. */
export function osReason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const text: Record<string, string> = {
    ENOENT: "no such file",
    EACCES: "permission denied",
    EISDIR: "is a directory",
    ENOTDIR: "a parent is not a directory",
  };
  return e.code ? `${text[e.code] ?? e.message} (${e.code})` : String(e.message ?? e);
}

const BCRYPT = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;

/** Undefined when `v` is a bcrypt hash switchyard can check, else why not. */
export function bcryptProblem(v: unknown): string | undefined {
  if (typeof v !== "string") return `expected a bcrypt hash ("$2b$10$…"), got ${describe(v)}`;
  const m = BCRYPT.exec(v);
  if (!m) {
    const hint =
      v.startsWith("{SHA}") || v.startsWith("$apr1$")
        ? " (SHA-1 and MD5 htpasswd hashes are refused: use `htpasswd -nbB`)"
        : "";
    return `not a bcrypt hash: expected "$2a$", "$2b$" or "$2y$", a cost and 53 characters${hint}`;
  }
  const cost = Number(m[1]);
  if (cost < 4 || cost > 31) return `bcrypt cost ${cost} is out of range (4-31)`;
  return undefined;
}
