/**
 * `error_pages`: for the listed statuses the client gets the page from the file instead of the
 * body (the backend's, or switchyard's own 502/503/504). Files are read once per config.
 */
import { readFileSync } from "node:fs";
import { extname } from "node:path";
import type { MiddlewareConfig } from "../config/types.ts";
import type { ProxyRequest, ProxyResponse } from "../http-types.ts";
import { type BodyFilter, findHeader, type Middleware, type Sink } from "./types.ts";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".htm": "text/html; charset=utf-8",
  ".json": "application/json",
  ".txt": "text/plain; charset=utf-8",
  ".xml": "application/xml",
};
/** Headers of the original answer that still mean something for the page. */
const KEEP = ["www-authenticate", "retry-after", "allow", "set-cookie", "vary"];

interface Page {
  readonly body: Buffer;
  readonly type: string;
}

export class ErrorPages implements Middleware {
  readonly kind = "error_pages";
  readonly #pages = new Map<number, Page>();

  constructor(config: Extract<MiddlewareConfig, { kind: "error_pages" }>) {
    for (const [code, file] of Object.entries(config.pages)) {
      this.#pages.set(Number(code), {
        body: readFileSync(file),
        type: TYPES[extname(file).toLowerCase()] ?? "text/html; charset=utf-8",
      });
    }
  }

  head(_req: ProxyRequest, _res: ProxyResponse, status: number, headers: string[]): BodyFilter | undefined {
    const page = this.#pages.get(status);
    if (page === undefined) return undefined;
    const kept: string[] = [];
    for (const k of KEEP) {
      for (let i = findHeader(headers, k); i >= 0; i = findHeader(headers, k, i + 2))
        kept.push(headers[i], headers[i + 1]);
    }
    headers.length = 0;
    headers.push(
      ...kept,
      "content-type",
      page.type,
      "content-length",
      String(page.body.length),
      "cache-control",
      "no-store",
    );
    return new Replace(page.body);
  }
}

/** Drops the body it is given and sends the page instead. */
class Replace implements BodyFilter {
  next!: Sink;
  readonly #body: Buffer;
  constructor(body: Buffer) {
    this.#body = body;
  }
  write(): boolean {
    return true;
  }
  end(): void {
    this.next.end(this.#body);
  }
}
