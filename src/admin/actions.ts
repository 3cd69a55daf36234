/**
 * Admin actions on one server: `drain`, `maint`, `ready`, `weight`, `wake`, `stop`. Parsing the
 * request into an `AdminOp` (400/404 with a reason), applying an op to this process's balancers
 * (`applyLocal`, also what a cluster worker runs), and turning the per-process results into the
 * HTTP answer (`answerOf`).
 */
import type { Server } from "../balancer/server.ts";
import { formatDuration, parseDuration } from "../duration.ts";
import type { Service } from "../server/services.ts";

export type AdminOp =
  | { kind: "state"; service: string; server: string; state: "ready" | "maint" }
  | { kind: "drain"; service: string; server: string; waitMs: number }
  | { kind: "weight"; service: string; server: string; weight: number }
  | { kind: "idle"; service: string; server: string; action: "wake" | "stop" };

/** What applying an op in one process gave. */
export interface LocalResult {
  /** HTTP status for a failure (404, 409, 500); undefined when applied. */
  error?: { status: number; message: string };
  /** The server's in-flight requests in this process (after a drain's wait). */
  inflight: number;
  drained: boolean;
  adminState?: string;
  weight?: number;
  configuredWeight?: number;
}

export interface Answer {
  status: number;
  body: Record<string, unknown>;
}

export class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

const POST_ACTIONS = new Set(["drain", "maint", "ready", "wake", "stop"]);

/** The methods each action path takes (for 405s). */
export function allowedMethod(action: string): string | undefined {
  if (action === "weight") return "PUT";
  if (POST_ACTIONS.has(action)) return "POST";
  return undefined;
}

/** Finds service and server by name (or server key); throws HttpError 404. */
export function findServer(
  services: ReadonlyMap<string, Service>,
  service: string,
  server: string,
): { service: Service; server: Server } {
  const svc = services.get(service);
  if (svc === undefined) throw new HttpError(404, `no service named ${JSON.stringify(service)}`);
  const srv = svc.lb.servers.find((s) => s.name === server) ?? svc.lb.servers.find((s) => s.key === server);
  if (srv === undefined) {
    throw new HttpError(404, `service ${service} has no server named ${JSON.stringify(server)}`);
  }
  return { service: svc, server: srv };
}

/**
 * The op for `action` on service/server with a parsed JSON body. `maxWaitMs` caps a drain's wait
 * (the shutdown timeout); the returned `capped` says when it did. Throws HttpError 400.
 */
export function parseOp(
  action: string,
  service: string,
  server: string,
  body: unknown,
  maxWaitMs: number,
): { op: AdminOp; capped?: string } {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new HttpError(400, "the body must be a JSON object");
  }
  const b = body as Record<string, unknown>;
  switch (action) {
    case "drain": {
      let waitMs = 0;
      let capped: string | undefined;
      if (b.wait !== undefined) {
        if (typeof b.wait !== "string")
          throw new HttpError(400, 'wait must be a duration string such as "30s"');
        try {
          waitMs = parseDuration(b.wait);
        } catch (err) {
          throw new HttpError(400, `wait: ${(err as Error).message}`);
        }
        if (waitMs > maxWaitMs) {
          capped = `wait ${b.wait} is longer than the shutdown timeout; waited at most ${formatDuration(maxWaitMs)}`;
          waitMs = maxWaitMs;
        }
      }
      return { op: { kind: "drain", service, server, waitMs }, capped };
    }
    case "maint":
    case "ready":
      return { op: { kind: "state", service, server, state: action } };
    case "wake":
    case "stop":
      return { op: { kind: "idle", service, server, action } };
    case "weight": {
      const w = b.weight;
      if (typeof w !== "number" || !Number.isInteger(w) || w < 0) {
        throw new HttpError(400, "weight must be a non-negative integer");
      }
      if (w > 1_000_000) throw new HttpError(400, "weight must be at most 1000000");
      return { op: { kind: "weight", service, server, weight: w } };
    }
  }
  throw new HttpError(404, `no action named ${JSON.stringify(action)}`);
}

/** The balancer surface the actions use (LoadBalancer's admin methods). */
interface Controllable {
  setAdminState(target: Server | string, state: "ready" | "draining" | "maint"): Server | undefined;
  setWeight(target: Server | string, weight: number | undefined): Server | undefined;
  drain(target: Server | string, waitMs?: number): Promise<{ drained: boolean; inflight: number }>;
}

/**
 * Applies `op` to this process's balancers. `drainWait`: false applies a drain as the state only
 * (the cluster primary, which serves no requests); else the drain waits up to op.waitMs.
 */
export async function applyLocal(
  services: ReadonlyMap<string, Service>,
  op: AdminOp,
  drainWait = true,
): Promise<LocalResult> {
  let found: { service: Service; server: Server };
  try {
    found = findServer(services, op.service, op.server);
  } catch (err) {
    const e = err as HttpError;
    return { error: { status: e.status, message: e.message }, inflight: 0, drained: false };
  }
  const lb: Controllable = found.service.lb;
  const server = found.server;
  const done = (s: Server): LocalResult => ({
    inflight: s.inflight,
    drained: s.inflight === 0,
    adminState: s.adminState,
    weight: s.runtimeWeight ?? s.configuredWeight,
    configuredWeight: s.configuredWeight,
  });
  switch (op.kind) {
    case "state":
      lb.setAdminState(server, op.state);
      return done(server);
    case "weight":
      lb.setWeight(server, op.weight);
      return done(server);
    case "drain": {
      if (!drainWait) {
        lb.setAdminState(server, "draining");
        return done(server);
      }
      const r = await lb.drain(server, op.waitMs > 0 ? op.waitMs : undefined);
      return { ...done(server), inflight: r.inflight, drained: r.drained };
    }
    case "idle": {
      try {
        await found.service.idleAction(server.name, op.action);
        return done(server);
      } catch (err) {
        // no provider behind this server: a conflict with its configuration; else the provider failed
        const none = (err as { code?: unknown }).code === "ERR_SWITCHYARD_NO_PROVIDER";
        return {
          error: { status: none ? 409 : 502, message: (err as Error).message },
          inflight: server.inflight,
          drained: false,
        };
      }
    }
  }
}

/** The HTTP answer for `op` from the results of every process that applied it. */
export function answerOf(op: AdminOp, results: readonly LocalResult[], capped?: string): Answer {
  const failed = results.find((r) => r.error !== undefined);
  if (failed?.error) return { status: failed.error.status, body: { error: failed.error.message } };
  const first = results[0];
  const inflight = results.reduce((n, r) => n + r.inflight, 0);
  const base: Record<string, unknown> = { service: op.service, server: op.server };
  if (first?.adminState !== undefined) base.admin_state = first.adminState;
  switch (op.kind) {
    case "drain": {
      const drained = results.every((r) => r.drained);
      const body: Record<string, unknown> = { drained, ...base };
      if (!drained) body.inflight = inflight;
      if (capped) body.wait_capped = capped;
      return { status: drained ? 200 : 202, body };
    }
    case "weight":
      return {
        status: 200,
        body: { ...base, weight: first?.weight, configured_weight: first?.configuredWeight },
      };
    case "state":
      return { status: 200, body: { ...base, inflight } };
    case "idle":
      return { status: 200, body: { ...base, action: op.action } };
  }
}
