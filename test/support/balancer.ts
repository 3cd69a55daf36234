/**
 * The library in a test: a started LoadBalancer mounted in a real node:http server on 127.0.0.1
 * (requests and upgrades), and the small pieces the balancing tests read.
 */
import * as http from "node:http";
import { Server, type ServerOptions } from "../../src/balancer/server.ts";
import { LoadBalancer, type LoadBalancerOptions } from "../../src/load-balancer.ts";
import { type Cleanup, listen } from "./cleanup.ts";

export interface Balancer {
  lb: LoadBalancer;
  /** The Servers made from `urls` (named s0, s1 …). */
  servers: Server[];
  port: number;
  url: string;
  /** The node:http server the balancer is mounted in. */
  server: http.Server;
  /** Aborting it stops the balancer (done by `cleanup`). */
  controller: AbortController;
}

/**
 * A LoadBalancer (link "svc" unless `options` say otherwise) with one Server per URL in `urls`
 * (each given `serverOptions`, e.g. `tls` or `protocol`), started and listening.
 */
export async function startBalancer(
  cleanup: Cleanup,
  urls: readonly string[] = [],
  options: Partial<LoadBalancerOptions> = {},
  serverOptions: Partial<ServerOptions> = {},
): Promise<Balancer> {
  const lb = new LoadBalancer({ link: "svc", ...options });
  const controller = new AbortController();
  const servers = urls.map((url, i) => new Server({ name: `s${i}`, url, ...serverOptions }));
  for (const s of servers) lb.addServer(s);
  lb.start(controller.signal);
  cleanup.add(() => controller.abort());
  const server = http.createServer(lb.handle);
  server.on("upgrade", lb.handleUpgrade);
  const port = await listen(server, cleanup);
  return { lb, servers, port, url: `http://127.0.0.1:${port}`, server, controller };
}

/** Adds a Server made from `options` to `lb`; returns it. */
export function addServer(lb: LoadBalancer, options: ServerOptions): Server {
  const s = new Server(options);
  lb.addServer(s);
  return s;
}

/** Total in-flight count of the servers. */
export function inflight(servers: readonly Server[]): number {
  return servers.reduce((a, s) => a + s.inflight, 0);
}

/** A minimal request object for `lb.pick`: what the balancer reads. */
export function fakeReq(
  remoteAddress: string,
  headers: http.IncomingHttpHeaders = {},
  url = "/",
): http.IncomingMessage {
  return { socket: { remoteAddress }, headers, url } as unknown as http.IncomingMessage;
}

/** How often each name occurs. */
export function counts(names: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const n of names) out[n] = (out[n] ?? 0) + 1;
  return out;
}
