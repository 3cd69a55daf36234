/**
 * Upstreams that answer after DELAY ms (used when nginx's echo module is missing).
 * `node bench/roles/slow-upstream.ts DELAY PORT...`
 */
import * as http from "node:http";

const [delay, ...ports] = process.argv.slice(2).map(Number);
const body = Buffer.from(`${"switchyard bench upstream ".repeat(4).slice(0, 99)}\n`);
for (const port of ports) {
  const server = http.createServer((_req, res) => {
    setTimeout(() => {
      res.writeHead(200, { "content-type": "text/plain", "content-length": body.length });
      res.end(body);
    }, delay);
  });
  server.keepAliveTimeout = 65_000;
  server.listen({ port, host: "127.0.0.1", backlog: 4096 });
}
process.on("SIGTERM", () => process.exit(0));
