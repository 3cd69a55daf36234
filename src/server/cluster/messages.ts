/** The messages between the cluster primary and its workers (node:cluster IPC). */
import type { AdminToWorker } from "../../admin/ipc.ts";
import type { WakeProgress } from "../../balancer/server.ts";
import type { SwitchyardConfig } from "../../config/types.ts";
import type { IdleError } from "../../errors.ts";
import type { HealthStatus } from "../../health/status.ts";

export type ToWorker =
  | { sy: "config"; config: SwitchyardConfig }
  | {
      sy: "health";
      service: string;
      key: string;
      status: HealthStatus;
      latency: number;
      detail: string;
      /** The primary's monitor reported a change (else: a success confirming "healthy"). */
      changed: boolean;
      snapshot: boolean;
    }
  | { sy: "metrics"; id: number }
  | { sy: "progress"; service: string; server: string; event: WakeProgress }
  | { sy: "woke"; id: number; error?: string; code?: IdleError["code"] }
  | { sy: "granted"; id: number; granted: number; retryAfter: number }
  | { sy: "shutdown" }
  | AdminToWorker;

export type ToPrimary =
  | { sy: "hello" }
  | { sy: "ready"; addresses: { address: string; tls: boolean }[] }
  | { sy: "failed"; error: string }
  | { sy: "applied" }
  | { sy: "checkNow"; service: string; key: string }
  | { sy: "wake"; id: number; service: string; server: string }
  | { sy: "busy"; service: string; server: string; ms: number }
  | { sy: "metrics"; id: number; data: object[] }
  | { sy: "tokens"; id: number; limiter: string; client: string; want: number };

export function isMessage<T extends { sy: string }>(m: unknown): m is T {
  return typeof m === "object" && m !== null && typeof (m as { sy?: unknown }).sy === "string";
}
