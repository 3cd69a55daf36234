/**
 * Readers for the per-service routing and middleware keys (SPEC "Paths and middlewares"):
 * `paths`, `strip_prefix`, `timeouts` and `middlewares`. Each reports into `Problems` with the
 * line of the offending key or value, and returns what it could make of the rest.
 */
import { accessSync, constants } from "node:fs";
import { resolve } from "node:path";
import * as v from "valibot";
import {
  bcryptProblem,
  bool,
  duration,
  type Entry,
  field,
  fromSchema,
  headerSchema,
  isMapValue,
  nonNegativeInt,
  osReason,
  portNumber,
  positiveInt,
  readMap,
} from "./fields.ts";
import { type RouteRef, readRules } from "./rules.ts";
import { closest, describe, type Path, type Problems } from "./source.ts";
import type { HeaderEdits, MiddlewareConfig, MiddlewareKind, ServiceTimeouts } from "./types.ts";

export const MIDDLEWARE_KINDS: readonly MiddlewareKind[] = [
  "allow",
  "deny",
  "redirect_https",
  "basic_auth",
  "rate_limit",
  "request_headers",
  "response_headers",
  "compress",
  "error_pages",
  "rules",
  "hide_forwarded",
];

// ---------------------------------------------------------------------------------------------
// Paths

/**
 * A path prefix, normalized: starts with "/", no query, fragment, wildcard, whitespace or dot
 * segment; a trailing "/" is dropped (`/api/` and `/api` are the same prefix: both match `/api`,
 * `/api/…`, never `/apis`). Returns the normalized prefix or a message.
 */
export function normalizePrefix(raw: string): string | { problem: string } {
  if (!raw.startsWith("/")) return { problem: `path prefix ${JSON.stringify(raw)} must start with "/"` };
  if (/[?#]/.test(raw))
    return { problem: `path prefix ${JSON.stringify(raw)}: no query or fragment ("?", "#") in a prefix` };
  if (/[*{}]/.test(raw))
    return {
      problem: `path prefix ${JSON.stringify(raw)}: prefixes are literal (no "*" or "{…}"); "/api/" already matches everything under /api`,
    };
  if (/[\s\x00-\x1f\x7f]/.test(raw))
    return { problem: `path prefix ${JSON.stringify(raw)}: no spaces or control characters` };
  if (raw.includes("//")) return { problem: `path prefix ${JSON.stringify(raw)}: empty segment ("//")` };
  if (/\/\.\.?(\/|$)/.test(raw))
    return { problem: `path prefix ${JSON.stringify(raw)}: no "." or ".." segments` };
  if (/%(?![0-9A-Fa-f]{2})/.test(raw))
    return { problem: `path prefix ${JSON.stringify(raw)}: "%" not followed by two hex digits` };
  return raw.length > 1 && raw.endsWith("/") ? raw.slice(0, -1) : raw;
}

/** `paths: [/api/, /v2]` (or one string). Returns normalized prefixes (empty = every path) and their paths. */
export function readPaths(p: Problems, entry: Entry | undefined): { prefix: string; path: Path }[] {
  if (!entry) return [];
  const items: Entry[] = Array.isArray(entry.value)
    ? entry.value.map((value, i) => ({ value, path: [...entry.path, i] }))
    : [entry];
  if (items.length === 0) p.at(entry.path, "no path prefixes (omit `paths` for every path)");
  const out: { prefix: string; path: Path }[] = [];
  const seen = new Set<string>();
  for (const item of items) {
    if (typeof item.value !== "string") {
      p.at(item.path, `expected a path prefix such as "/api/", got ${describe(item.value)}`);
      continue;
    }
    const n = normalizePrefix(item.value.trim());
    if (typeof n !== "string") {
      p.at(item.path, n.problem);
      continue;
    }
    if (seen.has(n)) {
      p.at(item.path, `duplicate path prefix "${n}"`);
      continue;
    }
    seen.add(n);
    out.push({ prefix: n, path: item.path });
  }
  return out;
}

const SERVICE_TIMEOUT_KEYS = ["connect", "response_header", "idle", "tunnel"] as const;

export function readServiceTimeouts(p: Problems, entry: Entry | undefined): ServiceTimeouts | undefined {
  if (!entry) return undefined;
  const m = readMap(p, entry.value, entry.path, SERVICE_TIMEOUT_KEYS);
  if (!m) return undefined;
  const out: { connect?: number; responseHeader?: number; idle?: number; tunnel?: number } = {};
  const pos = duration("positive");
  if (m.connect) out.connect = p.parse(pos, m.connect.value, m.connect.path);
  if (m.response_header) out.responseHeader = p.parse(pos, m.response_header.value, m.response_header.path);
  if (m.idle) out.idle = p.parse(pos, m.idle.value, m.idle.path);
  if (m.tunnel) out.tunnel = p.parse(duration("non-negative"), m.tunnel.value, m.tunnel.path);
  for (const k of Object.keys(out) as (keyof typeof out)[]) if (out[k] === undefined) delete out[k];
  return Object.keys(out).length ? out : undefined;
}

// ---------------------------------------------------------------------------------------------
// Middlewares

/**
 * `middlewares:` a list of one-key maps (`- allow: [10.0.0.0/8]`). Unknown names get a
 * "did you mean"; every value is checked here so `switchyard check` finds every mistake.
 */
export function readMiddlewares(
  p: Problems,
  entry: Entry | undefined,
  baseDir: string,
  routes: RouteRef[] = [],
): MiddlewareConfig[] {
  if (!entry) return [];
  if (!Array.isArray(entry.value)) {
    p.at(entry.path, `expected a list of middlewares (- allow: [...]), got ${describe(entry.value)}`);
    return [];
  }
  const out: MiddlewareConfig[] = [];
  entry.value.forEach((item: unknown, i: number) => {
    const path = [...entry.path, i];
    let name: string;
    let value: unknown;
    if (typeof item === "string") {
      name = item;
      value = null;
    } else if (isMapValue(item) && Object.keys(item).length === 1) {
      name = Object.keys(item)[0];
      value = item[name];
    } else {
      p.at(path, `expected one middleware such as "- allow: [10.0.0.0/8]", got ${describe(item)}`);
      return;
    }
    const kind = MIDDLEWARE_KINDS.find((k) => k === name);
    const vpath = [...path, name];
    if (kind === undefined) {
      const hint = closest(name, MIDDLEWARE_KINDS);
      p.at(
        typeof item === "string" ? path : vpath,
        `unknown middleware "${name}"${hint ? `; did you mean "${hint}"?` : ` (known: ${MIDDLEWARE_KINDS.join(", ")})`}`,
        "key",
      );
      return;
    }
    const m = readOne(p, kind, { value, path: vpath }, baseDir, routes);
    if (m) out.push(m);
  });
  return out;
}

function readOne(
  p: Problems,
  kind: MiddlewareKind,
  e: Entry,
  baseDir: string,
  routes: RouteRef[],
): MiddlewareConfig | undefined {
  switch (kind) {
    case "rules": {
      const rules = readRules(p, e.value, e.path, routes);
      return rules === undefined || rules.length === 0 ? undefined : { kind, rules };
    }
    case "hide_forwarded": {
      const on = field(p, e, bool, true);
      return on ? { kind } : undefined;
    }
    case "allow":
    case "deny": {
      if (e.value === null) {
        p.at(e.path, `give addresses or CIDRs, e.g. "${kind}: [10.0.0.0/8, 127.0.0.1]"`);
        return undefined;
      }
      const cidrs = p.parse(fromSchema, e.value, e.path);
      return cidrs && { kind, cidrs };
    }
    case "redirect_https": {
      if (e.value === true || e.value === null) return { kind, status: 308, port: undefined };
      if (e.value === false) return undefined;
      const m = readMap(p, e.value, e.path, ["status", "port"] as const);
      if (!m) return undefined;
      const status = field(p, m.status, v.picklist([301, 302, 307, 308]), 308);
      const port = m.port && p.parse(portNumber, m.port.value, m.port.path);
      return { kind, status, port: port === 443 ? undefined : port };
    }
    case "basic_auth": {
      const m = readMap(p, e.value, e.path, ["realm", "users"] as const);
      if (!m) return undefined;
      const realm = field(
        p,
        m.realm,
        v.pipe(v.string(), v.minLength(1), v.regex(/^[^"\\\r\n]*$/, 'no quotes, "\\" or line breaks')),
        "switchyard",
      );
      const users: Record<string, string> = {};
      if (!m.users || !isMapValue(m.users.value) || Object.keys(m.users.value).length === 0) {
        p.at(
          m.users?.path ?? e.path,
          'give `users: { name: "$2b$10$…" }` (bcrypt hashes, e.g. from `htpasswd -nbB`)',
        );
        return undefined;
      }
      for (const [user, hash] of Object.entries(m.users.value)) {
        const upath = [...m.users.path, user];
        if (user.includes(":") || user === "")
          p.at(upath, `user name ${JSON.stringify(user)} may not be empty or contain ":"`, "key");
        const problem = bcryptProblem(hash);
        if (problem) p.at(upath, problem);
        else users[user] = hash as string;
      }
      return { kind, realm, users };
    }
    case "rate_limit": {
      const m = readMap(p, e.value, e.path, ["rate", "burst"] as const);
      if (!m) return undefined;
      if (!m.rate) {
        p.at(e.path, 'missing `rate` (e.g. "100/s", "20/m", "1000/h")');
        return undefined;
      }
      const rate = parseRate(m.rate.value);
      if (typeof rate === "string") {
        p.at(m.rate.path, rate);
        return undefined;
      }
      const burst = field(p, m.burst, positiveInt, Math.max(1, Math.ceil(rate.limit)));
      return { kind, limit: rate.limit, period: rate.period, burst };
    }
    case "request_headers":
    case "response_headers": {
      const edits = readHeaderEdits(p, e);
      return edits && { kind, ...edits };
    }
    case "compress": {
      if (e.value === true || e.value === null) return { kind, minLength: 1024, encodings: ["br", "gzip"] };
      if (e.value === false) return undefined;
      const m = readMap(p, e.value, e.path, ["min_length", "encodings"] as const);
      if (!m) return undefined;
      return {
        kind,
        minLength: field(p, m.min_length, nonNegativeInt, 1024),
        encodings: field(
          p,
          m.encodings,
          v.pipe(v.array(v.picklist(["br", "gzip"] as const)), v.minLength(1)),
          ["br", "gzip"],
        ),
      };
    }
    case "error_pages": {
      if (!isMapValue(e.value) || Object.keys(e.value).length === 0) {
        p.at(e.path, "give status → file, e.g. `error_pages: { 502: ./502.html }`");
        return undefined;
      }
      const pages: Record<number, string> = {};
      for (const [code, file] of Object.entries(e.value)) {
        const cpath = [...e.path, code];
        const status = Number(code);
        if (!/^\d{3}$/.test(code) || status < 400 || status > 599) {
          p.at(cpath, `"${code}" is not an error status (400-599)`, "key");
          continue;
        }
        if (typeof file !== "string" || file === "") {
          p.at(cpath, `expected a file name, got ${describe(file)}`);
          continue;
        }
        const abs = resolve(baseDir, file);
        try {
          accessSync(abs, constants.R_OK);
        } catch (err) {
          p.at(cpath, `cannot read ${abs}: ${osReason(err)}`);
          continue;
        }
        pages[status] = abs;
      }
      return { kind, pages };
    }
  }
}

const PERIODS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1_000,
  sec: 1_000,
  second: 1_000,
  m: 60_000,
  min: 60_000,
  minute: 60_000,
  h: 3_600_000,
  hour: 3_600_000,
  d: 86_400_000,
  day: 86_400_000,
};

/** `100/s`, `20/min`, `5/10s`, `1000/h` → requests per period (ms); a message when it is not one. */
export function parseRate(v: unknown): { limit: number; period: number } | string {
  const bad = `expected a rate such as "100/s" (per ms, s, m/min, h or d; "5/10s" for every 10 seconds), got ${typeof v === "string" ? JSON.stringify(v) : describe(v)}`;
  if (typeof v !== "string") return bad;
  const m = /^\s*(\d+(?:\.\d+)?)\s*\/\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*$/i.exec(v);
  if (!m) return bad;
  const unit = PERIODS[m[3].toLowerCase()] ?? PERIODS[m[3].toLowerCase().replace(/s$/, "")];
  if (unit === undefined)
    return `unknown rate period "${m[3]}" in ${JSON.stringify(v)}: use ms, s, m/min, h or d`;
  const limit = Number(m[1]);
  const period = unit * (m[2] === undefined ? 1 : Number(m[2]));
  if (!(limit > 0) || !(period > 0)) return `rate ${JSON.stringify(v)} must be greater than 0`;
  return { limit, period };
}

function readHeaderEdits(p: Problems, e: Entry): HeaderEdits | undefined {
  const m = readMap(p, e.value, e.path, ["set", "add", "remove"] as const);
  if (!m) return undefined;
  const map = (x: Entry | undefined): Record<string, string> => {
    const out: Record<string, string> = {};
    if (!x) return out;
    if (!isMapValue(x.value)) {
      p.at(x.path, `expected a map of header names to values, got ${describe(x.value)}`);
      return out;
    }
    for (const [name, value] of Object.entries(x.value)) {
      const hpath = [...x.path, name];
      if (!v.is(headerSchema, name)) {
        p.at(hpath, `${JSON.stringify(name)} is not a valid header name`, "key");
        continue;
      }
      const text = typeof value === "number" || typeof value === "boolean" ? String(value) : value;
      if (typeof text !== "string" || /[\r\n\x00]/.test(text)) {
        p.at(hpath, `expected a header value on one line, got ${describe(value)}`);
        continue;
      }
      out[name] = text;
    }
    return out;
  };
  const set = map(m.set);
  const add = map(m.add);
  const remove: string[] = [];
  if (m.remove) {
    const list = Array.isArray(m.remove.value) ? m.remove.value : [m.remove.value];
    list.forEach((name: unknown, i: number) => {
      const rpath = Array.isArray(m.remove!.value) ? [...m.remove!.path, i] : m.remove!.path;
      if (typeof name !== "string" || !v.is(headerSchema, name))
        p.at(
          rpath,
          `${typeof name === "string" ? JSON.stringify(name) : describe(name)} is not a valid header name`,
        );
      else remove.push(name);
    });
  }
  const edits = { set, add, remove };
  if (!m.set && !m.add && !m.remove) p.at(e.path, "give `set`, `add` or `remove`");
  return edits;
}
