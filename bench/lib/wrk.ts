/** Runs wrk (keep-alive, loopback) with a Lua `done` hook and parses its one JSON line. */
import { fileURLToPath } from "node:url";
import { start } from "./procs.ts";

const SCRIPT = fileURLToPath(new URL("./report.lua", import.meta.url));

export interface WrkResult {
  rps: number;
  requests: number;
  /** Latency percentiles in ms. */
  p50: number;
  p99: number;
  max: number;
  /** Non-2xx/3xx responses. */
  status: number;
  /** Socket errors: connect + read + write + timeout. */
  socket: number;
  errors: number;
}

export interface WrkOptions {
  cpus: string;
  threads: number;
  connections: number;
  seconds: number;
  url: string;
}

export async function wrk(o: WrkOptions): Promise<WrkResult> {
  const threads = Math.max(1, Math.min(o.threads, o.connections));
  const args = [
    "-t",
    String(threads),
    "-c",
    String(o.connections),
    "-d",
    `${o.seconds}s`,
    "--timeout",
    "5s",
    "-s",
    SCRIPT,
    o.url,
  ];
  const p = start("wrk", o.cpus, "wrk", args);
  const code = await p.exited;
  const text = p.output();
  const m = /WRKJSON (\{.*\})/.exec(text);
  if (!m) throw new Error(`wrk exited ${code} without a result:\n${text.slice(-2000)}`);
  return parseWrkJson(m[1]);
}

export function parseWrkJson(json: string): WrkResult {
  const j = JSON.parse(json) as Record<string, number>;
  const socket = j.connect + j.read + j.write + j.timeout;
  return {
    rps: j.duration_us > 0 ? j.requests / (j.duration_us / 1e6) : 0,
    requests: j.requests,
    p50: j.p50 / 1000,
    p99: j.p99 / 1000,
    max: j.max / 1000,
    status: j.status,
    socket,
    errors: socket + j.status,
  };
}
