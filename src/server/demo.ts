/**
 * The embedded demo's backends: three tiny HTTP servers on loopback ephemeral ports, each
 * answering with its own name so the balancing is visible with plain curl.
 */
import type * as http from "node:http";
import type { AddressInfo } from "node:net";

// node:http taken with getBuiltinModule, not an ES import: importing it as an ES module reads
// every export, and its lazy ones (WebSocket & co.) load undici, tls, http2 and zlib: ~13 MB of RSS
const nodeHttp = process.getBuiltinModule("node:http");

export interface DemoBackends {
  backends: { name: string; url: string }[];
  close(): Promise<void>;
}

export async function startDemoBackends(count = 3): Promise<DemoBackends> {
  const servers: http.Server[] = [];
  const backends: { name: string; url: string }[] = [];
  for (let i = 1; i <= count; i++) {
    const name = `demo-${i}`;
    const server = nodeHttp.createServer((req, res) => {
      const body = `Hello from ${name} (${req.method} ${req.url})\n`;
      res.writeHead(200, {
        "content-type": "text/plain; charset=utf-8",
        "content-length": Buffer.byteLength(body),
        "x-demo-backend": name,
      });
      res.end(req.method === "HEAD" ? undefined : body);
    });
    await new Promise<void>((ok, fail) => {
      server.once("error", fail);
      server.listen(0, "127.0.0.1", () => ok());
    });
    servers.push(server);
    backends.push({ name, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
  }
  return {
    backends,
    async close() {
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((r) => {
              s.close(() => r());
              s.closeAllConnections();
            }),
        ),
      );
    },
  };
}
