/**
 * The GoDoxy corpus under switchyard: fixture files with their refused keys taken out, served by
 * `switchyard serve` as a child process, and small recording backends behind them.
 */
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import type * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseDocument } from "yaml";
import type { Cleanup } from "../support/cleanup.ts";
import { type CliProcess, listening, NODE, ROOT, spawnCli } from "../support/cli.ts";

export const FIXTURES = join(import.meta.dirname, "fixtures");
export const fixture = (name: string) => join(FIXTURES, name);
export { NODE, ROOT };

export interface Backend {
  name: string;
  port: number;
  /** Request headers of every request but health probes, in order. */
  seen: http.IncomingHttpHeaders[];
}

/** A backend answering `<name> <path>` (and 200 on /healthz), remembering request headers. */
export async function backend(name: string, cleanup: Cleanup): Promise<Backend> {
  const b: Backend = { name, port: 0, seen: [] };
  const server = http.createServer((req, res) => {
    if (req.method === "HEAD" || req.url === "/healthz") {
      res.end();
      return;
    }
    b.seen.push(req.headers);
    res.setHeader("x-powered-by", "test");
    res.end(`${name} ${req.url}`);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  b.port = (server.address() as net.AddressInfo).port;
  cleanup.add(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return b;
}

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

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request through the proxy with the given Host. */
export function get(
  port: number,
  host: string,
  path = "/",
  headers: Record<string, string> = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port, path, headers: { host, ...headers }, agent: false },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/** GET on the admin API, parsed. */
export async function adminJson(admin: number, path: string): Promise<unknown> {
  const r = await get(admin, `127.0.0.1:${admin}`, path);
  return JSON.parse(r.body);
}
