/**
 * The two switchyards the reliability scenarios run against, from one config object: the library
 * mounted behind node:http with the server's Host routing (`startProxy`), and `switchyard serve`
 * as a child process (`startCli`); and the server lists of the hot-reload runs.
 */
import { once } from "node:events";
import { mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import type * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { HttpHealthMonitor, LoadBalancer, Server } from "../../src/index.ts";
import { type Backend, PROBE_PATH } from "../support/backend.ts";
import { type CliProcess, listening, spawnCli } from "../support/cli.ts";

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
