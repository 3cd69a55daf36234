/**
 * The proxy's listening sockets: plain HTTP/1.1 (our own front on llhttp, http1.ts), and TLS with
 * HTTP/2 by ALPN (node:http2, HTTP/1.1 fallback through node:http). Re-bound on reload only where
 * the address or TLS files changed.
 */
import { readFileSync } from "node:fs";
import type * as http from "node:http";
import * as http2 from "node:http2";
import type { AddressInfo, Socket } from "node:net";
import { dirname, resolve } from "node:path";
import type { Duplex } from "node:stream";
import type { ListenConfig } from "../config/types.ts";
import type { Logger } from "../log.ts";
import { endWithError } from "../proxy/respond.ts";
import { H1Server } from "./http1.ts";

export interface ListenerHandler {
  request(req: http.IncomingMessage, res: http.ServerResponse): void;
  upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void;
}

/** Server-side timeouts: bounded whole-request time, keep-alive idle (headers: `timeouts.client_header`). */
export const SERVER_TIMEOUTS = {
  requestTimeout: 300_000,
  keepAliveTimeout: 30_000,
} as const;

/**
 * node:http enforces the header timeout on a periodic sweep (default every 30 s); sweep often
 * enough that a slowloris client is cut off close to the configured time.
 */
function headerOptions(clientHeader: number) {
  return {
    headersTimeout: clientHeader,
    // node refuses a header timeout longer than the whole-request timeout
    requestTimeout: Math.max(SERVER_TIMEOUTS.requestTimeout, clientHeader),
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(clientHeader / 4))),
  };
}

interface Bound {
  key: string;
  config: ListenConfig;
  server: H1Server | http2.Http2SecureServer;
  /** TLS listener: its HTTP/2 sessions and HTTP/1 sockets, for graceful close. */
  sessions: Set<http2.ServerHttp2Session>;
  h1: Set<Socket>;
}

function keyOf(c: ListenConfig, base: string): string {
  return c.tls ? `${c.address} tls ${resolve(base, c.tls.cert)} ${resolve(base, c.tls.key)}` : c.address;
}

export class Listeners {
  readonly #logger: Logger;
  readonly #handler: ListenerHandler;
  #bound: Bound[] = [];
  #clientHeader = 30_000;

  constructor(logger: Logger, handler: ListenerHandler) {
    this.#logger = logger;
    this.#handler = handler;
  }

  /** Bound addresses as `host:port` (IPv6 in brackets), in config order. */
  addresses(): { address: string; tls: boolean }[] {
    return this.#bound.map((b) => {
      const a = b.server.address() as AddressInfo | null;
      const host = a ? (a.family === "IPv6" ? `[${a.address}]` : a.address) : b.config.host;
      return { address: `${host}:${a ? a.port : b.config.port}`, tls: b.config.tls !== undefined };
    });
  }

  /**
   * Binds what is new, closes what is gone, keeps what is unchanged (TLS certificates are
   * re-read). A listener that fails to bind rejects with every failure; nothing is closed then.
   */
  async apply(
    listen: readonly ListenConfig[],
    file: string | undefined,
    clientHeader = 30_000,
  ): Promise<string[]> {
    this.#clientHeader = clientHeader;
    const base = file ? dirname(resolve(file)) : process.cwd();
    const keep: Bound[] = [];
    const fresh: Bound[] = [];
    const errors: Error[] = [];
    const current = new Map(this.#bound.map((b) => [b.key, b]));
    const changes: string[] = [];
    for (const c of listen) {
      const key = keyOf(c, base);
      const existing = current.get(key);
      if (existing) {
        current.delete(key);
        // the sweep interval is fixed at bind time; the timeout itself applies to new requests
        if (existing.server instanceof H1Server) existing.server.setTimeouts(headerOptions(clientHeader));
        else Object.assign(existing.server, headerOptions(clientHeader));
        if (c.tls) {
          try {
            (existing.server as http2.Http2SecureServer).setSecureContext(readTls(c, base));
          } catch (err) {
            errors.push(err as Error);
          }
        }
        keep.push(existing);
        continue;
      }
      try {
        fresh.push(await this.#bind(c, key, base));
        changes.push(`+listen ${c.address}${c.tls ? " (tls)" : ""}`);
      } catch (err) {
        errors.push(err as Error);
      }
    }
    if (errors.length) {
      await Promise.all(fresh.map((b) => closeBound(b, 0)));
      throw new AggregateError(errors, `cannot listen: ${errors.map((e) => e.message).join("; ")}`);
    }
    for (const b of current.values()) {
      changes.push(`-listen ${b.config.address}`);
      void closeBound(b, 30_000);
    }
    this.#bound = [...keep, ...fresh];
    return changes;
  }

  async #bind(c: ListenConfig, key: string, base: string): Promise<Bound> {
    const h = this.#handler;
    let server: H1Server | http2.Http2SecureServer;
    const b: Bound = { key, config: c, server: undefined as never, sessions: new Set(), h1: new Set() };
    if (c.tls) {
      const tls = readTls(c, base);
      const s = http2.createSecureServer({
        ...tls,
        allowHTTP1: true,
        http1Options: {
          keepAliveTimeout: SERVER_TIMEOUTS.keepAliveTimeout,
          ...headerOptions(this.#clientHeader),
        },
      });
      s.on("request", h.request as never);
      s.on("upgrade", h.upgrade);
      s.on("session", (session) => {
        b.sessions.add(session);
        session.on("error", ignore);
        session.once("close", () => b.sessions.delete(session));
      });
      s.on("secureConnection", (socket) => {
        if (socket.alpnProtocol === "h2") return;
        b.h1.add(socket);
        socket.once("close", () => b.h1.delete(socket));
      });
      s.on("tlsClientError", (err) => this.#logger.debug({ err }, "TLS handshake failed"));
      s.on("sessionError", ignore);
      s.setTimeout(SERVER_TIMEOUTS.requestTimeout);
      server = s;
    } else {
      const logger = this.#logger;
      server = new H1Server(
        {
          request: h.request,
          upgrade: h.upgrade,
          clientError: (err) => logger.debug({ err }, "bad request from a client"),
        },
        { ...SERVER_TIMEOUTS, ...headerOptions(this.#clientHeader) },
      );
    }
    if (!(server instanceof H1Server)) server.on("clientError", onClientError);
    b.server = server;
    await new Promise<void>((ok, fail) => {
      const onError = (err: NodeJS.ErrnoException) => {
        fail(new Error(`cannot listen on ${c.address}: ${err.code ?? err.message}`, { cause: err }));
      };
      server.once("error", onError);
      server.listen({ host: c.host, port: c.port }, () => {
        server.off("error", onError);
        server.on("error", (err) => this.#logger.error({ err, address: c.address }, "listener error"));
        ok();
      });
    });
    return b;
  }

  /** Stops accepting; idle connections close now, busy ones after their response (HTTP/1: Connection: close). */
  stopAccepting(): void {
    for (const b of this.#bound) stopBound(b);
  }

  /** Closes idle HTTP/1 connections (called while draining). */
  closeIdle(): void {
    for (const b of this.#bound) {
      if (b.server instanceof H1Server) b.server.closeIdleConnections();
      for (const s of b.h1) if (!(s as { _httpMessage?: unknown })._httpMessage) s.destroy();
    }
  }

  /** Destroys every remaining connection. */
  destroyAll(): void {
    for (const b of this.#bound) {
      if (b.server instanceof H1Server) b.server.closeAllConnections();
      for (const s of b.sessions) s.destroy();
      for (const s of b.h1) s.destroy();
    }
  }
}

function stopBound(b: Bound): void {
  b.server.close();
  for (const s of b.sessions) s.close();
  if (b.server instanceof H1Server) b.server.closeIdleConnections();
}

/** Closes a listener that is no longer configured: stop accepting, drain, then force after `grace` ms. */
async function closeBound(b: Bound, grace: number): Promise<void> {
  const closed = new Promise<void>((r) => b.server.once("close", () => r()));
  stopBound(b);
  const timer = setInterval(() => {
    if (b.server instanceof H1Server) b.server.closeIdleConnections();
    for (const s of b.h1) if (!(s as { _httpMessage?: unknown })._httpMessage) s.destroy();
  }, 250);
  const force = setTimeout(() => {
    if (b.server instanceof H1Server) b.server.closeAllConnections();
    for (const s of b.sessions) s.destroy();
    for (const s of b.h1) s.destroy();
  }, grace);
  force.unref();
  await closed;
  clearInterval(timer);
  clearTimeout(force);
}

function readTls(c: ListenConfig, base: string): { cert: Buffer; key: Buffer } {
  const tls = c.tls!;
  const certFile = resolve(base, tls.cert);
  const keyFile = resolve(base, tls.key);
  try {
    return { cert: readFileSync(certFile), key: readFileSync(keyFile) };
  } catch (err) {
    throw new Error(`listen ${c.address}: cannot read TLS files: ${(err as Error).message}`, { cause: err });
  }
}

/** Malformed requests get a status and a closed connection; nothing a client sends can crash us. */
function onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === "ECONNRESET" || !socket.writable || (socket as Socket).bytesWritten > 0) {
    socket.destroy();
    return;
  }
  const [status, text] =
    err.code === "HPE_HEADER_OVERFLOW"
      ? [431, "Request Header Fields Too Large"]
      : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? [408, "Request Timeout"]
        : [400, "Bad Request"];
  endWithError(socket, status, text);
}

function ignore(): void {}
