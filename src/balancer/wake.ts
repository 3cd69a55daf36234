import type { ServerResponse } from "node:http";
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
export async function streamWakeEvents(servers: readonly Server[], res: ServerResponse): Promise<void> {
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
  const results = await Promise.allSettled(
    sleeping.map(async (s) => {
      try {
        await s.tryWake();
        send({ server: s.name, action: "ready" });
      } catch (err) {
        send({ server: s.name, action: "error", error: messageOf(err) });
        throw err;
      }
    }),
  );
  const errors = results.flatMap((r) => (r.status === "rejected" ? [r.reason] : []));
  if (errors.length === 0) {
    send({ action: "ready" });
  } else {
    const all = new AggregateError(errors, `failed to wake ${errors.length} of ${sleeping.length} servers`);
    send({ action: "error", error: messageOf(all) });
  }
  res.end();
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
