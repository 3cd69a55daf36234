import * as assert from "node:assert/strict";
import { once } from "node:events";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { test } from "node:test";
import type { ProxyRequest } from "../http-types.ts";
import { sessionTimeout, websocketOverH2 } from "./h2-websocket.ts";

/**
 * A real h2 server whose extended CONNECTs become (request, socket) pairs as the front makes them,
 * with a short session timeout; and a client session to it.
 */
async function setup(t: { after(fn: () => unknown): void }) {
  const server = http2.createServer({ settings: { enableConnectProtocol: true } });
  server.setTimeout(400);
  server.on("timeout", sessionTimeout(400));
  const upgrades: { req: ProxyRequest; socket: Duplex }[] = [];
  const waiting: ((u: { req: ProxyRequest; socket: Duplex }) => void)[] = [];
  // node's compatibility layer, which emits 'connect', comes with a 'request' listener
  server.on("request", (_req, res) => res.end());
  server.on("connect", (req) => {
    const u = websocketOverH2(req as unknown as ProxyRequest);
    const w = waiting.shift();
    if (w) w(u);
    else upgrades.push(u);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  client.on("error", () => {});
  t.after(() => {
    client.destroy();
    server.close();
  });
  await once(client, "remoteSettings");
  const next = () =>
    new Promise<{ req: ProxyRequest; socket: Duplex }>((resolve) => {
      const u = upgrades.shift();
      if (u) resolve(u);
      else waiting.push(resolve);
    });
  const open = (extra: http2.OutgoingHttpHeaders = {}) => {
    const stream = client.request(
      {
        ":method": "CONNECT",
        ":protocol": "websocket",
        ":scheme": "https",
        ":path": "/chat?x=1",
        ":authority": "example.test",
        "sec-websocket-version": "13",
        ...extra,
      },
      { endStream: false },
    );
    stream.on("error", () => {});
    return stream;
  };
  return { server, client, next, open };
}

test("the extended CONNECT reads as the HTTP/1.1 handshake; a 101 head becomes the stream's 200", async (t) => {
  const { next, open } = await setup(t);
  const stream = open({ cookie: "a=1" });
  const { req, socket } = await next();
  assert.equal(req.method, "GET");
  assert.equal(req.url, "/chat?x=1");
  assert.equal(req.httpVersionMajor, 1);
  assert.equal(req.headers.host, "example.test");
  assert.equal(req.headers.upgrade, "websocket");
  assert.equal(req.headers.cookie, "a=1");
  assert.match(String(req.headers["sec-websocket-key"]), /^[A-Za-z0-9+/]{22}==$/);
  assert.ok(!req.rawHeaders.some((n) => n.startsWith(":")), "no pseudo-headers");
  // the head may arrive in pieces
  socket.write("HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconn");
  socket.write(
    "ection: Upgrade\r\nsec-websocket-accept: abc\r\nsec-websocket-protocol: chat\r\n\r\nfirst bytes",
  );
  const [headers] = (await once(stream, "response")) as [http2.IncomingHttpHeaders];
  assert.equal(headers[":status"], 200);
  assert.equal(headers["sec-websocket-protocol"], "chat");
  assert.equal(headers["sec-websocket-accept"], undefined);
  assert.equal(headers.upgrade, undefined);
  const [data] = (await once(stream, "data")) as [Buffer];
  assert.equal(String(data), "first bytes");
  // and the client's bytes reach the socket
  stream.write("from the client");
  const [got] = (await once(socket, "data")) as [Buffer];
  assert.equal(String(got), "from the client");
  // our end ends the stream
  socket.end();
  stream.resume();
  await once(stream, "end");
});

test("an error answer (a middleware's 401) is the stream's response with its body", async (t) => {
  const { next, open } = await setup(t);
  const stream = open();
  const { socket } = await next();
  socket.end(
    'HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Basic realm="x"\r\ncontent-length: 13\r\nconnection: close\r\n\r\nUnauthorized\n',
  );
  const [headers] = (await once(stream, "response")) as [http2.IncomingHttpHeaders];
  assert.equal(headers[":status"], 401);
  assert.equal(headers["www-authenticate"], 'Basic realm="x"');
  assert.equal(headers.connection, undefined);
  let body = "";
  stream.setEncoding("utf8");
  for await (const chunk of stream) body += chunk;
  assert.equal(body, "Unauthorized\n");
});

test("a quiet session is kept past its timeout while a WebSocket is open, and closed after", async (t) => {
  const { server, client, next, open } = await setup(t);
  const stream = open();
  const { socket } = await next();
  socket.write("HTTP/1.1 101 Switching Protocols\r\n\r\n");
  await once(stream, "response");
  // the session goes quiet past the server's timeout: the WebSocket keeps it
  await once(server, "timeout");
  assert.equal(client.closed || client.destroyed, false);
  stream.write("still here");
  const [got] = (await once(socket, "data")) as [Buffer];
  assert.equal(String(got), "still here");
  // once the WebSocket is gone, the next quiet period closes the session
  stream.close(http2.constants.NGHTTP2_CANCEL);
  await once(client, "close");
});
