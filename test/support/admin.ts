/** Clients for the admin API in end-to-end tests: calls with a JSON body, and an event-stream reader. */
import * as http from "node:http";
import { type Reply, send, splitAddress } from "./http.ts";

/** One admin call on a fresh connection; `body` is sent as JSON. Read the answer with `.json()`. */
export function call(
  address: string | number,
  method: string,
  path: string,
  body?: unknown,
  headers: http.OutgoingHttpHeaders = {},
): Promise<Reply> {
  return send(address, {
    method,
    path,
    agent: false,
    headers: body === undefined ? headers : { "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

/** A server action (`drain`, `maint`, `ready`, `weight` …) of service `service` through the admin API. */
export function serverAction(
  admin: string,
  service: string,
  server: string,
  action: string,
  body: unknown = {},
): Promise<Reply> {
  const method = action === "weight" ? "PUT" : "POST";
  return call(admin, method, `/api/services/${service}/servers/${server}/${action}`, body);
}

/** Waits (polling, bounded) until `GET /api/health/<service>` says `detail`, e.g. "2/2 servers are healthy". */
export async function waitForHealth(
  admin: string,
  service: string,
  detail: string,
  ms = 10_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  let last = "";
  for (;;) {
    const r = await call(admin, "GET", `/api/health/${service}`);
    last = r.status === 200 ? String(r.json().detail) : `${r.status} ${r.body}`;
    if (last === detail) return;
    if (Date.now() > deadline) throw new Error(`${service}: waited ${ms} ms for "${detail}", last "${last}"`);
    await new Promise((ok) => setTimeout(ok, 50));
  }
}

/** The pool of `GET /api/health/<service>` (its `extra.pool`), by server name. */
export async function healthPool(
  admin: string,
  service: string,
): Promise<Record<string, Record<string, unknown>>> {
  const r = await call(admin, "GET", `/api/health/${service}`);
  const byKey = r.json<{ extra: { pool: Record<string, Record<string, unknown>> } }>().extra.pool;
  return Object.fromEntries(Object.values(byKey).map((p) => [p.name as string, p]));
}

export interface AdminEvent {
  timestamp: string;
  level: string;
  action: string;
  service?: string;
  server?: string;
  message: string;
}

export interface EventReader {
  events: AdminEvent[];
  /** Resolves with the first event (past or future) matching `pred`; rejects after `ms`. */
  waitFor(pred: (e: AdminEvent) => boolean, ms?: number, what?: string): Promise<AdminEvent>;
  close(): void;
  /** The stream's response (its 'close' says the server ended it). */
  response: http.IncomingMessage;
}

/** Opens `GET /api/events` and collects its frames. */
export function openEvents(address: string, headers: http.OutgoingHttpHeaders = {}): Promise<EventReader> {
  const [host, port] = splitAddress(address);
  return new Promise((ok, fail) => {
    const req = http.get({ host, port, path: "/api/events", agent: false, headers }, (res) => {
      if (res.statusCode !== 200) {
        fail(new Error(`GET /api/events: ${res.statusCode}`));
        res.resume();
        return;
      }
      const events: AdminEvent[] = [];
      const waiters = new Set<() => void>();
      let buf = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        buf += c;
        let i = buf.indexOf("\n\n");
        while (i >= 0) {
          const frame = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (frame.startsWith("data: ")) events.push(JSON.parse(frame.slice(6)));
          i = buf.indexOf("\n\n");
        }
        for (const w of waiters) w();
      });
      res.on("error", () => {});
      ok({
        events,
        waitFor(pred, ms = 10_000, what = "an event") {
          return new Promise((resolve, reject) => {
            const check = () => {
              const e = events.find(pred);
              if (e) {
                clearTimeout(timer);
                waiters.delete(check);
                resolve(e);
              }
            };
            const timer = setTimeout(() => {
              waiters.delete(check);
              reject(
                new Error(
                  `timed out waiting for ${what}; got ${JSON.stringify(events.map((e) => e.action))}`,
                ),
              );
            }, ms);
            waiters.add(check);
            check();
          });
        },
        close: () => req.destroy(),
        response: res,
      });
    });
    req.on("error", fail);
  });
}
