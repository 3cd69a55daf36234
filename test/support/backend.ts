/**
 * The one recording backend of the tests: a real node:http server on 127.0.0.1 that answers its
 * name (or what `handler`/`body` say), records every request, can hold answers until released,
 * play dead, be killed and restarted on the same port. Raw TCP backends for misbehaving servers.
 */
import { once } from "node:events";
import * as http from "node:http";
import * as net from "node:net";
import { type Cleanup, listen, type Undo, undoLater } from "./cleanup.ts";

/** One request the backend saw. */
export interface Received {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  /** Body bytes read (by the default answer; a `handler` reads the body itself). */
  body: number;
  /** The whole request (body included) arrived. */
  complete: boolean;
  /** It came while the backend played dead (and was reset). */
  dead: boolean;
}

/** A health probe as switchyard and the library send them: HEAD, or a path under /healthz. */
export const PROBE_PATH = "/healthz";
export const isProbe = (r: Received): boolean => r.method === "HEAD" || r.url.startsWith(PROBE_PATH);

export type BackendHandler = (req: http.IncomingMessage, res: http.ServerResponse, b: Backend) => void;

export interface BackendOptions {
  /** Answers every request itself (still recorded; `dead` still resets). */
  handler?: BackendHandler;
  /** The default answer's body: the name unless given (a function sees the request). */
  body?: string | ((req: http.IncomingMessage) => string);
  /** Extra headers on the default answer (it always has content-type, content-length and x-backend). */
  headers?: http.OutgoingHttpHeaders;
  /** Port to listen on; 0 (default) picks a free one. */
  port?: number;
  /** node:http server options (keepAliveTimeout defaults to 10 s). */
  http?: http.ServerOptions;
  /** Stops the backend at the end: a Cleanup or a test context (`t`). */
  cleanup?: Undo;
}

export interface Backend {
  name: string;
  port: number;
  url: string;
  server: http.Server;
  /** Every request, health probes included, in arrival order (`received.length = 0` forgets them). */
  received: Received[];
  /** Requests by method, probes included. */
  counts: Record<string, number>;
  /** TCP connections accepted so far. */
  connections: number;
  /** The requests that are not health probes. */
  requests(): Received[];
  /** How many requests were not health probes. */
  served(): number;
  probes(): number;
  /** How many requests from `received[from]` on were health probes before the first other one. */
  probesFirst(from: number): number;
  /** Status of the default answer (200). */
  status: number;
  /**
   * Holds default answers after their head (status and headers sent) until release(). A request
   * for `/hold` is always held, with nothing sent; `/slow?ms=N` is answered after N ms (1000).
   */
  hold: boolean;
  /** The held answers, in arrival order. */
  held: http.ServerResponse[];
  /** Resolves once `n` answers are held (rejects after 5 s). */
  waitHeld(n: number): Promise<void>;
  /** Finishes every held answer. */
  release(): void;
  /** Answers every request by resetting its connection (a crashed process behind a live port). */
  dead: boolean;
  /**
   * Health probes still to answer; once 0, probes are held (recorded, unanswered) until
   * release(). Undefined (default): every probe is answered. For "back after one good probe"
   * without a race against the probe interval.
   */
  probeBudget: number | undefined;
  /** Closes the listener and resets every open connection: the port refuses from now on. */
  kill(): Promise<void>;
  /** Listens again on the same port. */
  restart(): Promise<void>;
  /** Closes the listener and every connection (held answers are released first). */
  stop(): Promise<void>;
}

/** Starts a recording backend named `name` on 127.0.0.1. */
export async function backend(name: string, options: BackendOptions = {}): Promise<Backend> {
  const sockets = new Set<net.Socket>();
  const finish = new Map<http.ServerResponse, () => void>();
  const waiters = new Set<() => void>();
  const received: Received[] = [];
  const counts: Record<string, number> = {};
  const body = options.body ?? name;
  const b: Backend = {
    name,
    port: options.port ?? 0,
    url: "",
    server: undefined as unknown as http.Server,
    received,
    counts,
    connections: 0,
    requests: () => received.filter((r) => !isProbe(r)),
    served: () => b.requests().length,
    probes: () => received.filter(isProbe).length,
    probesFirst(from) {
      const i = received.findIndex((r, j) => j >= from && !isProbe(r));
      return (i < 0 ? received.length : i) - from;
    },
    status: 200,
    hold: false,
    held: [],
    dead: false,
    probeBudget: undefined,
    waitHeld(n) {
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (b.held.length < n) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`backend ${name}: ${b.held.length} held requests, waited for ${n}`));
        }, 5000);
        waiters.add(check);
        check();
      });
    },
    release() {
      for (const res of b.held.splice(0)) finish.get(res)?.();
      finish.clear();
    },
    kill: async () => {
      const closed = once(b.server, "close");
      b.server.close();
      for (const s of sockets) s.resetAndDestroy();
      await closed;
    },
    restart: async () => {
      b.server = make();
      b.server.listen(b.port, "127.0.0.1");
      await once(b.server, "listening");
    },
    stop: async () => {
      b.release();
      if (!b.server.listening) return;
      const closed = once(b.server, "close");
      b.server.close();
      b.server.closeAllConnections();
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
  const holdAnswer = (res: http.ServerResponse, fn: () => void) => {
    b.held.push(res);
    finish.set(res, fn);
    for (const w of waiters) w();
  };
  const answer = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const text = typeof body === "string" ? body : body(req);
    const head = {
      "content-type": "text/plain",
      "content-length": Buffer.byteLength(text),
      "x-backend": name,
      ...options.headers,
    };
    const end = () => res.end(req.method === "HEAD" ? undefined : text);
    const url = new URL(req.url ?? "/", "http://x");
    if (url.pathname === "/hold") {
      holdAnswer(res, () => {
        res.writeHead(b.status, head);
        end();
      });
      return;
    }
    res.writeHead(b.status, head);
    if (b.hold) {
      res.flushHeaders();
      holdAnswer(res, end);
    } else if (url.pathname === "/slow") setTimeout(end, Number(url.searchParams.get("ms") ?? 1000));
    else end();
  };
  const make = () => {
    const srv = http.createServer({ keepAliveTimeout: 10_000, ...options.http }, (req, res) => {
      const rec: Received = {
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body: 0,
        complete: false,
        dead: b.dead,
      };
      received.push(rec);
      counts[rec.method] = (counts[rec.method] ?? 0) + 1;
      if (b.dead) {
        req.socket.resetAndDestroy();
        return;
      }
      req.once("end", () => {
        rec.complete = true;
      });
      if (options.handler) {
        options.handler(req, res, b);
        return;
      }
      req.on("data", (c: Buffer) => {
        rec.body += c.length;
      });
      req.once("end", () => {
        if (isProbe(rec) && b.probeBudget !== undefined) {
          if (b.probeBudget === 0) {
            holdAnswer(res, () => answer(req, res));
            return;
          }
          b.probeBudget--;
        }
        answer(req, res);
      });
    });
    srv.on("connection", (s: net.Socket) => {
      b.connections++;
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
    });
    srv.on("clientError", (_err, s) => s.destroy());
    return srv;
  };
  b.server = make();
  b.server.listen(b.port, "127.0.0.1");
  await once(b.server, "listening");
  b.port = (b.server.address() as net.AddressInfo).port;
  b.url = `http://127.0.0.1:${b.port}`;
  if (options.cleanup) undoLater(options.cleanup, () => b.stop());
  return b;
}

/** Backends with these names and the same options, started side by side. */
export function backends(names: readonly string[], options: BackendOptions = {}): Promise<Backend[]> {
  return Promise.all(names.map((n) => backend(n, options)));
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
