/**
 * The three request/response pairs a proxy handler gets satisfy ProxyRequest/ProxyResponse: checked
 * by the compiler here (object types, not method parameters, which TypeScript compares loosely), and
 * at run time through the body each of them hands over.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import * as http2 from "node:http2";
import { type AddressInfo, Socket } from "node:net";
import type { Readable } from "node:stream";
import { test } from "node:test";
import { bodyStream, kRequestBody, type ProxyRequest, type ProxyResponse } from "./http-types.ts";
import type { H1Request } from "./http1/request.ts";
import type { H1Response } from "./http1/response.ts";
import { H1Server } from "./http1/server.ts";
import { type LoadBalancer, Server } from "./index.ts";

/** Compiles only when `T` is `true`. */
type Holds<T extends true> = T;
type Satisfies<A, B> = [A] extends [B] ? true : false;

export type Checks = [
  Holds<Satisfies<http.IncomingMessage, ProxyRequest>>,
  Holds<Satisfies<http.ServerResponse, ProxyResponse>>,
  Holds<Satisfies<Http2ServerRequest, ProxyRequest>>,
  Holds<Satisfies<Http2ServerResponse, ProxyResponse>>,
  Holds<Satisfies<H1Request, ProxyRequest>>,
  Holds<Satisfies<H1Response, ProxyResponse>>,
  // the front's own objects are not streams: the body is beside the request
  Holds<Satisfies<Satisfies<H1Request, Readable>, false>>,
];

/** How a library user mounts a balancer: compiles with node:http's and http2's own types. */
export function mounted(lb: LoadBalancer): void {
  http.createServer(lb.handle).on("upgrade", lb.handleUpgrade);
  http2.createServer(lb.handle);
  lb.pick(new http.IncomingMessage(new Socket()));
  new Server({
    name: "own",
    url: "http://127.0.0.1:1",
    handler: (_req: http.IncomingMessage, res: http.ServerResponse) => res.end(),
  });
}

async function post(port: number, body: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/`, { method: "POST", body });
  return res.text();
}

/** A handler typed by ProxyRequest/ProxyResponse alone, that echoes the body. */
function echo(req: ProxyRequest, res: ProxyResponse): void {
  const body = bodyStream(req);
  assert.ok(body !== null);
  const parts: Buffer[] = [];
  body.on("data", (c: Buffer) => parts.push(c));
  body.on("end", () => {
    res.writeHead(200, { "x-own-body": String(req[kRequestBody] !== undefined) });
    res.end(Buffer.concat(parts));
  });
}

test("bodyStream: the front's request hands its own body; node:http's request is the body", async (t) => {
  const front = new H1Server(
    { request: echo, upgrade: (_req, socket) => socket.destroy() },
    { headersTimeout: 5000, requestTimeout: 5000, keepAliveTimeout: 5000, connectionsCheckingInterval: 1000 },
  );
  const node = http.createServer(echo);
  t.after(() => {
    front.close();
    node.close();
    front.closeAllConnections();
    node.closeAllConnections();
  });
  await Promise.all([
    new Promise<void>((ok) => front.listen(0, "127.0.0.1", ok)),
    new Promise<void>((ok) => node.listen(0, "127.0.0.1", ok)),
  ]);
  const frontPort = (front.address() as AddressInfo).port;
  const nodePort = (node.address() as AddressInfo).port;
  assert.equal(await post(frontPort, "through the front"), "through the front");
  assert.equal(await post(nodePort, "through node:http"), "through node:http");
  const own = await fetch(`http://127.0.0.1:${frontPort}/`, { method: "POST", body: "x" });
  assert.equal(own.headers.get("x-own-body"), "true");
  await own.text();
  const nodes = await fetch(`http://127.0.0.1:${nodePort}/`, { method: "POST", body: "x" });
  assert.equal(nodes.headers.get("x-own-body"), "false");
  await nodes.text();
});
