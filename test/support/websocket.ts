/**
 * WebSocket frames on raw streams (RFC 6455 §5), for the tests of WebSockets over HTTP/2 (RFC 8441)
 * where no WebSocket library runs on an HTTP/2 stream: writing and reading frames, an echo, and an
 * HTTP/2 backend (node:http2, h2c or h2) whose extended CONNECT streams echo frames; and the
 * HTTP/1.1 echo backend (ws) the same tests put beside it.
 */
import { once } from "node:events";
import * as http from "node:http";
import * as http2 from "node:http2";
import { type RawData, WebSocketServer } from "ws";
import { type Cleanup, listen } from "./cleanup.ts";
import { selfSigned } from "./tls.ts";

export interface Frame {
  /** The first byte's opcode (1 text, 2 binary, 8 close, ...). */
  opcode: number;
  /** Unmasked. */
  payload: Buffer;
}

/** One frame with first byte `b0` (FIN and opcode); a client's is masked (with the key 1,2,3,4). */
export function frame(b0: number, payload: Buffer, mask = false): Buffer {
  const len = payload.length;
  const m = mask ? 0x80 : 0;
  let head: Buffer;
  if (len < 126) head = Buffer.from([b0, m | len]);
  else if (len < 65536) head = Buffer.from([b0, m | 126, len >> 8, len & 255]);
  else {
    head = Buffer.alloc(10);
    head[0] = b0;
    head[1] = m | 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  if (!mask) return Buffer.concat([head, payload]);
  const key = Buffer.from([1, 2, 3, 4]);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3];
  return Buffer.concat([head, key, body]);
}

/** Reads frames (masked or not) off a stream: each `next()` resolves with the next whole frame. */
export function frames(stream: NodeJS.ReadableStream): { next(): Promise<Frame> } {
  let buf = Buffer.alloc(0);
  const waiting: ((f: Frame) => void)[] = [];
  const ready: Frame[] = [];
  stream.on("data", (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (buf.length < 2) return;
      let len = buf[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        off = 10;
      }
      const mask = off;
      if ((buf[1] & 0x80) !== 0) off += 4;
      if (buf.length < off + len) return;
      const payload = Buffer.from(buf.subarray(off, off + len));
      if (off !== mask) for (let i = 0; i < len; i++) payload[i] ^= buf[mask + (i & 3)];
      const f = { opcode: buf[0] & 0x0f, payload };
      buf = buf.subarray(off + len);
      const w = waiting.shift();
      if (w) w(f);
      else ready.push(f);
    }
  });
  return {
    next: () => {
      const f = ready.shift();
      return f ? Promise.resolve(f) : new Promise((resolve) => waiting.push(resolve));
    },
  };
}

/** Echoes every frame back unmasked (as a server sends them); a close frame is echoed and ends the stream. */
export function echoFrames(stream: http2.ServerHttp2Stream): void {
  const f = frames(stream);
  const loop = async () => {
    for (;;) {
      const { opcode, payload } = await f.next();
      if (stream.writable) stream.write(frame(0x80 | opcode, payload));
      if (opcode === 8) {
        stream.end();
        return;
      }
    }
  };
  void loop();
}

export interface H2WebSocketBackend {
  url: string;
  /** Headers of every extended CONNECT seen. */
  connects: http2.IncomingHttpHeaders[];
  /** The session each of them came on. */
  connectSessions: http2.Http2Session[];
  /** Open WebSocket streams. */
  streams: Set<http2.ServerHttp2Stream>;
}

/**
 * An HTTP/2 backend (h2c, or h2 with `tls`) with extended CONNECT when `connect`: a CONNECT to
 * `/forbidden` gets 403 with a body, every one is reset with `resetAll`, others echo WebSocket
 * frames (choosing the first offered subprotocol); any other request gets 200 (health checks).
 */
export async function h2WebSocketBackend(
  c: Cleanup,
  opts: { connect: boolean; tls?: boolean; resetAll?: boolean },
): Promise<H2WebSocketBackend> {
  const b: H2WebSocketBackend = { url: "", connects: [], connectSessions: [], streams: new Set() };
  const settings = { enableConnectProtocol: opts.connect };
  const server = opts.tls
    ? http2.createSecureServer({ ...selfSigned(), settings })
    : http2.createServer({ settings });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
  });
  server.on("stream", (stream, headers) => {
    stream.on("error", () => {});
    if (headers[":method"] !== "CONNECT") {
      stream.respond({ ":status": 200 });
      stream.end();
      return;
    }
    b.connects.push(headers);
    b.connectSessions.push(stream.session!);
    if (headers[":path"] === "/forbidden") {
      stream.respond({ ":status": 403, "content-type": "text/plain" });
      stream.end("not for you");
      return;
    }
    if (opts.resetAll) {
      stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    const proto = headers["sec-websocket-protocol"];
    stream.respond({
      ":status": 200,
      ...(proto ? { "sec-websocket-protocol": String(proto).split(",")[0] } : {}),
    });
    b.streams.add(stream);
    stream.once("close", () => b.streams.delete(stream));
    echoFrames(stream);
  });
  const port = await listen(server, c);
  // before the server's close, which waits for its sessions
  c.add(() => {
    for (const s of sessions) s.destroy();
  });
  b.url = `${opts.tls ? "https" : "http"}://127.0.0.1:${port}`;
  return b;
}

/** One WebSocket an HTTP/1.1 echo backend accepted. */
export interface WsConn {
  path: string;
  headers: http.IncomingHttpHeaders;
  /** Resolves when the backend's side closes. */
  closed: Promise<unknown>;
}

/** An HTTP/1.1 WebSocket echo backend (ws); plain requests get "plain". `conns` in arrival order. */
export async function wsEchoBackend(c: Cleanup): Promise<{ url: string; conns: WsConn[] }> {
  const server = http.createServer((_req, res) => res.end("plain"));
  const wss = new WebSocketServer({ server });
  const conns: WsConn[] = [];
  wss.on("connection", (ws, req) => {
    conns.push({ path: req.url ?? "", headers: req.headers, closed: once(ws, "close") });
    ws.on("error", () => {});
    ws.on("message", (data: RawData, isBinary: boolean) => ws.send(data, { binary: isBinary }));
  });
  const port = await listen(server, c);
  c.add(() => {
    for (const ws of wss.clients) ws.terminate();
    wss.close();
  });
  return { url: `http://127.0.0.1:${port}`, conns };
}
