/**
 * Memory of `GET /api/events` with many clients: starts `switchyard serve` (one service, two
 * canned upstreams), reads its RSS, opens N event-stream clients (default 1,000) that all read,
 * sends 4 x 100 admin actions (200 events each time, to every client), reading RSS after each; then
 * the same with the clients paused (never reading), to show a stalled client costs a bounded
 * buffer and is dropped.
 *
 *   node bench/admin-events.ts [--clients 1000] [--stalled 1000] [--stall-events 1000]
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { switchyardYaml } from "./lib/configs.ts";
import { freePort, waitHttp } from "./lib/procs.ts";

const here = resolve(fileURLToPath(import.meta.url), "../..");
const args = process.argv.slice(2);
const opt = (name: string, def: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const N = opt("clients", 1000);
/** The stalled phase: clients that never read, and events sent to each. */
const STALLED = opt("stalled", N);
const STALL_EVENTS = opt("stall-events", 1000);

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0) / 1024;
}

function call(port: number, method: string, path: string, body: unknown): Promise<number> {
  return new Promise((ok, fail) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method,
        path,
        headers: { "content-type": "application/json" },
        agent: false,
      },
      (res) => {
        res.resume();
        res.on("end", () => ok(res.statusCode ?? 0));
      },
    );
    req.on("error", fail);
    req.end(JSON.stringify(body));
  });
}

/** Opens a raw event-stream connection; `read` false never reads from it. */
function client(port: number, read: boolean, counter: { bytes: number }): Promise<net.Socket> {
  return new Promise((ok, fail) => {
    const s = net.connect(port, "127.0.0.1", () => {
      s.write(`GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
      if (read) s.on("data", (d: Buffer) => (counter.bytes += d.length));
      else s.pause();
      ok(s);
    });
    s.on("error", fail);
  });
}

const dir = mkdtempSync(join(tmpdir(), "sy-admin-events-"));
const ups = [await freePort(), await freePort()];
const upstreams = ups.map((p) => http.createServer((_q, r) => r.end("ok\n")).listen(p, "127.0.0.1"));
const port = await freePort();
const admin = await freePort();
const cfg = join(dir, "s.yaml");
writeFileSync(cfg, switchyardYaml(port, admin, ups));
const sy = spawn(process.execPath, [join(here, "src/cli.ts"), "serve", "-c", cfg, "--log-level", "warn"], {
  stdio: ["ignore", "ignore", "inherit"],
});
try {
  await waitHttp(port, undefined);
  await new Promise((r) => setTimeout(r, 1000));
  const pid = sy.pid!;
  const actions = async (n: number) => {
    for (let k = 0; k < n; k++) {
      await call(admin, "POST", "/api/services/bench/servers/up-1/maint", {});
      await call(admin, "POST", "/api/services/bench/servers/up-1/ready", {});
    }
  };
  const base = rssMiB(pid);
  console.log(`switchyard serve, before any client: RSS ${base.toFixed(1)} MiB`);

  const counter = { bytes: 0 };
  const readers = [];
  for (let k = 0; k < N; k++) readers.push(await client(admin, true, counter));
  await new Promise((r) => setTimeout(r, 500));
  const open = rssMiB(pid);
  console.log(`${N} reading clients open: RSS ${open.toFixed(1)} MiB (+${(open - base).toFixed(1)})`);
  for (let round = 1; round <= 4; round++) {
    await actions(100);
    await new Promise((r) => setTimeout(r, 1000));
    const after = rssMiB(pid);
    console.log(
      `  after ${round * 200} events to each: RSS ${after.toFixed(1)} MiB (+${(after - base).toFixed(1)}); ${(counter.bytes / 1048576).toFixed(1)} MiB delivered in all`,
    );
  }
  for (const s of readers) s.destroy();
  await new Promise((r) => setTimeout(r, 500));

  const stalled = [];
  for (let k = 0; k < STALLED; k++) stalled.push(await client(admin, false, counter));
  // in steps, to show whether memory follows the events or levels off
  const steps = 4;
  for (let k = 1; k <= steps; k++) {
    await actions(STALL_EVENTS / 2 / steps);
    console.log(
      `  stalled, after ${(k * STALL_EVENTS) / steps} events to each: RSS ${rssMiB(pid).toFixed(1)} MiB`,
    );
  }
  await new Promise((r) => setTimeout(r, 1000));
  const stall = rssMiB(pid);
  // read them now: the ones switchyard dropped end (after what the kernel had buffered)
  const closed = (
    await Promise.all(
      stalled.map(
        (s) =>
          new Promise<boolean>((done) => {
            const t = setTimeout(() => done(false), 5000);
            s.once("close", () => {
              clearTimeout(t);
              done(true);
            });
            s.resume();
          }),
      ),
    )
  ).filter(Boolean).length;
  console.log(
    `${STALLED} clients that never read, ${STALL_EVENTS} events each: RSS ${stall.toFixed(1)} MiB (+${(stall - base).toFixed(1)}); ${closed} of them were dropped by switchyard`,
  );
  for (const s of stalled) s.destroy();
} finally {
  sy.kill("SIGTERM");
  for (const u of upstreams) u.close();
  rmSync(dir, { recursive: true, force: true });
}
