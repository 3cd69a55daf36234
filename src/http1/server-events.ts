/**
 * The functions the front's socket events and parser callbacks run: shared by every connection (no
 * closures per connection), each finds its H1Connection on the socket or the parser.
 */
import type * as net from "node:net";
import { bodyPiece, type Parser as LlParser, type ParserCallbacks } from "./binding.ts";
import type { H1Connection } from "./server-connection.ts";

type Parser = LlParser<H1Connection>;
const kConn = Symbol("switchyard.h1");
type H1Socket = net.Socket & { [kConn]?: H1Connection };

/** Routes the socket's events to `conn`. */
export function attachSocket(socket: net.Socket, conn: H1Connection): void {
  const s = socket as H1Socket;
  s[kConn] = conn;
  s.on("data", onSocketData);
  s.on("end", onSocketEnd);
  s.on("error", noop);
  s.on("close", onSocketClose);
  s.on("drain", onSocketDrain);
}

/** Hands the socket over (an upgrade): none of its events reach the connection any more. */
export function detachSocket(socket: net.Socket): void {
  const s = socket as H1Socket;
  s.off("data", onSocketData);
  s.off("end", onSocketEnd);
  s.off("error", noop);
  s.off("close", onSocketClose);
  s.off("drain", onSocketDrain);
  s[kConn] = undefined;
}

export function dispatchNext(conn: H1Connection): void {
  conn.next();
}
function noop(): void {}

function onSocketData(this: H1Socket, chunk: Buffer): void {
  this[kConn]?.data(chunk);
}
function onSocketEnd(this: H1Socket): void {
  this[kConn]?.ended();
}
function onSocketClose(this: H1Socket): void {
  this[kConn]?.closed();
}
function onSocketDrain(this: H1Socket): void {
  this[kConn]?.drained();
}

function onMessageBegin(this: Parser): void {
  this.conn?.messageBegin();
}
function onHeadersComplete(
  this: Parser,
  major: number,
  minor: number,
  headers: string[],
  method: number,
  url: string,
  _status: unknown,
  _statusText: unknown,
  upgrade: boolean,
  keepAlive: boolean,
): number {
  const conn = this.conn;
  if (conn === null) return 1;
  return conn.headersComplete(major, minor, headers, method, url, upgrade, keepAlive);
}
function onBody(this: Parser, chunk: Buffer, start?: number, length?: number): void {
  this.conn?.body(bodyPiece(chunk, start, length));
}
function onMessageComplete(this: Parser): void {
  this.conn?.messageComplete();
}
export const PARSER_CALLBACKS: ParserCallbacks<H1Connection> = {
  begin: onMessageBegin,
  headersComplete: onHeadersComplete,
  body: onBody,
  complete: onMessageComplete,
};
