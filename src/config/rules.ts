/**
 * GoDoxy-style rules (`- name, on, do`), read and checked once at config time so `switchyard
 * check` names every mistake at its own line (`file:line: path: message`): unknown conditions and
 * commands, bad globs and regular expressions, bad status codes, a terminating command that is
 * not last, two default rules, a rule shadowed by an earlier one with the same condition. The
 * middleware (src/middleware/rules.ts) compiles what is read here. The syntax and what each word
 * does follow GoDoxy's rules package (internal/route/rules); docs/paths-and-middlewares.md lists
 * where switchyard differs.
 */
import { BlockList, isIP } from "node:net";
import { bcryptProblem } from "./fields.ts";
import { closest, describe, type Path, type Problems } from "./source.ts";
import type { RuleCommand, RuleCondition, RuleConfig, RulePattern } from "./types.ts";

/** A `route NAME` to check once every service of the file is known. */
export interface RouteRef {
  readonly service: string;
  readonly rule: string;
  readonly path: Path;
  readonly line: number | undefined;
}

const CONDITIONS = ["header", "query", "cookie", "method", "host", "path", "remote", "basic_auth", "proto"];
const COMMANDS = [
  "pass",
  "bypass",
  "upstream",
  "error",
  "redirect",
  "rewrite",
  "route",
  "set",
  "add",
  "remove",
  "require_basic_auth",
];

/** GoDoxy conditions switchyard refuses, with why. */
const REFUSED_ON: Readonly<Record<string, string>> = {
  form: "it reads the request body before the backend does, and switchyard streams bodies",
  postform: "it reads the request body before the backend does, and switchyard streams bodies",
  status: "response conditions are not supported: switchyard's rules act before the backend answers",
  resp_header: "response conditions are not supported: switchyard's rules act before the backend answers",
  route: "a rules list belongs to one service already",
};

/** GoDoxy commands switchyard refuses, with why. */
const REFUSED_DO: Readonly<Record<string, string>> = {
  serve: "switchyard serves no files: put a static file server behind it as a service and `route` to it",
  serve_file: "switchyard serves no files: put a static file server behind it as a service and `route` to it",
  proxy: "give the target its own service and hand requests to it with `route NAME`",
  handle: "GoDoxy's in-process handlers (its API) do not exist in switchyard",
  require_auth:
    "GoDoxy's own login does not exist in switchyard: use `basic_auth` conditions with `require_basic_auth`",
  log: "switchyard writes one access line per request (`access_log`), not per rule",
  notify: "switchyard sends no notifications",
};

const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE"]);
const PROTOS = new Set(["http", "https", "h1", "h2", "h2c", "h3"]);
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const TERMINATING = new Set(["pass", "error", "redirect", "route", "require_basic_auth"]);

/** Where the lines of a rule's text are: the value's line, or the lines after it for a `|` block. */
interface TextAt {
  path: Path;
  base: number | undefined;
  block: boolean;
}

function lineOf(at: TextAt, index: number): number | undefined {
  if (at.base === undefined) return undefined;
  return at.block ? at.base + 1 + index : at.base;
}

/**
 * `rules:` as a list of `{ name, on, do }`. Returns undefined when something is wrong (every
 * problem is reported); `routes` collects the `route NAME` targets for the caller to check.
 */
export function readRules(
  p: Problems,
  value: unknown,
  path: Path,
  routes: RouteRef[],
  options: { label?: string; lowerRoutes?: boolean } = {},
): RuleConfig[] | undefined {
  const label = options.label ?? "rule";
  if (typeof value === "string") {
    p.at(
      path,
      "GoDoxy's block syntax (`path /x { … }`) is not supported: write the rules as a YAML list of `- name:`, `on:`, `do:`",
    );
    return undefined;
  }
  if (!Array.isArray(value)) {
    p.at(path, `expected a list of rules (- name, on, do), got ${describe(value)}`);
    return undefined;
  }
  const before = p.size;
  const out: RuleConfig[] = [];
  const index: number[] = [];
  const defaults: number[] = [];
  value.forEach((raw: unknown, i: number) => {
    const rpath = [...path, i];
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
      p.at(rpath, `expected a rule (a map of name, on, do), got ${describe(raw)}`);
      return;
    }
    const r = raw as Record<string, unknown>;
    for (const k of Object.keys(r)) {
      if (k !== "name" && k !== "on" && k !== "do") {
        const hint = closest(k, ["name", "on", "do"]);
        p.at(
          [...rpath, k],
          `unknown key "${k}" of a rule${hint ? `; did you mean "${hint}"?` : " (name, on, do)"}`,
          "key",
        );
      }
    }
    const name = typeof r.name === "string" && r.name !== "" ? r.name : `rules[${i}]`;
    const who = `${label} "${name}"`;
    if (r.name !== undefined && typeof r.name !== "string")
      p.at([...rpath, "name"], `expected the rule's name as text, got ${describe(r.name)}`);
    const textAt = (key: string): TextAt => {
      const kp = [...rpath, key];
      const v = r[key];
      return {
        path: kp,
        base: p.source?.lineOf(kp),
        block: typeof v === "string" && v.trimEnd().includes("\n"),
      };
    };
    let onText: string | undefined;
    if (r.on !== undefined && r.on !== null) {
      if (typeof r.on !== "string") {
        p.at([...rpath, "on"], `expected the rule's condition as text, got ${describe(r.on)}`);
        return;
      }
      onText = r.on;
    }
    const isDefault = name === "default" || onText?.trim() === "default";
    if (isDefault) defaults.push(i);
    const on = isDefault || onText === undefined ? [] : readOn(p, onText, textAt("on"), who);
    if (typeof r.do !== "string" || r.do.trim() === "") {
      p.at(r.do === undefined ? rpath : [...rpath, "do"], `${who} needs \`do\`: the commands, one per line`);
      return;
    }
    const commands = readDo(p, r.do, textAt("do"), who, routes, options.lowerRoutes === true);
    if (on && commands) {
      out.push({ name, default: isDefault, on, do: commands });
      index.push(i);
    }
  });
  if (defaults.length > 1) {
    for (const i of defaults.slice(1))
      p.at([...path, i], `a second default rule (the first is rules[${defaults[0]}]): GoDoxy allows one`);
  }
  shadowed(p, out, index, path);
  return p.size === before ? out : undefined;
}

/** GoDoxy refuses a rule whose condition an earlier, always-terminating rule already takes. */
function shadowed(p: Problems, rules: RuleConfig[], index: number[], path: Path): void {
  const seen = new Map<string, string>();
  rules.forEach((r, n) => {
    if (r.default || r.on.length === 0) return;
    const sig = signature(r.on);
    const earlier = seen.get(sig);
    if (earlier !== undefined) {
      p.at(
        [...path, index[n], "on"],
        `rule "${r.name}" can never run: rule "${earlier}" has the same condition and always ends the request (GoDoxy refuses it too)`,
      );
      return;
    }
    const last = r.do[r.do.length - 1];
    if (TERMINATING.has(last.do)) seen.set(sig, r.name);
  });
}

function signature(on: readonly (readonly RuleCondition[])[]): string {
  return on
    .map((or) =>
      or
        .map((c) => JSON.stringify(c))
        .sort()
        .join("|"),
    )
    .sort()
    .join("&");
}

// ---------------------------------------------------------------------------------------------
// Text

/** Splits `s` at `sep` characters outside quotes and parentheses. */
function splitOutside(s: string, seps: string): string[] {
  const out: string[] = [];
  let quote = "";
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "\\") {
      i++;
      continue;
    }
    if (quote) {
      if (c === quote) quote = "";
      continue;
    }
    if (depth === 0 && (c === '"' || c === "'" || c === "`")) quote = c;
    else if (c === "(") depth++;
    else if (c === ")" && depth > 0) depth--;
    else if (depth === 0 && !quote && seps.includes(c)) {
      out.push(s.slice(start, i));
      start = i + 1;
    }
  }
  out.push(s.slice(start));
  return out;
}

const ESCAPES: Readonly<Record<string, string>> = { n: "\n", t: "\t", r: "\r" };

/**
 * Shell-like words: quotes group (and are removed), `\n \t \r \\ \" \' \ ` escape; a word such as
 * `glob(...)` or `regex(...)` keeps what is inside the parentheses as written. null: an
 * unterminated quote or parenthesis.
 */
export function words(line: string): string[] | null {
  const out: string[] = [];
  let cur = "";
  let has = false;
  let i = 0;
  while (i < line.length) {
    const c = line[i];
    if (c === " " || c === "\t") {
      if (has) out.push(cur);
      cur = "";
      has = false;
      i++;
      continue;
    }
    has = true;
    if (c === "\\" && i + 1 < line.length) {
      const n = line[i + 1];
      cur += ESCAPES[n] ?? n;
      i += 2;
      continue;
    }
    if (c === '"' || c === "'" || c === "`") {
      const end = closing(line, i + 1, c);
      if (end < 0) return null;
      const inner = line.slice(i + 1, end);
      cur += c === "`" ? inner : inner.replace(/\\(.)/g, (_, x: string) => ESCAPES[x] ?? x);
      i = end + 1;
      continue;
    }
    if (c === "(") {
      // glob(...) / regex(...): the argument as written, quotes and all
      let depth = 0;
      let quote = "";
      let j = i;
      for (; j < line.length; j++) {
        const d = line[j];
        if (d === "\\") {
          j++;
          continue;
        }
        if (quote) {
          if (d === quote) quote = "";
        } else if (d === '"' || d === "'" || d === "`") quote = d;
        else if (d === "(") depth++;
        else if (d === ")" && --depth === 0) break;
      }
      if (j >= line.length) return null;
      cur += line.slice(i, j + 1);
      i = j + 1;
      continue;
    }
    cur += c;
    i++;
  }
  if (has) out.push(cur);
  return out;
}

function closing(s: string, from: number, quote: string): number {
  for (let i = from; i < s.length; i++) {
    if (s[i] === "\\" && quote !== "`") i++;
    else if (s[i] === quote) return i;
  }
  return -1;
}

/** The lines of a rule's text with their index (for the line number), comments and blanks left out. */
function lines(text: string): { line: string; index: number }[] {
  const out: { line: string; index: number }[] = [];
  text.split("\n").forEach((raw, index) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith("//")) return;
    out.push({ line, index });
  });
  return out;
}

/** A GoDoxy variable in a value (`$req_path`, `$header(X)`); `$$` is a literal `$`. */
function variableIn(v: string): boolean {
  return /(^|[^$])(\$\$)*\$[A-Za-z_{]/.test(v);
}

const literal = (v: string) => v.replace(/\$\$/g, "$");

// ---------------------------------------------------------------------------------------------
// on

function readOn(p: Problems, text: string, at: TextAt, who: string): RuleCondition[][] | undefined {
  const groups: RuleCondition[][] = [];
  let ok = true;
  for (const { line, index } of lines(text)) {
    const where = lineOf(at, index);
    for (const andPart of splitOutside(line, "&")) {
      if (andPart.trim() === "") continue;
      const group: RuleCondition[] = [];
      for (const atom of splitOutside(andPart, "|")) {
        const c = readCondition(atom.trim(), (msg) => {
          p.add(where, at.path, `${who}: ${msg}`);
          ok = false;
        });
        if (c) group.push(c);
      }
      groups.push(group);
    }
  }
  return ok ? groups : undefined;
}

function readCondition(atom: string, fail: (msg: string) => void): RuleCondition | undefined {
  if (atom === "") {
    fail("an empty condition (a `|` or `&` with nothing on one side)");
    return undefined;
  }
  const w = words(atom);
  if (w === null || w.length === 0) {
    fail(`cannot read \`${atom}\`: an unterminated quote or parenthesis`);
    return undefined;
  }
  let subject = w[0];
  const negate = subject.startsWith("!");
  if (negate) subject = subject.slice(1);
  const args = w.slice(1);
  const nArgs = (min: number, max: number, usage: string): boolean => {
    if (args.length >= min && args.length <= max) return true;
    fail(`\`${subject}\` takes ${usage}, got \`${atom}\``);
    return false;
  };
  if (REFUSED_ON[subject]) {
    fail(`condition \`${subject}\` is not supported: ${REFUSED_ON[subject]}`);
    return undefined;
  }
  switch (subject) {
    case "header":
    case "query":
    case "cookie": {
      if (!nArgs(1, 2, "a name and an optional value")) return undefined;
      if (subject === "header" && !HEADER_NAME.test(args[0])) {
        fail(`"${args[0]}" is not a valid header name`);
        return undefined;
      }
      const value = args.length === 2 ? readPattern(args[1], fail) : undefined;
      if (args.length === 2 && value === undefined) return undefined;
      return { on: subject, negate, name: args[0], value };
    }
    case "method": {
      if (!nArgs(1, 1, "one method")) return undefined;
      const method = args[0].toUpperCase();
      if (!METHODS.has(method)) {
        fail(`"${args[0]}" is not an HTTP method (${[...METHODS].join(", ")})`);
        return undefined;
      }
      return { on: "method", negate, method };
    }
    case "host":
    case "path": {
      if (!nArgs(1, 1, "one value (text, glob(...) or regex(...))")) return undefined;
      let arg = args[0];
      if (subject === "path") {
        const t = patternType(arg);
        if (t === "string" || t === undefined) {
          const clean = cleanPath(arg.startsWith("!") ? arg.slice(1) : arg);
          if (clean === undefined) {
            fail(`path "${arg}" must start with "/"`);
            return undefined;
          }
          // GoDoxy before glob() matched a plain path as a glob: one with wildcards still is
          const bare = clean;
          arg = `${arg.startsWith("!") ? "!" : ""}${/[*?[{]/.test(bare) ? `glob(${bare})` : bare}`;
        }
      }
      const value = readPattern(arg, fail);
      return value === undefined ? undefined : { on: subject, negate, value };
    }
    case "remote": {
      if (!nArgs(1, 1, "one address or CIDR")) return undefined;
      const cidr = cidrOf(args[0]);
      if (cidr === undefined) {
        fail(`"${args[0]}" is not an IP address or CIDR`);
        return undefined;
      }
      return { on: "remote", negate, cidr };
    }
    case "basic_auth": {
      if (!nArgs(2, 2, "a user name and a bcrypt hash")) return undefined;
      const problem = bcryptProblem(args[1]);
      if (problem) {
        fail(problem);
        return undefined;
      }
      return { on: "basic_auth", negate, user: args[0], hash: args[1] };
    }
    case "proto": {
      if (!nArgs(1, 1, "one of http, https, h1, h2, h2c, h3")) return undefined;
      if (!PROTOS.has(args[0])) {
        fail(`proto "${args[0]}" is not one of http, https, h1, h2, h2c, h3`);
        return undefined;
      }
      return { on: "proto", negate, proto: args[0] as "http" };
    }
    default: {
      const hint = closest(subject, [...CONDITIONS, "default"]);
      fail(
        `unknown condition "${subject}"${hint ? `; did you mean "${hint}"?` : ` (known: ${CONDITIONS.join(", ")}, default)`}`,
      );
      return undefined;
    }
  }
}

function patternType(arg: string): "string" | "glob" | "regex" | undefined {
  const m = /^!?([a-z]+)\(/i.exec(arg);
  if (!m) return "string";
  const t = m[1].toLowerCase();
  return t === "glob" || t === "regex" || t === "string" ? t : undefined;
}

/** `text`, `glob(...)`, `regex(...)`, `string(...)`, each with an optional `!`; checked by compiling it. */
export function readPattern(arg: string, fail: (msg: string) => void): RulePattern | undefined {
  let s = arg;
  const negate = s.startsWith("!");
  if (negate) s = s.slice(1);
  const open = s.indexOf("(");
  if (open < 0 || !s.endsWith(")")) {
    if (variableIn(s)) {
      fail(`GoDoxy variables ($req_path, $header(…) …) are not substituted by switchyard: "${arg}"`);
      return undefined;
    }
    return { type: "string", expr: literal(s), negate };
  }
  const type = s.slice(0, open).toLowerCase();
  let expr = s.slice(open + 1, -1);
  const q = expr[0];
  if ((q === '"' || q === "'" || q === "`") && expr.length >= 2) {
    if (expr[expr.length - 1] !== q) {
      fail(`unterminated quote in ${arg}`);
      return undefined;
    }
    expr = expr.slice(1, -1);
  }
  if (type === "string") return { type: "string", expr, negate };
  if (type === "glob") {
    const problem = globProblem(expr);
    if (problem) {
      fail(`bad glob "${expr}": ${problem}`);
      return undefined;
    }
    return { type: "glob", expr, negate };
  }
  if (type === "regex") {
    try {
      toRegExp(expr);
    } catch (err) {
      fail(`bad regex "${expr}": ${(err as Error).message.replace(/^Invalid regular expression: /, "")}`);
      return undefined;
    }
    return { type: "regex", expr, negate };
  }
  fail(`unknown matcher "${type}(…)" in ${arg}: use a plain value, glob(…) or regex(…)`);
  return undefined;
}

/** A Go (RE2) expression as a JS RegExp: a leading `(?i)` (or s, m) becomes flags, `(?P<` is `(?<`. */
export function toRegExp(expr: string): RegExp {
  let flags = "";
  let src = expr;
  const m = /^\(\?([ims]+)\)/.exec(src);
  if (m) {
    flags = [...new Set(m[1])].join("");
    src = src.slice(m[0].length);
  }
  return new RegExp(src.replace(/\(\?P</g, "(?<"), flags);
}

/** A path as GoDoxy cleans it (Go's path.Clean, a trailing "/" kept); undefined when it is not a path. */
export function cleanPath(p: string): string | undefined {
  if (!p.startsWith("/")) return undefined;
  const cut = p.indexOf("#");
  const raw = cut >= 0 ? p.slice(0, cut) : p;
  const trailing = raw.length > 1 && raw.endsWith("/");
  const out: string[] = [];
  for (const seg of raw.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") out.pop();
    else out.push(seg);
  }
  const clean = `/${out.join("/")}`;
  return trailing && clean !== "/" ? `${clean}/` : clean;
}

function cidrOf(v: string): string | undefined {
  const [addr, bits, extra] = v.split("/");
  if (extra !== undefined) return undefined;
  const family = isIP(addr);
  if (family === 0) return undefined;
  const max = family === 4 ? 32 : 128;
  const n = bits === undefined ? max : Number(bits);
  if (!/^\d+$/.test(bits ?? String(max)) || n > max) return undefined;
  try {
    new BlockList().addSubnet(addr, n, family === 4 ? "ipv4" : "ipv6");
  } catch {
    return undefined;
  }
  return `${addr}/${n}`;
}

// ---------------------------------------------------------------------------------------------
// Globs (gobwas/glob as GoDoxy compiles it: no separators, so `*` and `?` also match "/")

/** The problem of a glob, or undefined. */
export function globProblem(glob: string): string | undefined {
  try {
    globSource(glob);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** A glob as an anchored RegExp. */
export function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${globSource(glob)}$`, "s");
}

const SPECIAL = /[\\^$.*+?()[\]{}|/]/;

function globSource(glob: string): string {
  let i = 0;
  const parse = (inBraces: boolean): string => {
    let out = "";
    while (i < glob.length) {
      const c = glob[i];
      if (inBraces && (c === "," || c === "}")) return out;
      i++;
      switch (c) {
        case "*":
          while (glob[i] === "*") i++;
          out += ".*";
          break;
        case "?":
          out += ".";
          break;
        case "\\":
          if (i >= glob.length) throw new Error("a trailing \\");
          out += escapeChar(glob[i++]);
          break;
        case "[": {
          let cls = "";
          let negated = false;
          if (glob[i] === "!") {
            negated = true;
            i++;
          }
          let closed = false;
          while (i < glob.length) {
            const d = glob[i++];
            if (d === "]") {
              closed = true;
              break;
            }
            if (d === "\\") {
              if (i >= glob.length) break;
              cls += `\\${glob[i++]}`;
            } else if (d === "-" && cls !== "" && glob[i] !== "]") cls += "-";
            else cls += d === "^" || d === "[" ? `\\${d}` : d;
          }
          if (!closed) throw new Error('a "[" without its "]"');
          if (cls === "") throw new Error("an empty character class");
          out += `[${negated ? "^" : ""}${cls}]`;
          break;
        }
        case "{": {
          const alts: string[] = [];
          for (;;) {
            alts.push(parse(true));
            if (i >= glob.length) throw new Error('a "{" without its "}"');
            if (glob[i++] === "}") break;
          }
          out += `(?:${alts.join("|")})`;
          break;
        }
        case "}":
          throw new Error('a "}" without its "{"');
        default:
          out += escapeChar(c);
      }
    }
    return out;
  };
  const src = parse(false);
  new RegExp(src, "s"); // a range such as [z-a] is refused here
  return src;
}

function escapeChar(c: string): string {
  return SPECIAL.test(c) ? `\\${c}` : c;
}

// ---------------------------------------------------------------------------------------------
// do

function readDo(
  p: Problems,
  text: string,
  at: TextAt,
  who: string,
  routes: RouteRef[],
  lowerRoutes: boolean,
): RuleCommand[] | undefined {
  const out: RuleCommand[] = [];
  let ok = true;
  const all = lines(text);
  all.forEach(({ line, index }, n) => {
    const where = lineOf(at, index);
    const fail = (msg: string) => {
      p.add(where, at.path, `${who}: ${msg}`);
      ok = false;
    };
    const w = words(line);
    if (w === null || w.length === 0) {
      fail(`cannot read \`${line}\`: an unterminated quote or parenthesis`);
      return;
    }
    let c = readCommand(w, line, fail);
    if (!c) return;
    if (c.do === "route" && lowerRoutes) c = { do: "route", service: c.service.trim().toLowerCase() };
    if (TERMINATING.has(c.do) && n !== all.length - 1) {
      fail(`\`${line}\` ends the request, so it must be the last command (GoDoxy refuses commands after it)`);
      return;
    }
    if (c.do === "route") routes.push({ service: c.service, rule: who, path: at.path, line: where });
    out.push(c);
  });
  return ok ? out : undefined;
}

function readCommand(w: string[], line: string, fail: (msg: string) => void): RuleCommand | undefined {
  const verb = w[0];
  const args = w.slice(1);
  const count = (n: number, usage: string): boolean => {
    if (args.length === n) return true;
    fail(`\`${verb}\` takes ${usage}, got \`${line}\``);
    return false;
  };
  const noVariable = (v: string): boolean => {
    if (!variableIn(v)) return true;
    fail(
      `GoDoxy variables ($req_path, $header(…) …) are not substituted by switchyard: give a fixed value in \`${line}\``,
    );
    return false;
  };
  if (REFUSED_DO[verb]) {
    fail(`command \`${verb}\` is not supported: ${REFUSED_DO[verb]}`);
    return undefined;
  }
  switch (verb) {
    case "pass":
    case "bypass":
    case "upstream":
      return count(0, "no arguments") ? { do: "pass" } : undefined;
    case "error": {
      if (!count(2, "a status code and a text (quote a text with spaces)")) return undefined;
      const status = Number(args[0]);
      if (!/^\d{3}$/.test(args[0]) || status < 200 || status > 599) {
        fail(`"${args[0]}" is not a status code for an answer (200-599)`);
        return undefined;
      }
      return noVariable(args[1]) ? { do: "error", status, text: literal(args[1]) } : undefined;
    }
    case "redirect": {
      if (!count(1, "one URL or path")) return undefined;
      const to = args[0];
      if (!noVariable(to)) return undefined;
      if (/[\s\0-\x1f\x7f]/.test(to) || to === "") {
        fail(`"${to}" is not a URL or path`);
        return undefined;
      }
      if (/^[a-z][a-z0-9+.-]*:/i.test(to)) {
        try {
          new URL(to);
        } catch {
          fail(`"${to}" is not a valid URL`);
          return undefined;
        }
      }
      return { do: "redirect", to: literal(to) };
    }
    case "rewrite": {
      if (!count(2, "a path prefix and its replacement")) return undefined;
      const from = cleanPath(args[0]);
      const to = cleanPath(args[1]);
      if (from === undefined || to === undefined) {
        fail(`both paths of \`rewrite\` must start with "/", got \`${line}\``);
        return undefined;
      }
      return { do: "rewrite", from, to };
    }
    case "route": {
      if (!count(1, "one route name")) return undefined;
      return { do: "route", service: args[0] };
    }
    case "set":
    case "add":
    case "remove": {
      const field = args[0];
      if (field !== "header" && field !== "resp_header") {
        fail(
          field === undefined
            ? `\`${verb}\` needs a field (header or resp_header), a name${verb === "remove" ? "" : " and a value"}`
            : `\`${verb} ${field}\` is not supported: switchyard's rules ${verb} \`header\` (request) and \`resp_header\` (response) only`,
        );
        return undefined;
      }
      if (
        !count(
          verb === "remove" ? 2 : 3,
          verb === "remove" ? "a field and a name" : "a field, a name and a value",
        )
      )
        return undefined;
      const name = args[1];
      if (!HEADER_NAME.test(name)) {
        fail(`"${name}" is not a valid header name`);
        return undefined;
      }
      const value = verb === "remove" ? "" : args[2];
      if (/[\r\n\0]/.test(value)) {
        fail(`a header value on one line, got ${JSON.stringify(value)}`);
        return undefined;
      }
      return noVariable(value) ? { do: verb, field, name, value: literal(value) } : undefined;
    }
    case "require_basic_auth": {
      if (!count(1, "one realm (quote a realm with spaces)")) return undefined;
      if (/["\\\r\n]/.test(args[0])) {
        fail(`a realm without quotes, "\\" or line breaks, got ${JSON.stringify(args[0])}`);
        return undefined;
      }
      return { do: "require_basic_auth", realm: args[0] };
    }
    default: {
      const hint = closest(verb, COMMANDS);
      fail(
        `unknown command "${verb}"${hint ? `; did you mean "${hint}"?` : ` (known: ${COMMANDS.join(", ")})`}`,
      );
      return undefined;
    }
  }
}

/** Reports every `route NAME` whose target is not one of `services` (with `alias` for a name that is a member, not a service). */
export function checkRoutes(
  p: Problems,
  routes: readonly RouteRef[],
  services: ReadonlySet<string>,
  memberOf: ReadonlyMap<string, string> = new Map(),
): void {
  for (const r of routes) {
    if (services.has(r.service)) continue;
    const link = memberOf.get(r.service);
    p.add(
      r.line,
      r.path,
      link
        ? `${r.rule}: \`route ${r.service}\`: "${r.service}" is a member of load_balance.link "${link}"; route to "${link}"`
        : `${r.rule}: \`route ${r.service}\` names no service of this file (${[...services].join(", ") || "none"})`,
    );
  }
}
