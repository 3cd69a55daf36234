/**
 * The reliability suite's figures: each test file appends one JSON object per scenario, which
 * test/reliability/report.ts turns into docs/reliability.md's tables.
 */
import { appendFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Where each test file appends its figures (one JSON object per line). */
export const SUMMARY_FILE =
  process.env.SWITCHYARD_RELIABILITY_SUMMARY ?? join(tmpdir(), "switchyard-reliability", "summary.jsonl");

export interface SummaryEntry {
  suite: string;
  scenario: string;
  requests?: number;
  failed?: number;
  faults?: number;
  outcome?: string;
  expected?: string;
  ok?: boolean;
  [k: string]: unknown;
}

export function record(entry: SummaryEntry): void {
  try {
    mkdirSync(join(SUMMARY_FILE, ".."), { recursive: true });
    appendFileSync(SUMMARY_FILE, `${JSON.stringify({ at: new Date().toISOString(), ...entry })}\n`);
  } catch {
    // figures are a by-product; never fail a test for them
  }
}
