/**
 * Load and resource counts for the reliability scenarios: a bounded keep-alive load generator
 * (undici) that tallies answers and errors, and this process's open handles.
 */
import { Pool } from "undici";

export interface LoadResult {
  sent: number;
  ok: number;
  failed: number;
  statuses: Record<string, number>;
  errors: string[];
  bodies: Record<string, number>;
}

/**
 * `total` GETs from `concurrency` keep-alive clients; each request either gets a 2xx (ok) or
 * counts as failed (any other status or a transport error). `between` runs between requests
 * of client 0 so faults can be injected while the load runs.
 */
export async function runLoad(opts: {
  url: string;
  host: string;
  total: number;
  concurrency: number;
  path?: string;
  /** After each answer (or failure): how many are done, and the index of the one just done. */
  onProgress?: (done: number, index: number) => void | Promise<void>;
  /** Called before request number `index` (0-based) is sent; a promise holds that request back. */
  gate?: (index: number) => Promise<void> | undefined;
  signal?: AbortSignal;
}): Promise<LoadResult> {
  const pool = new Pool(opts.url, { connections: opts.concurrency, pipelining: 1 });
  const result: LoadResult = { sent: 0, ok: 0, failed: 0, statuses: {}, errors: [], bodies: {} };
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < opts.total && !opts.signal?.aborted) {
      const index = next++;
      const held = opts.gate?.(index);
      if (held) await held;
      result.sent++;
      try {
        const res = await pool.request({
          path: opts.path ?? "/",
          method: "GET",
          headers: { host: opts.host },
          signal: opts.signal,
        });
        const body = await res.body.text();
        result.statuses[res.statusCode] = (result.statuses[res.statusCode] ?? 0) + 1;
        if (res.statusCode >= 200 && res.statusCode < 300) {
          result.ok++;
          result.bodies[body] = (result.bodies[body] ?? 0) + 1;
        } else {
          result.failed++;
          if (result.errors.length < 10) result.errors.push(`HTTP ${res.statusCode}: ${body.slice(0, 80)}`);
        }
      } catch (err) {
        result.failed++;
        const e = err as { code?: string; message?: string };
        if (result.errors.length < 10) result.errors.push(`${e.code ?? ""} ${e.message ?? String(err)}`);
      }
      done++;
      await opts.onProgress?.(done, index);
    }
  };
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, worker));
  } finally {
    await pool.destroy();
  }
  return result;
}

/** Open handles of this process by kind, without timers (node:test keeps its own). */
export function handles(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of process.getActiveResourcesInfo()) {
    if (k === "Timeout" || k === "Immediate") continue;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

export function socketCount(): number {
  return process.getActiveResourcesInfo().filter((k) => k === "TCPSocketWrap" || k === "TCPWrap").length;
}
