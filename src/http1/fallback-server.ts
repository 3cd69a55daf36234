/**
 * The fallback HTTP/1.1 front, for a Node whose llhttp binding is missing or misbehaves (or when
 * SWITCHYARD_HTTP1=fallback): node:http's own server, with the native front's rules where node:http
 * would answer differently — a throwing handler gets a 500 instead of crashing the process, client
 * errors get the proxy's short answers (400, 408, 431) and CONNECT is dropped. The same parser
 * (llhttp, inside node:http), keep-alive, pipelining, 100-continue/417, Host required on HTTP/1.1.
 * Not here: the native front's send timeout for clients that stop reading (node:http has none).
 */
import type * as http from "node:http";
import type * as net from "node:net";
import type { Duplex } from "node:stream";
import { endWithError, kContinued, sendError } from "./respond.ts";
import type { Http1Front, Http1Handler, Http1Timeouts } from "./server.ts";
import { isH2cUpgrade, overflowStatus, requestProblem } from "./validate.ts";

// node:http taken with getBuiltinModule, not an ES import: importing it as an ES module reads
// every export, and its lazy ones (WebSocket & co.) load undici, tls, http2 and zlib: ~13 MB of RSS
const nodeHttp = process.getBuiltinModule("node:http");

/** Byte length of a chunk given to `write`/`end` (0 for a callback or nothing). */
export function chunkBytes(chunk: unknown, encoding: unknown): number {
  if (typeof chunk === "string")
    return Buffer.byteLength(chunk, typeof encoding === "string" ? (encoding as BufferEncoding) : "utf8");
  return chunk instanceof Uint8Array ? chunk.length : 0;
}

/** node:http's response, counting the body bytes written (the access log's `bytes`), as our own front does. */
class CountingResponse extends nodeHttp.ServerResponse {
  bytesSent = 0;
  override write(chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
    this.bytesSent += chunkBytes(chunk, encoding);
    return (super.write as (...a: unknown[]) => boolean)(chunk, encoding, cb);
  }
  override end(chunk?: unknown, encoding?: unknown, cb?: unknown): this {
    if (!this.writableEnded) this.bytesSent += chunkBytes(chunk, encoding);
    return (super.end as (...a: unknown[]) => this)(chunk, encoding, cb);
  }
}

export function createNodeFront(handler: Http1Handler, timeouts: Http1Timeouts): Http1Front {
  const server = nodeHttp.createServer({
    headersTimeout: timeouts.headersTimeout,
    requestTimeout: timeouts.requestTimeout,
    keepAliveTimeout: timeouts.keepAliveTimeout,
    connectionsCheckingInterval: timeouts.connectionsCheckingInterval,
    noDelay: true,
    requireHostHeader: true,
    ServerResponse: CountingResponse,
    // an h2c upgrade is served as a plain request (its Upgrade dropped) unless its service allows it
    shouldUpgradeCallback: (req: http.IncomingMessage) =>
      !isH2cUpgrade(req.headers.upgrade) || handler.h2cUpgrade?.(req.rawHeaders, req.url ?? "/") === true,
  });
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const problem = requestProblem(req);
    if (problem !== null) {
      res.shouldKeepAlive = false;
      sendError(res, problem[0], problem[1]);
      return;
    }
    try {
      handler.request(req, res);
    } catch (err) {
      handler.handlerError?.(err);
      res.shouldKeepAlive = false;
      sendError(res, 500, "Internal Server Error");
    }
  };
  server.on("request", onRequest);
  // Expect: 100-continue goes to the backend, which answers 100 (relayed) or a final status: no
  // early 100 from here (node:http sends one itself unless someone listens)
  server.on("checkContinue", (req: http.IncomingMessage, res: http.ServerResponse) => {
    // the first read of the body tells the client to send it, unless the backend's 100 did
    req.once("resume", () => {
      const r = res as http.ServerResponse & { [kContinued]?: boolean };
      if (r[kContinued] !== true && !res.headersSent) {
        r[kContinued] = true;
        res.writeContinue();
      }
    });
    onRequest(req, res);
  });
  server.on("upgrade", (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    try {
      handler.upgrade(req, socket, head);
    } catch (err) {
      handler.handlerError?.(err);
      socket.destroy();
    }
  });
  // a proxy with no tunnel to offer: 405 (as nginx), then the connection closes
  server.on("connect", (_req: http.IncomingMessage, socket: Duplex) =>
    endWithError(socket, 405, "Method Not Allowed"),
  );
  server.on(
    "clientError",
    (err: Error & { code?: string; rawPacket?: Buffer; bytesParsed?: number }, socket: Duplex) => {
      handler.clientError?.(err, socket as net.Socket);
      if (err.code === "ECONNRESET" || !socket.writable) {
        socket.destroy();
        return;
      }
      if (err.code === "HPE_HEADER_OVERFLOW") {
        const seen = err.rawPacket?.subarray(0, err.bytesParsed ?? err.rawPacket.length);
        const [status, text] =
          seen === undefined ? [431, "Request Header Fields Too Large"] : overflowStatus(seen);
        endWithError(socket, status, text);
      } else if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") endWithError(socket, 408, "Request Timeout");
      else if (err.code === "HPE_INVALID_VERSION") endWithError(socket, 505, "HTTP Version Not Supported");
      else endWithError(socket, 400, "Bad Request");
    },
  );
  const setTimeouts = (t: Partial<Http1Timeouts>) => {
    if (t.headersTimeout !== undefined) server.headersTimeout = t.headersTimeout;
    if (t.requestTimeout !== undefined) server.requestTimeout = t.requestTimeout;
    if (t.keepAliveTimeout !== undefined) server.keepAliveTimeout = t.keepAliveTimeout;
  };
  return Object.assign(server, { setTimeouts });
}
