import { InvalidArgumentError } from "./errors.ts";

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};
const PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;

/** Parses a Go duration string (`1h30m`, `500ms`, `1.5s`) to milliseconds. Throws on anything else. */
export function parseDuration(text: string): number {
  const s = text.trim();
  let i = 0;
  let sign = 1;
  if (s[0] === "-" || s[0] === "+") {
    sign = s[0] === "-" ? -1 : 1;
    i = 1;
  }
  if (s.slice(i) === "0") return 0;
  if (i >= s.length) throw new InvalidArgumentError(`invalid duration "${text}"`);
  let total = 0;
  while (i < s.length) {
    PART.lastIndex = i;
    const m = PART.exec(s);
    if (!m) {
      throw new InvalidArgumentError(
        `invalid duration "${text}" (use Go syntax such as 500ms, 30s, 5m, 1h30m; units ns us ms s m h)`,
      );
    }
    total += Number(m[1]) * UNIT_MS[m[2]];
    i = PART.lastIndex;
  }
  return sign * total;
}

/** Accepts milliseconds or a Go duration string, as the API promises. */
export function toMs(value: number | string | undefined, fallback: number, what = "duration"): number {
  if (value === undefined) return fallback;
  if (typeof value === "number") {
    if (!Number.isFinite(value))
      throw new InvalidArgumentError(`${what}: not a finite number of milliseconds`);
    return value;
  }
  try {
    return parseDuration(value);
  } catch (err) {
    throw new InvalidArgumentError(`${what}: ${(err as Error).message}`, { cause: err });
  }
}

/** Formats milliseconds as a Go-style duration string (`1h2m3s`, `10ms`, `1.5s`, `0s`). */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return "0s";
  const neg = ms < 0;
  ms = Math.abs(ms);
  let out: string;
  if (ms === 0) out = "0s";
  else if (ms < 1) out = `${trim(ms * 1000)}µs`;
  else if (ms < 1000) out = `${trim(ms)}ms`;
  else {
    const totalS = ms / 1000;
    const h = Math.floor(totalS / 3600);
    const m = Math.floor((totalS % 3600) / 60);
    const sec = totalS - h * 3600 - m * 60;
    out = `${h ? `${h}h` : ""}${h || m ? `${m}m` : ""}${trim(sec)}s`;
  }
  return neg ? `-${out}` : out;
}

function trim(n: number): string {
  return String(Math.round(n * 1000) / 1000);
}
