/**
 * A service's middlewares composed once per config: the request phases in file order, then the
 * balancer; response heads and bodies pass the middlewares in reverse order (the first listed is
 * the outermost, as in Traefik and Caddy). A service without middlewares has no Chain at all.
 * A middleware that throws answers 500 for that request only; the error is logged at most once
 * per minute per middleware. A `Reroute` outcome (GoDoxy's `route NAME`) hands the request to the
 * target the server bound for that name (`bindRoutes`); its response then passes the target's
 * response middlewares and this chain's.
 */
import type { OutgoingHttpHeaders } from "node:http";
import type { Duplex } from "node:stream";
import { normalizePeer, type RealIpResolver } from "../balancer/realip.ts";
import type { ProxyRequest, ProxyResponse } from "../http-types.ts";
import type { Logger } from "../log.ts";
import {
  type Answer,
  type BodyFilter,
  kRerouted,
  type Middleware,
  PENDING,
  plainAnswer,
  type RequestInfo,
  Reroute,
  type ReroutedRequest,
  type Sink,
} from "./types.ts";

/** Where the request goes after the chain (the service's balancer). */
export interface Next {
  handle(req: ProxyRequest, res: ProxyResponse): void;
  handleUpgrade(req: ProxyRequest, socket: Duplex, head: Buffer): void;
  clientIp(req: ProxyRequest): string;
  /** The service's real-IP rules: an untrusted peer is its own client (no header is read). */
  readonly realIp: RealIpResolver;
}

/** The resolved client address; `req.headers` (built lazily by node) is touched only for a trusted peer. */
function clientOf(req: ProxyRequest, next: Next): string {
  const peer = normalizePeer(req.socket?.remoteAddress);
  return next.realIp.isTrusted(peer) ? next.clientIp(req) : peer;
}

/** Where a `Reroute` goes: another service's chain (or balancer), bound by the server at config time. */
export interface RouteTarget {
  handle(req: ProxyRequest, res: ProxyResponse): void;
  handleUpgrade(req: ProxyRequest, socket: Duplex, head: Buffer): void;
}

/** Told of every answer a middleware gave (metrics). */
export type AnswerCounter = (middleware: string, status: number) => void;

const LOG_EVERY = 60_000;
const INTERNAL = plainAnswer(500, "Internal Server Error");

const kChain: unique symbol = Symbol("switchyard.chain");
const kFilter: unique symbol = Symbol("switchyard.filter");
/** The chains a rerouted response passed before the current one (outermost first). */
const kOuter: unique symbol = Symbol("switchyard.outer");
type ChainedResponse = ProxyResponse & { [kChain]?: Chain; [kFilter]?: Sink; [kOuter]?: Chain[] };

interface Info extends RequestInfo {
  client: string;
}

export class Chain {
  readonly #request: Middleware[];
  /** Response-phase middlewares, innermost (last listed) first. */
  readonly #response: Middleware[];
  readonly #all: readonly Middleware[];
  readonly #needsClient: boolean;
  readonly #logger: Logger;
  readonly #count: AnswerCounter;
  readonly #lastLog = new Map<string, { at: number; suppressed: number }>();
  /** Targets of `Reroute` outcomes, by service name (see bindRoutes). */
  #routes: ReadonlyMap<string, RouteTarget> = new Map();

  constructor(middlewares: readonly Middleware[], logger: Logger, count: AnswerCounter) {
    this.#all = middlewares;
    this.#request = middlewares.filter((m) => m.request !== undefined);
    this.#response = middlewares.filter((m) => m.head !== undefined).reverse();
    this.#needsClient = middlewares.some((m) => m.needsClient);
    this.#logger = logger;
    this.#count = count;
  }

  get kinds(): string[] {
    return this.#all.map((m) => m.kind);
  }

  close(): void {
    for (const m of this.#all) m.close?.();
  }

  /** The service names a middleware may hand requests to, resolved once per config by the server. */
  bindRoutes(resolve: (service: string) => RouteTarget | undefined, names: Iterable<string>): void {
    const routes = new Map<string, RouteTarget>();
    for (const n of names) {
      const t = resolve(n);
      if (t !== undefined) routes.set(n, t);
    }
    this.#routes = routes;
  }

  #target(kind: string, r: Reroute): RouteTarget {
    const t = this.#routes.get(r.service);
    if (t === undefined)
      throw new Error(`${kind}: \`route ${r.service}\` names no service of this configuration`);
    return t;
  }

  handle(req: ProxyRequest, res: ProxyResponse, next: Next): void {
    const info: Info = { client: this.#needsClient ? clientOf(req, next) : "" };
    // the response middlewares see every head: the backend's, switchyard's errors, the answers here
    if (this.#response.length !== 0) {
      const r = res as ChainedResponse;
      const outer = r[kChain];
      // a rerouted request: the response passes this service's middlewares, then the first's
      if (outer !== undefined && outer !== this) {
        const list = r[kOuter];
        if (list === undefined) r[kOuter] = [outer];
        else list.push(outer);
      }
      r[kChain] = this;
      r.writeHead = chainWriteHead as ProxyResponse["writeHead"];
      // a body written without writeHead (implicit head) must pass the filters too
      r.write = filteredWrite as ProxyResponse["write"];
      r.end = filteredEnd as ProxyResponse["end"];
    }
    this.#run(req, res, next, info, 0);
  }

  #run(req: ProxyRequest, res: ProxyResponse, next: Next, info: Info, from: number): void {
    const list = this.#request;
    for (let i = from; i < list.length; i++) {
      const m = list[i];
      let a: Answer | Reroute | undefined | typeof PENDING;
      try {
        a = m.request!(req, info, (later) => {
          if (res.destroyed) return;
          if (later === undefined) this.#run(req, res, next, info, i + 1);
          else if (later instanceof Error) {
            this.#failed(m.kind, later, req);
            this.#answer(res, m.kind, INTERNAL);
          } else this.#outcome(req, res, m.kind, later);
        });
      } catch (err) {
        this.#failed(m.kind, err, req);
        this.#answer(res, m.kind, INTERNAL);
        return;
      }
      if (a === PENDING) return;
      if (a !== undefined) {
        this.#outcome(req, res, m.kind, a);
        return;
      }
    }
    next.handle(req, res);
  }

  #outcome(req: ProxyRequest, res: ProxyResponse, kind: string, a: Answer | Reroute): void {
    if (!(a instanceof Reroute)) {
      this.#answer(res, kind, a);
      return;
    }
    let target: RouteTarget;
    try {
      target = this.#target(kind, a);
    } catch (err) {
      this.#failed(kind, err, req);
      this.#answer(res, kind, INTERNAL);
      return;
    }
    const r = req as ReroutedRequest;
    r[kRerouted] = (r[kRerouted] ?? 0) + 1;
    target.handle(req, res);
  }

  /** Upgrades (WebSocket): the request phases only; an answer is written on the socket. */
  handleUpgrade(req: ProxyRequest, socket: Duplex, head: Buffer, next: Next): void {
    const info: Info = { client: this.#needsClient ? clientOf(req, next) : "" };
    const step = (from: number): void => {
      const list = this.#request;
      for (let i = from; i < list.length; i++) {
        const m = list[i];
        let a: Answer | Reroute | undefined | typeof PENDING;
        const outcome = (o: Answer | Reroute | Error): void => {
          if (o instanceof Error) {
            this.#failed(m.kind, o, req);
            this.#answerSocket(socket, m.kind, INTERNAL);
          } else if (!(o instanceof Reroute)) this.#answerSocket(socket, m.kind, o);
          else {
            let target: RouteTarget;
            try {
              target = this.#target(m.kind, o);
            } catch (err) {
              outcome(err as Error);
              return;
            }
            const r = req as ReroutedRequest;
            r[kRerouted] = (r[kRerouted] ?? 0) + 1;
            target.handleUpgrade(req, socket, head);
          }
        };
        try {
          a = m.request!(req, info, (later) => {
            if (socket.destroyed) return;
            if (later !== undefined) outcome(later);
            else step(i + 1);
          });
        } catch (err) {
          outcome(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        if (a === PENDING) return;
        if (a !== undefined) {
          outcome(a);
          return;
        }
      }
      next.handleUpgrade(req, socket, head);
    };
    step(0);
  }

  #answer(res: ProxyResponse, kind: string, a: Answer): void {
    this.#count(kind, a.status);
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    for (const name of res.getHeaderNames()) res.removeHeader(name);
    res.writeHead(a.status, a.headers as string[]);
    res.end(a.body);
  }

  #answerSocket(socket: Duplex, kind: string, a: Answer): void {
    this.#count(kind, a.status);
    let head = `HTTP/1.1 ${a.status} ${STATUS_TEXT[a.status] ?? "Error"}\r\n`;
    for (let i = 0; i < a.headers.length; i += 2) head += `${a.headers[i]}: ${a.headers[i + 1]}\r\n`;
    socket.end(`${head}connection: close\r\n\r\n${a.body}`);
  }

  /** Logs a middleware's error at most once a minute (with how many were not logged). */
  #failed(kind: string, err: unknown, req: ProxyRequest): void {
    const now = Date.now();
    const last = this.#lastLog.get(kind);
    if (last !== undefined && now - last.at < LOG_EVERY) {
      last.suppressed++;
      return;
    }
    const suppressed = last?.suppressed ?? 0;
    this.#lastLog.set(kind, { at: now, suppressed: 0 });
    this.#logger.error(
      { err, middleware: kind, method: req.method, url: req.url, suppressed },
      `middleware ${kind} failed: answered 500 (logged at most once a minute${suppressed ? `; ${suppressed} more since the last line` : ""})`,
    );
  }

  /** Runs the response heads; returns the first body sink (or undefined: straight to the client). */
  head(
    req: ProxyRequest,
    res: ProxyResponse,
    status: number,
    headers: string[],
    base: Sink | undefined = undefined,
  ): { sink: Sink | undefined; status: number } {
    let filters: BodyFilter[] | undefined;
    for (const m of this.#response) {
      let f: BodyFilter | undefined;
      try {
        f = m.head!(req, res, status, headers);
      } catch (err) {
        this.#failed(m.kind, err, req);
        headers.length = 0;
        headers.push(...INTERNAL.headers);
        return { sink: replaceBody(Buffer.from(INTERNAL.body), base ?? clientSink(res)), status: 500 };
      }
      if (f !== undefined) {
        filters ??= [];
        filters.push(f);
      }
    }
    if (filters === undefined) return { sink: base, status };
    const last = base ?? clientSink(res);
    // filters[0] is innermost: it feeds filters[1], …, the last feeds the client
    for (let i = 0; i < filters.length; i++) filters[i].next = filters[i + 1] ?? last;
    if (filters.some((f) => f.abort !== undefined)) {
      res.once("close", () => {
        for (const f of filters) f.abort?.();
      });
    }
    return { sink: filters[0], status };
  }
}

const STATUS_TEXT: Record<number, string> = {
  301: "Moved Permanently",
  302: "Found",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  401: "Unauthorized",
  403: "Forbidden",
  429: "Too Many Requests",
  500: "Internal Server Error",
};

type Proto = {
  writeHead: (status: number, a?: unknown, b?: unknown) => ProxyResponse;
  write: (chunk: unknown, enc?: unknown, cb?: unknown) => boolean;
  end: (chunk?: unknown, enc?: unknown, cb?: unknown) => ProxyResponse;
};
const proto = (res: ProxyResponse): Proto => Object.getPrototypeOf(res) as Proto;

/** The client side of a filtered body: the response object's own write and end. */
function clientSink(res: ProxyResponse): Sink {
  const p = proto(res);
  return {
    write: (chunk) => p.write.call(res, chunk),
    end: (chunk) => {
      if (chunk === undefined) p.end.call(res);
      else p.end.call(res, chunk);
    },
  };
}

/** A filter that drops the body it is given and sends `body` instead (a 500 from a failed head). */
function replaceBody(body: Buffer, base: Sink): Sink {
  return {
    write: () => true,
    end: () => base.end(body),
  };
}

/** Flattens writeHead's headers (flat list, [k, v] pairs or an object) and those set before. */
function flatten(res: ProxyResponse, h: unknown): string[] {
  const out: string[] = [];
  for (const name of res.getHeaderNames()) {
    push(out, name, res.getHeader(name));
    res.removeHeader(name);
  }
  if (Array.isArray(h)) {
    if (h.length > 0 && Array.isArray(h[0])) for (const [k, v] of h as [string, unknown][]) push(out, k, v);
    else for (let i = 0; i < h.length; i += 2) out.push(String(h[i]), String(h[i + 1]));
  } else if (h !== undefined && h !== null) {
    for (const [k, v] of Object.entries(h as OutgoingHttpHeaders)) push(out, k, v);
  }
  return out;
}

function push(out: string[], name: string, v: unknown): void {
  if (v === undefined) return;
  if (Array.isArray(v)) for (const x of v) out.push(name, String(x));
  else out.push(name, String(v));
}

/** res.writeHead of a response whose service has response middlewares (installed by Chain). */
function chainWriteHead(this: ChainedResponse, status: number, a?: unknown, b?: unknown): ProxyResponse {
  const chain = this[kChain];
  const p = proto(this);
  if (chain === undefined || this.headersSent) return p.writeHead.call(this, status, a, b);
  this[kChain] = undefined;
  const text = typeof a === "string" ? a : undefined;
  // writeHead(status, headers) or writeHead(status, text | undefined, headers) (the proxy's form)
  const headers = flatten(this, typeof a === "string" || a === undefined ? b : a);
  const req = this.req;
  const outer = this[kOuter];
  let sink: Sink | undefined;
  let out: number;
  if (outer === undefined) ({ sink, status: out } = chain.head(req, this, status, headers));
  else ({ sink, status: out } = rerouteHead(chain, outer, req, this, status, headers));
  if (sink !== undefined) this[kFilter] = sink;
  return out === status && text !== undefined
    ? p.writeHead.call(this, out, text, headers)
    : p.writeHead.call(this, out, headers);
}

/**
 * The head of a rerouted response: the service that answered first (innermost), then the ones
 * that handed it on, last to first. A body passes their filters in the same order.
 */
function rerouteHead(
  inner: Chain,
  outer: Chain[],
  req: ProxyRequest,
  res: ProxyResponse,
  status: number,
  headers: string[],
): { sink: Sink | undefined; status: number } {
  const chains = [inner, ...outer.slice().reverse()];
  // each chain's last filter feeds a relay that is pointed at the next chain's first sink
  const relays: Relay[] = [];
  let first: Sink | undefined;
  let out = status;
  for (let i = 0; i < chains.length; i++) {
    const relay = i === chains.length - 1 ? undefined : new Relay();
    const r = chains[i].head(req, res, out, headers, relay);
    out = r.status;
    if (i > 0) relays[i - 1].target = r.sink ?? clientSink(res);
    if (relay !== undefined) relays.push(relay);
    if (i === 0) first = r.sink;
  }
  if (first === undefined) return { sink: undefined, status: out };
  return { sink: first, status: out };
}

/** A sink whose target is set once the next chain's filters are known. */
class Relay implements Sink {
  target: Sink | undefined;
  write(chunk: Buffer): boolean {
    return this.target!.write(chunk);
  }
  end(chunk: Buffer | undefined): void {
    this.target!.end(chunk);
  }
}

function toBuffer(chunk: unknown, enc: unknown): Buffer | undefined {
  if (chunk === undefined || chunk === null || typeof chunk === "function") return undefined;
  if (typeof chunk === "string")
    return Buffer.from(chunk, typeof enc === "string" ? (enc as BufferEncoding) : "utf8");
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
}

/** res.write of a response whose service has response middlewares: through the body filters, if any. */
function filteredWrite(this: ChainedResponse, chunk: unknown, enc?: unknown, cb?: unknown): boolean {
  if (!this.headersSent) this.writeHead(this.statusCode);
  const sink = this[kFilter];
  if (sink === undefined) return proto(this).write.call(this, chunk, enc, cb);
  const b = toBuffer(chunk, enc);
  if (b === undefined || b.length === 0) return true;
  return sink.write(b);
}

function filteredEnd(this: ChainedResponse, chunk?: unknown, enc?: unknown, cb?: unknown): ProxyResponse {
  if (!this.headersSent && !this.destroyed) this.writeHead(this.statusCode);
  const sink = this[kFilter];
  if (sink === undefined) return proto(this).end.call(this, chunk, enc, cb);
  this[kFilter] = undefined;
  sink.end(toBuffer(chunk, enc));
  return this;
}
