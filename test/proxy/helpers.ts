import * as http from "node:http";
import * as net from "node:net";
import { Server, type ServerOptions } from "../../src/balancer/server.ts";
import { LoadBalancer, type LoadBalancerOptions } from "../../src/load-balancer.ts";
import { type Cleanup, listen } from "../support/cleanup.ts";

export { Cleanup, listen } from "../support/cleanup.ts";
export { selfSigned } from "../support/tls.ts";

/** A node:http backend running `handler`; records the client sockets it saw. */
export async function httpBackend(
  cleanup: Cleanup,
  handler: http.RequestListener,
): Promise<{ server: http.Server; url: string; port: number; sockets: Set<net.Socket>; requests: number }> {
  const server = http.createServer();
  const b = { server, url: "", port: 0, sockets: new Set<net.Socket>(), requests: 0 };
  server.on("request", (req, res) => {
    b.requests++;
    b.sockets.add(req.socket);
    handler(req, res);
  });
  b.port = await listen(server, cleanup);
  b.url = `http://127.0.0.1:${b.port}`;
  return b;
}

/** A raw TCP backend: `onConn` gets each connection (for misbehaving servers). */
export async function tcpBackend(
  cleanup: Cleanup,
  onConn: (socket: net.Socket) => void,
): Promise<{ url: string; port: number; connections: number }> {
  const b = { url: "", port: 0, connections: 0 };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    b.connections++;
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
    onConn(s);
  });
  b.port = await listen(server, cleanup);
  cleanup.add(() => {
    for (const s of sockets) s.destroy();
  });
  b.url = `http://127.0.0.1:${b.port}`;
  return b;
}

/** A port with nothing listening (connections are refused). */
export { freePort as deadPort } from "../support/ports.ts";

/** A balancer with the given server URLs behind a real node:http listener (upgrades too). */
export async function proxy(
  cleanup: Cleanup,
  urls: string[],
  options: Partial<LoadBalancerOptions> = {},
  /** Given to every Server (e.g. `tls`, `protocol`). */
  serverOptions: Partial<ServerOptions> = {},
): Promise<{ lb: LoadBalancer; servers: Server[]; port: number; url: string; listener: http.Server }> {
  const lb = new LoadBalancer({ link: "svc", ...options });
  const ac = new AbortController();
  const servers = urls.map((url, i) => new Server({ name: `s${i}`, url, ...serverOptions }));
  for (const s of servers) lb.addServer(s);
  lb.start(ac.signal);
  cleanup.add(() => ac.abort());
  const listener = http.createServer(lb.handle);
  listener.on("upgrade", lb.handleUpgrade);
  const port = await listen(listener, cleanup);
  return { lb, servers, port, url: `http://127.0.0.1:${port}`, listener };
}

/** One request through Node's global agent (keep-alive) unless `agent` is given; the whole answer. */
export { type Reply, send as request } from "../support/http.ts";

export { until } from "../support/until.ts";

/** Total in-flight count of the servers. */
export function inflight(servers: readonly Server[]): number {
  return servers.reduce((a, s) => a + s.inflight, 0);
}
