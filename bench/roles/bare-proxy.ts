/**
 * The Node floor: node:http + undici.request (one keep-alive Agent) + pipeline(body, res), round robin
 * over the upstreams, no features. `node bench/roles/bare-proxy.ts PORT UPSTREAM_PORT...`
 */
import * as http from "node:http";
import { pipeline } from "node:stream";
import { Agent, request } from "undici";

const [port, ...ups] = process.argv.slice(2).map(Number);
const origins = ups.map((p) => `http://127.0.0.1:${p}`);
const dispatcher = new Agent({ keepAliveTimeout: 60_000, keepAliveMaxTimeout: 600_000 });
const HOP = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
  "proxy-connection",
  "te",
  "trailer",
]);

function strip(h: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const k in h) {
    const v = h[k];
    if (v !== undefined && !HOP.has(k)) out[k] = v;
  }
  return out;
}

const noop = () => {};
let next = 0;
const server = http.createServer((req, res) => {
  const origin = origins[next];
  next = (next + 1) % origins.length;
  const method = req.method ?? "GET";
  request(origin + (req.url ?? "/"), {
    dispatcher,
    method: method as "GET",
    headers: strip(req.headers),
    body: method === "GET" || method === "HEAD" ? null : req,
  }).then(
    (up) => {
      if (res.destroyed) {
        up.body.on("error", noop).destroy();
        return;
      }
      res.writeHead(up.statusCode, strip(up.headers));
      pipeline(up.body, res, noop);
    },
    () => {
      if (!res.headersSent) res.writeHead(502).end("bad gateway\n");
      else res.destroy();
    },
  );
});
server.keepAliveTimeout = 65_000;
server.listen(port, "127.0.0.1");
process.on("SIGTERM", () => process.exit(0));
