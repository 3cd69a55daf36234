/** Shared by the idle tests: free ports, the app fixture, process checks, switchyard configs. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { NODE } from "../support/cli.ts";

export const FIXTURES = join(import.meta.dirname, "fixtures");
export const APP = join(FIXTURES, "app.mjs");

export { freePort } from "../support/ports.ts";
export { NODE };

/** Whether a process with this pid exists (and is not a zombie). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/** The one-letter state of a process (R, S, T = stopped …). */
export function procState(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2)[0];
}

/** The `run:` flow map for the app fixture. */
export function runApp(port: number, env: Record<string, string | number> = {}): string {
  const e = Object.entries({ PORT: port, ...env })
    .map(([k, v]) => `${k}: "${v}"`)
    .join(", ");
  return `{ command: [${JSON.stringify(NODE)}, ${JSON.stringify(APP)}], env: { ${e} } }`;
}

export function header(top = ""): string {
  return `listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\n${top}services:\n`;
}
