import type { Duplex } from "node:stream";
import type { ProxyResponse } from "../http-types.ts";

/**
 * Set on a node:http ServerResponse once a `100 Continue` went out for it (the fallback front, and
 * the forwarder relaying a backend's 100). Here, not beside the front's request: the library loads
 * this module, never the front.
 */
export const kContinued: unique symbol = Symbol("switchyard.continued");

/**
 * A short plain-text error (never naming a backend). Headers set earlier for the successful
 * case (a sticky cookie, a handler's own) are dropped; a response already under way is cut.
 */
export function sendError(res: ProxyResponse, status: number, text: string): void {
  if (res.headersSent || res.destroyed || streamGone(res)) {
    res.destroy();
    return;
  }
  const body = `${text}\n`;
  for (const name of res.getHeaderNames()) res.removeHeader(name);
  res.writeHead(status, {
    "content-type": "text/plain; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
  });
  res.end(body);
}

/** An HTTP/2 response whose stream the client reset: its own `destroyed` stays false a while. */
function streamGone(res: ProxyResponse): boolean {
  const stream = res.stream;
  return stream !== undefined && (stream.destroyed || stream.closed);
}

/** The same error written on a raw socket (upgrades, client errors), then the socket is closed. */
export function endWithError(socket: Duplex, status: number, text: string): void {
  if (socket.destroyed) return;
  const body = `${text}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n${body}`,
  );
}
