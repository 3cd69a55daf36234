/**
 * The functions the native client's socket, timer, parser and request-body events run: shared by
 * every connection (no closures per connection), each finds its Connection on its target.
 */

import type * as net from "node:net";
import type { Readable } from "node:stream";
import type * as tls from "node:tls";
import { UpstreamError } from "../errors.ts";
import { bodyPiece, type Parser as LlParser, type ParserCallbacks } from "./binding.ts";
import type { Connection } from "./client-connection.ts";
import { UPSTREAM_CODES } from "./upstream.ts";

type Parser = LlParser<Connection>;

// Socket events handled by Connection.guarded
export const CONNECTED = 0;
export const READ = 1;
export const ENDED = 2;

export const kPump = Symbol("switchyard.pump");
export type Source = Readable & { [kPump]?: Connection | undefined };

/** Routes the socket's events to `conn`. */
export function attachSocket(socket: net.Socket, conn: Connection): void {
  const s = socket as SocketWithConn;
  s[kConn] = conn;
  s.on((socket as tls.TLSSocket).encrypted === true ? "secureConnect" : "connect", onSocketConnect);
  if ((socket as tls.TLSSocket).encrypted === true) s.on("data", onSocketData);
  s.on("end", onSocketEnd);
  s.on("error", onSocketError);
  s.on("close", onSocketClose);
  s.on("drain", onSocketDrain);
}

const kConn = Symbol("switchyard.connection");
type SocketWithConn = net.Socket & { [kConn]?: Connection };

// Socket events run the caller's handler: a throw there must fail this request, not the process.
function onSocketConnect(this: SocketWithConn): void {
  this[kConn]?.guarded(CONNECTED);
}
function onSocketData(this: SocketWithConn, data: Buffer): void {
  this[kConn]?.guarded(READ, data);
}
/** `onread` callback; pausing (the client is slow) goes through socket.pause(), hence always true. */
export function onSocketRead(this: SocketWithConn, nread: number, buffer: Uint8Array): boolean {
  this[kConn]?.guarded(READ, Buffer.from(buffer.buffer, buffer.byteOffset, nread));
  return true;
}
function onSocketEnd(this: SocketWithConn): void {
  this[kConn]?.guarded(ENDED);
}
function onSocketError(this: SocketWithConn, err: Error): void {
  const conn = this[kConn];
  if (conn !== undefined && conn.error === null) conn.error = err;
}
function onSocketClose(this: SocketWithConn): void {
  this[kConn]?.socketClosed();
}
function onSocketDrain(this: SocketWithConn): void {
  this[kConn]?.drained();
}
export function onConnectTimeout(conn: Connection): void {
  conn.connectTimedOut();
}
export function onHeadTimeout(conn: Connection): void {
  conn.headTimedOut();
}
export function onBodyTimeout(conn: Connection): void {
  conn.bodyTimedOut();
}

function onParserMessageBegin(this: Parser): void {
  this.conn?.messageBegin();
}
function onParserHeadersComplete(
  this: Parser,
  _major: number,
  _minor: number,
  headers: string[],
  _method: unknown,
  _url: unknown,
  status: number,
  statusText: string,
  upgrade: boolean,
  keepAlive: boolean,
): number {
  const conn = this.conn;
  if (conn === null) return 1;
  return conn.headersComplete(headers, status, statusText, upgrade, keepAlive);
}
function onParserBody(this: Parser, chunk: Buffer, start?: number, length?: number): void {
  this.conn?.bodyChunk(bodyPiece(chunk, start, length));
}
function onParserMessageComplete(this: Parser): void {
  this.conn?.messageComplete();
}
export const PARSER_CALLBACKS: ParserCallbacks<Connection> = {
  begin: onParserMessageBegin,
  headersComplete: onParserHeadersComplete,
  body: onParserBody,
  complete: onParserMessageComplete,
};

export function onBodyData(this: Source, chunk: Buffer): void {
  this[kPump]?.bodyData(chunk);
}
export function onBodyEnd(this: Source): void {
  this[kPump]?.bodyEnd();
}
export function onBodyError(this: Source): void {
  this[kPump]?.destroy(
    new UpstreamError("the client's request body was cut short", UPSTREAM_CODES.clientAborted),
  );
}
