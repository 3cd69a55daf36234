/**
 * GoDoxy `middlewares:` and `rules:` of a route, mapped onto switchyard's middlewares (SPEC
 * "Paths and middlewares"). Names match as GoDoxy matches them (case and "_" ignored, so
 * `cidr_whitelist`, `CIDRWhitelist` and `cidrWhitelist` are one). What has no switchyard
 * equivalent is refused by name with what switchyard offers instead, never ignored.
 */
import { existsSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import * as v from "valibot";
import {
  bool,
  DEFAULTS,
  duration,
  type Entry,
  field,
  fromSchema,
  headerSchema,
  int,
  isMapValue,
  positiveInt,
  readMap,
} from "./fields.ts";
import { type RouteRef, readRules } from "./rules.ts";
import { describe, type Path, type Problems } from "./source.ts";
import type { BalancingConfig, HeaderEdits, MiddlewareConfig } from "./types.ts";

const norm = (k: string) => k.toLowerCase().replace(/_/g, "");

type Known =
  | "cidr_whitelist"
  | "redirect_http"
  | "modify_request"
  | "modify_response"
  | "real_ip"
  | "rate_limit"
  | "custom_error_page"
  | "set_x_forwarded"
  | "hide_x_forwarded";

/** GoDoxy's registry (middlewares.go), keyed as it keys them: lowercase without "_". */
const KNOWN: Readonly<Record<string, Known>> = {
  cidrwhitelist: "cidr_whitelist",
  redirecthttp: "redirect_http",
  request: "modify_request",
  modifyrequest: "modify_request",
  response: "modify_response",
  modifyresponse: "modify_response",
  realip: "real_ip",
  ratelimit: "rate_limit",
  errorpage: "custom_error_page",
  customerrorpage: "custom_error_page",
  setxforwarded: "set_x_forwarded",
  hidexforwarded: "hide_x_forwarded",
};

/** GoDoxy middlewares switchyard does not offer, with what it offers instead. */
const REFUSED: Readonly<Record<string, string>> = {
  oidc: "no OpenID Connect login in switchyard: put an identity-aware proxy (oauth2-proxy, Authelia) in front of the backend, or use `basic_auth`",
  forwardauth:
    "no forward-auth in switchyard: put the auth proxy in front of the backend, or use `basic_auth`",
  tinyauth: "no forward-auth in switchyard: use `basic_auth`, or put tinyauth in front of the backend",
  crowdsec: "no CrowdSec bouncer in switchyard: use `allow`/`deny` by address, or a bouncer in front",
  modifyhtml: "switchyard does not rewrite response bodies (only `compress`)",
  themed: "switchyard does not rewrite response bodies (only `compress`)",
  cloudflarerealip:
    "list Cloudflare's ranges in `real_ip.from` (header CF-Connecting-IP) instead: switchyard does not fetch them",
  hcaptcha: "no captcha in switchyard",
  captcha: "no captcha in switchyard",
};

const ALL_NAMES = [...Object.values(KNOWN), "oidc", "forward_auth", "crowdsec"];

/** What a route's middlewares and rules come to. */
export interface MappedMiddlewares {
  middlewares: MiddlewareConfig[];
  /** From a `real_ip` middleware: the service's real-IP options. */
  realIp?: BalancingConfig["options"];
}

interface Ordered {
  priority: number;
  seq: number;
  mw: MiddlewareConfig;
}

/**
 * `middlewares: { cidr_whitelist: { allow: [...] }, ... }`, in GoDoxy's order: by `priority`
 * (default 10, lower first), then as written.
 */
export function readGoDoxyMiddlewares(
  p: Problems,
  entry: Entry | undefined,
  file: string,
): MappedMiddlewares {
  const out: MappedMiddlewares = { middlewares: [] };
  if (!entry) return out;
  if (!isMapValue(entry.value)) {
    p.at(entry.path, `expected a map of middleware names to options, got ${describe(entry.value)}`);
    return out;
  }
  const ordered: Ordered[] = [];
  let seq = 0;
  for (const [name, opts] of Object.entries(entry.value)) {
    const path = [...entry.path, name];
    const n = norm(name);
    if (REFUSED[n]) {
      p.at(path, `GoDoxy middleware "${name}" is not supported: ${REFUSED[n]}`, "key");
      continue;
    }
    const kind = KNOWN[n];
    if (!kind) {
      const hint = closestName(name);
      p.at(path, `unknown GoDoxy middleware "${name}"${hint ? `; did you mean "${hint}"?` : ""}`, "key");
      continue;
    }
    const o = opts === null ? {} : opts;
    if (!isMapValue(o)) {
      p.at(path, `expected the options of "${name}" as a map, got ${describe(opts)}`);
      continue;
    }
    let priority = 10;
    const rest: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(o)) {
      if (norm(k) === "priority") {
        const pr = p.parse(int, v, [...path, k]);
        if (pr !== undefined) priority = pr;
      } else if (norm(k) === "bypass") {
        p.at(
          [...path, k],
          `GoDoxy key "bypass" is not supported: switchyard middlewares apply to every request of the service (give the exempt paths their own service with \`paths\` in a switchyard file)`,
          "key",
        );
      } else rest[k] = v;
    }
    const mapped = mapOne(p, kind, name, rest, path, file);
    if (!mapped) continue;
    if ("realIp" in mapped) out.realIp = mapped.realIp;
    else if (mapped.mw) ordered.push({ priority, seq: seq++, mw: mapped.mw });
  }
  ordered.sort((a, b) => a.priority - b.priority || a.seq - b.seq);
  out.middlewares = ordered.map((o) => o.mw);
  return out;
}

function closestName(name: string): string | undefined {
  const n = norm(name);
  let best: string | undefined;
  let bestD = 3;
  for (const k of ALL_NAMES) {
    const d = levenshtein(n, norm(k));
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best;
}

function levenshtein(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length];
}

type MapResult = { mw: MiddlewareConfig | undefined } | { realIp: BalancingConfig["options"] } | undefined;

function mapOne(
  p: Problems,
  kind: Known,
  name: string,
  opts: Record<string, unknown>,
  path: Path,
  file: string,
): MapResult {
  switch (kind) {
    case "cidr_whitelist": {
      const m = readMap(p, opts, path, ["allow", "status_code", "status", "message"] as const, {
        loose: true,
      });
      if (!m) return undefined;
      const cidrs = m.allow ? p.parse(fromSchema, m.allow.value, m.allow.path) : [];
      const status = m.status_code ?? m.status;
      if (status && status.value !== 403)
        p.at(status.path, `switchyard's \`allow\` answers 403 only, not ${describe(status.value)}`);
      if (m.message && m.message.value !== "IP not allowed")
        p.at(
          m.message.path,
          `switchyard's \`allow\` answers "Forbidden" (GoDoxy's default "IP not allowed" is accepted); a custom message is not offered: use \`error_pages: { 403: FILE }\` in a switchyard file`,
        );
      // GoDoxy: an empty list denies everyone
      return cidrs ? { mw: { kind: "allow", cidrs } } : undefined;
    }
    case "redirect_http": {
      if (Object.keys(opts).length) {
        const [k] = Object.keys(opts);
        p.at(
          [...path, k],
          `GoDoxy key "${k}" of ${name} is not supported: switchyard redirects every plain-http request`,
          "key",
        );
      }
      return { mw: { kind: "redirect_https", status: 308, port: undefined } };
    }
    case "modify_request":
    case "modify_response": {
      const keys = ["set_headers", "add_headers", "hide_headers", "add_prefix"] as const;
      const m = readMap(p, opts, path, keys, { loose: true });
      if (!m) return undefined;
      if (m.add_prefix)
        p.at(
          m.add_prefix.path,
          `GoDoxy key "add_prefix" is not supported: switchyard removes a prefix (\`strip_prefix\` with \`paths\`) but does not add one`,
          "key",
        );
      const edits = headerEdits(p, m.set_headers, m.add_headers, m.hide_headers);
      if (!edits) return undefined;
      return {
        mw: { kind: kind === "modify_request" ? "request_headers" : "response_headers", ...edits },
      };
    }
    case "real_ip": {
      const m = readMap(p, opts, path, ["header", "from", "recursive"] as const, { loose: true });
      if (!m) return undefined;
      if (!m.from) {
        // GoDoxy refuses the middleware without `from` (and then runs without it)
        p.at(path, "real_ip needs `from` (the proxies whose header is believed), as in GoDoxy");
        return undefined;
      }
      return {
        realIp: {
          header: field(p, m.header, headerSchema, DEFAULTS.header),
          from: field(p, m.from, fromSchema, []),
          recursive: field(p, m.recursive, bool, false),
        },
      };
    }
    case "rate_limit": {
      const m = readMap(p, opts, path, ["average", "burst", "period"] as const, { loose: true });
      if (!m) return undefined;
      if (!m.average || !m.burst) {
        p.at(path, "rate_limit needs `average` and `burst` (GoDoxy requires both)");
        return undefined;
      }
      const average = p.parse(positiveInt, m.average.value, m.average.path);
      const burst = p.parse(positiveInt, m.burst.value, m.burst.path);
      const period = field(p, m.period, duration("positive"), 1000);
      if (period < 1000 && m.period) p.at(m.period.path, "must be at least 1s (as in GoDoxy)");
      if (average === undefined || burst === undefined) return undefined;
      return { mw: { kind: "rate_limit", limit: average, period, burst } };
    }
    case "custom_error_page": {
      if (Object.keys(opts).length) {
        const [k] = Object.keys(opts);
        p.at([...path, k], `${name} takes no options in GoDoxy`, "key");
      }
      const pages = errorPages(dirname(resolve(file)));
      if (!pages) {
        p.at(
          path,
          `${name}: no error_pages/ folder with pages named by status (404.html, 502.html …) next to ${file} or one folder up, where GoDoxy keeps it`,
        );
        return undefined;
      }
      return { mw: { kind: "error_pages", pages } };
    }
    case "hide_x_forwarded":
      if (Object.keys(opts).length) {
        const [k] = Object.keys(opts);
        p.at([...path, k], `${name} takes no options in GoDoxy`, "key");
      }
      // GoDoxy drops the client's X-Forwarded-* headers; switchyard also sends none of its own
      return { mw: { kind: "hide_forwarded" } };
    case "set_x_forwarded":
      // switchyard already replaces X-Forwarded-For with the address it saw for every peer outside
      // `options.from` (the default: nobody is trusted), which is what this middleware does
      return { mw: undefined };
  }
}

/** GoDoxy keeps error pages in `error_pages/` beside its `config/` folder. */
function errorPages(dir: string): Record<number, string> | undefined {
  for (const d of [join(dir, "error_pages"), join(dir, "..", "error_pages")]) {
    if (!existsSync(d)) continue;
    const pages: Record<number, string> = {};
    for (const f of readdirSync(d)) {
      const m = /^([45]\d\d)\.html$/.exec(f);
      if (m) pages[Number(m[1])] = resolve(d, f);
    }
    if (Object.keys(pages).length) return pages;
  }
  return undefined;
}

function headerEdits(
  p: Problems,
  set: Entry | undefined,
  add: Entry | undefined,
  hide: Entry | undefined,
): HeaderEdits | undefined {
  let ok = true;
  const map = (e: Entry | undefined): Record<string, string> => {
    const out: Record<string, string> = {};
    if (!e) return out;
    if (!isMapValue(e.value)) {
      p.at(e.path, `expected a map of header names to values, got ${describe(e.value)}`);
      ok = false;
      return out;
    }
    for (const [k, value] of Object.entries(e.value)) {
      const hp = [...e.path, k];
      if (!v.is(headerSchema, k)) {
        p.at(hp, `${JSON.stringify(k)} is not a valid header name`, "key");
        ok = false;
        continue;
      }
      const text = typeof value === "number" || typeof value === "boolean" ? String(value) : value;
      if (typeof text !== "string" || /[\r\n\0]/.test(text)) {
        p.at(hp, `expected a header value on one line, got ${describe(value)}`);
        ok = false;
        continue;
      }
      if (/\$[A-Za-z_]/.test(text)) {
        p.at(
          hp,
          `GoDoxy variables ($req_path, $remote_host …) are not substituted by switchyard: give a fixed value`,
        );
        ok = false;
        continue;
      }
      out[k] = text;
    }
    return out;
  };
  const s = map(set);
  const a = map(add);
  const remove: string[] = [];
  if (hide) {
    const list = Array.isArray(hide.value)
      ? hide.value
      : typeof hide.value === "string"
        ? hide.value.split(",").map((x) => x.trim())
        : [hide.value];
    list.forEach((h: unknown, i: number) => {
      if (typeof h === "string" && v.is(headerSchema, h)) remove.push(h);
      else {
        p.at(
          Array.isArray(hide.value) ? [...hide.path, i] : hide.path,
          `${describe(h)} is not a valid header name`,
        );
        ok = false;
      }
    });
  }
  return ok ? { set: s, add: a, remove } : undefined;
}

// ---------------------------------------------------------------------------------------------
// Rules

/**
 * `rules:` onto the rules middleware (src/middleware/rules.ts), which evaluates them as GoDoxy
 * does. A list whose only rule is a default `pass` is what happens anyway (GoDoxy skips the rules
 * handler then too). `route NAME` targets go to `routes` for the caller to check once every
 * service of the file is known.
 */
export function readGoDoxyRules(
  p: Problems,
  entry: Entry | undefined,
  routes: RouteRef[],
): MiddlewareConfig[] {
  if (!entry) return [];
  const rules = readRules(p, entry.value, entry.path, routes, { label: "GoDoxy rule", lowerRoutes: true });
  if (rules === undefined || rules.length === 0) return [];
  const onlyPass = rules.every((r) => r.default && r.do.length === 1 && r.do[0].do === "pass");
  return onlyPass ? [] : [{ kind: "rules", rules }];
}

/** For the migration doc and tests: the middleware names GoDoxy knows and switchyard maps. */
export const GODOXY_MIDDLEWARES_MAPPED = Object.keys(KNOWN);
export const GODOXY_MIDDLEWARES_REFUSED = Object.keys(REFUSED);
