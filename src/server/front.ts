/**
 * The request entry point of the proxy listeners: one router lookup, cheap accounting for
 * metrics and drain, then the service's `lb.handle`. No per-request closures: the 'close'
 * listener is one shared function that reads what it needs from the response.
 */

import type { Duplex } from "node:stream";
import { normalizePeer } from "../balancer/realip.ts";
import type { ProxyRequest, ProxyResponse } from "../http-types.ts";
import { nameIs } from "../http1/raw-headers.ts";
import { endWithError, sendError } from "../http1/respond.ts";
import { h2cTunnelable } from "../http1/validate.ts";
import { batchedInfo, type Logger } from "../log.ts";
import { type RouteTarget, routeTargets } from "../middleware/index.ts";
import { extendedProtocol, websocketOverH2 } from "./h2-websocket.ts";
import { classIndex } from "./metrics.ts";
import { PathTable, stripPrefix } from "./paths.ts";
import { HostRouter } from "./router.ts";
import { kServer, kTries, type Service, type TaggedRequest } from "./services.ts";

const kService: unique symbol = Symbol("switchyard.service");
const kStart: unique symbol = Symbol("switchyard.start");
type TrackedResponse = ProxyResponse & {
  [kService]: Service;
  [kStart]: number;
  req: TaggedRequest;
  /** Body bytes written (our HTTP/1 front, and the counting responses of node:http and http2). */
  bytesSent?: number;
};

/** A Front's count of requests in flight (all its services), for drain. */
interface Active {
  requests: number;
}

/**
 * The 'close' listener of a Front's responses: one function per Front, none per request; it counts
 * down that Front's requests (two Fronts in one process, as two runtimes, drain apart).
 */
function closeListener(active: Active): (this: TrackedResponse) => void {
  return function onFrontClose(this: TrackedResponse): void {
    active.requests--;
    onClose.call(this);
  };
}

function onClose(this: TrackedResponse): void {
  const svc = this[kService];
  const st = svc.stats;
  st.inflight--;
  const now = performance.now();
  const seconds = (now - this[kStart]) / 1000;
  const req = this.req;
  const server = req[kServer];
  const cls = classIndex(this.statusCode, this.headersSent);
  st.record(server, cls, seconds, now);
  const line = svc.accessLine;
  if (line !== undefined) {
    line(
      accessFields(
        svc.lb.clientIp(req),
        req,
        this.headersSent ? this.statusCode : -1,
        !this.writableFinished,
        this.bytesSent,
        seconds,
        svc.accessName,
        server === undefined ? undefined : server.name,
        server === undefined ? 0 : (req[kTries] ?? 1),
      ),
    );
  }
}

/** What a Host leads to: one service, or the services that share it, told apart by path. */
type Target = Service | PathTable<Service>;

/**
 * The Host router of a set of services. A host used by one service without `paths` leads
 * straight to it; a host shared by path (or one service with `paths`) leads to a PathTable.
 */
export function routerOf(services: Iterable<Service>): HostRouter<Target> {
  const byHost = new Map<string, { prefix: string; target: Service }[]>();
  const routes: { name: string; hosts: string[]; target: Target }[] = [];
  for (const s of services) {
    const c = s.config;
    if (c.hosts.length === 0) {
      routes.push({ name: s.name, hosts: [], target: s });
      continue;
    }
    for (const h of c.hosts) {
      let list = byHost.get(h);
      if (list === undefined) {
        list = [];
        byHost.set(h, list);
      }
      for (const prefix of c.paths?.length ? c.paths : ["/"]) list.push({ prefix, target: s });
    }
  }
  for (const [h, list] of byHost) {
    const direct = list.length === 1 && list[0].prefix === "/";
    routes.push({ name: h, hosts: [h], target: direct ? list[0].target : new PathTable(list) });
  }
  return new HostRouter<Target>(routes);
}

/**
 * A string as a JSON string literal. Most request strings need no escaping: those are quoted
 * directly (a check of their characters costs a tenth of `JSON.stringify`); a `"`, `\\` or
 * control character sends the string through `JSON.stringify`.
 */
export function jsonString(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return JSON.stringify(s);
  }
  return `"${s}"`;
}

/**
 * `n / 100` as JavaScript prints it (76 → "0.76", 150 → "1.5", 200 → "2"), from integers: a
 * fraction's shortest decimal form costs more to find than the line's other fields together.
 */
export function hundredths(n: number): string {
  const whole = Math.trunc(n / 100);
  const rest = n - whole * 100;
  if (rest === 0) return `${whole}`;
  if (rest % 10 === 0) return `${whole}.${rest / 10}`;
  return rest < 10 ? `${whole}.0${rest}` : `${whole}.${rest}`;
}

/**
 * An access line's fields as JSON text (`,"client":...`): one string per request, no object.
 * Strings from the client (method, host, path) are escaped (`jsonString`); `status` -1 and
 * `tries` 0 are left out (no response head; no server took it). `service` is the service's
 * field already as JSON text (`,"service":"name"`, built once per service) or "".
 */
function accessFields(
  client: string,
  req: ProxyRequest,
  status: number,
  aborted: boolean,
  bytes: number | undefined,
  seconds: number,
  service: string,
  server: string | undefined,
  tries: number,
): string {
  const host = hostOf(req);
  let s = `,"client":${jsonString(client)},"method":${jsonString(req.method ?? "")}`;
  if (host !== undefined) s += `,"host":${jsonString(host)}`;
  s += `,"path":${jsonString(req.url ?? "")}`;
  if (status >= 0) s += `,"status":${status}`;
  if (aborted) s += ',"aborted":true';
  if (bytes !== undefined) s += `,"bytes":${bytes}`;
  s += `,"ms":${hundredths(Math.round(seconds * 1e5))}${service}`;
  if (server !== undefined) s += `,"server":${jsonString(server)}`;
  if (tries !== 0) s += `,"tries":${tries}`;
  return s;
}

export class Front {
  #router: HostRouter<Target> = new HostRouter<Target>([]);
  #draining = false;
  readonly upgrades = new Set<Duplex>();
  readonly #active: Active = { requests: 0 };
  readonly #onClose = closeListener(this.#active);

  readonly #access: ((fields: string) => void) | undefined;
  /** The access writer for requests no service matched (top-level `access_log`). */
  #unmatched: ((fields: string) => void) | undefined;

  /**
   * `logger` takes the access log: one `info` line per request, written when its response
   * closes as one string (no object), batched in the stdout buffer (src/log.ts): one write per
   * many lines.
   */
  constructor(logger: Logger) {
    this.#access = batchedInfo(logger.child({ component: "access" }), "request");
    this.request = this.request.bind(this);
    this.upgrade = this.upgrade.bind(this);
    this.h2cUpgrade = this.h2cUpgrade.bind(this);
    this.connect = this.connect.bind(this);
  }

  /** Swaps in the services of a new config; requests already routed keep their service. */
  setServices(services: Iterable<Service>, accessLog = true): void {
    this.#unmatched = accessLog ? this.#access : undefined;
    const list = Array.from(services);
    // the shared close listener finds the writer on the service
    for (const s of list) s.accessLine = s.config.accessLog ? this.#access : undefined;
    this.#router = routerOf(list);
    bindRoutes(list);
  }

  /** From now on, HTTP/1 responses carry `Connection: close` so clients move off. */
  drain(): void {
    this.#draining = true;
  }

  /** Requests in flight through this Front. */
  get inflight(): number {
    return this.#active.requests;
  }

  request(req: ProxyRequest, res: ProxyResponse): void {
    let svc = this.#router.match(hostOf(req));
    if (svc instanceof PathTable) svc = routePath(svc, req);
    if (svc === undefined) {
      sendError(res, 404, "Not Found: no service for this host");
      const line = this.#unmatched;
      if (line !== undefined) {
        const bytes = (res as TrackedResponse).bytesSent;
        line(
          accessFields(normalizePeer(req.socket?.remoteAddress), req, 404, false, bytes, 0, "", undefined, 0),
        );
      }
      return;
    }
    svc.stats.inflight++;
    this.#active.requests++;
    const tracked = res as TrackedResponse;
    tracked[kService] = svc;
    tracked[kStart] = performance.now();
    res.on("close", this.#onClose);
    if (this.#draining && req.httpVersionMajor === 1) res.shouldKeepAlive = false;
    if (svc.chain === undefined) svc.lb.handle(req, res);
    else svc.chain.handle(req, res, svc.lb);
  }

  /**
   * Asked by the HTTP/1 fronts at the head of an `Upgrade: h2c` request: it is tunnelled only when
   * the service it routes to has `allow_h2c_upgrade` (and it is a well-formed, bodiless one); else
   * it is served as a plain request without its Upgrade. The upgrade then runs the service's
   * middlewares like any other (`upgrade` below).
   */
  h2cUpgrade(rawHeaders: readonly string[], target: string): boolean {
    if (this.#draining || !h2cTunnelable(rawHeaders)) return false;
    let svc = this.#router.match(hostIn(rawHeaders));
    if (svc instanceof PathTable) svc = svc.match(target);
    return svc !== undefined && svc.config.allowH2cUpgrade === true;
  }

  /**
   * A CONNECT on the h2 front: an extended CONNECT for a WebSocket (RFC 8441) takes the upgrade
   * path below as the equivalent HTTP/1.1 handshake (h2-websocket.ts); a plain CONNECT (a
   * tunnel to anywhere) gets 405, as on the HTTP/1 front.
   */
  connect(req: ProxyRequest, res: ProxyResponse): void {
    const protocol = extendedProtocol(req);
    if (protocol === undefined || protocol.toLowerCase() !== "websocket") {
      sendError(
        res,
        protocol === undefined ? 405 : 501,
        protocol === undefined ? "Method Not Allowed" : "Not Implemented",
      );
      return;
    }
    const up = websocketOverH2(req);
    this.upgrade(up.req, up.socket, EMPTY);
  }

  upgrade(req: ProxyRequest, socket: Duplex, head: Buffer): void {
    socket.on("error", ignore);
    let svc = this.#router.match(hostOf(req));
    if (svc instanceof PathTable) svc = routePath(svc, req);
    if (svc === undefined || this.#draining) {
      if (svc === undefined) endWithError(socket, 404, "Not Found");
      else endWithError(socket, 503, "Service Unavailable");
      return;
    }
    this.upgrades.add(socket);
    socket.once("close", () => this.upgrades.delete(socket));
    if (svc.chain === undefined) svc.lb.handleUpgrade(req, socket, head);
    else svc.chain.handleUpgrade(req, socket, head, svc.lb);
  }
}

/**
 * Points each service's `route NAME` outcomes (GoDoxy rules) at the named services, once per
 * config: a rerouted request enters the target's middlewares and balancer as if routed there,
 * and is counted (metrics, access line) for the service it arrived at.
 */
function bindRoutes(list: readonly Service[]): void {
  const byName = new Map(list.map((s) => [s.name, s]));
  for (const s of list) {
    const names = routeTargets(s.config.middlewares);
    if (names.length === 0 || s.chain === undefined) continue;
    s.chain.bindRoutes((n) => {
      const t = byName.get(n);
      return t === undefined ? undefined : routeTarget(t);
    }, names);
  }
}

function routeTarget(svc: Service): RouteTarget {
  return {
    handle(req, res) {
      if (svc.chain === undefined) svc.lb.handle(req, res);
      else svc.chain.handle(req, res, svc.lb);
    },
    handleUpgrade(req, socket, head) {
      if (svc.chain === undefined) svc.lb.handleUpgrade(req, socket, head);
      else svc.chain.handleUpgrade(req, socket, head, svc.lb);
    },
  };
}

/** The service of a shared host for the request's path; strips the matched prefix when asked. */
function routePath(table: PathTable<Service>, req: ProxyRequest): Service | undefined {
  const url = req.url ?? "/";
  const svc = table.match(url);
  if (svc !== undefined && svc.config.stripPrefix === true && table.matched > 1)
    req.url = stripPrefix(url, table.matched);
  return svc;
}

function ignore(): void {}

const EMPTY = Buffer.alloc(0);

/**
 * The Host a request names (HTTP/2: `:authority` when there is no Host), from rawHeaders: building
 * `req.headers` for this one value costs more than the lookup.
 */
export function hostOf(req: ProxyRequest): string | undefined {
  return hostIn(req.rawHeaders);
}

function hostIn(raw: readonly string[]): string | undefined {
  let authority: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i];
    if (nameIs(n, "host")) return raw[i + 1];
    if (n === ":authority") authority = raw[i + 1];
  }
  return authority;
}
