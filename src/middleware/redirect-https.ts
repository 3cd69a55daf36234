/**
 * `redirect_https`: a request that came over plain http gets 308 (or the configured status) to
 * the same host and target on https. "Came over https" is the listener's TLS, or
 * `X-Forwarded-Proto: https` from a peer the service trusts (`options.from`): a TLS terminator
 * in front must not cause a redirect loop.
 */

import type { TLSSocket } from "node:tls";
import type { RealIpResolver } from "../balancer/realip.ts";
import type { MiddlewareConfig } from "../config/types.ts";
import type { ProxyRequest } from "../http-types.ts";
import { normalizeHost } from "../server/router.ts";
import { type Answer, findHeader, type Middleware, plainAnswer } from "./types.ts";

const BAD_HOST = plainAnswer(400, "Bad Request: no Host to redirect to");

export class RedirectHttps implements Middleware {
  readonly kind = "redirect_https";
  readonly #status: number;
  readonly #port: string;
  readonly #realIp: () => RealIpResolver;

  constructor(config: Extract<MiddlewareConfig, { kind: "redirect_https" }>, realIp: () => RealIpResolver) {
    this.#status = config.status;
    this.#port = config.port === undefined ? "" : `:${config.port}`;
    this.#realIp = realIp;
  }

  request(req: ProxyRequest): Answer | undefined {
    if ((req.socket as TLSSocket | null)?.encrypted === true) return undefined;
    const raw = req.rawHeaders;
    const proto = findHeader(raw, "x-forwarded-proto");
    if (proto >= 0 && this.#realIp().isTrusted(req.socket?.remoteAddress)) {
      const v = raw[proto + 1];
      const last = v
        .slice(v.lastIndexOf(",") + 1)
        .trim()
        .toLowerCase();
      if (last === "https") return undefined;
    }
    const h = findHeader(raw, "host");
    const host = h >= 0 ? raw[h + 1] : req.headers[":authority"];
    if (typeof host !== "string" || host === "") return BAD_HOST;
    const url = req.url ?? "/";
    const location = `https://${normalizeHost(host)}${this.#port}${url.startsWith("/") ? url : "/"}`;
    const body = `Redirecting to ${location}\n`;
    return {
      status: this.#status,
      headers: [
        "location",
        location,
        "content-type",
        "text/plain; charset=utf-8",
        "content-length",
        String(Buffer.byteLength(body)),
      ],
      body,
    };
  }
}
