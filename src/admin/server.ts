/**
 * The admin listener: health JSON, Prometheus metrics, live stats and events, and the server
 * actions (drain, maint, ready, weight, wake, stop). Loopback-only by default; a non-loopback
 * address needs a token, and a set token is needed on every address. Every request passes the
 * Host and Origin checks of auth.ts first; writes take JSON bodies only.
 */
import type * as http from "node:http";
import type { AddressInfo } from "node:net";
import type { AdminConfig } from "../config/types.ts";
import { ConfigError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Service } from "../server/services.ts";
import { type AdminOp, type Answer, allowedMethod, findServer, HttpError, parseOp } from "./actions.ts";
import { adminToken, hostRefusal, isLoopback, originRefusal, TokenCheck } from "./auth.ts";
import type { EventLog } from "./events.ts";
import { EventStreams } from "./sse.ts";
import { renderSnapshot, type StatsSnapshot } from "./stats.ts";

// node:http taken with getBuiltinModule, not an ES import: importing it as an ES module reads
// every export, and its lazy ones (WebSocket & co.) load undici, tls, http2 and zlib: ~13 MB of RSS
const nodeHttp = process.getBuiltinModule("node:http");

export { adminToken, isLoopback };

export interface AdminSource {
  /** `{ "<service>": health JSON }` (with workers: each server's in-flight count summed over them). */
  health(): Promise<Record<string, unknown>>;
  metrics(): Promise<{ contentType: string; body: string }>;
  /** The last minute of every service and server (every worker's, added up). */
  stats(): Promise<StatsSnapshot>;
  readonly events: EventLog;
  /** The services of the running config. */
  services(): ReadonlyMap<string, Service>;
  /** Applies an action everywhere it must go (with workers: in every one) and answers. */
  act(op: AdminOp, capped: string | undefined): Promise<Answer>;
  /** The shutdown timeout (ms): the longest a drain may wait. */
  shutdownTimeout(): number;
}

/**
 * The dashboard (src/admin/dashboard.ts): handles a GET for `/` or `/dashboard/...` and returns
 * true. Its HTML and assets load without the token (the page asks for it); its data comes from
 * the API, which needs it.
 */
export type DashboardHandler = (req: http.IncomingMessage, res: http.ServerResponse, path: string) => boolean;

/** Largest accepted request body. */
const MAX_BODY = 16 * 1024;
const ACTION_PATH = /^\/api\/services\/([^/]+)\/servers\/([^/]+)\/([a-z]+)$/;

export class AdminServer {
  readonly #logger: Logger;
  readonly #source: AdminSource;
  readonly #dashboard: DashboardHandler | undefined;
  readonly #streams: EventStreams;
  #server: http.Server | undefined;
  #config: AdminConfig | undefined;
  #token = new TokenCheck(undefined);

  constructor(logger: Logger, source: AdminSource, dashboard?: DashboardHandler) {
    this.#logger = logger.child({ component: "admin" });
    this.#source = source;
    this.#dashboard = dashboard;
    this.#streams = new EventStreams(source.events);
  }

  address(): string | undefined {
    const a = this.#server?.address() as AddressInfo | null | undefined;
    if (!a) return undefined;
    return `${a.family === "IPv6" ? `[${a.address}]` : a.address}:${a.port}`;
  }

  /** The event streams (tests read their counters). */
  get streams(): EventStreams {
    return this.#streams;
  }

  /** Binds (or re-binds when the address changed). Throws ConfigError when a token is needed but missing. */
  async apply(c: AdminConfig): Promise<string[]> {
    const token = adminToken(c);
    const open = !isLoopback(c.host);
    if (open && !token) {
      throw new ConfigError(
        `admin is bound to ${c.address}, which is not loopback: set admin.token in the config or SWITCHYARD_ADMIN_TOKEN (or bind admin to 127.0.0.1)`,
      );
    }
    const prev = this.#config;
    const tokenChanged = prev !== undefined && adminToken(prev) !== token;
    this.#token = new TokenCheck(token);
    if (prev && prev.address === c.address && this.#server) {
      this.#config = c;
      // streams opened with the old token end (their clients reconnect with the new one)
      if (tokenChanged) this.#streams.close();
      return tokenChanged ? ["admin token"] : [];
    }
    const server = nodeHttp.createServer({ headersTimeout: 10_000, requestTimeout: 30_000 }, (req, res) =>
      this.#handle(req, res),
    );
    server.on("clientError", (_err, socket) => socket.destroy());
    await new Promise<void>((ok, fail) => {
      server.once("error", (err: NodeJS.ErrnoException) =>
        fail(new Error(`cannot listen on admin ${c.address}: ${err.code ?? err.message}`, { cause: err })),
      );
      server.listen({ host: c.host, port: c.port }, () => ok());
    });
    server.removeAllListeners("error");
    server.on("error", (err) => this.#logger.error({ err }, "admin listener error"));
    const old = this.#server;
    this.#server = server;
    this.#config = c;
    if (old) {
      old.close();
      old.closeAllConnections();
    }
    // never the token itself
    this.#logger.info(
      { address: this.address(), auth: token ? "bearer token" : "none (loopback)" },
      token
        ? `admin API on ${this.address()} requires Authorization: Bearer <token>`
        : `admin API on ${this.address()} (loopback only, no token)`,
    );
    return prev ? [`admin ${prev.address}→${c.address}`] : [];
  }

  close(): void {
    this.#streams.close();
    this.#server?.close();
    this.#server?.closeAllConnections();
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const refused = hostRefusal(req, this.#config?.host ?? "") ?? originRefusal(req);
    if (refused !== undefined) {
      json(res, 403, { error: refused });
      return;
    }
    const method = req.method ?? "GET";
    const path = (req.url ?? "/").split("?")[0];
    const read = method === "GET" || method === "HEAD";
    if (read && this.#dashboard !== undefined && (path === "/" || path.startsWith("/dashboard/"))) {
      if (this.#dashboard(req, res, path)) return;
    }
    if (!this.#token.allows(req)) {
      res.writeHead(401, {
        "content-type": "application/json; charset=utf-8",
        "www-authenticate": 'Bearer realm="switchyard"',
        "cache-control": "no-store",
      });
      res.end('{"error":"unauthorized: send Authorization: Bearer <admin token>"}\n');
      return;
    }
    try {
      if (path.startsWith("/api/services/")) {
        this.#action(req, res, method, path);
        return;
      }
      if (!read) {
        res.setHeader("allow", "GET, HEAD");
        throw new HttpError(405, `${method} is not allowed on ${path}`);
      }
      this.#read(req, res, path);
    } catch (err) {
      this.#fail(res, err);
    }
  }

  #read(req: http.IncomingMessage, res: http.ServerResponse, path: string): void {
    if (path === "/api/health" || path === "/api/health/") {
      this.#source.health().then(
        (all) => json(res, 200, all),
        (err) => this.#fail(res, err),
      );
      return;
    }
    if (path.startsWith("/api/health/")) {
      const name = decode(path.slice("/api/health/".length));
      if (!this.#source.services().has(name))
        throw new HttpError(404, `no service named ${JSON.stringify(name)}`);
      this.#source.health().then(
        (all) => json(res, 200, all[name]),
        (err) => this.#fail(res, err),
      );
      return;
    }
    if (path === "/api/stats") {
      this.#source.stats().then(
        (snap) => json(res, 200, renderSnapshot(snap)),
        (err) => this.#fail(res, err),
      );
      return;
    }
    if (path === "/api/events") {
      if (req.method === "HEAD") {
        res.writeHead(200, {
          "content-type": "text/event-stream; charset=utf-8",
          "cache-control": "no-store",
        });
        res.end();
        return;
      }
      if (!this.#streams.open(req, res)) throw new HttpError(503, "too many event-stream clients");
      return;
    }
    if (path === "/metrics") {
      this.#source.metrics().then(
        ({ contentType, body }) => {
          res.writeHead(200, { "content-type": contentType, "cache-control": "no-store" });
          res.end(body);
        },
        (err) => {
          this.#logger.error({ err }, "metrics collection failed");
          json(res, 500, { error: "metrics collection failed" });
        },
      );
      return;
    }
    throw new HttpError(404, `nothing at ${path}`);
  }

  #action(req: http.IncomingMessage, res: http.ServerResponse, method: string, path: string): void {
    const m = ACTION_PATH.exec(path);
    if (m === null) throw new HttpError(404, `nothing at ${path}`);
    const [service, server, action] = [decode(m[1]), decode(m[2]), m[3]];
    const want = allowedMethod(action);
    if (want === undefined) throw new HttpError(404, `no action named ${JSON.stringify(action)}`);
    if (method !== want) {
      res.setHeader("allow", want);
      throw new HttpError(405, `${action} takes ${want}`);
    }
    findServer(this.#source.services(), service, server);
    const type = req.headers["content-type"];
    if (typeof type !== "string" || type.split(";")[0].trim().toLowerCase() !== "application/json") {
      throw new HttpError(415, "send the body as Content-Type: application/json");
    }
    readBody(req)
      .then((text) => {
        let body: unknown = {};
        if (text.trim() !== "") {
          try {
            body = JSON.parse(text);
          } catch (err) {
            throw new HttpError(400, `malformed JSON: ${(err as Error).message}`);
          }
        }
        const { op, capped } = parseOp(action, service, server, body, this.#source.shutdownTimeout());
        this.#logger.info({ service, server, action }, `admin: ${action} ${service}/${server}`);
        return this.#source.act(op, capped);
      })
      .then(
        (answer) => json(res, answer.status, answer.body),
        (err) => this.#fail(res, err),
      );
  }

  #fail(res: http.ServerResponse, err: unknown): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (err instanceof HttpError) {
      json(res, err.status, { error: err.message });
      return;
    }
    this.#logger.error({ err }, "admin request failed");
    json(res, 500, { error: `internal error: ${(err as Error).message}` });
  }
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new HttpError(400, `bad percent-encoding in ${JSON.stringify(s)}`);
  }
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((ok, fail) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      // the rest is read and dropped (requestTimeout bounds it), so the 413 reaches the client
      if (size > MAX_BODY) fail(new HttpError(413, `the body is larger than ${MAX_BODY} bytes`));
      else chunks.push(c);
    });
    req.on("end", () => ok(Buffer.concat(chunks).toString("utf8")));
    req.on("error", fail);
  });
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
  });
  res.end(text);
}
