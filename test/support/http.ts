/**
 * The one HTTP client of the end-to-end tests: a request to 127.0.0.1:port or to a "host:port"
 * address, resolved with the whole answer. The folders' helpers (`request`, `get`, `call`) are
 * this with their defaults.
 */
import * as http from "node:http";
import * as https from "node:https";

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  /** The body as UTF-8 text. */
  body: string;
  /** The body's bytes. */
  bytes: Buffer;
}

/** node:http request options; `protocol: "https:"` sends over TLS (with https options). */
export interface SendOptions extends https.RequestOptions {
  body?: string | Buffer;
}

/** "host:port" (as switchyard logs its addresses) → a host to connect to and the port. */
export function splitAddress(address: string): [string, number] {
  const i = address.lastIndexOf(":");
  let host = address.slice(0, i);
  if (host === "0.0.0.0" || host === "[::]") host = "127.0.0.1";
  return [host.replace(/^\[|\]$/g, ""), Number(address.slice(i + 1))];
}

/**
 * One request; `to` is a port on 127.0.0.1 or a "host:port" address. Without `agent` it goes
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
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          rawHeaders: res.rawHeaders,
          body: bytes.toString("utf8"),
          bytes,
        });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}
