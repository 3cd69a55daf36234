/**
 * HTTP/1.1 vs h2c upstreams: switchyard's `lb.handle` on node:http in a child process, two canned
 * backends (node:http for http1.1, node:http2 for h2c) in this process, wrk on loopback. Prints
 * req/s and the proxy's CPU time per request (the figure a busy machine distorts least).
 *
 *   node bench/h2-upstream.ts [--duration 5] [--connections 64]
 *   node bench/h2-upstream.ts proxy PROTOCOL PORT...   (used internally)
 *
 * Needs `wrk` on PATH.
 */
import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import * as http from "node:http";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { parseArgs, promisify } from "node:util";
import { Server } from "../src/balancer/server.ts";
import { LoadBalancer } from "../src/load-balancer.ts";

const BODY = Buffer.from("hello from the backend\n");
const [, , role, ...rest] = process.argv;

if (role === "proxy") {
  // exit through process.exit so --cpu-prof writes its profile
  process.on("SIGINT", () => process.exit(0));
  const [protocol, ...ports] = rest;
  const lb = new LoadBalancer({ link: "bench" });
  for (const [i, p] of ports.entries()) {
    lb.addServer(
      new Server({ name: `b${i}`, url: `http://127.0.0.1:${p}`, protocol: protocol as "http1.1" | "h2c" }),
    );
  }
  lb.start(new AbortController().signal);
  const server = http.createServer({ keepAliveTimeout: 60_000 }, lb.handle);
  server.listen(0, "127.0.0.1", () => {
    process.stdout.write(`${(server.address() as AddressInfo).port}\n`);
  });
  let base = process.cpuUsage();
  process.on("SIGUSR2", () => {
    base = process.cpuUsage();
  });
  process.on("SIGUSR1", () => {
    const u = process.cpuUsage(base);
    process.stderr.write(`cpu ${u.user + u.system}\n`);
  });
} else {
  // async: the backends live in this process and must keep answering while wrk runs
  const run = promisify(execFile);
  const { values } = parseArgs({
    options: { duration: { type: "string", default: "5" }, connections: { type: "string", default: "64" } },
  });
  const h1 = [0, 1].map(() =>
    http.createServer((_q, r) => r.writeHead(200, { "content-length": BODY.length }).end(BODY)).listen(0),
  );
  const h2 = [0, 1].map(() =>
    http2
      .createServer({ settings: { maxConcurrentStreams: 1000 } }, (_q, r) =>
        r.writeHead(200, { "content-length": BODY.length }).end(BODY),
      )
      .listen(0),
  );
  await Promise.all([...h1, ...h2].map((s) => once(s, "listening")));
  const portsOf = (l: { address(): unknown }[]) => l.map((s) => String((s.address() as AddressInfo).port));
  for (const [protocol, ports] of [
    ["http1.1", portsOf(h1)],
    ["h2c", portsOf(h2)],
  ] as const) {
    const prof = process.env.BENCH_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_PROF}`] : [];
    const child = spawn(
      process.execPath,
      [...prof, fileURLToPath(import.meta.url), "proxy", protocol, ...ports],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    const [line] = (await once(child.stdout, "data")) as [Buffer];
    const port = line.toString().trim();
    const url = `http://127.0.0.1:${port}/`;
    await run("wrk", ["-t1", "-c16", "-d1s", url]); // warm-up
    child.kill("SIGUSR2");
    const { stdout: out } = await run("wrk", [
      "-t1",
      `-c${values.connections}`,
      `-d${values.duration}s`,
      url,
    ]);
    const cpuLine = once(child.stderr, "data");
    child.kill("SIGUSR1");
    const cpu = Number(String(((await cpuLine) as [Buffer])[0]).split(" ")[1]);
    if (process.env.BENCH_VERBOSE) console.log(out);
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
    const total = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
    const errors = /Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? "0";
    console.log(
      `${protocol.padEnd(8)} ${rps.toFixed(0).padStart(7)} req/s  ${(cpu / Math.max(1, total)).toFixed(1)} µs CPU/request  non-2xx ${errors}`,
    );
    child.kill("SIGINT");
    await once(child, "exit");
  }
  for (const s of [...h1, ...h2]) s.close();
  process.exit(0);
}
