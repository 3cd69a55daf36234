/**
 * YAML → plain values that remember where they came from, plus the problem collector every
 * validation step reports into. Validation runs on plain values (valibot leaves); a problem's path
 * is walked back through the source map to the line the user has to edit.
 */

import * as v from "valibot";
import {
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
  parse as parseYamlValue,
  Scalar,
} from "yaml";

export type Path = readonly (string | number)[];

interface Meta {
  line: number;
  keyLines: Map<string | number, number>;
  valueLines: Map<string | number, number>;
}

/** A parsed file: its value, and where each map key / list item of it starts. */
export interface Source {
  readonly value: unknown;
  /** False when the YAML itself is broken (value is then undefined). */
  readonly ok: boolean;
  lineOf(path: Path, at?: "key" | "value"): number | undefined;
}

const META = new WeakMap<object, Meta>();

export type Env = Readonly<Record<string, string | undefined>>;

/** Parses YAML, reporting syntax errors and unset `${VAR}`s into `problems`. */
export function readYaml(text: string, problems: Problems, env: Env): Source {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, merge: true, uniqueKeys: true });
  for (const err of doc.errors) {
    const line = lc.linePos(err.pos[0]).line;
    const msg =
      err.code === "MULTIPLE_DOCS"
        ? "more than one YAML document (a second `---`): a configuration is one document"
        : err.message.split("\n")[0];
    problems.add(line, undefined, `YAML syntax error: ${msg}`);
  }
  const line = (node: Node | null | undefined, fallback: number) =>
    node?.range ? lc.linePos(node.range[0]).line : fallback;
  const value = doc.errors.length
    ? undefined
    : build(doc.contents as Node | null, doc, line, problems, env, []);
  return {
    value,
    ok: doc.errors.length === 0,
    lineOf(path, at = "value") {
      let cur: unknown = value;
      let found: number | undefined;
      for (let i = 0; i < path.length; i++) {
        if (cur === null || typeof cur !== "object") break;
        const meta = META.get(cur);
        if (!meta) break;
        found = meta.line;
        const step = path[i];
        const lines = i === path.length - 1 && at === "key" ? meta.keyLines : meta.valueLines;
        const l = lines.get(step);
        if (l === undefined) break;
        found = l;
        cur = (cur as Record<string | number, unknown>)[step];
      }
      if (found === undefined && value !== null && typeof value === "object") found = META.get(value)?.line;
      return found;
    },
  };
}

type LineFn = (node: Node | null | undefined, fallback: number) => number;

function build(node: Node | null, doc: Document, line: LineFn, problems: Problems, env: Env, path: Path) {
  if (path.length > 64) return undefined; // aliases that refer to their own ancestors
  if (node === null || node === undefined) return null;
  if (isAlias(node)) {
    const target = node.resolve(doc);
    if (!target) {
      problems.add(line(node, 1), path, `unknown YAML anchor "*${node.source}"`);
      return null;
    }
    return build(target as Node, doc, line, problems, env, path);
  }
  if (isScalar(node)) return scalar(node, line(node, 1), problems, env, path);
  if (isSeq(node)) {
    const out: unknown[] = [];
    const meta: Meta = { line: line(node, 1), keyLines: new Map(), valueLines: new Map() };
    node.items.forEach((item, i) => {
      const l = line(item as Node, meta.line);
      meta.keyLines.set(i, l);
      meta.valueLines.set(i, l);
      out.push(build(item as Node, doc, line, problems, env, [...path, i]));
    });
    META.set(out, meta);
    return out;
  }
  if (isMap(node)) {
    const out: Record<string, unknown> = {};
    const meta: Meta = { line: line(node, 1), keyLines: new Map(), valueLines: new Map() };
    const merges: unknown[] = [];
    for (const pair of node.items) {
      const keyNode = pair.key as Node | null;
      const rawKey = isScalar(keyNode) ? keyNode.value : keyNode;
      const merge = typeof rawKey === "symbol" || rawKey === "<<";
      const key = rawKey === null || typeof rawKey !== "object" ? String(rawKey) : JSON.stringify(rawKey);
      const value = build(pair.value as Node | null, doc, line, problems, env, [...path, merge ? "<<" : key]);
      if (merge) {
        merges.push(value);
        continue;
      }
      const kl = line(keyNode, meta.line);
      meta.keyLines.set(key, kl);
      meta.valueLines.set(key, line(pair.value as Node | null, kl));
      Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
    }
    // `<<: *base` — explicit keys win over merged ones.
    for (const m of merges.flat()) {
      if (m === null || typeof m !== "object" || Array.isArray(m)) continue;
      const mm = META.get(m);
      for (const [k, v] of Object.entries(m)) {
        if (Object.hasOwn(out, k)) continue;
        Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
        meta.keyLines.set(k, mm?.keyLines.get(k) ?? meta.line);
        meta.valueLines.set(k, mm?.valueLines.get(k) ?? meta.line);
      }
    }
    META.set(out, meta);
    return out;
  }
  return null;
}

const VAR = /\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** `${VAR}` from the environment (GoDoxy does the same); `$${VAR}` stays literal. */
function scalar(node: Scalar, line: number, problems: Problems, env: Env, path: Path): unknown {
  const v = node.value;
  if (typeof v !== "string" || !v.includes("${")) return v;
  let replaced = false;
  const out = v.replace(VAR, (_all, escaped: string, name: string) => {
    if (escaped) return `\${${name}}`;
    replaced = true;
    const value = env[name];
    if (value === undefined) {
      problems.add(line, path, `environment variable ${name} is not set`);
      return "";
    }
    return value;
  });
  // An unquoted `${PORT}` should become what an unquoted 8080 would have been.
  if (replaced && node.type === Scalar.PLAIN) {
    try {
      const typed: unknown = parseYamlValue(out);
      if (typed === null || typeof typed !== "object") return typed;
    } catch {
      // not a plain scalar after substitution: keep the string
    }
  }
  return out;
}

interface Problem {
  line: number | undefined;
  text: string;
  seq: number;
}

/** Collects every problem, formatted `file:line: path: message`, sorted by line. */
export class Problems {
  readonly file: string;
  source: Source | undefined;
  readonly #list: Problem[] = [];

  constructor(file: string) {
    this.file = file;
  }

  get size(): number {
    return this.#list.length;
  }

  add(line: number | undefined, path: Path | string | undefined, message: string): void {
    const p = typeof path === "string" ? path : path && path.length ? formatPath(path) : "";
    const where = line === undefined ? this.file : `${this.file}:${line}`;
    this.#list.push({
      line,
      text: p ? `${where}: ${p}: ${message}` : `${where}: ${message}`,
      seq: this.#list.length,
    });
  }

  /** A problem about the value at `path` (or, with at = "key", about the key itself). */
  at(path: Path, message: string, at: "key" | "value" = "value"): void {
    this.add(this.source?.lineOf(path, at), path, message);
  }

  /** A problem not in the file (command-line flags). */
  flag(flag: string, message: string): void {
    this.#list.push({ line: -1, text: `${flag}: ${message}`, seq: this.#list.length });
  }

  /** Runs a leaf schema on one value; issues become problems under `path`. */
  parse<T>(schema: Schema<T>, value: unknown, path: Path): T | undefined {
    const r = v.safeParse(schema, value, CONFIG);
    if (r.success) return r.output;
    for (const issue of r.issues) {
      const at =
        issue.path === undefined ? path : [...path, ...issue.path.map((item) => item.key as string | number)];
      this.at(at, issue.message);
    }
    return undefined;
  }

  list(): string[] {
    return this.#list
      .slice()
      .sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || a.seq - b.seq)
      .map((p) => p.text);
  }
}

export function formatPath(path: Path): string {
  let out = "";
  for (const step of path) {
    if (typeof step === "number") out += `[${step}]`;
    else if (/^[A-Za-z0-9_$-]+$/.test(step)) out += out ? `.${step}` : step;
    else out += `[${JSON.stringify(step)}]`;
  }
  return out;
}

/** A short description of a value for messages: `a number (3)`, `"abc"`, `a list`. */
export function describe(v: unknown): string {
  if (v === null || v === undefined) return "nothing";
  if (Array.isArray(v)) return "a list";
  switch (typeof v) {
    case "string":
      return `a string (${JSON.stringify(v)})`;
    case "number":
      return `a number (${v})`;
    case "boolean":
      return `a boolean (${v})`;
    case "object":
      return "a map";
    default:
      return typeof v;
  }
}

/** A leaf schema: a plain value in, `T` out (valibot; see `checked` for our own checks). */
export type Schema<T> = v.GenericSchema<unknown, T>;

/**
 * `base`, then `check`, which reports problems through `fail` (`at`: an index under the value)
 * and returns what it made of the value; a value with a problem is not used.
 */
export function checked<I, O>(
  base: v.GenericSchema<unknown, I>,
  check: (value: I, fail: (message: string, at?: number) => void) => O,
): Schema<O> {
  return v.pipe(
    base,
    v.rawTransform(({ dataset, addIssue }) =>
      check(dataset.value, (message, at) =>
        addIssue({
          message,
          path:
            at === undefined
              ? undefined
              : [{ type: "unknown", origin: "value", input: dataset.value, key: at, value: undefined }],
        }),
      ),
    ),
  );
}

const EXPECTED: Record<string, string> = {
  string: "a string",
  number: "a number",
  boolean: "true or false",
  Array: "a list",
  Object: "a map",
};

/** valibot's `expected` of a union or a picklist, `(string | number)`, as its parts. */
function alternatives(text: string | null): string[] {
  return text === null ? [] : text.replace(/^\((.*)\)$/, "$1").split(" | ");
}

// Our wording for the issues of the leaves above (valibot's own read "Invalid type: ...").
const CONFIG: v.Config<v.BaseIssue<unknown>> = {
  abortPipeEarly: true,
  message(issue) {
    switch (issue.type) {
      case "string":
      case "number":
      case "boolean":
      case "array":
      case "record":
      case "union": {
        const hint =
          issue.expected?.includes("string") === true &&
          !issue.expected.includes("number") &&
          (typeof issue.input === "number" || typeof issue.input === "boolean")
            ? "; put it in quotes"
            : "";
        const expected = alternatives(issue.expected).map((t) => EXPECTED[t] ?? t);
        return `expected ${expected.join(" or ")}, got ${describe(issue.input)}${hint}`;
      }
      case "integer":
        return `expected an integer, got ${describe(issue.input)}`;
      case "min_length":
        return "must not be empty";
      case "min_value":
        return `must be ≥ ${String(issue.requirement)}, got ${String(issue.input)}`;
      case "max_value":
        return `must be ≤ ${String(issue.requirement)}, got ${String(issue.input)}`;
      case "picklist":
        return `must be one of ${alternatives(issue.expected).join(", ")}, got ${describe(issue.input)}`;
      default:
        return issue.message;
    }
  },
};

/** The closest known key, for "did you mean" hints. */
export function closest(key: string, known: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[-_]/g, "");
  const nk = norm(key);
  for (const k of known) if (norm(k) === nk) return k;
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const k of known) {
    const d = levenshtein(nk, norm(k));
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return bestD <= Math.max(2, Math.floor(nk.length / 3)) ? best : undefined;
}

function levenshtein(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length];
}
