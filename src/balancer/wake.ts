import type { ProxyResponse } from "../http-types.ts";
import type { Server } from "./server.ts";

export const WAKE_EVENTS_PATH = "/$switchyard/wake-events";
/** Paths of the loading page; they always take the sticky path so a client keeps its server. */
export const STICKY_PATHS: ReadonlySet<string> = new Set([
  WAKE_EVENTS_PATH,
  "/$switchyard/loading.css",
  "/$switchyard/loading.js",
  "/favicon.ico",
]);

/**
 * Wakes every napping (or starting) server at once and streams progress as server-sent
 * events: one frame per server, then a final ready/error frame carrying every failure.
 */
export async function streamWakeEvents(servers: readonly Server[], res: ProxyResponse): Promise<void> {
  res.writeHead(200, {
    "content-type": "text/event-stream",
    "cache-control": "no-store",
  });
  const send = (data: unknown) => {
    if (!res.destroyed) res.write(`data: ${JSON.stringify(data)}\n\n`);
  };
  const sleeping = servers.filter((s) => {
    const st = s.status();
    return st === "napping" || st === "starting";
  });
  // an idle server whose wake just failed (in its back-off): its error, not a false "ready"
  const failed = servers.filter((s) => s.idle !== undefined && s.status() === "error");
  const results = await Promise.allSettled([
    ...failed.map(async (s) => {
      const error = scrub(`server ${s.name}: ${s.detail()}`, s);
      send({ server: s.name, action: "error", level: "error", error, timestamp: new Date().toISOString() });
      throw new Error(error);
    }),
    ...sleeping.map(async (s) => {
      // an idle watcher's progress frames (starting, waking_dep, …) before the terminal one
      const unwatch = s.idle?.watchProgress((e) => {
        if (e.action !== "ready" && e.action !== "error") send(e);
      });
      try {
        await s.tryWake();
        unwatch?.();
        send(
          s.idle
            ? {
                server: s.name,
                action: "ready",
                level: "info",
                message: `${s.name} is ready`,
                timestamp: new Date().toISOString(),
              }
            : { server: s.name, action: "ready" },
        );
      } catch (err) {
        unwatch?.();
        const error = scrub(messageOf(err), s);
        send(
          s.idle
            ? { server: s.name, action: "error", level: "error", error, timestamp: new Date().toISOString() }
            : { server: s.name, action: "error", error },
        );
        throw err;
      }
    }),
  ]);
  const errors = results.flatMap((r) => (r.status === "rejected" ? [r.reason] : []));
  if (errors.length === 0) {
    send({ action: "ready" });
  } else {
    const n = sleeping.length + failed.length;
    const all = new AggregateError(errors, `failed to wake ${errors.length} of ${n} servers`);
    send({ action: "error", error: scrubAll(messageOf(all), [...sleeping, ...failed]) });
  }
  res.end();
}

/** Error text for clients: the server's address replaced by its name. */
function scrub(text: string, s: Server): string {
  let out = text;
  for (const secret of [s.key, s.url.host, s.url.hostname]) if (secret) out = out.split(secret).join(s.name);
  return out;
}
function scrubAll(text: string, servers: readonly Server[]): string {
  let out = text;
  for (const s of servers) out = scrub(out, s);
  return out;
}

function messageOf(err: unknown): string {
  if (err instanceof AggregateError) {
    return `${err.message}: ${err.errors.map(messageOf).join("; ")}`;
  }
  if (err instanceof Error) {
    return err.cause ? `${err.message}: ${messageOf(err.cause)}` : err.message;
  }
  return String(err);
}
