/**
 * `GET /api/events`: the event log as server-sent events. A new client gets the kept events
 * (the last 100) and then every new one, each as one `data: <json>` frame. Every frame is
 * serialised once and written to all clients; a comment line every 15 s keeps proxies and
 * browsers from timing the stream out. A client that does not read is dropped once more than
 * `maxBuffered` bytes wait for it, so a stalled reader costs at most that much memory.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { EventLog, SwitchyardEvent } from "./events.ts";

export interface EventStreamOptions {
  /** Bytes that may wait (past what the kernel buffers) for one client before it is dropped (default 16 KiB). */
  maxBuffered?: number;
  /** Interval of the keep-alive comment (default 15 s). */
  heartbeatMs?: number;
  /** Concurrent clients; more get 503 (default 10,000). */
  maxClients?: number;
}

export function frame(e: SwitchyardEvent): string {
  return `data: ${JSON.stringify(e)}\n\n`;
}

export class EventStreams {
  readonly #log: EventLog;
  readonly #clients = new Set<ServerResponse>();
  readonly #maxBuffered: number;
  readonly #heartbeatMs: number;
  readonly #maxClients: number;
  #unsubscribe: (() => void) | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  /** Clients dropped for not reading (for tests and the log). */
  dropped = 0;

  constructor(log: EventLog, options: EventStreamOptions = {}) {
    this.#log = log;
    this.#maxBuffered = options.maxBuffered ?? 16 * 1024;
    this.#heartbeatMs = options.heartbeatMs ?? 15_000;
    this.#maxClients = options.maxClients ?? 10_000;
  }

  get clients(): number {
    return this.#clients.size;
  }

  /** Answers `req` with the event stream. Returns false (and answers nothing) when full. */
  open(_req: IncomingMessage, res: ServerResponse): boolean {
    if (this.#clients.size >= this.#maxClients) return false;
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      "x-accel-buffering": "no",
    });
    let replay = ": switchyard events\n\n";
    for (const e of this.#log.recent()) replay += frame(e);
    res.write(replay);
    this.#clients.add(res);
    res.once("close", () => this.#remove(res));
    if (this.#unsubscribe === undefined)
      this.#unsubscribe = this.#log.subscribe((e) => this.#broadcast(frame(e)));
    if (this.#heartbeat === undefined) {
      this.#heartbeat = setInterval(() => this.#broadcast(": keep-alive\n\n"), this.#heartbeatMs);
      this.#heartbeat.unref();
    }
    return true;
  }

  /** Ends every stream (admin listener closing). */
  close(): void {
    for (const c of this.#clients) c.destroy();
    this.#clients.clear();
    this.#stop();
  }

  #broadcast(text: string): void {
    for (const c of this.#clients) {
      if (c.writableLength > this.#maxBuffered) {
        this.dropped++;
        this.#remove(c);
        c.destroy();
      } else c.write(text);
    }
  }

  #remove(res: ServerResponse): void {
    this.#clients.delete(res);
    if (this.#clients.size === 0) this.#stop();
  }

  #stop(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
  }
}
