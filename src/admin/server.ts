/**
 * The admin listener: health JSON and Prometheus metrics. Loopback-only by default; on any
 * other address every request needs `Authorization: Bearer <token>`.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import type { AdminConfig } from "../config/types.ts";
import { ConfigError } from "../errors.ts";
import type { Logger } from "../log.ts";

export interface AdminSource {
  /** `{ "<service>": health JSON }`. */
  health(): Record<string, unknown>;
  metrics(): Promise<{ contentType: string; body: string }>;
}

export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h) || h === "::ffff:127.0.0.1";
}

/** The token protecting a non-loopback admin listener: config first, then SWITCHYARD_ADMIN_TOKEN. */
export function adminToken(c: AdminConfig): string | undefined {
  return c.token || process.env.SWITCHYARD_ADMIN_TOKEN || undefined;
}

export class AdminServer {
  readonly #logger: Logger;
  readonly #source: AdminSource;
  #server: http.Server | undefined;
  #config: AdminConfig | undefined;
  #tokenHash: Buffer | undefined;

  constructor(logger: Logger, source: AdminSource) {
    this.#logger = logger.child({ component: "admin" });
    this.#source = source;
  }

  address(): string | undefined {
    const a = this.#server?.address() as AddressInfo | null | undefined;
    if (!a) return undefined;
    return `${a.family === "IPv6" ? `[${a.address}]` : a.address}:${a.port}`;
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
    this.#tokenHash = open ? digest(`Bearer ${token}`) : undefined;
    if (prev && prev.address === c.address && this.#server) {
      this.#config = c;
      return [];
    }
    const server = http.createServer({ headersTimeout: 10_000, requestTimeout: 30_000 }, (req, res) =>
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
    this.#logger.info(
      { address: this.address(), auth: open ? "bearer token" : "none (loopback)" },
      open
        ? `admin API on ${this.address()} requires Authorization: Bearer <token>`
        : `admin API on ${this.address()} (loopback only, no token)`,
    );
    return prev ? [`admin ${prev.address}→${c.address}`] : [];
  }

  close(): void {
    this.#server?.close();
    this.#server?.closeAllConnections();
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.#tokenHash) {
      const given = req.headers.authorization;
      if (typeof given !== "string" || !timingSafeEqual(digest(given), this.#tokenHash)) {
        res.writeHead(401, {
          "content-type": "application/json",
          "www-authenticate": 'Bearer realm="switchyard"',
        });
        res.end('{"error":"unauthorized"}\n');
        return;
      }
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      json(res, 405, { error: "method not allowed" });
      return;
    }
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/api/health" || path === "/api/health/") {
      json(res, 200, this.#source.health());
      return;
    }
    if (path.startsWith("/api/health/")) {
      let name: string;
      try {
        name = decodeURIComponent(path.slice("/api/health/".length));
      } catch {
        json(res, 400, { error: "bad service name" });
        return;
      }
      const all = this.#source.health();
      if (Object.hasOwn(all, name)) json(res, 200, all[name]);
      else json(res, 404, { error: `no service named ${JSON.stringify(name)}` });
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
    json(res, 404, { error: "not found" });
  }
}

function digest(s: string): Buffer {
  return createHash("sha256").update(s).digest();
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
