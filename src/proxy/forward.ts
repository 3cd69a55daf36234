import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { type Dispatcher, Pool } from "undici";
import type { Server } from "../balancer/server.ts";
import { downstreamHeaders, upstreamHeaders } from "./headers.ts";

export interface ForwarderOptions {
  connectTimeout: number;
  responseHeaderTimeout: number;
  idleTimeout: number;
  /** Attempts per request including the first (default 3). */
  maxAttempts?: number;
}

/** What the forwarder needs from a balancer: retries and passive health. */
export interface ForwardHost {
  readonly logger: { warn(obj: object, msg: string): void; debug(obj: object, msg: string): void };
  clientIp(req: IncomingMessage): string;
  readonly realIp: { isTrusted(addr: string | undefined): boolean };
  pickRetry(req: IncomingMessage, tried: readonly Server[]): Server | undefined;
  reportFailure(server: Server, err: unknown): void;
}

export interface Forwarder {
  forward(host: ForwardHost, req: IncomingMessage, res: ServerResponse, server: Server): void;
  /** Proxies an HTTP upgrade (WebSocket) and pipes both sockets. */
  upgrade(host: ForwardHost, req: IncomingMessage, socket: Duplex, head: Buffer, server: Server): void;
  /** Closes the upstream pool of a removed server once its requests finish. */
  release(server: Server): void;
  close(): Promise<void>;
}

const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS"]);

type FailureKind = "refused" | "reset" | "timeout" | "other";

export function classify(err: unknown): FailureKind {
  const e = err as { code?: string; cause?: { code?: string } };
  const code = e?.code ?? "";
  const cause = e?.cause?.code ?? "";
  if (
    code === "ECONNREFUSED" ||
    cause === "ECONNREFUSED" ||
    code === "UND_ERR_CONNECT_TIMEOUT" ||
    code === "ENOTFOUND" ||
    code === "EHOSTUNREACH" ||
    code === "ENETUNREACH"
  )
    return "refused";
  if (code === "UND_ERR_HEADERS_TIMEOUT") return "timeout";
  if (
    code === "ECONNRESET" ||
    code === "EPIPE" ||
    code === "UND_ERR_SOCKET" ||
    code === "UND_ERR_CLOSED" ||
    cause === "ECONNRESET"
  )
    return "reset";
  return "other";
}

export function createForwarder(options: ForwarderOptions): Forwarder {
  return new UndiciForwarder(options);
}

class UndiciForwarder implements Forwarder {
  readonly #opts: ForwarderOptions;
  readonly #pools = new Map<Server, Pool>();
  readonly #maxAttempts: number;

  constructor(opts: ForwarderOptions) {
    this.#opts = opts;
    this.#maxAttempts = opts.maxAttempts ?? 3;
  }

  #pool(server: Server): Pool {
    let pool = this.#pools.get(server);
    if (pool === undefined) {
      pool = new Pool(server.url.origin, {
        connect: { timeout: this.#opts.connectTimeout },
        headersTimeout: this.#opts.responseHeaderTimeout,
        bodyTimeout: this.#opts.idleTimeout,
        keepAliveTimeout: 4000,
        pipelining: 1,
      });
      this.#pools.set(server, pool);
    }
    return pool;
  }

  release(server: Server): void {
    const pool = this.#pools.get(server);
    if (!pool) return;
    this.#pools.delete(server);
    void pool.close().catch(() => {});
  }

  async close(): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.allSettled(pools.map((p) => p.destroy()));
  }

  forward(host: ForwardHost, req: IncomingMessage, res: ServerResponse, server: Server): void {
    const attempt = new Attempt(this, host, req, res);
    attempt.send(server);
  }

  upgrade(host: ForwardHost, req: IncomingMessage, socket: Duplex, head: Buffer, server: Server): void {
    const headers = upstreamHeaders(req, {
      clientIp: host.clientIp(req),
      trusted: host.realIp.isTrusted(req.socket.remoteAddress),
    });
    // upstreamHeaders drops Connection/Upgrade as hop-by-hop; an upgrade must carry them
    const upgradeTo = String(req.headers.upgrade ?? "websocket");
    socket.on("error", () => {});
    if (head.length) socket.unshift(head);
    server.inflight++;
    let released = false;
    const release = () => {
      if (!released) {
        released = true;
        server.inflight--;
      }
    };
    this.#pool(server)
      .upgrade({ path: req.url ?? "/", method: req.method ?? "GET", headers, protocol: upgradeTo })
      .then(
        ({ headers: resHeaders, socket: upstream }) => {
          let out = "HTTP/1.1 101 Switching Protocols\r\n";
          for (const [k, v] of Object.entries(resHeaders)) {
            if (v === undefined) continue;
            for (const x of Array.isArray(v) ? v : [v]) out += `${k}: ${x}\r\n`;
          }
          socket.write(`${out}\r\n`);
          upstream.on("error", () => socket.destroy());
          socket.on("error", () => upstream.destroy());
          upstream.on("close", release);
          socket.on("close", () => upstream.destroy());
          upstream.pipe(socket);
          socket.pipe(upstream);
        },
        (err: unknown) => {
          release();
          const kind = classify(err);
          if (kind === "refused" || kind === "reset") host.reportFailure(server, err);
          socket.end(
            "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\ncontent-length: 12\r\nconnection: close\r\n\r\nBad Gateway\n",
          );
        },
      );
  }

  dispatch(server: Server, opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): void {
    this.#pool(server).dispatch(opts, handler);
  }

  get maxAttempts(): number {
    return this.#maxAttempts;
  }
}

/** One client request's journey through one or more upstream attempts. */
class Attempt implements Dispatcher.DispatchHandler {
  readonly #fw: UndiciForwarder;
  readonly #host: ForwardHost;
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  #tried: Server[] = [];
  #server!: Server;
  #controller: Dispatcher.DispatchController | undefined;
  #started = false;
  #done = false;
  #bodySent = false;
  #headers: string[] | undefined;
  readonly #hasBody: boolean;

  constructor(fw: UndiciForwarder, host: ForwardHost, req: IncomingMessage, res: ServerResponse) {
    this.#fw = fw;
    this.#host = host;
    this.#req = req;
    this.#res = res;
    const te = req.headers["transfer-encoding"];
    const cl = req.headers["content-length"];
    this.#hasBody = te !== undefined || (cl !== undefined && cl !== "0");
    res.once("close", () => {
      if (!this.#done) {
        this.#done = true;
        this.#controller?.abort(new Error("client closed"));
      }
    });
    res.on("drain", () => this.#controller?.resume());
  }

  send(server: Server): void {
    this.#server = server;
    this.#tried.push(server);
    server.inflight++;
    this.#started = false;
    const req = this.#req;
    this.#headers ??= upstreamHeaders(req, {
      clientIp: this.#host.clientIp(req),
      trusted: this.#host.realIp.isTrusted(req.socket.remoteAddress),
    });
    if (this.#hasBody) this.#bodySent = true;
    this.#fw.dispatch(
      server,
      {
        path: req.url ?? "/",
        method: req.method ?? "GET",
        headers: this.#headers,
        body: this.#hasBody ? req : null,
      },
      this,
    );
  }

  #finish(): void {
    this.#server.inflight--;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#done) controller.abort(new Error("client closed"));
  }

  onRequestUpgrade(
    _c: Dispatcher.DispatchController,
    _s: number,
    _h: IncomingHttpHeaders,
    socket: Duplex,
  ): void {
    socket.destroy();
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
    statusMessage?: string,
  ): void {
    if (statusCode < 200) return;
    this.#started = true;
    const res = this.#res;
    if (res.destroyed) {
      controller.abort(new Error("client closed"));
      return;
    }
    res.writeHead(statusCode, statusMessage || undefined, downstreamHeaders(headers));
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.#res.write(chunk)) controller.pause();
  }

  onResponseEnd(): void {
    this.#done = true;
    this.#finish();
    this.#res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.#finish();
    if (this.#done) return;
    const res = this.#res;
    if (this.#started || res.headersSent) {
      this.#done = true;
      res.destroy(err);
      return;
    }
    const kind = classify(err);
    const server = this.#server;
    if (kind === "refused" || kind === "reset") this.#host.reportFailure(server, err);
    const method = this.#req.method ?? "GET";
    const retryable =
      kind === "refused"
        ? !this.#bodySent || !this.#hasBody || this.#req.readableDidRead === false
        : kind === "reset" && IDEMPOTENT.has(method) && !this.#hasBody;
    if (retryable && this.#tried.length < this.#fw.maxAttempts) {
      const next = this.#host.pickRetry(this.#req, this.#tried);
      if (next) {
        this.#host.logger.debug({ server: server.name, next: next.name, err }, "retrying on another server");
        this.send(next);
        return;
      }
    }
    this.#done = true;
    if (kind === "timeout") respond(res, 504, "Gateway Timeout");
    else if (this.#tried.length > 0 && kind === "refused" && !this.#host.pickRetry(this.#req, this.#tried))
      respond(res, 502, "Bad Gateway");
    else respond(res, 502, "Bad Gateway");
  }
}

function respond(res: ServerResponse, status: number, text: string): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const body = `${text}\n`;
  res.writeHead(status, {
    "content-type": "text/plain; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
  });
  res.end(body);
}
