/**
 * Middlewares (SPEC "Paths and middlewares"): one module each behind the `Middleware` interface
 * (types.ts), composed per service at config time into a `Chain` (chain.ts). A service without
 * middlewares gets no chain: its requests go straight to the balancer.
 */
import type { MiddlewareConfig } from "../config/types.ts";
import { Access } from "./access.ts";
import { BasicAuth } from "./basic-auth.ts";
import { type AnswerCounter, Chain } from "./chain.ts";
import { Compress } from "./compress.ts";
import { ErrorPages } from "./error-pages.ts";
import { RequestHeaders, ResponseHeaders } from "./headers.ts";
import { RateLimit } from "./rate-limit.ts";
import { RedirectHttps } from "./redirect-https.ts";
import { Rules } from "./rules.ts";
import type { Middleware, MiddlewareEnv } from "./types.ts";

export { type AnswerCounter, Chain, type Next, type RouteTarget } from "./chain.ts";
export { setRemoteTokens, TokenBank } from "./rate-limit.ts";
export type { Answer, BodyFilter, Middleware, MiddlewareEnv, RemoteTokens, Sink } from "./types.ts";

/** Whether a service's backend gets no forwarded headers (`hide_forwarded`). */
export function hidesForwarded(configs: readonly MiddlewareConfig[] | undefined): boolean {
  return configs?.some((c) => c.kind === "hide_forwarded") === true;
}

/** The services a service's `rules` may hand requests to (`route NAME`). */
export function routeTargets(configs: readonly MiddlewareConfig[] | undefined): string[] {
  const out = new Set<string>();
  for (const c of configs ?? []) {
    if (c.kind !== "rules") continue;
    for (const r of c.rules) for (const d of r.do) if (d.do === "route") out.add(d.service);
  }
  return [...out];
}

/** The id of a service's `index`-th middleware (rate limits shared across workers are keyed by it). */
export function limiterId(service: string, index: number): string {
  return `${service}#${index}`;
}

export function createMiddleware(
  config: Exclude<MiddlewareConfig, { kind: "hide_forwarded" }>,
  index: number,
  env: MiddlewareEnv,
): Middleware {
  switch (config.kind) {
    case "allow":
    case "deny":
      return new Access(config);
    case "redirect_https":
      return new RedirectHttps(config, env.realIp);
    case "basic_auth":
      return new BasicAuth(config);
    case "rate_limit":
      return new RateLimit(config, limiterId(env.service, index));
    case "request_headers":
      return new RequestHeaders(config);
    case "response_headers":
      return new ResponseHeaders(config);
    case "compress":
      return new Compress(config);
    case "error_pages":
      return new ErrorPages(config);
    case "rules":
      return new Rules(config);
  }
}

/** The chain of a service, or undefined when it has no middlewares (nothing on its request path). */
export function createChain(
  configs: readonly MiddlewareConfig[] | undefined,
  env: MiddlewareEnv,
  count: AnswerCounter,
): Chain | undefined {
  if (configs === undefined || configs.length === 0) return undefined;
  const middlewares: Middleware[] = [];
  configs.forEach((c, i) => {
    if (c.kind !== "hide_forwarded") middlewares.push(createMiddleware(c, i, env));
  });
  if (middlewares.length === 0) return undefined;
  return new Chain(middlewares, env.logger, count);
}
