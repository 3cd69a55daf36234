/**
 * The HTTP/1.1 front end of plain proxy listeners. Requests are parsed by Node's own llhttp binding
 * (the parser node:http's server uses, with its strict settings and header size limit); what
 * node:http adds around it — an IncomingMessage stream and a ServerResponse stream per request,
 * their events and ticks — measured ~40% of the CPU of a proxied request, so requests and responses
 * here are plain objects that keep the part of node:http's API the balancer and proxy use
 * (`method`, `url`, `rawHeaders`, `headers`, `socket`; `writeHead`, `write`, `end`, `setHeader`,
 * 'close', 'drain'). Handlers see them as ProxyRequest/ProxyResponse (src/http-types.ts), which
 * node:http's and http2's objects satisfy too. TLS listeners stay on
 * node:http/http2 (ALPN); the library's `lb.handle` works with either.
 *
 * Behaviour follows node:http's server: keep-alive and pipelining (responses in order), 100-continue
 * and 417, 400 for a missing Host on HTTP/1.1, 431 for oversized heads, 408 when a head or body
 * arrives too slowly, chunked responses when the length is unknown (close-delimited for HTTP/1.0),
 * unread request bodies discarded after the response so the connection can carry the next one.
 */

import * as net from "node:net";
import type { ProxyRequest, ProxyResponse } from "../http-types.ts";
import { H1Connection } from "./server-connection.ts";

export interface Http1Handler {
  request(req: ProxyRequest, res: ProxyResponse): void;
  upgrade(req: ProxyRequest, socket: net.Socket, head: Buffer): void;
  /**
   * Whether an `Upgrade: h2c` request (head only: raw headers and target) goes to `upgrade`;
   * absent or false: it is served as a plain request, its Upgrade dropped.
   */
  h2cUpgrade?(rawHeaders: readonly string[], target: string): boolean;
  /** A request that could not be parsed (answered 400/408/431 here); for the debug log. */
  clientError?(err: Error, socket: net.Socket): void;
  /** A handler threw: the request was answered 500 (or its connection closed). */
  handlerError?(err: unknown): void;
}

export interface Http1Timeouts {
  /** From the first byte of a request head to its end (slowloris bound): 408. */
  headersTimeout: number;
  /** From the first byte of a request to its last (body included): 408. */
  requestTimeout: number;
  /** Idle time allowed between two requests on a connection. */
  keepAliveTimeout: number;
  /** How often the timeouts above are checked. */
  connectionsCheckingInterval: number;
  /**
   * Time an answer may wait for a client that does not read it (nginx's send_timeout); the
   * connection is closed then. Default 60 s.
   */
  sendTimeout?: number;
}

/** What the listeners need of an HTTP/1.1 front, native (H1Server) or fallback (node:http). */
export interface Http1Front extends net.Server {
  /** Updates timeouts (reload); the checking interval is fixed at listen time. */
  setTimeouts(t: Partial<Http1Timeouts>): void;
  closeIdleConnections(): void;
  closeAllConnections(): void;
}

/**
 * A net.Server speaking HTTP/1.1 through `handler`; closeIdleConnections/closeAllConnections
 * as node:http's server has them.
 */
export class H1Server extends net.Server implements Http1Front {
  readonly handler: Http1Handler;
  readonly timeouts: Http1Timeouts;
  readonly live = new Set<H1Connection>();
  closing = false;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(handler: Http1Handler, timeouts: Http1Timeouts) {
    super({ allowHalfOpen: true, noDelay: true });
    this.handler = handler;
    this.timeouts = { ...timeouts };
    this.on("connection", (socket: net.Socket) => {
      this.live.add(new H1Connection(this, socket));
      // started by the first connection: a TLS listener hands connections to a front that never listens
      if (this.#sweeper === undefined) {
        this.#sweeper = setInterval(sweep, this.timeouts.connectionsCheckingInterval, this);
        this.#sweeper.unref();
      }
    });
  }

  get keepAliveSeconds(): number {
    return Math.floor(this.timeouts.keepAliveTimeout / 1000);
  }

  /** Updates timeouts (reload); the checking interval is fixed at listen time. */
  setTimeouts(t: Partial<Http1Timeouts>): void {
    Object.assign(this.timeouts, t);
  }

  forget(conn: H1Connection): void {
    this.live.delete(conn);
    if (this.closing && this.live.size === 0) this.#stopSweeping();
  }

  #stopSweeping(): void {
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }

  override close(callback?: (err?: Error) => void): this {
    this.closing = true;
    super.close(callback);
    this.closeIdleConnections();
    // the sweep goes on while connections drain (timeouts still apply), then stops
    if (this.live.size === 0) this.#stopSweeping();
    return this;
  }

  closeIdleConnections(): void {
    for (const c of this.live) if (c.idle) c.socket.destroy();
  }

  closeAllConnections(): void {
    for (const c of this.live) c.socket.destroy();
  }
}

function sweep(server: H1Server): void {
  const now = Date.now();
  const t = server.timeouts;
  for (const c of server.live) c.check(now, t);
}
