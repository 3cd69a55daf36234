/**
 * GoDoxy `middlewares:` and `rules:` of a route, mapped onto switchyard's middlewares (SPEC
 * "Paths and middlewares"). Names match as GoDoxy matches them (case and "_" ignored, so
 * `cidr_whitelist`, `CIDRWhitelist` and `cidrWhitelist` are one). What has no switchyard
 * equivalent is refused by name with what switchyard offers instead, never ignored.
 */
import { existsSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { z } from "zod";
import {
  bool,
  DEFAULTS,
  duration,
  type Entry,
  field,
  fromSchema,
  headerSchema,
  isMapValue,
  readMap,
} from "./fields.ts";
import { bcryptProblem } from "./middlewares.ts";
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
  | "set_x_forwarded";

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
};

/** GoDoxy middlewares switchyard does not offer, with what it offers instead. */
const REFUSED: Readonly<Record<string, string>> = {
  hidexforwarded:
    "switchyard always sends X-Forwarded-For/-Proto/-Host to the backend (from a peer outside `options.from` they are what switchyard saw, never what the client sent)",
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

const ALL_NAMES = [...Object.values(KNOWN), "hide_x_forwarded", "oidc", "forward_auth", "crowdsec"];

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
        const pr = p.parse(z.number().int(), v, [...path, k]);
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
      const average = p.parse(z.number().int().min(1), m.average.value, m.average.path);
      const burst = p.parse(z.number().int().min(1), m.burst.value, m.burst.path);
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
    for (const [k, v] of Object.entries(e.value)) {
      const hp = [...e.path, k];
      if (!headerSchema.safeParse(k).success) {
        p.at(hp, `${JSON.stringify(k)} is not a valid header name`, "key");
        ok = false;
        continue;
      }
      const text = typeof v === "number" || typeof v === "boolean" ? String(v) : v;
      if (typeof text !== "string" || /[\r\n\0]/.test(text)) {
        p.at(hp, `expected a header value on one line, got ${describe(v)}`);
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
      if (typeof h === "string" && headerSchema.safeParse(h).success) remove.push(h);
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

/** One condition of a rule's `on`: `[!]matcher args…`. */
interface Cond {
  negated: boolean;
  matcher: string;
  args: string[];
}

const PASS = new Set(["pass", "bypass", "upstream"]);

/**
 * `rules:` mapped onto middlewares where a rule says what a middleware does:
 * `!remote A & !remote B` → `error 403` is `allow: [A, B]`; `remote A | remote B` → `error 403`
 * is `deny`; `remote A | remote B` → `pass` with a default `error 403` is `allow`;
 * `!basic_auth USER HASH` → `require_basic_auth REALM` is `basic_auth`; a default (or
 * unconditional) rule that sets, adds or removes headers is `request_headers`/`response_headers`;
 * `default` → `pass` is what happens anyway. Any other rule is refused naming its matcher or
 * command: switchyard's middlewares apply to a whole service and it has no rule engine.
 */
export function readGoDoxyRules(p: Problems, entry: Entry | undefined): MiddlewareConfig[] {
  if (!entry) return [];
  if (!Array.isArray(entry.value)) {
    p.at(entry.path, `expected a list of rules (- name, on, do), got ${describe(entry.value)}`);
    return [];
  }
  interface Parsed {
    path: Path;
    label: string;
    isDefault: boolean;
    any: Cond[][] | undefined; // OR of ANDs; undefined = unconditional
    commands: string[][];
  }
  const parsed: Parsed[] = [];
  entry.value.forEach((raw: unknown, i: number) => {
    const path = [...entry.path, i];
    const m = readMap(p, raw, path, ["name", "on", "do"] as const, { loose: true });
    if (!m) return;
    const name = typeof m.name?.value === "string" ? m.name.value : `rules[${i}]`;
    if (!m.do || typeof m.do.value !== "string" || m.do.value.trim() === "") {
      p.at(m.do?.path ?? path, "a rule needs `do` (the commands, one per line)");
      return;
    }
    const onText = typeof m.on?.value === "string" ? m.on.value.trim() : undefined;
    if (m.on && onText === undefined) {
      p.at(m.on.path, `expected the rule's condition as text, got ${describe(m.on.value)}`);
      return;
    }
    const isDefault = name === "default" || onText === "default";
    const any = isDefault || onText === undefined || onText === "" ? undefined : parseOn(onText);
    if (any === null) {
      p.at(m.on!.path, `GoDoxy rule "${name}": cannot read \`on: ${onText}\``);
      return;
    }
    const commands = splitLines(m.do.value).map(tokens);
    parsed.push({ path: m.on?.path ?? m.do.path, label: name, isDefault, any, commands });
  });

  const out: MiddlewareConfig[] = [];
  const allowFromPass: string[] = [];
  let defaultDenies = false;
  const headerRules: { rule: Parsed; req: HeaderEditsMutable; res: HeaderEditsMutable }[] = [];
  for (const r of parsed) {
    const refuse = (why: string) =>
      p.at(
        r.path,
        `GoDoxy rule "${r.label}" is not supported: ${why}; switchyard has no rule engine: its middlewares (allow/deny by address, basic_auth, request/response headers, redirect_https, rate_limit) apply to a whole service, and it routes paths to services with \`paths\``,
      );
    const cmds = r.commands;
    const first = cmds[0]?.[0]?.toLowerCase();
    if (r.any === undefined) {
      // default or unconditional
      if (cmds.length === 1 && first && PASS.has(first)) continue;
      if (r.isDefault && cmds.length === 1 && first === "error" && cmds[0][1] === "403") {
        defaultDenies = true;
        continue;
      }
      const req = emptyEdits();
      const res = emptyEdits();
      let bad: string | undefined;
      for (const c of cmds) {
        const verb = c[0]?.toLowerCase();
        if (PASS.has(verb) && c === cmds[cmds.length - 1]) continue;
        const target = c[1]?.toLowerCase();
        if (
          (verb === "set" || verb === "add") &&
          c.length === 4 &&
          (target === "header" || target === "resp_header")
        ) {
          if (c[3].includes("$")) {
            bad = `\`${c.join(" ")}\` uses a GoDoxy variable`;
            break;
          }
          (target === "header" ? req : res)[verb][c[2]] = c[3];
        } else if (verb === "remove" && c.length === 3 && (target === "header" || target === "resp_header")) {
          (target === "header" ? req : res).remove.push(c[2]);
        } else {
          bad = `command \`${c.join(" ")}\``;
          break;
        }
      }
      if (bad) refuse(bad);
      else headerRules.push({ rule: r, req, res });
      continue;
    }
    // conditional rules: only address and basic-auth checks map
    const onlyRemote = r.any.every((and) => and.every((c) => c.matcher === "remote" && c.args.length === 1));
    const verb = first;
    if (onlyRemote && cmds.length === 1) {
      const single = r.any.length === 1;
      const allNegated = r.any.every((and) => and.every((c) => c.negated));
      const noneNegated = r.any.every((and) => and.every((c) => !c.negated));
      const cidrs = r.any.flat().map((c) => c.args[0]);
      const bad = cidrs.find((c) => !fromSchema.safeParse(c).success);
      if (bad) {
        p.at(r.path, `GoDoxy rule "${r.label}": "${bad}" is not an IP address or CIDR`);
        continue;
      }
      if (verb === "error" && cmds[0][1] === "403") {
        // !remote A & !remote B → error 403: only A and B get through
        if (single && allNegated) {
          out.push({ kind: "allow", cidrs });
          continue;
        }
        // remote A | remote B → error 403
        if (noneNegated && r.any.every((and) => and.length === 1)) {
          out.push({ kind: "deny", cidrs });
          continue;
        }
      }
      if (verb && PASS.has(verb) && noneNegated && r.any.every((and) => and.length === 1)) {
        allowFromPass.push(...cidrs);
        continue;
      }
    }
    if (
      r.any.length === 1 &&
      r.any[0].length === 1 &&
      r.any[0][0].matcher === "basic_auth" &&
      r.any[0][0].negated &&
      r.any[0][0].args.length === 2 &&
      cmds.length === 1 &&
      verb === "require_basic_auth"
    ) {
      const [user, hash] = r.any[0][0].args;
      const problem = bcryptProblem(hash);
      if (problem) p.at(r.path, `GoDoxy rule "${r.label}": ${problem}`);
      else
        out.push({
          kind: "basic_auth",
          realm: cmds[0].slice(1).join(" ") || "switchyard",
          users: { [user]: hash },
        });
      continue;
    }
    const unsupported = r.any.flat().find((c) => c.matcher !== "remote" && c.matcher !== "basic_auth");
    refuse(
      unsupported
        ? `matcher \`${unsupported.matcher}\``
        : `\`do: ${cmds.map((c) => c.join(" ")).join("; ")}\``,
    );
  }
  if (allowFromPass.length) {
    if (!defaultDenies) {
      // `remote A → pass` without a default that refuses: everyone passes anyway
    } else out.unshift({ kind: "allow", cidrs: allowFromPass });
    if (headerRules.length) {
      for (const h of headerRules)
        p.at(
          h.rule.path,
          `GoDoxy rule "${h.rule.label}" is not supported together with \`remote … → pass\` rules: GoDoxy skips a default rule for requests another rule passed, switchyard has no such condition`,
        );
      return out;
    }
  } else if (defaultDenies) {
    const d = parsed.find((r) => r.isDefault)!;
    p.at(
      d.path,
      `GoDoxy rule "${d.label}" (error 403 for everyone) is not supported: nothing would reach the backends`,
    );
  }
  for (const h of headerRules) {
    if (hasEdits(h.req)) out.push({ kind: "request_headers", ...h.req });
    if (hasEdits(h.res)) out.push({ kind: "response_headers", ...h.res });
  }
  return out;
}

type HeaderEditsMutable = { set: Record<string, string>; add: Record<string, string>; remove: string[] };
const emptyEdits = (): HeaderEditsMutable => ({ set: {}, add: {}, remove: [] });
const hasEdits = (e: HeaderEditsMutable) =>
  Object.keys(e.set).length > 0 || Object.keys(e.add).length > 0 || e.remove.length > 0;

function splitLines(text: string): string[] {
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#") && !l.startsWith("//"));
}

/** Splits on spaces, keeping "quoted strings" (quotes removed) together. */
function tokens(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|'([^']*)'|`([^`]*)`|(\S+)/g;
  for (let m = re.exec(line); m; m = re.exec(line)) out.push(m[1] ?? m[2] ?? m[3] ?? m[4]);
  return out;
}

/** `on` text → OR of AND groups; lines are ANDed, `&` ANDs, `|` ORs within a line. null: unreadable. */
function parseOn(text: string): Cond[][] | null {
  const lines = splitLines(text).map((l) => l.replace(/^&\s*/, ""));
  // (a | b) & (c | d) … → distribute into OR of ANDs
  let groups: Cond[][] = [[]];
  for (const line of lines) {
    for (const andPart of line.split(/\s+&\s+/)) {
      const alts = andPart.split(/\s+\|\s+/).map(parseCond);
      if (alts.some((a) => a === null)) return null;
      const next: Cond[][] = [];
      for (const g of groups) for (const a of alts as Cond[]) next.push([...g, a]);
      groups = next;
    }
  }
  return groups;
}

function parseCond(text: string): Cond | null {
  let t = text.trim();
  let negated = false;
  if (t.startsWith("!")) {
    negated = true;
    t = t.slice(1);
  }
  const parts = tokens(t);
  if (parts.length === 0) return null;
  return { negated, matcher: parts[0].toLowerCase(), args: parts.slice(1) };
}

/** For the migration doc and tests: the middleware names GoDoxy knows and switchyard maps. */
export const GODOXY_MIDDLEWARES_MAPPED = Object.keys(KNOWN);
export const GODOXY_MIDDLEWARES_REFUSED = Object.keys(REFUSED);
