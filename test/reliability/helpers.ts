/**
 * Shared parts of the reliability suite: recording backends that can be killed and restarted,
 * an in-process switchyard (the library behind node:http, routed by Host like the server), a
 * bounded load generator, raw-TCP helpers, handle counting and the JSON summary that
 * test/reliability/report.ts turns into docs/reliability.md's figures.
 */
import { once } from "node:events";
import {
  appendFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Pool } from "undici";
import { stringify } from "yaml";
import { HttpHealthMonitor, LoadBalancer, Server } from "../../src/index.ts";
import { type CliProcess, listening, spawnCli } from "../support/cli.ts";

// ---- summary ----

/** Where each test file appends its figures (one JSON object per line). */
export const SUMMARY_FILE =
  process.env.SWITCHYARD_RELIABILITY_SUMMARY ?? join(tmpdir(), "switchyard-reliability", "summary.jsonl");

export interface SummaryEntry {
  suite: string;
  scenario: string;
  requests?: number;
  failed?: number;
  faults?: number;
  outcome?: string;
  expected?: string;
  ok?: boolean;
  [k: string]: unknown;
}

export function record(entry: SummaryEntry): void {
  try {
    mkdirSync(join(SUMMARY_FILE, ".."), { recursive: true });
    appendFileSync(SUMMARY_FILE, `${JSON.stringify({ at: new Date().toISOString(), ...entry })}\n`);
  } catch {
    // figures are a by-product; never fail a test for them
  }
}

// ---- backends ----

export interface Received {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: number;
  /** The whole request (body included) arrived. */
  complete: boolean;
  dead: boolean;
}

export interface Backend {
  name: string;
  port: number;
  url: string;
  server: http.Server;
  received: Received[];
  /** Requests other than health probes. */
  served(): number;
  probes(): number;
  /** Answers every request by resetting its connection (a crashed process behind a live port). */
  dead: boolean;
  /** Closes the listener and resets every open connection: the port refuses from now on. */
  kill(): Promise<void>;
  /** Listens again on the same port. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export type BackendHandler = (req: http.IncomingMessage, res: http.ServerResponse, b: Backend) => void;

export const PROBE_PATH = "/healthz";

export async function startBackend(
  name: string,
  handler?: BackendHandler,
  options: http.ServerOptions = {},
): Promise<Backend> {
  const sockets = new Set<net.Socket>();
  const received: Received[] = [];
  let port = 0;
  const b: Backend = {
    name,
    port: 0,
    url: "",
    server: undefined as unknown as http.Server,
    received,
    dead: false,
    served: () => received.filter((r) => !r.url.startsWith(PROBE_PATH)).length,
    probes: () => received.filter((r) => r.url.startsWith(PROBE_PATH)).length,
    kill: async () => {
      const closed = once(b.server, "close");
      b.server.close();
      for (const s of sockets) s.resetAndDestroy();
      await closed;
    },
    restart: async () => {
      b.server = make();
      b.server.listen(port, "127.0.0.1");
      await once(b.server, "listening");
    },
    close: async () => {
      if (!b.server.listening) return;
      const closed = once(b.server, "close");
      b.server.close();
      b.server.closeAllConnections();
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
  const make = () => {
    const srv = http.createServer({ keepAliveTimeout: 10_000, ...options }, (req, res) => {
      const rec: Received = {
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body: 0,
        complete: false,
        dead: b.dead,
      };
      received.push(rec);
      if (b.dead) {
        req.socket.resetAndDestroy();
        return;
      }
      req.once("end", () => {
        rec.complete = true;
      });
      if (handler) {
        handler(req, res, b);
        return;
      }
      req.on("data", (c: Buffer) => {
        rec.body += c.length;
      });
      req.on("end", () => {
        res.setHeader("content-type", "text/plain");
        res.setHeader("x-backend", name);
        res.end(name);
      });
    });
    srv.on("connection", (s: net.Socket) => {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
    });
    srv.on("clientError", (_err, s) => s.destroy());
    return srv;
  };
  b.server = make();
  b.server.listen(0, "127.0.0.1");
  await once(b.server, "listening");
  port = (b.server.address() as net.AddressInfo).port;
  b.port = port;
  b.url = `http://127.0.0.1:${port}`;
  return b;
}

/**
 * Eleven server lists over five backends for the hot-reload runs (in-process and real server):
 * each step adds, removes or re-weights at least one server.
 */
export function reloadSteps(bs: readonly Backend[]): ServiceSpec["servers"][] {
  const s = (i: number, weight?: number) => ({ name: bs[i].name, url: bs[i].url, weight });
  return [
    [s(0), s(1), s(2)],
    [s(0), s(1), s(2), s(3)],
    [s(0, 10), s(1, 60), s(2, 30), s(3)],
    [s(1, 60), s(2, 30), s(3, 10)],
    [s(1), s(2), s(3), s(4)],
    [s(2, 80), s(4, 20)],
    [s(0), s(2, 80), s(4, 20)],
    [s(0, 1), s(1, 1), s(2, 1), s(3, 1), s(4, 1)],
    [s(3)],
    [s(3), s(4, 70), s(0, 30)],
    [s(0), s(1), s(2)],
  ];
}

// ---- an in-process switchyard ----

/** The YAML config, as an object (snake_case, durations as Go strings or ms). */
export interface ServiceSpec {
  hosts?: string[];
  mode?: string;
  sticky?: boolean;
  sticky_secret?: string;
  options?: { header?: string; from?: string[]; recursive?: boolean };
  healthcheck?: { path?: string; interval?: string | number; timeout?: string | number; retries?: number };
  servers: { name: string; url: string; weight?: number }[];
}
export interface ProxySpec {
  timeouts?: {
    connect?: string;
    response_header?: string;
    idle?: string;
    client_header?: string;
    shutdown?: string;
  };
  services: Record<string, ServiceSpec>;
}

export interface Proxy {
  port: number;
  url: string;
  lbs: Map<string, LoadBalancer>;
  server: http.Server;
  reload(spec: ProxySpec): void;
  close(): Promise<void>;
}

export interface ProxyOptions {
  /** node:http server options (headersTimeout etc.). */
  http?: http.ServerOptions;
}

function makeServer(s: ServiceSpec["servers"][number], svc: ServiceSpec): Server {
  const hc = svc.healthcheck;
  return new Server({
    name: s.name,
    url: s.url,
    weight: s.weight ?? 0,
    health: hc
      ? new HttpHealthMonitor(s.url, {
          path: hc.path ?? PROBE_PATH,
          interval: hc.interval,
          timeout: hc.timeout,
          retries: hc.retries,
        })
      : undefined,
  });
}

function lbOptions(name: string, svc: ServiceSpec, spec: ProxySpec) {
  return {
    link: name,
    mode: svc.mode,
    sticky: svc.sticky,
    stickySecret: svc.sticky_secret,
    options: svc.options,
    timeouts: {
      connect: spec.timeouts?.connect,
      responseHeader: spec.timeouts?.response_header,
      idle: spec.timeouts?.idle,
    },
  };
}

/**
 * The library mounted as the README shows, with the server's Host routing (exact host, then
 * first label), so the same tests can later run against `switchyard serve`.
 */
export async function startProxy(spec: ProxySpec, options: ProxyOptions = {}): Promise<Proxy> {
  const ac = new AbortController();
  const lbs = new Map<string, LoadBalancer>();
  let specs: Record<string, ServiceSpec> = {};
  const route = (req: http.IncomingMessage): LoadBalancer | undefined => {
    const host = (req.headers.host ?? "").replace(/:\d+$/, "").toLowerCase();
    for (const [name, svc] of Object.entries(specs)) if (svc.hosts?.includes(host)) return lbs.get(name);
    const label = host.split(".")[0];
    const byLabel = specs[label] && !specs[label].hosts?.length ? lbs.get(label) : undefined;
    if (byLabel) return byLabel;
    for (const [name, svc] of Object.entries(specs)) if (svc.hosts?.includes("*")) return lbs.get(name);
    return undefined;
  };
  const apply = (next: ProxySpec) => {
    for (const [name, svc] of Object.entries(next.services)) {
      let lb = lbs.get(name);
      if (!lb) {
        lb = new LoadBalancer(lbOptions(name, svc, next));
        lb.start(ac.signal);
        lbs.set(name, lb);
      } else {
        lb.updateConfig(lbOptions(name, svc, next));
      }
      const want = new Map(svc.servers.map((s) => [new URL(s.url).host, s]));
      for (const cur of [...lb.servers]) if (!want.has(cur.key)) lb.removeServer(cur);
      for (const [key, s] of want) {
        const cur = lb.servers.find((x) => x.key === key);
        if (!cur || cur.configuredWeight !== (s.weight ?? 0) || cur.name !== s.name)
          lb.addServer(makeServer(s, svc));
      }
    }
    for (const name of [...lbs.keys()]) if (!(name in next.services)) lbs.delete(name);
    specs = next.services;
  };
  apply(spec);
  const server = http.createServer({ keepAliveTimeout: 10_000, ...options.http }, (req, res) => {
    const lb = route(req);
    if (!lb) {
      res.writeHead(404, { "content-type": "text/plain", "content-length": 10 }).end("Not Found\n");
      return;
    }
    lb.handle(req, res);
  });
  server.on("upgrade", (req, socket, head) => {
    const lb = route(req);
    if (!lb) socket.destroy();
    else lb.handleUpgrade(req, socket, head);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    lbs,
    server,
    reload: apply,
    close: async () => {
      const closed = once(server, "close");
      server.close();
      server.closeAllConnections();
      ac.abort();
      await closed;
      // let the upstream pools finish closing their sockets
      await new Promise((r) => setImmediate(r));
    },
  };
}

// ---- load ----

export interface LoadResult {
  sent: number;
  ok: number;
  failed: number;
  statuses: Record<string, number>;
  errors: string[];
  bodies: Record<string, number>;
}

/**
 * `total` GETs from `concurrency` keep-alive clients; each request either gets a 2xx (ok) or
 * counts as failed (any other status or a transport error). `between` runs between requests
 * of client 0 so faults can be injected while the load runs.
 */
export async function runLoad(opts: {
  url: string;
  host: string;
  total: number;
  concurrency: number;
  path?: string;
  onProgress?: (done: number) => void | Promise<void>;
  /** Called before request number `index` (0-based) is sent; a promise holds that request back. */
  gate?: (index: number) => Promise<void> | undefined;
  signal?: AbortSignal;
}): Promise<LoadResult> {
  const pool = new Pool(opts.url, { connections: opts.concurrency, pipelining: 1 });
  const result: LoadResult = { sent: 0, ok: 0, failed: 0, statuses: {}, errors: [], bodies: {} };
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < opts.total && !opts.signal?.aborted) {
      const index = next++;
      const held = opts.gate?.(index);
      if (held) await held;
      result.sent++;
      try {
        const res = await pool.request({
          path: opts.path ?? "/",
          method: "GET",
          headers: { host: opts.host },
          signal: opts.signal,
        });
        const body = await res.body.text();
        result.statuses[res.statusCode] = (result.statuses[res.statusCode] ?? 0) + 1;
        if (res.statusCode >= 200 && res.statusCode < 300) {
          result.ok++;
          result.bodies[body] = (result.bodies[body] ?? 0) + 1;
        } else {
          result.failed++;
          if (result.errors.length < 10) result.errors.push(`HTTP ${res.statusCode}: ${body.slice(0, 80)}`);
        }
      } catch (err) {
        result.failed++;
        const e = err as { code?: string; message?: string };
        if (result.errors.length < 10) result.errors.push(`${e.code ?? ""} ${e.message ?? String(err)}`);
      }
      done++;
      await opts.onProgress?.(done);
    }
  };
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, worker));
  } finally {
    await pool.destroy();
  }
  return result;
}

// ---- raw TCP ----

export interface RawResult {
  /** Everything the server sent before closing (or before the deadline). */
  data: string;
  /** Whether the server closed the connection. */
  closed: boolean;
  /** Status code of the first response, if any. */
  status: number | undefined;
}

/**
 * Writes `chunks` (strings or buffers; a number is a pause in ms) to a new connection and
 * collects the answer until the server closes or `waitMs` passes after the last write.
 */
export async function rawRequest(
  port: number,
  chunks: (string | Buffer | number)[],
  waitMs = 1500,
): Promise<RawResult> {
  const socket = net.connect(port, "127.0.0.1");
  socket.on("error", () => {});
  await once(socket, "connect");
  let data = "";
  let closed = false;
  let answered: () => void = () => {};
  const answeredP = new Promise<void>((r) => {
    answered = r;
  });
  socket.on("data", (c: Buffer) => {
    data += c.toString("latin1");
    // one complete response (with a Content-Length) is all we wait for
    const end = data.indexOf("\r\n\r\n");
    const m = end < 0 ? null : /\r\ncontent-length:\s*(\d+)/i.exec(data.slice(0, end));
    if (m && data.length - end - 4 >= Number(m[1])) answered();
  });
  const closedP = new Promise<void>((resolve) =>
    socket.once("close", () => {
      closed = true;
      resolve();
    }),
  );
  for (const c of chunks) {
    if (closed) break;
    if (typeof c === "number") await new Promise((r) => setTimeout(r, c));
    else socket.write(c);
  }
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([closedP, answeredP, new Promise<void>((r) => (timer = setTimeout(r, waitMs)))]);
  clearTimeout(timer);
  socket.destroy();
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(data);
  return { data, closed, status: m ? Number(m[1]) : undefined };
}

export { until } from "../support/until.ts";

/** Open handles of this process by kind, without timers (node:test keeps its own). */
export function handles(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of process.getActiveResourcesInfo()) {
    if (k === "Timeout" || k === "Immediate") continue;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

export function socketCount(): number {
  return process.getActiveResourcesInfo().filter((k) => k === "TCPSocketWrap" || k === "TCPWrap").length;
}

// ---- the real server: `switchyard serve` as a child process ----

export interface Cli extends CliProcess {
  pid: number;
  port: number;
  url: string;
  adminPort: number;
  adminUrl: string;
  file: string;
  /** Rewrites the config file and waits for the server to log the reload. */
  reload(spec: ProxySpec & Record<string, unknown>): Promise<void>;
  /** Open file descriptors of the server process (Linux). */
  fds(): number;
  /** Resident set size of the server process in bytes (Linux). */
  rss(): number;
}

/**
 * Starts `node src/cli.ts serve -c <temp yaml> --listen 127.0.0.1:0 --admin 127.0.0.1:0` and
 * learns the bound ports from its "listening" log line.
 */
export async function startCli(
  spec: ProxySpec & Record<string, unknown>,
  options: { env?: Record<string, string>; args?: string[]; nodeArgs?: string[]; admin?: string } = {},
): Promise<Cli> {
  const dir = mkdtempSync(join(tmpdir(), "switchyard-rel-"));
  const file = join(dir, "switchyard.yaml");
  writeFileSync(file, stringify(spec));
  const p = spawnCli(
    [
      "serve",
      "-c",
      file,
      "--listen",
      "127.0.0.1:0",
      "--admin",
      options.admin ?? "127.0.0.1:0",
      "--log-level",
      "info",
      ...(options.args ?? []),
    ],
    { cwd: dir, env: options.env, nodeArgs: options.nodeArgs },
  );
  void p.exited.then(() => rmSync(dir, { recursive: true, force: true }));
  const rec = await listening(p, 15_000);
  const proxyAddr = (rec.proxy as string[])[0];
  const port = Number(proxyAddr.slice(proxyAddr.lastIndexOf(":") + 1));
  const adminAddr = String(rec.admin);
  const adminPort = Number(adminAddr.slice(adminAddr.lastIndexOf(":") + 1));
  const isReload = (l: Record<string, unknown>) =>
    typeof l.msg === "string" &&
    (l.msg.startsWith("config reloaded") || l.msg.startsWith("config reload failed"));
  const { child, logs } = p;
  return {
    ...p,
    pid: child.pid!,
    port,
    url: `http://127.0.0.1:${port}`,
    adminPort,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    file,
    reload: async (next) => {
      const before = logs.filter(isReload).length;
      // write-then-rename, as editors do; the server watches the file and its folder
      const tmp = `${file}.tmp`;
      writeFileSync(tmp, stringify(next));
      renameSync(tmp, file);
      await p.waitForLog(() => logs.filter(isReload).length > before, 5000, "the reload log line");
    },
    fds: () => readdirSync(`/proc/${child.pid}/fd`).length,
    rss: () => {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"));
      return m ? Number(m[1]) * 1024 : 0;
    },
  };
}
