/**
 * `compress`: gzip or br (node:zlib), streaming, chosen by the request's Accept-Encoding
 * (q-values honoured; ties go to the configured order). Only compressible types, only bodies
 * that are not known to be shorter than `min_length`, never one that already has a
 * Content-Encoding, nor `Cache-Control: no-transform`, 204/206/304 or HEAD.
 * `Vary: Accept-Encoding` goes on every response of a compressible type, compressed or not.
 */
import type { BrotliCompress, Gzip } from "node:zlib";

import type { MiddlewareConfig } from "../config/types.ts";
import type { ProxyRequest, ProxyResponse } from "../http-types.ts";
import { type BodyFilter, findHeader, type Middleware, removeHeader, type Sink } from "./types.ts";

/** node:zlib, loaded when a response is first compressed (an ES import would load it in every process). */
const zlib = () => process.getBuiltinModule("node:zlib");

type Encoding = "br" | "gzip";

/** Types worth compressing; everything else (images, video, archives, fonts in woff) is left alone. */
export function compressible(contentType: string): boolean {
  const semi = contentType.indexOf(";");
  const t = (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
  if (t.startsWith("text/")) return t !== "text/event-stream";
  if (t.endsWith("+json") || t.endsWith("+xml")) return true;
  return COMPRESSIBLE.has(t);
}
const COMPRESSIBLE = new Set([
  "application/json",
  "application/javascript",
  "application/x-javascript",
  "application/ecmascript",
  "application/xml",
  "application/xhtml+xml",
  "application/wasm",
  "application/graphql-response+json",
  "application/manifest+json",
  "application/x-ndjson",
  "image/svg+xml",
  "image/x-icon",
  "image/bmp",
  "font/ttf",
  "font/otf",
  "application/vnd.ms-fontobject",
]);

/**
 * The best of `offered` for an Accept-Encoding value, or undefined (identity). A q of 0 refuses;
 * `*` covers the encodings not named; ties go to the order of `offered`.
 */
export function negotiate(accept: string | undefined, offered: readonly Encoding[]): Encoding | undefined {
  if (accept === undefined || accept === "") return undefined;
  let best: Encoding | undefined;
  let bestQ = 0;
  let star = -1;
  const named = new Map<string, number>();
  for (const part of accept.split(",")) {
    const [name, ...params] = part.split(";");
    const coding = name.trim().toLowerCase();
    if (coding === "") continue;
    let q = 1;
    for (const p of params) {
      const [k, v] = p.split("=");
      if (k.trim().toLowerCase() === "q") {
        const n = Number(v);
        q = Number.isFinite(n) && n >= 0 && n <= 1 ? n : 0;
      }
    }
    if (coding === "*") star = q;
    else named.set(coding === "x-gzip" ? "gzip" : coding, q);
  }
  for (const e of offered) {
    const q = named.get(e) ?? Math.max(star, 0);
    if (q > bestQ) {
      best = e;
      bestQ = q;
    }
  }
  return best;
}

export class Compress implements Middleware {
  readonly kind = "compress";
  readonly #minLength: number;
  readonly #encodings: readonly Encoding[];

  constructor(config: Extract<MiddlewareConfig, { kind: "compress" }>) {
    this.#minLength = config.minLength;
    this.#encodings = config.encodings;
  }

  head(req: ProxyRequest, res: ProxyResponse, status: number, headers: string[]): BodyFilter | undefined {
    if (status < 200 || status === 204 || status === 206 || status === 304) return undefined;
    const ct = findHeader(headers, "content-type");
    if (ct < 0 || !compressible(headers[ct + 1])) return undefined;
    if (findHeader(headers, "content-encoding") >= 0) return undefined;
    addVary(headers);
    if (req.method === "HEAD") return undefined;
    const cc = findHeader(headers, "cache-control");
    if (cc >= 0 && /no-transform/i.test(headers[cc + 1])) return undefined;
    const cl = findHeader(headers, "content-length");
    if (cl >= 0 && Number(headers[cl + 1]) < this.#minLength) return undefined;
    const raw = req.rawHeaders;
    const ae = findHeader(raw, "accept-encoding");
    const enc = negotiate(ae >= 0 ? raw[ae + 1] : undefined, this.#encodings);
    if (enc === undefined) return undefined;
    removeHeader(headers, "content-length");
    removeHeader(headers, "accept-ranges");
    const etag = findHeader(headers, "etag");
    if (etag >= 0 && !headers[etag + 1].startsWith("W/")) headers[etag + 1] = `W/${headers[etag + 1]}`;
    headers.push("content-encoding", enc);
    return new ZlibFilter(enc, res);
  }
}

function addVary(headers: string[]): void {
  const v = findHeader(headers, "vary");
  if (v < 0) headers.push("vary", "Accept-Encoding");
  else if (!/(^|,)\s*(accept-encoding|\*)\s*(,|$)/i.test(headers[v + 1]))
    headers[v + 1] += ", Accept-Encoding";
}

/** One response's compressor: written to by the response, writing to the next sink. */
class ZlibFilter implements BodyFilter {
  next!: Sink;
  readonly #z: Gzip | BrotliCompress;
  readonly #res: ProxyResponse;
  #flushQueued = false;
  #ended = false;

  constructor(enc: Encoding, res: ProxyResponse) {
    this.#res = res;
    this.#z =
      enc === "gzip"
        ? zlib().createGzip()
        : zlib().createBrotliCompress({
            // quality 11 (the default) is for files compressed once; 4 is what on-the-fly servers use
            params: { [zlib().constants.BROTLI_PARAM_QUALITY]: 4 },
          });
    const z = this.#z;
    z.on("data", (out: Buffer) => {
      if (!this.next.write(out)) {
        z.pause();
        res.once("drain", () => z.resume());
      }
    });
    z.on("end", () => this.next.end(undefined));
    z.on("error", () => res.destroy());
    // the response's writer waits for 'drain' when write returned false
    z.on("drain", () => res.emit("drain"));
  }

  write(chunk: Buffer): boolean {
    const ok = this.#z.write(chunk);
    // a streamed body (server-sent chunks) reaches the client without waiting for more
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      setImmediate(flushLater, this);
    }
    return ok;
  }

  flush(): void {
    this.#flushQueued = false;
    if (!this.#ended && !this.#z.destroyed) this.#z.flush();
  }

  end(chunk: Buffer | undefined): void {
    this.#ended = true;
    if (chunk === undefined) this.#z.end();
    else this.#z.end(chunk);
  }

  abort(): void {
    if (!this.#res.writableFinished) this.#z.destroy();
  }
}

function flushLater(f: ZlibFilter): void {
  f.flush();
}
