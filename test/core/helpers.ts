import type { IncomingMessage, ServerResponse } from "node:http";
import * as http from "node:http";
import * as net from "node:net";
import { Server, type ServerOptions } from "../../src/balancer/server.ts";
import { LoadBalancer, type LoadBalancerOptions } from "../../src/load-balancer.ts";
import { type Cleanup, listen } from "../support/cleanup.ts";
import { type Reply, send } from "../support/http.ts";

export { Cleanup, listen } from "../support/cleanup.ts";

export interface Backend {
  name: string;
  url: string;
  port: number;
  server: http.Server;
  /** Requests seen (method and url). */
  seen: { method: string; url: string; headers: http.IncomingHttpHeaders }[];
  /** Held responses (when `hold` is on), in arrival order. */
  held: ServerResponse[];
  hold: boolean;
  /** Resolves when the backend has `n` held responses. */
  waitHeld(n: number): Promise<void>;
  releaseAll(): void;
  /** Status answered by the handler (default 200). */
  status: number;
}

/** A real HTTP backend that answers its name; with `hold` it keeps responses open until released. */
export async function backend(name: string, cleanup: Cleanup): Promise<Backend> {
  const waiters: { n: number; resolve: () => void }[] = [];
  const b = {
    name,
    seen: [],
    held: [],
    hold: false,
    status: 200,
    releaseAll() {
      const held = b.held.splice(0);
      for (const res of held) res.end(name);
    },
    waitHeld(n: number) {
      if (b.held.length >= n) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`backend ${name}: ${b.held.length} held requests, waited for ${n}`)),
          5000,
        );
        waiters.push({
          n,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
      });
    },
  } as unknown as Backend;
  const server = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    b.seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
    req.resume();
    if (b.hold) {
      res.writeHead(b.status, { "content-type": "text/plain", "x-backend": name });
      res.flushHeaders();
      b.held.push(res);
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (b.held.length >= waiters[i].n) {
          waiters[i].resolve();
          waiters.splice(i, 1);
        }
      }
      return;
    }
    res.writeHead(b.status, { "content-type": "text/plain", "x-backend": name });
    res.end(req.method === "HEAD" ? undefined : name);
  });
  cleanup.add(() => b.releaseAll());
  const port = await listen(server, cleanup);
  b.port = port;
  b.server = server;
  b.url = `http://127.0.0.1:${port}`;
  return b;
}

export interface Front {
  lb: LoadBalancer;
  port: number;
  server: http.Server;
  controller: AbortController;
}

/** A LoadBalancer mounted in a real node:http server on 127.0.0.1, started. */
export async function front(options: Partial<LoadBalancerOptions>, cleanup: Cleanup): Promise<Front> {
  const lb = new LoadBalancer({ link: "svc", ...options });
  const controller = new AbortController();
  lb.start(controller.signal);
  cleanup.add(() => controller.abort());
  const server = http.createServer(lb.handle);
  server.on("upgrade", lb.handleUpgrade);
  const port = await listen(server, cleanup);
  return { lb, port, server, controller };
}

export function addServer(lb: LoadBalancer, options: ServerOptions): Server {
  const s = new Server(options);
  lb.addServer(s);
  return s;
}

export type { Reply } from "../support/http.ts";

/** One request on a fresh connection (no keep-alive, so nothing stays open). */
export function request(
  port: number,
  path = "/",
  headers: http.OutgoingHttpHeaders = {},
  method = "GET",
): Promise<Reply> {
  return send(port, { path, headers, method, agent: false });
}

/** Starts a request and resolves with the response head (the body may still be open). */
export function requestHead(
  port: number,
  path = "/",
  headers: http.OutgoingHttpHeaders = {},
): Promise<{ res: IncomingMessage; req: http.ClientRequest }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path, headers, agent: false }, (res) =>
      resolve({ res, req }),
    );
    req.on("error", reject);
    req.end();
  });
}

/** Reads the rest of a response body. */
export async function bodyOf(res: IncomingMessage): Promise<string> {
  let body = "";
  res.setEncoding("utf8");
  for await (const c of res) body += c;
  return body;
}

/** Sends raw bytes (e.g. repeated header lines) and returns the whole raw answer. */
export function rawRequest(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    let out = "";
    socket.setEncoding("utf8");
    socket.on("data", (d: string) => {
      out += d;
    });
    socket.on("end", () => resolve(out));
    socket.on("error", reject);
    socket.write(text);
  });
}

export { until } from "../support/until.ts";

/** A minimal request object for `lb.pick`: what the balancer reads. */
export function fakeReq(
  remoteAddress: string,
  headers: http.IncomingHttpHeaders = {},
  url = "/",
): IncomingMessage {
  return { socket: { remoteAddress }, headers, url } as unknown as IncomingMessage;
}

export function counts(names: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const n of names) out[n] = (out[n] ?? 0) + 1;
  return out;
}
