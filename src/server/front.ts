/**
 * The request entry point of the proxy listeners: one router lookup, cheap accounting for
 * metrics and drain, then the service's `lb.handle`. No per-request closures: the 'close'
 * listener is one shared function that reads what it needs from the response.
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { nameIs } from "../http1/raw-headers.ts";
import { endWithError, sendError } from "../http1/respond.ts";
import type { Logger } from "../log.ts";
import { classIndex, type ServiceStats } from "./metrics.ts";
import { HostRouter } from "./router.ts";
import { kServer, type Service, type TaggedRequest } from "./services.ts";

const kStats: unique symbol = Symbol("switchyard.stats");
const kStart: unique symbol = Symbol("switchyard.start");
type TrackedResponse = ServerResponse & {
  [kStats]: ServiceStats;
  [kStart]: number;
  req: TaggedRequest;
};

/** Requests and upgrades in flight in this process (all services), for drain. */
const active = { requests: 0 };
let debugLog: Logger | undefined;

function onClose(this: TrackedResponse): void {
  const st = this[kStats];
  st.inflight--;
  active.requests--;
  const now = performance.now();
  const seconds = (now - this[kStart]) / 1000;
  const req = this.req;
  const server = req[kServer];
  const cls = classIndex(this.statusCode, this.headersSent);
  st.record(server, cls, seconds, now);
  if (debugLog !== undefined) {
    debugLog.debug(
      {
        service: st.name,
        server: server?.name,
        method: req.method,
        url: req.url,
        status: this.headersSent ? this.statusCode : undefined,
        aborted: this.writableFinished ? undefined : true,
        ms: Math.round(seconds * 1e5) / 100,
        client: req.socket?.remoteAddress,
      },
      "request",
    );
  }
}

export class Front {
  #router: HostRouter<Service> = new HostRouter<Service>([]);
  #draining = false;
  readonly upgrades = new Set<Duplex>();

  constructor(logger: Logger) {
    debugLog = logger.isLevelEnabled?.("debug") === true ? logger.child({ component: "access" }) : undefined;
    this.request = this.request.bind(this);
    this.upgrade = this.upgrade.bind(this);
  }

  /** Swaps in the services of a new config; requests already routed keep their service. */
  setServices(services: Iterable<Service>): void {
    this.#router = new HostRouter(
      Array.from(services, (s) => ({ name: s.name, hosts: s.config.hosts, target: s })),
    );
  }

  /** From now on, HTTP/1 responses carry `Connection: close` so clients move off. */
  drain(): void {
    this.#draining = true;
  }

  get inflight(): number {
    return active.requests;
  }

  request(req: IncomingMessage, res: ServerResponse): void {
    const svc = this.#router.match(hostOf(req));
    if (svc === undefined) {
      sendError(res, 404, "Not Found: no service for this host");
      return;
    }
    const st = svc.stats;
    st.inflight++;
    active.requests++;
    const tracked = res as TrackedResponse;
    tracked[kStats] = st;
    tracked[kStart] = performance.now();
    res.on("close", onClose);
    if (this.#draining && req.httpVersionMajor === 1) res.shouldKeepAlive = false;
    svc.lb.handle(req, res);
  }

  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on("error", ignore);
    const svc = this.#router.match(hostOf(req));
    if (svc === undefined || this.#draining) {
      if (svc === undefined) endWithError(socket, 404, "Not Found");
      else endWithError(socket, 503, "Service Unavailable");
      return;
    }
    this.upgrades.add(socket);
    socket.once("close", () => this.upgrades.delete(socket));
    svc.lb.handleUpgrade(req, socket, head);
  }
}

function ignore(): void {}

/**
 * The Host a request names (HTTP/2: `:authority` when there is no Host), from rawHeaders: building
 * `req.headers` for this one value costs more than the lookup.
 */
export function hostOf(req: IncomingMessage): string | undefined {
  const raw = req.rawHeaders;
  let authority: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i];
    if (nameIs(n, "host")) return raw[i + 1];
    if (n === ":authority") authority = raw[i + 1];
  }
  return authority;
}
