/**
 * The GoDoxy corpus under switchyard: the fixture files, a fixture with its refused keys taken out,
 * and `switchyard serve` on one of them as a child process.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseDocument } from "yaml";
import type { Cleanup } from "../support/cleanup.ts";
import { type CliProcess, listening, spawnCli } from "../support/cli.ts";

export const FIXTURES = join(import.meta.dirname, "fixtures");
export const fixture = (name: string) => join(FIXTURES, name);

/** The fixture with the given paths deleted (the keys `check` refuses), written to a temp file. */
export function without(name: string, paths: (string | number)[][], cleanup: Cleanup): string {
  const doc = parseDocument(readFileSync(fixture(name), "utf8"), { merge: true });
  for (const p of paths) {
    if (!doc.hasIn(p)) throw new Error(`${name}: nothing at ${p.join(".")}`);
    doc.deleteIn(p);
  }
  const dir = mkdtempSync(join(tmpdir(), "switchyard-godoxy-"));
  cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, name);
  writeFileSync(file, doc.toString());
  return file;
}

export interface Served {
  cli: CliProcess;
  port: number;
  admin: number;
}

/** `switchyard serve -c FILE` on free loopback ports. */
export async function serve(file: string, env: Record<string, string>, cleanup: Cleanup): Promise<Served> {
  const cli = spawnCli(["serve", "-c", file, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"], { env });
  cleanup.add(() => cli.stop());
  const rec = await listening(cli, 15_000);
  const port = Number(
    String((rec.proxy as string[])[0])
      .split(":")
      .pop(),
  );
  const admin = Number(String(rec.admin).split(":").pop());
  return { cli, port, admin };
}
