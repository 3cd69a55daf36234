/**
 * Quick proxy throughput loop: 3 canned-response upstreams (raw `net`, cheap) and wrk on core 1;
 * each proxy in turn on core 0: a bare node:http + undici `Pool.request` + `pipeline` proxy, and
 * switchyard's `lb.handle` (active health monitors, real-IP trust configured; QP_STICKY=1 adds sticky
 * cookies, QP_MODE picks the mode) on node:http (`switchyard`, as the library is mounted) and on the
 * CLI's own HTTP/1 front (`switchyard-h1`, src/http1/server.ts). Prints req/s, latency percentiles and the proxy's CPU time per
 * request (the figure that survives a busy machine best). QP_DELAY=ms delays every upstream answer.
 *
 *   node bench/quick-proxy.ts [--duration 5] [--connections 64] [--rounds 1] [--only bare,switchyard,switchyard-h1] [--cpu-prof]
 *   node bench/quick-proxy.ts upstream|bare|switchyard|switchyard-h1 PORT [UPSTREAM_PORTS...]   (used internally)
 *
 * `switchyard-front` is the server's whole request path (config → Runtime → Front → service →
 * balancer, as `switchyard serve` runs it); QP_MW=<YAML list> gives its service middlewares (see
 * bench/middlewares.ts), QP_HEADER="Name: value" adds a request header to wrk's requests.
 *
 * Needs `wrk` and `taskset` on PATH. --cpu-prof writes profiles to /tmp/qp-prof.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import * as http from "node:http";
import * as net from "node:net";
import { pipeline } from "node:stream";
import { fileURLToPath } from "node:url";

const self = fileURLToPath(import.meta.url);
const [, , role, ...rest] = process.argv;
// exit through process.exit so --cpu-prof writes its profile
if (
  role === "upstream" ||
  role === "bare" ||
  role === "switchyard" ||
  role === "switchyard-h1" ||
  role === "switchyard-front"
)
  process.on("SIGINT", () => process.exit(0));

// CPU time per request: robust to a busy machine where req/s is not. SIGUSR2 starts the window,
// SIGUSR1 prints `cpu <µs per request> <requests>` on stderr.
let counted = 0;
/** Requests served so far (switchyard-front reads its service's stats). */
let served = () => counted;
let base = process.cpuUsage();
let baseCount = 0;
process.on("SIGUSR2", () => {
  base = process.cpuUsage();
  baseCount = served();
});
process.on("SIGUSR1", () => {
  const u = process.cpuUsage(base);
  const n = served() - baseCount;
  if (process.env.QP_MEM === "1") {
    const m = process.memoryUsage();
    const mb = (x: number) => (x / 1048576).toFixed(0);
    process.stderr.write(
      `mem rss ${mb(m.rss)} heapTotal ${mb(m.heapTotal)} heapUsed ${mb(m.heapUsed)} external ${mb(m.external)} arrayBuffers ${mb(m.arrayBuffers)}\n`,
    );
  }
  process.stderr.write(`cpu ${((u.user + u.system) / Math.max(1, n)).toFixed(1)} ${n}\n`);
});
function counting(srv: http.Server): http.Server {
  srv.prependListener("request", () => {
    counted++;
  });
  return srv;
}

if (role === "upstream") {
  // A canned-response HTTP/1.1 server on raw `net`: far cheaper than node:http, so the core it
  // shares with wrk is not the bottleneck. Requests are bodiless GET/HEAD (wrk, health checks).
  const get = Buffer.from(
    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 12\r\nkeep-alive: timeout=60\r\n\r\nhello world\n",
  );
  const head = Buffer.from(
    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 12\r\nkeep-alive: timeout=60\r\n\r\n",
  );
  const delay = Number(process.env.QP_DELAY ?? 0);
  const srv = net.createServer((sock) => {
    sock.setNoDelay(true);
    let pending = "";
    sock.on("data", (chunk: Buffer) => {
      pending += chunk.toString("latin1");
      let end = pending.indexOf("\r\n\r\n");
      while (end >= 0) {
        const answer = pending.startsWith("HEAD") ? head : get;
        if (delay > 0) setTimeout(() => sock.destroyed || sock.write(answer), delay);
        else sock.write(answer);
        pending = pending.slice(end + 4);
        end = pending.indexOf("\r\n\r\n");
      }
    });
    sock.on("error", () => {});
  });
  srv.listen(Number(rest[0]), "127.0.0.1");
} else if (role === "bare") {
  const { Pool } = await import("undici");
  const pools = rest.slice(1).map((p) => new Pool(`http://127.0.0.1:${p}`, { pipelining: 1 }));
  let i = 0;
  const srv = http.createServer((req, res) => {
    const pool = pools[i++ % pools.length];
    const headers = { ...req.headers };
    delete headers.connection;
    delete headers["keep-alive"];
    delete headers["transfer-encoding"];
    pool
      .request({
        path: req.url ?? "/",
        method: (req.method ?? "GET") as "GET",
        headers,
        body: req.method === "GET" || req.method === "HEAD" ? null : req,
      })
      .then(
        (up) => {
          const h = { ...up.headers };
          delete h.connection;
          delete h["keep-alive"];
          delete h["transfer-encoding"];
          if (res.destroyed) {
            up.body.on("error", () => {});
            up.body.destroy();
            return;
          }
          res.writeHead(up.statusCode, h as http.OutgoingHttpHeaders);
          pipeline(up.body, res, () => {});
        },
        () => {
          res.statusCode = 502;
          res.end("Bad Gateway\n");
        },
      );
  });
  srv.keepAliveTimeout = 60_000;
  counting(srv).listen(Number(rest[0]), "127.0.0.1");
} else if (role === "switchyard" || role === "switchyard-h1") {
  const { LoadBalancer, Server, HttpHealthMonitor } = await import("../src/index.ts");
  const sticky = process.env.QP_STICKY === "1";
  const lb = new LoadBalancer({
    link: "bench",
    mode: process.env.QP_MODE ?? "round_robin",
    sticky,
    options: { header: "X-Forwarded-For", from: ["10.0.0.0/8"], recursive: true },
  });
  const ac = new AbortController();
  for (const p of rest.slice(1)) {
    const url = `http://127.0.0.1:${p}`;
    lb.addServer(
      new Server({ name: `up-${p}`, url, health: new HttpHealthMonitor(url, { interval: 5000 }) }),
    );
  }
  lb.start(ac.signal);
  if (role === "switchyard-h1") {
    // the CLI's plain-HTTP front (server/http1.ts) in place of node:http
    const { H1Server } = await import("../src/http1/server.ts");
    const srv = new H1Server(
      {
        request: (req, res) => {
          counted++;
          lb.handle(req, res);
        },
        upgrade: lb.handleUpgrade,
      },
      {
        headersTimeout: 30_000,
        requestTimeout: 300_000,
        keepAliveTimeout: 60_000,
        connectionsCheckingInterval: 1000,
      },
    );
    srv.listen(Number(rest[0]), "127.0.0.1");
  } else {
    const srv = http.createServer(lb.handle);
    srv.on("upgrade", lb.handleUpgrade);
    srv.keepAliveTimeout = 60_000;
    counting(srv).listen(Number(rest[0]), "127.0.0.1");
  }
} else if (role === "switchyard-front") {
  const { parseConfig } = await import("../src/config/load.ts");
  const { Runtime } = await import("../src/server/runtime.ts");
  const { silentLogger } = await import("../src/log.ts");
  const { mkdtempSync, writeFileSync } = await import("node:fs");
  const { join } = await import("node:path");
  const { tmpdir } = await import("node:os");
  const dir = mkdtempSync(join(tmpdir(), "qp-front-"));
  writeFileSync(join(dir, "502.html"), "<h1>down</h1>");
  const mw = process.env.QP_MW ? `    middlewares: ${process.env.QP_MW}\n` : "";
  const yaml = `listen: 127.0.0.1:${rest[0]}
admin: 127.0.0.1:0
services:
  bench:
    hosts: ["*"]
    options: { header: X-Forwarded-For, from: [10.0.0.0/8], recursive: true }
    healthcheck: { interval: 5s }
${mw}    servers: [${rest
    .slice(1)
    .map((p) => `"http://127.0.0.1:${p}"`)
    .join(", ")}]
`;
  const config = parseConfig(yaml, join(dir, "switchyard.yaml"), {}, {});
  const rt = new Runtime({ logger: silentLogger, proxy: true, admin: false, ownsHealth: true });
  await rt.start(config);
  const stats = rt.services.get("bench")!.stats;
  served = () => stats.count;
} else {
  await main();
}

async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, "127.0.0.1");
  await once(s, "listening");
  const port = (s.address() as net.AddressInfo).port;
  s.close();
  return port;
}

async function waitUp(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const r = http.get({ host: "127.0.0.1", port, path: "/", agent: false }, (res) => {
        res.resume();
        // a middleware may answer itself (bench/middlewares.ts: 308, 401)
        res.on("end", () =>
          resolve(res.statusCode === 200 || res.statusCode === 308 || res.statusCode === 401),
        );
      });
      r.on("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`port ${port} did not come up`);
}

function start(cpu: string, args: string[], extraNodeArgs: string[] = []): ChildProcess {
  return spawn("taskset", ["-c", cpu, process.execPath, ...extraNodeArgs, self, ...args], {
    stdio: ["ignore", "inherit", "pipe"],
  });
}

async function cpuPerRequest(child: ChildProcess): Promise<string> {
  let text = "";
  const got = new Promise<void>((resolve) => {
    child.stderr?.on("data", (d: Buffer) => {
      text += d.toString();
      if (/cpu \S+ \d+\n/.test(text)) resolve();
    });
  });
  child.kill("SIGUSR1");
  await got;
  const m = /cpu (\S+) (\d+)/.exec(text);
  return m ? `${m[1]} µs CPU/req` : "?";
}

function wrk(port: number, duration: number, connections: number): { rps: number; p50: string; p99: string } {
  const header = process.env.QP_HEADER ? ["-H", process.env.QP_HEADER] : [];
  const out = execFileSync(
    "taskset",
    [
      "-c",
      "1",
      "wrk",
      "-t1",
      `-c${connections}`,
      `-d${duration}s`,
      "--latency",
      ...header,
      `http://127.0.0.1:${port}/`,
    ],
    { encoding: "utf8" },
  );
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
  const p50 = /\s50%\s+(\S+)/.exec(out)?.[1] ?? "?";
  const p99 = /\s99%\s+(\S+)/.exec(out)?.[1] ?? "?";
  if (/Non-2xx|Socket errors/.test(out) && process.env.QP_QUIET_NON2XX !== "1") process.stderr.write(out);
  return { rps, p50, p99 };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string, def: string) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : def;
  };
  const duration = Number(opt("duration", "5"));
  const connections = Number(opt("connections", "64"));
  const rounds = Number(opt("rounds", "1"));
  const only = opt("only", "bare,switchyard,switchyard-h1").split(",");
  const prof = args.includes("--cpu-prof");
  const children: ChildProcess[] = [];
  try {
    const ups = [await freePort(), await freePort(), await freePort()];
    for (const p of ups) children.push(start("1", ["upstream", String(p)]));
    for (const p of ups) await waitUp(p);
    for (let r = 0; r < rounds; r++) {
      for (const kind of only) {
        const port = await freePort();
        const extra = prof ? ["--cpu-prof", "--cpu-prof-dir=/tmp/qp-prof"] : [];
        // QP_FLAGS: node/V8 flags for the proxy under test (e.g. "--single-threaded-gc")
        if (process.env.QP_FLAGS) extra.push(...process.env.QP_FLAGS.split(/\s+/).filter(Boolean));
        const child = start("0", [kind, String(port), ...ups.map(String)], extra);
        child.stderr?.on("data", (d: Buffer) => {
          if (!d.toString().startsWith("cpu ")) process.stderr.write(d);
        });
        await waitUp(port);
        wrk(port, 1, connections); // warm-up (JIT, pools)
        child.kill("SIGUSR2");
        const res = wrk(port, duration, connections);
        const cpu = await cpuPerRequest(child);
        const rss =
          Number(execFileSync("ps", ["-o", "rss=", "-p", String(child.pid)], { encoding: "utf8" })) / 1024;
        console.log(
          `${kind.padEnd(11)} ${res.rps.toFixed(0).padStart(7)} req/s  p50 ${res.p50}  p99 ${res.p99}  ${cpu}  RSS ${rss.toFixed(0)} MB`,
        );
        child.kill("SIGINT");
        await once(child, "exit");
      }
    }
  } finally {
    for (const c of children) c.kill();
  }
}
