/**
 * switchyard through the library (used until/unless the CLI runs): LoadBalancer + Server per upstream,
 * served by http.createServer(lb.handle). With WORKERS > 1, that many processes share the port
 * through SO_REUSEPORT. `node bench/roles/switchyard-lib.ts PORT WORKERS UPSTREAM_PORT...`
 */
import { fork } from "node:child_process";
import * as http from "node:http";
import { fileURLToPath } from "node:url";
import { LoadBalancer, Server } from "../../src/index.ts";

const [port, workers, ...ups] = process.argv.slice(2).map(Number);

if (workers > 1 && process.env.SWITCHYARD_BENCH_WORKER === undefined) {
  const self = fileURLToPath(import.meta.url);
  const children = Array.from({ length: workers }, () =>
    fork(self, process.argv.slice(2), { env: { ...process.env, SWITCHYARD_BENCH_WORKER: "1" } }),
  );
  const end = () => {
    for (const c of children) c.kill("SIGTERM");
    process.exit(0);
  };
  process.on("SIGTERM", end);
  process.on("SIGINT", end);
} else {
  const controller = new AbortController();
  const lb = new LoadBalancer({ link: "bench" });
  lb.start(controller.signal);
  ups.forEach((p, i) => {
    lb.addServer(new Server({ name: `up-${i + 1}`, url: `http://127.0.0.1:${p}` }));
  });
  const server = http.createServer(lb.handle);
  server.keepAliveTimeout = 65_000;
  server.listen({ port, host: "127.0.0.1", reusePort: workers > 1, backlog: 4096 });
  process.on("SIGTERM", () => {
    controller.abort();
    process.exit(0);
  });
}
