/**
 * The one HTTP client of the end-to-end tests: `send` makes a request to 127.0.0.1:port or to a
 * "host:port" address and resolves with the whole answer (a `Reply`); `get` is `send` on a fresh
 * connection with a Host header; `requestHead` stops at the head; `rawRequest` writes bytes.
 */
import { once } from "node:events";
import * as http from "node:http";
import * as https from "node:https";
import * as net from "node:net";

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  /** The body as UTF-8 text. */
  body: string;
  /** The body's bytes. */
  bytes: Buffer;
  /** The body parsed as JSON; throws naming the status and the body when it is not JSON. */
  json<T = Record<string, unknown>>(): T;
}

/** node:http request options; `protocol: "https:"` sends over TLS (with https options). */
export interface SendOptions extends https.RequestOptions {
  body?: string | Buffer;
}

/** "host:port" (as switchyard logs its addresses) or an origin ("http://host:port") → a host to connect to and the port. */
export function splitAddress(hostPort: string): [string, number] {
  const address = hostPort.replace(/^https?:\/\//, "").replace(/\/$/, "");
  const i = address.lastIndexOf(":");
  let host = address.slice(0, i);
  if (host === "0.0.0.0" || host === "[::]") host = "127.0.0.1";
  return [host.replace(/^\[|\]$/g, ""), Number(address.slice(i + 1))];
}

/**
 * One request; `to` is a port on 127.0.0.1, a "host:port" address or an origin (a backend's `url`). Without `agent` it goes
 * through Node's global agent (keep-alive); pass `agent: false` for a connection of its own.
 */
export function send(to: number | string, opts: SendOptions = {}): Promise<Reply> {
  const [host, port] = typeof to === "number" ? ["127.0.0.1", to] : splitAddress(to);
  const { body, ...rest } = opts;
  return new Promise((resolve, reject) => {
    const client = opts.protocol === "https:" ? https : http;
    const req = client.request({ host, port, path: "/", ...rest }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const bytes = Buffer.concat(chunks);
        const text = bytes.toString("utf8");
        const status = res.statusCode ?? 0;
        resolve({
          status,
          headers: res.headers,
          rawHeaders: res.rawHeaders,
          body: text,
          bytes,
          json<T>() {
            try {
              return JSON.parse(text) as T;
            } catch (err) {
              const what = `${rest.method ?? "GET"} ${rest.path ?? "/"}`;
              throw new Error(`${what}: not JSON (${status}): ${text.slice(0, 200)}`, { cause: err });
            }
          },
        });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

const fresh = new http.Agent({ keepAlive: false });

export interface GetOptions {
  /** The Host header. */
  host?: string;
  method?: string;
  headers?: http.OutgoingHttpHeaders;
}

/** One request on a connection of its own (nothing stays open); `to` as for `send`. */
export function get(to: number | string, path = "/", options: GetOptions = {}): Promise<Reply> {
  const headers = { ...(options.host ? { host: options.host } : {}), ...options.headers };
  return send(to, { path, method: options.method ?? "GET", agent: fresh, headers });
}

/** Starts a request and resolves with the response head (the body may still be open). */
export function requestHead(
  port: number,
  path = "/",
  headers: http.OutgoingHttpHeaders = {},
): Promise<{ res: http.IncomingMessage; req: http.ClientRequest }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path, headers, agent: false }, (res) =>
      resolve({ res, req }),
    );
    req.on("error", reject);
    req.end();
  });
}

/** Reads the rest of a response body. */
export async function bodyOf(res: http.IncomingMessage): Promise<string> {
  let body = "";
  res.setEncoding("utf8");
  for await (const c of res) body += c;
  return body;
}

export interface RawResult {
  /** Everything the server sent before closing (or before the deadline), as latin1. */
  data: string;
  /** Whether the server closed the connection. */
  closed: boolean;
  /** Status code of the first response, if any. */
  status: number | undefined;
  /** The first response's body (what follows the first blank line). */
  body: string;
}

/**
 * Writes `chunks` (strings or buffers; a number is a pause in ms) to a new connection and
 * collects the answer until the server closes, one response with a Content-Length is complete,
 * or `waitMs` passes after the last write.
 */
export async function rawRequest(
  port: number,
  chunks: string | (string | Buffer | number)[],
  waitMs = 1500,
): Promise<RawResult> {
  const socket = net.connect(port, "127.0.0.1");
  socket.on("error", () => {});
  await once(socket, "connect");
  let data = "";
  let closed = false;
  let answered: () => void = () => {};
  const answeredP = new Promise<void>((r) => {
    answered = r;
  });
  socket.on("data", (c: Buffer) => {
    data += c.toString("latin1");
    const end = data.indexOf("\r\n\r\n");
    const m = end < 0 ? null : /\r\ncontent-length:\s*(\d+)/i.exec(data.slice(0, end));
    if (m && data.length - end - 4 >= Number(m[1])) answered();
  });
  const closedP = new Promise<void>((resolve) =>
    socket.once("close", () => {
      closed = true;
      resolve();
    }),
  );
  for (const c of typeof chunks === "string" ? [chunks] : chunks) {
    if (closed) break;
    if (typeof c === "number") await new Promise((r) => setTimeout(r, c));
    else socket.write(c);
  }
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([closedP, answeredP, new Promise<void>((r) => (timer = setTimeout(r, waitMs)))]);
  clearTimeout(timer);
  socket.destroy();
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(data);
  const end = data.indexOf("\r\n\r\n");
  return { data, closed, status: m ? Number(m[1]) : undefined, body: end < 0 ? "" : data.slice(end + 4) };
}
