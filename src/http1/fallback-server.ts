/**
 * The fallback HTTP/1.1 front, for a Node whose llhttp binding is missing or misbehaves (or when
 * SWITCHYARD_HTTP1=fallback): node:http's own server, with the native front's rules where node:http
 * would answer differently — a throwing handler gets a 500 instead of crashing the process, client
 * errors get the proxy's short answers (400, 408, 431) and CONNECT is dropped. The same parser
 * (llhttp, inside node:http), keep-alive, pipelining, 100-continue/417, Host required on HTTP/1.1.
 * Not here: the native front's send timeout for clients that stop reading (node:http has none).
 */
import * as http from "node:http";
import type * as net from "node:net";
import type { Duplex } from "node:stream";
import { endWithError, sendError } from "./respond.ts";
import type { Http1Front, Http1Handler, Http1Timeouts } from "./server.ts";

export function createNodeFront(handler: Http1Handler, timeouts: Http1Timeouts): Http1Front {
  const server = http.createServer({
    headersTimeout: timeouts.headersTimeout,
    requestTimeout: timeouts.requestTimeout,
    keepAliveTimeout: timeouts.keepAliveTimeout,
    connectionsCheckingInterval: timeouts.connectionsCheckingInterval,
    noDelay: true,
    requireHostHeader: true,
  }) as http.Server & Http1Front;
  server.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    try {
      handler.request(req, res);
    } catch (err) {
      handler.handlerError?.(err);
      res.shouldKeepAlive = false;
      sendError(res, 500, "Internal Server Error");
    }
  });
  server.on("upgrade", (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    try {
      handler.upgrade(req, socket, head);
    } catch (err) {
      handler.handlerError?.(err);
      socket.destroy();
    }
  });
  // node:http without a 'connect' listener drops the connection too; said here so it stays so
  server.on("connect", (_req: http.IncomingMessage, socket: Duplex) => socket.destroy());
  server.on("clientError", (err: Error & { code?: string }, socket: Duplex) => {
    handler.clientError?.(err, socket as net.Socket);
    if (err.code === "ECONNRESET" || !socket.writable) {
      socket.destroy();
      return;
    }
    if (err.code === "HPE_HEADER_OVERFLOW") endWithError(socket, 431, "Request Header Fields Too Large");
    else if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") endWithError(socket, 408, "Request Timeout");
    else endWithError(socket, 400, "Bad Request");
  });
  server.setTimeouts = (t: Partial<Http1Timeouts>) => {
    if (t.headersTimeout !== undefined) server.headersTimeout = t.headersTimeout;
    if (t.requestTimeout !== undefined) server.requestTimeout = t.requestTimeout;
    if (t.keepAliveTimeout !== undefined) server.keepAliveTimeout = t.keepAliveTimeout;
  };
  return server;
}
