/**
 * Which HTTP/1 path this process runs: "native" (the front and client on Node's llhttp binding,
 * src/http1/server.ts and client.ts) or "fallback" (node:http's server and client). Decided
 * once, at start-up, by SWITCHYARD_HTTP1 (native | fallback | auto, default auto) and the binding's
 * capability check: under auto, a binding that is missing or misparses the known messages means the
 * fallback and one warn line — never a failure at the first connection. See docs/http1.md.
 */
import type { Logger } from "../log.ts";
import { probeBinding } from "./binding.ts";
import { UpstreamPool } from "./client.ts";
import { AgentPool } from "./fallback-client.ts";
import type { UpstreamClient, UpstreamPoolOptions } from "./upstream.ts";

export type Http1Path = "native" | "fallback";

export const HTTP1_ENV = "SWITCHYARD_HTTP1";

interface Decision {
  path: Http1Path;
  /** Why the binding cannot be used (auto fell back). */
  problem?: string;
}

// process-wide: the Node binary and the environment decide it, the same for every server and balancer
let decision: Decision | undefined;
let told = false;

/** Reads the setting and runs the capability check when it matters; throws on a bad setting. */
export function decideHttp1(setting: string | undefined): Decision {
  const s = (setting ?? "").trim().toLowerCase();
  if (s === "fallback") return { path: "fallback" };
  if (s !== "" && s !== "auto" && s !== "native") {
    throw new Error(`${HTTP1_ENV}=${setting}: expected native, fallback or auto`);
  }
  const problem = probeBinding();
  if (problem === null) return { path: "native" };
  if (s === "native") {
    throw new Error(`${HTTP1_ENV}=native, but Node's HTTP/1 parser binding is unusable: ${problem}`);
  }
  return { path: "fallback", problem };
}

/**
 * The path of this process, decided on the first call. A fallback forced by a broken binding is
 * told once: through `logger` (the first call that has one), else as a process warning.
 */
export function http1Path(logger?: Pick<Logger, "warn">): Http1Path {
  if (decision === undefined) decision = decideHttp1(process.env[HTTP1_ENV]);
  const d = decision;
  if (d.problem !== undefined && !told) {
    const msg = `HTTP/1: Node ${process.version}'s parser binding is unusable (${d.problem}); running on node:http's server and client instead (${HTTP1_ENV}=fallback silences this, native makes it fatal)`;
    told = true;
    if (logger !== undefined) logger.warn({ http1: "fallback" }, msg);
    // the library, with no logger at hand: still once, still visible
    else process.emitWarning(msg, { code: "SWITCHYARD_HTTP1_FALLBACK" });
  }
  return d.path;
}

/** The upstream client (one backend's connection pool) of this process's path. */
export function createUpstreamClient(url: URL, opts: UpstreamPoolOptions): UpstreamClient {
  return http1Path() === "native" ? new UpstreamPool(url, opts) : new AgentPool(url, opts);
}
