/**
 * `request_headers` / `response_headers`: `set` replaces every line of a name with one, `add`
 * appends a line, `remove` drops every line of a name. Request edits happen before the balancer
 * (hop-by-hop and forwarded headers are still switchyard's to set afterwards); response edits
 * happen on the head the client gets, backend's or switchyard's own.
 */

import type { HeaderEdits, MiddlewareConfig } from "../config/types.ts";
import type { ProxyRequest } from "../http-types.ts";
import { headersObject } from "../http1/request.ts";
import { type Middleware, removeHeader } from "./types.ts";

/** Edits compiled once: lower-cased names to drop, then lines to append. */
export class HeaderEditor {
  readonly #drop: string[];
  readonly #append: string[];

  constructor(edits: HeaderEdits) {
    const drop = new Set<string>();
    for (const n of edits.remove) drop.add(n.toLowerCase());
    for (const n of Object.keys(edits.set)) drop.add(n.toLowerCase());
    this.#drop = [...drop];
    this.#append = [];
    for (const [n, v] of Object.entries(edits.set)) this.#append.push(n, v);
    for (const [n, v] of Object.entries(edits.add)) this.#append.push(n, v);
  }

  /** Applies the edits to a flat [name, value, …] list in place. */
  apply(headers: string[]): void {
    for (const d of this.#drop) removeHeader(headers, d);
    for (let i = 0; i < this.#append.length; i++) headers.push(this.#append[i]);
  }
}

export class RequestHeaders implements Middleware {
  readonly kind = "request_headers";
  readonly #editor: HeaderEditor;

  constructor(config: Extract<MiddlewareConfig, { kind: "request_headers" }>) {
    this.#editor = new HeaderEditor(config);
  }

  request(req: ProxyRequest): undefined {
    this.#editor.apply(req.rawHeaders);
    // what was built from the old list (node:http builds req.headers lazily) must follow
    try {
      req.headers = headersObject(req.rawHeaders);
    } catch {
      // a request object without a headers setter builds them from rawHeaders on each read
    }
    return undefined;
  }
}

export class ResponseHeaders implements Middleware {
  readonly kind = "response_headers";
  readonly #editor: HeaderEditor;

  constructor(config: Extract<MiddlewareConfig, { kind: "response_headers" }>) {
    this.#editor = new HeaderEditor(config);
  }

  head(_req: unknown, _res: unknown, _status: number, headers: string[]): undefined {
    this.#editor.apply(headers);
    return undefined;
  }
}
