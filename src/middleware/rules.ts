/**
 * `rules`: GoDoxy's rule engine as one middleware. The rules are compiled once per config
 * (globs and regular expressions to RegExps, methods to a comparison, remote CIDRs to a
 * node:net BlockList, answers built in advance) and evaluated per request as GoDoxy's
 * `Rules.BuildHandler` does:
 *
 * - every non-default rule whose `on` matches runs its commands, in file order; commands that do
 *   not end the request (set/add/remove, rewrite) let the next rules run too;
 * - the first command that ends it (pass/bypass/upstream, error, redirect, route,
 *   require_basic_auth) stops the evaluation;
 * - the default rule runs only when no other rule matched;
 * - a request no command ended goes to the backend.
 *
 * `resp_header` edits of the rules that ran apply to the head the client gets (the backend's, an
 * answer of a rule, or the service a `route` handed the request to). A `basic_auth` condition
 * needs a bcrypt check: the first one of a request is made asynchronously (and a success kept,
 * as the basic_auth middleware does), then the evaluation resumes at that rule.
 */
import { BlockList, isIP } from "node:net";
import { globToRegExp, toRegExp } from "../config/rules.ts";
import type {
  MiddlewareConfig,
  RuleCommand,
  RuleCondition,
  RuleConfig,
  RulePattern,
} from "../config/types.ts";
import type { ProxyRequest } from "../http-types.ts";
import { headersObject } from "../http1/request.ts";
import { bcrypt } from "./bcrypt.ts";
import {
  type Answer,
  findHeader,
  kRerouted,
  type Middleware,
  PENDING,
  type RequestInfo,
  Reroute,
  type ReroutedRequest,
  removeHeader,
} from "./types.ts";

/** How many times one request may be handed on by `route` before it is a loop. */
export const MAX_ROUTES = 8;

const CACHE_SIZE = 1024;
const CACHE_TTL = 5 * 60_000;

/** Per-request facts the conditions read, computed at first use. Reused while evaluation is synchronous. */
interface Ctx {
  req: ProxyRequest;
  client: string;
  /** The decoded path, or undefined until a condition needs it. */
  path: string | undefined;
  query: URLSearchParams | undefined;
  cookies: Map<string, string[]> | undefined;
  /** Bit i set: the request's Basic credentials match credential i; -1 until known. */
  auth: number;
  /** The salted digest of the Authorization value (cache key), once computed. */
  mac: string | undefined;
  headersEdited: boolean;
  /** The resp_header edits of the rules that ran (one rule's list, or a concatenation). */
  resp: RespOp[] | undefined;
}

/** A condition that may need the asynchronous bcrypt check: AUTH means "not known yet". */
const AUTH = 2;
type Check = (c: Ctx) => boolean | typeof AUTH;

/** A response header edit: op 0 set, 1 add, 2 remove. */
interface RespOp {
  readonly op: 0 | 1 | 2;
  readonly lower: string;
  readonly name: string;
  readonly value: string;
}

type Step = (c: Ctx) => Answer | Reroute | undefined | typeof CONTINUE;
const CONTINUE = 0;
/** The outcome "go to the backend". */
const PASS = 1;

interface Compiled {
  readonly name: string;
  /** AND of ORs; empty = always. */
  readonly check: Check;
  readonly steps: readonly Step[];
  /** Ends with pass: the request goes to the backend. */
  readonly passes: boolean;
  readonly resp: RespOp[] | undefined;
}

/** Where a request keeps the response edits of one Rules instance (one key per instance: a routed request passes two). */
type RulesRequest = ReroutedRequest & { [key: symbol]: RespOp[] | undefined };

export class Rules implements Middleware {
  readonly kind = "rules";
  readonly needsClient: boolean;
  readonly head?: (req: ProxyRequest, res: unknown, status: number, headers: string[]) => undefined;
  readonly #rules: Compiled[];
  readonly #default: Compiled | undefined;
  /** Distinct (user, hash) pairs of the basic_auth conditions. */
  readonly #creds: { user: string; hash: string }[] = [];
  readonly #dummy: string | undefined;
  // node:crypto taken when a middleware is built: a server without basic auth never loads it
  readonly #crypto = process.getBuiltinModule("node:crypto");
  readonly #salt = this.#crypto.randomBytes(32).toString("base64");
  /** Salted digest of an Authorization value → which credentials it matched and until when. */
  readonly #ok = new Map<string, { mask: number; until: number }>();
  readonly #ctx: Ctx = newCtx();
  readonly #resp = Symbol("switchyard.rules.resp");

  constructor(config: Extract<MiddlewareConfig, { kind: "rules" }>) {
    const compiled = config.rules.map((r) => this.#compile(r));
    this.#rules = compiled.filter((_, i) => !config.rules[i].default);
    this.#default = compiled.find((_, i) => config.rules[i].default);
    this.needsClient = config.rules.some((r) => r.on.some((or) => or.some((c) => c.on === "remote")));
    if (this.#creds.length > 0) {
      let cost = 4;
      for (const c of this.#creds) cost = Math.max(cost, Number(c.hash.slice(4, 6)));
      this.#dummy = bcrypt().hashSync(this.#crypto.randomBytes(16).toString("hex"), cost);
    }
    if (compiled.some((r) => r.resp !== undefined)) this.head = respHead(this.#resp);
  }

  request(
    req: ProxyRequest,
    info: RequestInfo,
    resume: (outcome: Answer | Reroute | Error | undefined) => void,
  ): Answer | Reroute | undefined | typeof PENDING {
    const c = this.#ctx;
    c.req = req;
    c.client = info.client;
    c.path = undefined;
    c.query = undefined;
    c.cookies = undefined;
    c.auth = -1;
    c.mac = undefined;
    c.headersEdited = false;
    c.resp = undefined;
    try {
      return this.#evaluate(c, 0, false, resume);
    } finally {
      // the shared context holds no request between calls
      c.req = undefined as unknown as ProxyRequest;
    }
  }

  /** Runs the rules from `from`; `matched`: a non-default rule before `from` matched. */
  #evaluate(
    c: Ctx,
    from: number,
    matched: boolean,
    resume: (outcome: Answer | Reroute | Error | undefined) => void,
  ): Answer | Reroute | undefined | typeof PENDING {
    const rules = this.#rules;
    for (let i = from; i < rules.length; i++) {
      const r = rules[i];
      const m = r.check(c);
      if (m === AUTH) return this.#authenticate(c, i, matched, resume);
      if (!m) continue;
      matched = true;
      const out = this.#run(r, c);
      if (out !== CONTINUE) return this.#finish(c, out);
    }
    const d = this.#default;
    if (!matched && d !== undefined) {
      const m = d.check(c);
      if (m === AUTH) return this.#authenticate(c, rules.length, matched, resume);
      if (m) {
        const out = this.#run(d, c);
        if (out !== CONTINUE) return this.#finish(c, out);
      }
    }
    return this.#finish(c, PASS);
  }

  #run(r: Compiled, c: Ctx): Answer | Reroute | typeof PASS | typeof CONTINUE {
    if (r.resp !== undefined) c.resp = c.resp === undefined ? r.resp : c.resp.concat(r.resp);
    const steps = r.steps;
    for (let i = 0; i < steps.length; i++) {
      const out = steps[i](c);
      if (out !== CONTINUE) return out === undefined ? PASS : out;
    }
    return r.passes ? PASS : CONTINUE;
  }

  #finish(c: Ctx, out: Answer | Reroute | typeof PASS): Answer | Reroute | undefined {
    const req = c.req as RulesRequest;
    if (c.headersEdited) {
      try {
        req.headers = headersObject(req.rawHeaders);
      } catch {
        // a request object without a headers setter builds them from rawHeaders on each read
      }
    }
    if (c.resp !== undefined) req[this.#resp] = c.resp;
    if (out instanceof Reroute) {
      const hops = req[kRerouted] ?? 0;
      if (hops >= MAX_ROUTES)
        throw new Error(
          `route loop: the request was handed on ${hops} times (\`route ${out.service}\` again); the rules of these services send it round in a circle`,
        );
      return out;
    }
    return out === PASS ? undefined : out;
  }

  /** The bcrypt check of the request's Basic credentials, then the evaluation from rule `at`. */
  #authenticate(
    c: Ctx,
    at: number,
    matched: boolean,
    resume: (outcome: Answer | Reroute | Error | undefined) => void,
  ): typeof PENDING {
    const state: Ctx = { ...c };
    const creds = this.#creds;
    const v = c.req.rawHeaders[findHeader(c.req.rawHeaders, "authorization") + 1];
    const decoded = Buffer.from(v.slice(6).trim(), "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    const user = decoded.slice(0, colon);
    const password = decoded.slice(colon + 1);
    const checks: Promise<boolean>[] = [];
    const which: number[] = [];
    for (let i = 0; i < creds.length; i++) {
      if (creds[i].user !== user) continue;
      which.push(i);
      checks.push(bcrypt().compare(password, creds[i].hash));
    }
    // an unknown user costs what a known one does
    if (checks.length === 0)
      checks.push(
        bcrypt()
          .compare(password, this.#dummy!)
          .then(() => false),
      );
    Promise.all(checks).then(
      (results) => {
        let mask = 0;
        for (let k = 0; k < which.length; k++) if (results[k]) mask |= 1 << which[k];
        if (mask !== 0) {
          if (this.#ok.size >= CACHE_SIZE) this.#ok.delete(this.#ok.keys().next().value as string);
          this.#ok.set(state.mac!, { mask, until: Date.now() + CACHE_TTL });
        }
        state.auth = mask;
        this.#resume(state, at, matched, resume);
      },
      () => {
        state.auth = 0;
        this.#resume(state, at, matched, resume);
      },
    );
    return PENDING;
  }

  #resume(
    state: Ctx,
    at: number,
    matched: boolean,
    resume: (outcome: Answer | Reroute | Error | undefined) => void,
  ): void {
    let out: Answer | Reroute | undefined | typeof PENDING;
    try {
      out = this.#evaluate(state, at, matched, resume);
    } catch (err) {
      // the chain logs it and answers 500, as for a synchronous throw
      resume(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    if (out !== PENDING) resume(out);
  }

  /** The credentials a request's Authorization header matches (bit mask), or -1 when a bcrypt check is needed. */
  #authOf(c: Ctx): number {
    if (c.auth >= 0) return c.auth;
    const raw = c.req.rawHeaders;
    const i = findHeader(raw, "authorization");
    const v = i < 0 ? "" : raw[i + 1];
    if (v.length < 7 || v.slice(0, 6).toLowerCase() !== "basic ") {
      c.auth = 0;
      return 0;
    }
    const decoded = Buffer.from(v.slice(6).trim(), "base64").toString("utf8");
    if (decoded.indexOf(":") < 0) {
      c.auth = 0;
      return 0;
    }
    const mac = this.#crypto.hash("sha256", this.#salt + v, "base64");
    c.mac = mac;
    const hit = this.#ok.get(mac);
    if (hit !== undefined) {
      if (hit.until > Date.now()) {
        c.auth = hit.mask;
        return hit.mask;
      }
      this.#ok.delete(mac);
    }
    return -1;
  }

  // -------------------------------------------------------------------------------------------
  // Compiling

  #compile(r: RuleConfig): Compiled {
    const groups = r.on.map((or) => or.map((cond) => this.#condition(cond)));
    const check: Check =
      groups.length === 0
        ? () => true
        : (c) => {
            for (const or of groups) {
              let any: boolean | typeof AUTH = false;
              for (const f of or) {
                const m = f(c);
                if (m === true) {
                  any = true;
                  break;
                }
                if (m === AUTH) any = AUTH;
              }
              if (any !== true) return any;
            }
            return true;
          };
    const steps: Step[] = [];
    let resp: RespOp[] | undefined;
    let passes = false;
    for (const cmd of r.do) {
      if (cmd.do === "pass") {
        passes = true;
        continue;
      }
      if ((cmd.do === "set" || cmd.do === "add" || cmd.do === "remove") && cmd.field === "resp_header") {
        resp ??= [];
        resp.push({
          op: cmd.do === "set" ? 0 : cmd.do === "add" ? 1 : 2,
          lower: cmd.name.toLowerCase(),
          name: cmd.name,
          value: cmd.value,
        });
        continue;
      }
      steps.push(command(cmd));
    }
    return { name: r.name, check, steps, passes, resp };
  }

  #condition(cond: RuleCondition): (c: Ctx) => boolean | typeof AUTH {
    const f = this.#positive(cond);
    if (!cond.negate) return f;
    return (c) => {
      const m = f(c);
      return m === AUTH ? AUTH : !m;
    };
  }

  #positive(cond: RuleCondition): (c: Ctx) => boolean | typeof AUTH {
    switch (cond.on) {
      case "header": {
        const lower = cond.name.toLowerCase();
        const match = cond.value === undefined ? undefined : matcher(cond.value);
        return (c) => {
          const raw = c.req.rawHeaders;
          for (let i = findHeader(raw, lower); i >= 0; i = findHeader(raw, lower, i + 2)) {
            if (match === undefined || match(raw[i + 1])) return true;
          }
          return false;
        };
      }
      case "query": {
        const name = cond.name;
        const match = cond.value === undefined ? undefined : matcher(cond.value);
        return (c) => {
          c.query ??= queryOf(c.req.url ?? "/");
          const values = c.query.getAll(name);
          return match === undefined ? values.length > 0 : values.some(match);
        };
      }
      case "cookie": {
        const name = cond.name;
        const match = cond.value === undefined ? undefined : matcher(cond.value);
        return (c) => {
          c.cookies ??= cookiesOf(c.req.rawHeaders);
          const values = c.cookies.get(name);
          if (values === undefined) return false;
          return match === undefined || values.some(match);
        };
      }
      case "method": {
        const method = cond.method;
        return (c) => c.req.method === method;
      }
      case "host": {
        const match = matcher(cond.value);
        return (c) => match(hostOf(c.req));
      }
      case "path": {
        const match = matcher(cond.value);
        return (c) => {
          c.path ??= pathOf(c.req.url ?? "/");
          return match(c.path);
        };
      }
      case "remote": {
        const list = new BlockList();
        const [addr, bits] = cond.cidr.split("/");
        const family = isIP(addr) === 4 ? "ipv4" : "ipv6";
        list.addSubnet(addr, Number(bits), family);
        return (c) => {
          const ip = c.client;
          const f = isIP(ip);
          if (f === 0) return false;
          return list.check(ip, f === 4 ? "ipv4" : "ipv6");
        };
      }
      case "basic_auth": {
        let index = this.#creds.findIndex((x) => x.user === cond.user && x.hash === cond.hash);
        if (index < 0) index = this.#creds.push({ user: cond.user, hash: cond.hash }) - 1;
        if (index > 30) throw new Error("rules: more than 31 distinct basic_auth credentials in one service");
        const bit = 1 << index;
        return (c) => {
          const mask = this.#authOf(c);
          return mask < 0 ? AUTH : (mask & bit) !== 0;
        };
      }
      case "proto": {
        const p = cond.proto;
        return (c) => {
          const tls = (c.req.socket as { encrypted?: boolean } | null)?.encrypted === true;
          const major = c.req.httpVersionMajor;
          switch (p) {
            case "http":
              return !tls;
            case "https":
              return tls;
            case "h1":
              return !tls && major === 1;
            case "h2":
              return tls && major === 2;
            case "h2c":
              return !tls && major === 2;
            default:
              return false; // no HTTP/3 in switchyard
          }
        };
      }
    }
  }
}

function newCtx(): Ctx {
  return {
    req: undefined as unknown as ProxyRequest,
    client: "",
    path: undefined,
    query: undefined,
    cookies: undefined,
    auth: -1,
    mac: undefined,
    headersEdited: false,
    resp: undefined,
  };
}

/** The resp_header edits of the rules that ran (kept on the request under `key`), on the head the client gets. */
function respHead(key: symbol) {
  return (req: ProxyRequest, _res: unknown, _status: number, headers: string[]): undefined => {
    const ops = (req as RulesRequest)[key];
    if (ops === undefined) return undefined;
    for (const o of ops) {
      if (o.op !== 1) removeHeader(headers, o.lower);
      if (o.op !== 2) headers.push(o.name, o.value);
    }
    return undefined;
  };
}

/** A compiled value test. */
export function matcher(p: RulePattern): (v: string) => boolean {
  let f: (v: string) => boolean;
  if (p.type === "string") {
    const want = p.expr;
    f = (v) => v === want;
  } else {
    const re = p.type === "glob" ? globToRegExp(p.expr) : toRegExp(p.expr);
    f = (v) => re.test(v);
  }
  if (!p.negate) return f;
  return (v) => !f(v);
}

// ---------------------------------------------------------------------------------------------
// Commands

const TEXT = "text/plain; charset=utf-8";

/** GoDoxy's http.Error answer: the text and a newline, as plain text. */
function errorAnswer(status: number, text: string, extra: readonly string[] = []): Answer {
  // statuses without a body (204, 304) get none
  if (status === 204 || status === 304) return { status, headers: [...extra], body: "" };
  const body = `${text}\n`;
  return {
    status,
    headers: [
      ...extra,
      "content-type",
      TEXT,
      "x-content-type-options",
      "nosniff",
      "content-length",
      String(Buffer.byteLength(body)),
    ],
    body,
  };
}

/** Go's http.Redirect with 307: Location, and for GET and HEAD a short HTML body. */
function redirectAnswers(location: string): { get: Answer; other: Answer } {
  const body = `<a href="${htmlEscape(location)}">Temporary Redirect</a>.\n\n`;
  return {
    get: {
      status: 307,
      headers: [
        "location",
        location,
        "content-type",
        "text/html; charset=utf-8",
        "content-length",
        String(Buffer.byteLength(body)),
      ],
      body,
    },
    other: { status: 307, headers: ["location", location, "content-length", "0"], body: "" },
  };
}

function htmlEscape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function command(cmd: Exclude<RuleCommand, { do: "pass" }>): Step {
  switch (cmd.do) {
    case "error": {
      const a = errorAnswer(cmd.status, cmd.text);
      return () => a;
    }
    case "require_basic_auth": {
      const a = errorAnswer(401, "Unauthorized", ["www-authenticate", `Basic realm="${cmd.realm}"`]);
      return () => a;
    }
    case "redirect": {
      const to = cmd.to;
      // an absolute URL or a path: one answer built now; a relative path depends on the request's
      if (/^[a-z][a-z0-9+.-]*:/i.test(to) || to.startsWith("/")) {
        const a = redirectAnswers(/^[a-z][a-z0-9+.-]*:/i.test(to) ? to : cleanKeepQuery(to));
        return (c) => (c.req.method === "GET" || c.req.method === "HEAD" ? a.get : a.other);
      }
      return (c) => {
        const path = rawPath(c.req.url ?? "/");
        const dir = path.slice(0, path.lastIndexOf("/") + 1);
        const a = redirectAnswers(cleanKeepQuery(dir + to));
        return c.req.method === "GET" || c.req.method === "HEAD" ? a.get : a.other;
      };
    }
    case "rewrite": {
      const from = cmd.from;
      const to = cmd.to;
      return (c) => {
        const url = c.req.url ?? "/";
        const q = url.indexOf("?");
        const path = q < 0 ? url : url.slice(0, q);
        if (path.startsWith(from)) {
          c.req.url = to + url.slice(from.length);
          c.path = undefined;
          c.query = undefined;
        }
        return CONTINUE;
      };
    }
    case "route": {
      const r = new Reroute(cmd.service);
      return () => r;
    }
    case "set":
    case "add":
    case "remove": {
      const lower = cmd.name.toLowerCase();
      const name = cmd.name;
      const value = cmd.value;
      const op = cmd.do;
      return (c) => {
        const raw = c.req.rawHeaders;
        if (op !== "add") removeHeader(raw, lower);
        if (op !== "remove") raw.push(name, value);
        c.headersEdited = true;
        if (lower === "cookie") c.cookies = undefined;
        if (lower === "authorization") c.auth = -1;
        return CONTINUE;
      };
    }
  }
}

/** Go's path.Clean of the path part (a trailing "/" kept), the query as it was. */
function cleanKeepQuery(target: string): string {
  const q = target.indexOf("?");
  const path = q < 0 ? target : target.slice(0, q);
  const trailing = path.endsWith("/");
  const out: string[] = [];
  for (const seg of path.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") out.pop();
    else out.push(seg);
  }
  let clean = `/${out.join("/")}`;
  if (trailing && clean !== "/") clean += "/";
  return q < 0 ? clean : clean + target.slice(q);
}

function rawPath(url: string): string {
  const q = url.indexOf("?");
  const p = q < 0 ? url : url.slice(0, q);
  return p.startsWith("/") ? p : `/${p}`;
}

/** The request path as GoDoxy matches it: percent-decoded (the raw path when an escape is malformed). */
function pathOf(url: string): string {
  const p = rawPath(url);
  if (!p.includes("%")) return p;
  try {
    return decodeURIComponent(p);
  } catch {
    return p;
  }
}

function queryOf(url: string): URLSearchParams {
  const q = url.indexOf("?");
  return new URLSearchParams(q < 0 ? "" : url.slice(q + 1));
}

function cookiesOf(raw: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (let i = findHeader(raw, "cookie"); i >= 0; i = findHeader(raw, "cookie", i + 2)) {
    for (const part of raw[i + 1].split(";")) {
      const eq = part.indexOf("=");
      if (eq < 0) continue;
      const k = part.slice(0, eq).trim();
      let v = part.slice(eq + 1).trim();
      if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
      const list = out.get(k);
      if (list === undefined) out.set(k, [v]);
      else list.push(v);
    }
  }
  return out;
}

/** The Host the request names (as sent, port included, as Go's r.Host); HTTP/2's :authority. */
function hostOf(req: ProxyRequest): string {
  const raw = req.rawHeaders;
  const i = findHeader(raw, "host");
  if (i >= 0) return raw[i + 1];
  const a = findHeader(raw, ":authority");
  return a >= 0 ? raw[a + 1] : "";
}
