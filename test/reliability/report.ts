/**
 * Prints the "Reliability" figures as markdown from the summary the reliability tests write
 * (`npm run test:reliability` runs the tests, then this). The latest run of each scenario wins.
 *
 *   node test/reliability/report.ts [summary.jsonl]
 */
import { existsSync, readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { SUMMARY_FILE, type SummaryEntry } from "./summary.ts";

type Entry = SummaryEntry & { at: string; target?: string };

const file = process.argv[2] ?? SUMMARY_FILE;
if (!existsSync(file)) {
  process.stderr.write(`no summary at ${file}: run the reliability tests first (npm run test:reliability)\n`);
  process.exit(1);
}
const latest = new Map<string, Entry>();
for (const line of readFileSync(file, "utf8").split("\n")) {
  if (!line.trim()) continue;
  const e = JSON.parse(line) as Entry;
  latest.set(`${e.suite}|${e.target ?? ""}|${e.scenario}`, e);
}
const all = [...latest.values()];
const by = (suite: string) => all.filter((e) => e.suite === suite);
const n = (x: unknown) => (typeof x === "number" ? x.toLocaleString("en-US") : "–");
const out: string[] = [];
const row = (cells: unknown[]) => out.push(`| ${cells.map((c) => String(c ?? "–")).join(" | ")} |`);

const loads = by("faults");
const malformed = by("malformed");
const bad = by("bad-backend");
const forgery = by("forgery");
const admin = by("admin");
const memory = by("memory");
const sent = all.reduce((a, e) => a + (typeof e.requests === "number" ? e.requests : 0), 0);
const failed = all.reduce((a, e) => a + (typeof e.failed === "number" ? e.failed : 0), 0);
const faults =
  loads.reduce((a, e) => a + (typeof e.faults === "number" ? e.faults : 0), 0) +
  bad.length +
  forgery.reduce((a, e) => a + (typeof e.faults === "number" ? e.faults : 0), 0);
const last = all.map((e) => e.at).sort();

out.push(
  `Figures from the latest run of each scenario (${last[0]?.slice(0, 16).replace("T", " ")} – ${last.at(-1)?.slice(11, 16)} UTC,`,
  `Node ${process.version}, ${availableParallelism()} cores, loopback only).`,
  "",
);
out.push(
  `- **${n(sent)}** requests sent, **${n(failed)}** failed where the test demands success.`,
  `- **${n(faults)}** faults injected (kills, restarts, reloads, SIGTERM, misbehaving backends, forged cookies and spoofed headers).`,
  `- **${n(malformed.length)}** malformed-input runs (${n(new Set(malformed.map((e) => e.scenario)).size)} kinds, against the library and the server on both HTTP/1 paths), ${n(malformed.filter((e) => e.ok).length)} with the expected outcome.`,
  "",
);

if (loads.length) {
  out.push(
    "#### Faults under load",
    "",
    "| scenario | requests | clients | faults | failed | notes |",
    "|---|---:|---:|---:|---:|---|",
  );
  for (const e of loads) {
    const notes: string[] = [];
    if (e.failedAttempts === undefined && e.probesBeforeTraffic !== undefined)
      notes.push(`back after ${e.probesBeforeTraffic} probe(s)`);
    if (e.failedAttempts !== undefined)
      notes.push(
        `${e.failedAttempts} upstream attempts failed and were retried; ${e.picksWhileOut} picks of the dead server after its first failure; back after ${e.probesBeforeTraffic} probe(s)`,
      );
    if (e.exitCode !== undefined)
      notes.push(
        `${n(e.acceptedAndCompleted)} accepted requests all completed; ${n(e.refusedAfterStop)} refused after the listener closed; exit ${e.exitCode} after ${n(e.exitMs)} ms`,
      );
    row([e.scenario, n(e.requests), n(e.concurrency), n(e.faults), n(e.failed), notes.join("; ")]);
  }
  out.push("");
}

if (bad.length) {
  out.push("#### Misbehaving backends", "", "| backend | expected | outcome |", "|---|---|---|");
  for (const e of bad) row([e.scenario, e.expected, e.outcome]);
  out.push(
    "",
    "Each also checked: a good request on another service succeeds meanwhile, no request hangs, in-flight counts return to 0, open sockets return to baseline.",
    "",
  );
}

if (malformed.length) {
  out.push(
    "#### Malformed requests (raw TCP)",
    "",
    "| input | expected (server) | library | server (native) | server (fallback) |",
    "|---|---|---|---|---|",
  );
  const names = [...new Set(malformed.map((e) => e.scenario))];
  for (const name of names) {
    const lib = malformed.find((e) => e.scenario === name && e.target === "library");
    const srv = malformed.find((e) => e.scenario === name && e.target === "server");
    const fb = malformed.find((e) => e.scenario === name && e.target === "fallback");
    const cell = (e: Entry | undefined) => (e ? `${e.outcome}${e.ok ? "" : " ✗"}` : "not run");
    row([name, (srv ?? lib)?.expected, cell(lib), cell(srv), cell(fb)]);
  }
  out.push(
    "",
    "For every input the backend never received a request the client did not send (no smuggled second request), a rejected request never reached it complete, and a good request on another connection succeeded meanwhile.",
    "",
  );
}

if (forgery.length || admin.length) {
  out.push("#### Forgery, spoofing, admin", "", "| scenario | tries | outcome |", "|---|---:|---|");
  for (const e of [...forgery, ...admin]) row([e.scenario, n(e.requests), e.outcome]);
  out.push("");
}

if (memory.length) {
  out.push(
    "#### Memory (one server process, 32 keep-alive clients)",
    "",
    "| requests | first measured after | RSS after GC then | RSS after GC at the end | growth | heap used after GC (then → end) |",
    "|---:|---:|---:|---:|---:|---:|",
  );
  for (const e of memory)
    row([
      n(e.requests),
      n(e.warmup ?? (typeof e.requests === "number" ? e.requests / 10 : undefined)),
      `${e.rssEarlyMiB} MiB`,
      `${e.rssLateMiB} MiB`,
      `${e.rssGrowthPct}%`,
      `${e.heapEarlyMiB} → ${e.heapLateMiB} MiB`,
    ]);
  out.push("");
}

process.stdout.write(`${out.join("\n")}\n`);
