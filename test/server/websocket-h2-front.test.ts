/**
 * WebSockets from HTTP/2 clients (RFC 8441) on the TLS listener, end to end through `switchyard
 * serve`: the listener advertises SETTINGS_ENABLE_CONNECT_PROTOCOL; an extended CONNECT stream
 * reaches an HTTP/1.1 backend as an ordinary WebSocket handshake (with a Sec-WebSocket-Key of
 * switchyard's) and an h2c backend as another extended CONNECT; frames flow both ways; middlewares
 * answer on the stream; a plain CONNECT gets 405. The client is node:http2 speaking raw frames.
 */
import * as assert from "node:assert/strict";
import { once } from "node:events";
import * as http2 from "node:http2";
import { after, before, describe, test } from "node:test";
import { Cleanup } from "../support/cleanup.ts";
import {
  type Running,
  selfSignedCert,
  splitAddress,
  startSwitchyard,
  tempDir,
} from "../support/switchyard.ts";
import {
  frame,
  frames,
  type H2WebSocketBackend,
  h2WebSocketBackend,
  wsEchoBackend,
} from "../support/websocket.ts";

const HASH = "$2b$04$bMphtHk9sB8tFNb4nVcaZOE/8AzfpjkbejzH.ZgYBdfomCSJnqwtq";

describe("WebSockets from HTTP/2 clients (RFC 8441) through switchyard serve", () => {
  const c = new Cleanup();
  let sy: Running;
  let session: http2.ClientHttp2Session;
  let h1: Awaited<ReturnType<typeof wsEchoBackend>>;
  let h2: H2WebSocketBackend;

  before(async () => {
    h1 = await wsEchoBackend(c);
    h2 = await h2WebSocketBackend(c, { connect: true });
    const tmp = tempDir();
    c.add(() => tmp.remove());
    selfSignedCert(tmp.dir);
    const yaml = `listen:
  - { address: "127.0.0.1:0", tls: { cert: cert.pem, key: key.pem } }
admin: 127.0.0.1:0
services:
  h1:
    hosts: [h1.test]
    servers: ["${h1.url}"]
  h2:
    hosts: [h2.test]
    protocol: h2c
    servers: ["${h2.url}"]
  guarded:
    hosts: [guarded.test]
    middlewares:
      - basic_auth: { realm: g, users: { admin: "${HASH}" } }
    servers: ["${h1.url}"]
`;
    sy = await startSwitchyard(["serve", "-c", tmp.write("s.yaml", yaml)]);
    c.add(() => sy.stop("SIGKILL"));
    const [host, port] = splitAddress(sy.proxy[0]);
    session = http2.connect(`https://${host}:${port}`, { rejectUnauthorized: false });
    session.on("error", () => {});
    c.add(() => session.destroy());
    const [settings] = (await once(session, "remoteSettings")) as [http2.Settings];
    assert.equal(settings.enableConnectProtocol, true, "the listener advertises extended CONNECT");
  });
  after(() => c.run());

  function open(authority: string, path: string, extra: http2.OutgoingHttpHeaders = {}) {
    const stream = session.request(
      {
        ":method": "CONNECT",
        ":protocol": "websocket",
        ":scheme": "https",
        ":path": path,
        ":authority": authority,
        "sec-websocket-version": "13",
        ...extra,
      },
      { endStream: false },
    );
    stream.on("error", () => {});
    return stream;
  }

  test("to an HTTP/1.1 backend: a WebSocket handshake of switchyard's, frames both ways, closing", async () => {
    const stream = open("h1.test", "/chat?x=1", { "sec-websocket-protocol": "chat" });
    const [headers] = (await once(stream, "response")) as [http2.IncomingHttpHeaders];
    assert.equal(headers[":status"], 200);
    assert.equal(headers["sec-websocket-accept"], undefined, "the HTTP/1.1 handshake's own field");
    assert.equal(headers.upgrade, undefined);
    const seen = h1.conns.at(-1)!.headers;
    assert.equal(seen.upgrade, "websocket");
    assert.match(String(seen["sec-websocket-key"]), /^[A-Za-z0-9+/]{22}==$/);
    assert.equal(seen.host, "h1.test");
    assert.equal(seen["x-forwarded-proto"], "https");
    const f = frames(stream);
    stream.write(frame(0x81, Buffer.from("hello over h2"), true));
    const echo = await f.next();
    assert.deepEqual([echo.opcode, String(echo.payload)], [1, "hello over h2"]);
    // the client's close frame is answered, and the stream ends
    stream.write(frame(0x88, Buffer.from([0x03, 0xe8]), true));
    const close = await f.next();
    assert.equal(close.opcode, 8);
    assert.equal(close.payload.readUInt16BE(0), 1000);
    stream.end();
    await once(stream, "close");
  });

  test("to an h2c backend: another extended CONNECT, frames both ways", async () => {
    const stream = open("h2.test", "/room");
    const [headers] = (await once(stream, "response")) as [http2.IncomingHttpHeaders];
    assert.equal(headers[":status"], 200);
    const seen = h2.connects.at(-1)!;
    assert.equal(seen[":protocol"], "websocket");
    assert.equal(seen[":path"], "/room");
    assert.equal(seen[":authority"], "h2.test");
    const f = frames(stream);
    stream.write(frame(0x82, Buffer.from([9, 8, 7]), true));
    const echo = await f.next();
    assert.deepEqual([echo.opcode, [...echo.payload]], [2, [9, 8, 7]]);
    stream.close(http2.constants.NGHTTP2_CANCEL);
  });

  test("middlewares answer on the stream; a plain CONNECT gets 405; plain requests share the connection", async () => {
    const refused = open("guarded.test", "/");
    const [h] = (await once(refused, "response")) as [http2.IncomingHttpHeaders];
    assert.equal(h[":status"], 401);
    assert.match(String(h["www-authenticate"]), /Basic realm="g"/);
    const before = h1.conns.length;
    const ok = open("guarded.test", "/", { authorization: `Basic ${btoa("admin:secret")}` });
    const [h2ok] = (await once(ok, "response")) as [http2.IncomingHttpHeaders];
    assert.equal(h2ok[":status"], 200);
    assert.equal(h1.conns.length, before + 1);
    ok.close(http2.constants.NGHTTP2_CANCEL);
    const plainConnect = session.request(
      { ":method": "CONNECT", ":authority": "h1.test:80" },
      { endStream: false },
    );
    plainConnect.on("error", () => {});
    const [pc] = (await once(plainConnect, "response")) as [http2.IncomingHttpHeaders];
    assert.equal(pc[":status"], 405);
    const get = session.request({ ":path": "/", ":authority": "h1.test" });
    const [gh] = (await once(get, "response")) as [http2.IncomingHttpHeaders];
    assert.equal(gh[":status"], 200);
    get.resume();
  });
});
