/**
 * The request entry point of the proxy listeners: one router lookup, cheap accounting for
 * metrics and drain, then the service's `lb.handle`. No per-request closures: the 'close'
 * listener is one shared function that reads what it needs from the response.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { normalizePeer } from "../balancer/realip.ts";
import { batchedInfo, type Logger } from "../log.ts";
import { endWithError, sendError } from "../proxy/respond.ts";
import { classIndex } from "./metrics.ts";
import { HostRouter } from "./router.ts";
import { kServer, kTries, type Service, type TaggedRequest } from "./services.ts";

const kService: unique symbol = Symbol("switchyard.service");
const kStart: unique symbol = Symbol("switchyard.start");
type TrackedResponse = ServerResponse & {
  [kService]: Service;
  [kStart]: number;
  req: TaggedRequest;
  /** Body bytes written (our HTTP/1 front, and the counting responses of node:http and http2). */
  bytesSent?: number;
};

/** Requests and upgrades in flight in this process (all services), for drain. */
const active = { requests: 0 };

function onClose(this: TrackedResponse): void {
  const svc = this[kService];
  const st = svc.stats;
  st.inflight--;
  active.requests--;
  const now = performance.now();
  const seconds = (now - this[kStart]) / 1000;
  const req = this.req;
  const server = req[kServer];
  const cls = classIndex(this.statusCode, this.headersSent);
  st.record(server, cls, seconds, now);
  const line = svc.accessLine;
  if (line !== undefined) {
    line({
      client: svc.lb.clientIp(req),
      method: req.method,
      host: hostOf(req),
      path: req.url,
      status: this.headersSent ? this.statusCode : undefined,
      aborted: this.writableFinished ? undefined : true,
      bytes: this.bytesSent,
      ms: Math.round(seconds * 1e5) / 100,
      service: svc.name,
      server: server?.name,
      tries: server === undefined ? undefined : (req[kTries] ?? 1),
    });
  }
}

export class Front {
  #router: HostRouter<Service> = new HostRouter<Service>([]);
  #draining = false;
  readonly upgrades = new Set<Duplex>();

  readonly #access: ((fields: object) => void) | undefined;
  /** The access writer for requests no service matched (top-level `access_log`). */
  #unmatched: ((fields: object) => void) | undefined;

  /**
   * `logger` takes the access log: one `info` line per request, written when its response
   * closes, batched in the stdout buffer (src/log.ts) so that it costs one small object per
   * request and one write per many lines.
   */
  constructor(logger: Logger) {
    this.#access = logger.isLevelEnabled("info")
      ? batchedInfo(logger.child({ component: "access" }), "request")
      : undefined;
    this.request = this.request.bind(this);
    this.upgrade = this.upgrade.bind(this);
  }

  /** Swaps in the services of a new config; requests already routed keep their service. */
  setServices(services: Iterable<Service>, accessLog = true): void {
    this.#unmatched = accessLog ? this.#access : undefined;
    const list = Array.from(services);
    // the shared close listener finds the writer on the service
    for (const s of list) s.accessLine = s.config.accessLog ? this.#access : undefined;
    this.#router = new HostRouter(list.map((s) => ({ name: s.name, hosts: s.config.hosts, target: s })));
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
      const line = this.#unmatched;
      if (line !== undefined) {
        line({
          client: normalizePeer(req.socket?.remoteAddress),
          method: req.method,
          host: hostOf(req),
          path: req.url,
          status: 404,
          bytes: (res as TrackedResponse).bytesSent,
          ms: 0,
        });
      }
      return;
    }
    svc.stats.inflight++;
    active.requests++;
    const tracked = res as TrackedResponse;
    tracked[kService] = svc;
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
    if (n.length === 4 && n.toLowerCase() === "host") return raw[i + 1];
    if (n === ":authority") authority = raw[i + 1];
  }
  return authority;
}
