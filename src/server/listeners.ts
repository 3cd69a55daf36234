/**
 * The proxy's listening sockets: plain HTTP/1.1, and TLS with HTTP/2 by ALPN. Every HTTP/1
 * connection, plain or TLS, is served by our own front (http1.ts); a TLS connection that chose h2
 * becomes a node:http2 session. Re-bound on reload only where the address or TLS files changed.
 */
import { readFileSync } from "node:fs";
import type * as http2 from "node:http2";
import type { AddressInfo, Server as NetServer } from "node:net";
import * as net from "node:net";
import { dirname, resolve } from "node:path";
import type * as tls from "node:tls";
import { RealIpResolver } from "../balancer/realip.ts";
import type { ListenConfig } from "../config/types.ts";
import type { ProxyRequest, ProxyResponse, UpgradeSocket } from "../http-types.ts";
import { chunkBytes } from "../http1/fallback-server.ts";
import { createHttp1Server } from "../http1/front.ts";
import type { Http1Front } from "../http1/server.ts";
import type { Logger } from "../log.ts";
import { sessionTimeout } from "./h2-websocket.ts";
import { adoptProxiedAddress, type ProxyProtocolError, readProxyHeader } from "./proxy-protocol.ts";

export interface ListenerHandler {
  request(req: ProxyRequest, res: ProxyResponse): void;
  upgrade(req: ProxyRequest, socket: UpgradeSocket, head: Buffer): void;
  /** Whether an `Upgrade: h2c` request is tunnelled (its service allows it); see Http1Handler. */
  h2cUpgrade?(rawHeaders: readonly string[], target: string): boolean;
  /**
   * A CONNECT on the h2 front; with it the front advertises extended CONNECT (RFC 8441), so
   * HTTP/2 clients open WebSockets as CONNECT streams.
   */
  connect?(req: ProxyRequest, res: ProxyResponse): void;
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
  /** The listening socket: the HTTP/1 front itself, or a TLS server that hands connections on. */
  server: NetServer;
  /** Every HTTP/1 connection of this listener. */
  h1: Http1Front;
  /** TLS listener: the HTTP/2 sessions, for graceful close. */
  sessions: Set<Pick<http2.ServerHttp2Session, "close" | "destroy">>;
  /** TLS listener behind a PROXY protocol reader: the TLS server the reader hands connections to. */
  tlsServer?: tls.Server;
  /** PROXY protocol settings, updated in place on reload. */
  pp?: { trust: RealIpResolver; timeout: number };
}

function keyOf(c: ListenConfig, base: string): string {
  // trusted peers and timeout change in place (apply); only turning it on or off rebinds
  const pp = c.proxyProtocol ? " proxy_protocol" : "";
  return (
    (c.tls ? `${c.address} tls ${resolve(base, c.tls.cert)} ${resolve(base, c.tls.key)}` : c.address) + pp
  );
}

export class Listeners {
  readonly #logger: Logger;
  readonly #handler: ListenerHandler;
  readonly #onProxyError: ((reason: ProxyProtocolError) => void) | undefined;
  #bound: Bound[] = [];
  #clientHeader = 30_000;

  constructor(logger: Logger, handler: ListenerHandler, onProxyError?: (reason: ProxyProtocolError) => void) {
    this.#logger = logger;
    this.#handler = handler;
    this.#onProxyError = onProxyError;
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
        existing.h1.setTimeouts(headerOptions(clientHeader));
        if (existing.pp !== undefined && c.proxyProtocol !== undefined) {
          existing.pp.trust = new RealIpResolver({ from: c.proxyProtocol.trusted });
          existing.pp.timeout = c.proxyProtocol.timeout;
        }
        if (c.tls) {
          try {
            (existing.tlsServer ?? (existing.server as tls.Server)).setSecureContext(readTls(c, base));
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
    const logger = this.#logger;
    const h1 = createHttp1Server(
      {
        request: h.request,
        upgrade: h.upgrade,
        h2cUpgrade: h.h2cUpgrade,
        clientError: (err) => logger.debug({ err }, "bad request from a client"),
        handlerError: (err) => logger.error({ err }, "request handler failed"),
      },
      { ...SERVER_TIMEOUTS, ...headerOptions(this.#clientHeader) },
    );
    const b: Bound = { key, config: c, server: h1, h1, sessions: new Set() };
    if (c.tls) {
      // node:http2 with allowHTTP1 would serve HTTP/1.1 through node:http; the TLS server picks
      // the protocol by ALPN instead and hands each connection to its front
      const h2 = process.getBuiltinModule("node:http2").createServer({
        Http2ServerResponse: countingH2Response() as unknown as typeof http2.Http2ServerResponse,
        ...(h.connect ? { settings: { enableConnectProtocol: true } } : {}),
      });
      h2.on("request", h.request);
      if (h.connect) h2.on("connect", h.connect);
      // Expect: 100-continue goes on to the backend, whose 100 is relayed: no early 100 from node
      h2.on("checkContinue", h.request);
      h2.on("session", (session) => {
        b.sessions.add(session);
        session.on("error", ignore);
        session.once("close", () => b.sessions.delete(session));
      });
      h2.on("sessionError", ignore);
      h2.setTimeout(SERVER_TIMEOUTS.requestTimeout);
      // a session idle that long is closed, unless it carries a WebSocket (RFC 8441)
      h2.on("timeout", sessionTimeout(SERVER_TIMEOUTS.requestTimeout));
      const server = process
        .getBuiltinModule("node:tls")
        .createServer({ ...readTls(c, base), ALPNProtocols: ["h2", "http/1.1"] }, (socket) => {
          if (c.proxyProtocol) adoptProxiedAddress(socket);
          if (socket.alpnProtocol === "h2") h2.emit("connection", socket);
          else h1.emit("connection", socket);
        });
      server.on("tlsClientError", (err) => logger.debug({ err }, "TLS handshake failed"));
      server.once("close", () => {
        h1.close();
        h2.close();
      });
      b.server = server;
      b.tlsServer = server;
    }
    const pp = c.proxyProtocol;
    if (pp !== undefined) {
      // the PROXY header comes first: read here, then the connection goes to the TLS or HTTP/1 server
      const inner = b.server;
      const settings = { trust: new RealIpResolver({ from: pp.trusted }), timeout: pp.timeout };
      b.pp = settings;
      const onError = this.#onProxyError;
      b.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) =>
        readProxyHeader(socket, {
          isTrusted: (a) => settings.trust.isTrusted(a),
          timeout: settings.timeout,
          accept: (s) => inner.emit("connection", s),
          refuse: (reason, s) => {
            // a balancer's TCP health check connects and closes: not an error
            if (reason === "closed") return;
            onError?.(reason);
            logger.debug(
              { reason, peer: s.remoteAddress, address: c.address },
              "PROXY protocol header refused",
            );
          },
        }),
      );
    }
    const server = b.server;
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
    for (const b of this.#bound) b.h1.closeIdleConnections();
  }

  /** Destroys every remaining connection. */
  destroyAll(): void {
    for (const b of this.#bound) {
      b.h1.closeAllConnections();
      for (const s of b.sessions) s.destroy();
    }
  }
}

function stopBound(b: Bound): void {
  if (b.server !== b.h1) b.server.close();
  if (b.tlsServer !== undefined && b.tlsServer !== b.server) b.tlsServer.close();
  b.h1.close();
  for (const s of b.sessions) s.close();
}

/** Closes a listener that is no longer configured: stop accepting, drain, then force after `grace` ms. */
async function closeBound(b: Bound, grace: number): Promise<void> {
  const closed = new Promise<void>((r) => b.server.once("close", () => r()));
  stopBound(b);
  const timer = setInterval(() => b.h1.closeIdleConnections(), 250);
  const force = setTimeout(() => {
    b.h1.closeAllConnections();
    for (const s of b.sessions) s.destroy();
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

function ignore(): void {}

let countingH2: (new (stream: http2.ServerHttp2Stream) => http2.Http2ServerResponse) | undefined;

/**
 * http2's compatibility response, counting the body bytes written (the access log's `bytes`).
 * Defined at the first TLS listener: node:http2 (and TLS) load only when a listener needs them.
 */
function countingH2Response(): new (stream: http2.ServerHttp2Stream) => http2.Http2ServerResponse {
  countingH2 ??= class CountingH2Response extends process.getBuiltinModule("node:http2").Http2ServerResponse {
    bytesSent = 0;
    override write(chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
      this.bytesSent += chunkBytes(chunk, encoding);
      return (super.write as (...a: unknown[]) => boolean)(chunk, encoding, cb);
    }
    override end(chunk?: unknown, encoding?: unknown, cb?: unknown): this {
      if (!this.writableEnded) this.bytesSent += chunkBytes(chunk, encoding);
      return (super.end as (...a: unknown[]) => this)(chunk, encoding, cb);
    }
  };
  return countingH2;
}
