/** Medians, ratios from the same run, targets from the issue, and the markdown of bench/results/latest.md. */
import type { WrkResult } from "./wrk.ts";

export interface Measurement extends WrkResult {
  variant: string;
  candidate: string;
  label: string;
  connections: number;
  round: number;
  /** Balancer CPU use in cores (1 = one core busy), undefined for direct. */
  cpu: number | undefined;
  /** Max RSS (bytes) of the balancer's process tree during the measurement, and of its largest process. */
  rss: { sum: number; maxProc: number; procs: number } | undefined;
  /** CPU (in cores) used on the balancer's and the load CPUs by processes the bench did not start; steal. */
  other: { balancer: number; load: number };
  steal: number;
  /** Run-queue wait of the balancer's threads / wall time (summed over threads). */
  wait: number | undefined;
}

export interface VariantResult {
  results: Measurement[];
  failures: string[];
  upstream: string;
}

export interface Report {
  started: Date;
  seconds: number;
  quick: boolean;
  /** The command-line flags of the run. */
  args: string;
  machine: { cpu: string; cores: number; memory: string; kernel: string };
  versions: Record<string, string>;
  commit: string;
  /** /proc/loadavg at the start and the end, and seconds spent waiting for other load to calm down. */
  loadavg: { start: string; end: string };
  balancerCores: number;
  /** How the Node candidates ran (compiled JS or type-stripped TS). */
  source: string;
  quietWaited: number;
  settings: {
    duration: number;
    warmup: number;
    rounds: number;
    balancerCpus: string;
    loadCpus: string;
    workers: number;
    quietWait: number;
    nice: number;
    drivers: Record<string, string>;
  };
  fast: VariantResult;
  slow: VariantResult | undefined;
  slowDelay: number;
  idle:
    | {
        count: number;
        error?: string;
        open?: number;
        failed?: number;
        non2xx?: number;
        openMs?: number;
        before?: number;
        after?: number;
      }
    | undefined;
  pick: { status: string; output: string } | undefined;
  workers: number;
}

export interface Row {
  candidate: string;
  label: string;
  connections: number;
  rps: number;
  rounds: number[];
  p50: number;
  p99: number;
  errors: number;
  rssSum: number | undefined;
  rssMaxProc: number | undefined;
  cpu: number | undefined;
  other: { balancer: number; load: number };
  steal: number;
  wait: number | undefined;
}

export function median(xs: number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** One row per candidate × connection count: medians over rounds; errors summed; RSS the max seen. */
export function summarize(ms: Measurement[]): Row[] {
  const groups = new Map<string, Measurement[]>();
  for (const m of ms) {
    const k = `${m.candidate}\0${m.connections}`;
    const g = groups.get(k);
    if (g) g.push(m);
    else groups.set(k, [m]);
  }
  const rows: Row[] = [];
  for (const g of groups.values()) {
    const rss = g.filter((m) => m.rss !== undefined).map((m) => m.rss!);
    const cpu = g.filter((m) => m.cpu !== undefined).map((m) => m.cpu!);
    rows.push({
      candidate: g[0].candidate,
      label: g[0].label,
      connections: g[0].connections,
      rps: median(g.map((m) => m.rps)),
      rounds: g.sort((a, b) => a.round - b.round).map((m) => m.rps),
      p50: median(g.map((m) => m.p50)),
      p99: median(g.map((m) => m.p99)),
      errors: g.reduce((a, m) => a + m.errors, 0),
      rssSum: rss.length ? Math.max(...rss.map((r) => r.sum)) : undefined,
      rssMaxProc: rss.length ? Math.max(...rss.map((r) => r.maxProc)) : undefined,
      cpu: cpu.length ? median(cpu) : undefined,
      other: { balancer: median(g.map((m) => m.other.balancer)), load: median(g.map((m) => m.other.load)) },
      steal: median(g.map((m) => m.steal)),
      wait: cpu.length ? median(g.map((m) => m.wait ?? 0)) : undefined,
    });
  }
  return rows;
}

const MB = 2 ** 20;
const fmt = (n: number | undefined, digits = 0) =>
  n === undefined || Number.isNaN(n)
    ? "—"
    : n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
const ratio = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined || !b || Number.isNaN(a) || Number.isNaN(b) ? undefined : a / b;
const find = (rows: Row[], candidate: string, connections: number) =>
  rows.find((r) => r.candidate === candidate && r.connections === connections);

function table(rows: Row[]): string {
  const conns = [...new Set(rows.map((r) => r.connections))].sort((a, b) => a - b);
  const out = [
    "| candidate | conns | req/s (median) | × direct | × nginx | p50 ms | p99 ms | errors | RSS MB (tree / largest proc) | balancer CPU / run-queue wait | other load (bal. / load CPUs) | req/s per round |",
    "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
  ];
  for (const n of conns) {
    const direct = find(rows, "direct", n)?.rps;
    const nginx = find(rows, "nginx", n)?.rps;
    for (const r of rows.filter((x) => x.connections === n)) {
      out.push(
        `| ${r.label} | ${n} | ${fmt(r.rps)} | ${fmt(ratio(r.rps, direct), 2)} | ${fmt(ratio(r.rps, nginx), 2)} | ` +
          `${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${r.errors} | ` +
          `${r.rssSum === undefined ? "—" : `${fmt(r.rssSum / MB)} / ${fmt(r.rssMaxProc! / MB)}`} | ` +
          `${r.cpu === undefined ? "—" : `${fmt(r.cpu * 100)}% / ${fmt((r.wait ?? 0) * 100)}%`} | ${r.candidate === "direct" ? "—" : `${fmt(r.other.balancer * 100)}%`} / ${fmt(r.other.load * 100)}% | ${r.rounds.map((x) => fmt(x)).join(", ")} |`,
      );
    }
  }
  return out.join("\n");
}

interface Target {
  name: string;
  measured: string;
  pass: boolean | undefined;
}

function targets(report: Report, fast: Row[], slow: Row[]): Target[] {
  const out: Target[] = [];
  const sy = find(fast, "switchyard", 64);
  const bare = find(fast, "bare", 64);
  const nginx = find(fast, "nginx", 64);
  const check = (
    name: string,
    value: number | undefined,
    limit: number,
    text: (v: number) => string,
    le = false,
  ) =>
    out.push({
      name,
      measured: value === undefined || Number.isNaN(value) ? "not measured" : text(value),
      pass: value === undefined || Number.isNaN(value) ? undefined : le ? value <= limit : value >= limit,
    });
  check(
    "fast upstreams, 64 conns, 1 worker: ≥ 1.3× bare proxy",
    ratio(sy?.rps, bare?.rps),
    1.3,
    (v) => `${v.toFixed(2)}×`,
  );
  check(
    "fast upstreams, 64 conns, 1 worker: ≥ 0.5× nginx (1 worker) (issue 16)",
    ratio(sy?.rps, nginx?.rps),
    0.5,
    (v) => `${v.toFixed(2)}×`,
  );
  out.push({
    name: "fast upstreams, 64 conns, 1 worker: p99 ≤ bare proxy's p99",
    measured: sy && bare ? `${sy.p99.toFixed(2)} ms vs ${bare.p99.toFixed(2)} ms` : "not measured",
    pass: sy && bare ? sy.p99 <= bare.p99 : undefined,
  });
  const sySlow = find(slow, "switchyard", 64);
  const directSlow = find(slow, "direct", 64);
  check(
    `${report.slowDelay} ms upstreams, 64 conns, 1 worker: ≥ 0.97× direct (issue 16)`,
    ratio(sySlow?.rps, directSlow?.rps),
    0.97,
    (v) => `${v.toFixed(2)}×`,
  );
  check(
    "RSS at 64 conns, fast upstreams, 1 worker ≤ 80 MB (issue 16)",
    sy?.rssMaxProc === undefined ? undefined : sy.rssMaxProc / MB,
    80,
    (v) => `${v.toFixed(0)} MB`,
    true,
  );
  const loaded = [...fast, ...slow].filter(
    (r) => r.candidate.startsWith("switchyard") && r.rssMaxProc !== undefined,
  );
  const worst = loaded.length ? Math.max(...loaded.map((r) => r.rssMaxProc!)) / MB : undefined;
  check(
    "RSS under load ≤ 150 MB per worker (largest switchyard process, all runs)",
    worst,
    150,
    (v) => `${v.toFixed(0)} MB`,
    true,
  );
  // issue 17: the access log (switchyard-log) against none (switchyard), same run
  for (const [name, rows] of [
    ["fast upstreams", fast],
    [`${report.slowDelay} ms upstreams`, slow],
  ] as const) {
    const off = find(rows, "switchyard", 64);
    const on = find(rows, "switchyard-log", 64);
    check(
      `${name}, 64 conns, 1 worker: access log on ≥ 0.95× off (issue 17)`,
      ratio(on?.rps, off?.rps),
      0.95,
      (v) =>
        `${v.toFixed(2)}× (${fmt(on?.rps)} vs ${fmt(off?.rps)} req/s` +
        (on?.cpu && off?.cpu && on.rps && off.rps
          ? `; CPU per request ${((on.cpu / on.rps / (off.cpu / off.rps) - 1) * 100).toFixed(1)}%)`
          : ")"),
    );
  }
  const idle = report.idle;
  check(
    `RSS with ${fmt(idle?.count)} idle keep-alive connections ≤ 250 MB`,
    idle?.after !== undefined ? idle.after / MB : undefined,
    250,
    (v) => `${v.toFixed(0)} MB (${fmt(idle?.open)} open)`,
    true,
  );
  if (idle && idle.count !== 10_000 && out.length) {
    out[out.length - 1].name += " (quick run: fewer connections than the target's 10,000)";
  }
  return out;
}

function anomalies(report: Report, fast: Row[], slow: Row[]): string[] {
  const notes: string[] = [];
  if (report.workers > report.balancerCores && fast.some((r) => r.candidate === "switchyard-wN")) {
    notes.push(
      `switchyard with ${report.workers} workers ran on ${report.balancerCores} balancer CPU${report.balancerCores > 1 ? "s" : ""}: ` +
        "its workers compete for the same CPUs (see the run-queue wait), so it cannot beat one worker here; " +
        "give it as many balancer CPUs as workers (`--balancer-cpus`) to measure scaling.",
    );
  }
  for (const [name, v] of [
    ["fast", report.fast],
    ["delayed", report.slow],
  ] as const) {
    if (!v) continue;
    for (const f of v.failures) notes.push(`${name}: ${f}`);
  }
  for (const [name, rows] of [
    ["fast", fast],
    ["delayed", slow],
  ] as const) {
    for (const r of rows) {
      if (r.errors > 0)
        notes.push(
          `${name}: ${r.label} at ${r.connections} conns had ${r.errors} errors (non-2xx/3xx + socket errors).`,
        );
      // Others using the balancer's CPUs only matters when those CPUs were full (else they used idle time).
      const otherBal = r.candidate === "direct" ? 0 : r.other.balancer;
      const full = (r.cpu ?? 0) + otherBal >= 0.85 * report.balancerCores;
      if ((otherBal > 0.1 && full) || r.steal > 0.05) {
        notes.push(
          `${name}: during ${r.label} at ${r.connections} conns, processes outside the bench used ` +
            `${fmt(otherBal * 100)}% of the balancer's CPUs (steal ${fmt(r.steal * 100)}%, medians): its figure is disturbed.`,
        );
      }
      if (r.rounds.length > 1) {
        const spread = (Math.max(...r.rounds) - Math.min(...r.rounds)) / r.rps;
        if (spread > 0.15) {
          notes.push(
            `${name}: ${r.label} at ${r.connections} conns varied ${(spread * 100).toFixed(0)}% between rounds.`,
          );
        }
      }
    }
    if (name === "delayed") {
      for (const r of rows) {
        if (r.cpu !== undefined && r.cpu >= 0.85 * report.balancerCores) {
          notes.push(
            `delayed: ${r.label} at ${r.connections} conns used ${fmt(r.cpu * 100)}% of its CPUs: it is CPU-bound even with ` +
              `${report.slowDelay} ms upstreams, so its ratio to direct is capped by its throughput, not by added latency.`,
          );
        }
      }
    }
    for (const n of [...new Set(rows.map((r) => r.connections))]) {
      const direct = find(rows, "direct", n);
      for (const ref of ["nginx", "haproxy"]) {
        const r = find(rows, ref, n);
        if (name === "fast" && r && direct && r.rps >= 0.85 * direct.rps) {
          notes.push(
            `${name}: ${r.label} reaches ${((r.rps / direct.rps) * 100).toFixed(0)}% of direct at ${n} conns — the load side ` +
              "(wrk + upstreams) is near its limit, so ratios to it understate the gap.",
          );
        }
      }
    }
  }
  return notes;
}

export function render(report: Report): string {
  const fast = summarize(report.fast.results);
  const slow = report.slow ? summarize(report.slow.results) : [];
  const s = report.settings;
  const lines: string[] = [];
  lines.push("# switchyard benchmark results", "");
  lines.push(
    `Generated by \`npm run bench${report.args ? ` -- ${report.args}` : ""}\` on ${report.started.toISOString().replace("T", " ").slice(0, 16)} UTC ` +
      `(took ${Math.round(report.seconds / 60)} min)${report.quick ? " — **quick smoke run, not for quoting**" : ""}.`,
    "",
  );
  lines.push(
    `- Machine: ${report.machine.cpu}, ${report.machine.cores} cores, ${report.machine.memory} RAM, ${report.machine.kernel}`,
    `- Versions: Node ${report.versions.node}, undici ${report.versions.undici}, nginx ${report.versions.nginx}, ` +
      `HAProxy ${report.versions.haproxy}, wrk ${report.versions.wrk}`,
    `- Commit: ${report.commit}`,
    `- Method: wrk keep-alive on loopback, ${s.rounds} round${s.rounds > 1 ? "s" : ""} (candidates interleaved per round, ` +
      `rotating order), ${s.warmup} s warm-up before each measurement (at its connection count), ${s.duration} s per measurement, medians over rounds. ` +
      `Balancer pinned to CPU ${s.balancerCpus} (\`taskset -c ${s.balancerCpus}\`); wrk and upstreams to CPU ${s.loadCpus}.`,
    `- Upstreams: three, ${report.fast.upstream}.`,
    `- Node candidates (bare proxy, switchyard) ran as ${report.source}.`,
    `- switchyard driven by: ${Object.entries(s.drivers)
      .filter(([, v]) => v !== "-")
      .map(
        ([k, v]) =>
          `${k} → ${v === "cli" ? "the CLI (`switchyard serve -c` with a generated YAML file)" : v === "lib" ? "the library (`bench/roles/switchyard-lib.ts`: LoadBalancer + Server, node:http; workers share the port with SO_REUSEPORT)" : v}`,
      )
      .join("; ")}.`,
    "- RSS: max VmRSS sampled every 250 ms during each measurement, summed over the balancer's process tree; " +
      "“largest proc” is the biggest single process (the per-worker figure). Balancer CPU: CPU time of the tree / wall time (100% = one core). " +
      "Run-queue wait: time the balancer's threads (all of them, summed) were runnable but not running, from schedstat — " +
      "mostly its own threads or workers competing for its CPUs. " +
      "Other load: CPU (100% = one core) used on the balancer's CPUs and on the load CPUs by processes the bench did not start — the machine's noise.",
    `- Machine load (other tenants): load average ${report.loadavg.start} at the start, ${report.loadavg.end} at the end` +
      (s.quietWait > 0
        ? `; waited up to ${s.quietWait} s before each candidate for others' load to drop (${fmt(report.quietWaited)} s in all).`
        : ".") +
      (s.nice !== 0 ? ` Every bench process ran with \`nice -n ${s.nice}\`.` : ""),
    "- Errors: wrk's non-2xx/3xx responses plus socket errors (connect, read, write, timeout), summed over rounds.",
    "",
  );
  lines.push("## Fast upstreams", "", table(fast), "");
  if (report.slow) {
    lines.push(
      `## Upstreams answering after ${report.slowDelay} ms`,
      "",
      `Upstreams: ${report.slow.upstream}.`,
      "",
      table(slow),
      "",
    );
  }
  lines.push(
    "## Targets (informational; the bench never fails the build)",
    "",
    "| target | measured | result |",
    "|---|---|---|",
  );
  for (const t of targets(report, fast, slow)) {
    lines.push(
      `| ${t.name} | ${t.measured} | ${t.pass === undefined ? "—" : t.pass ? "PASS" : "**MISS**"} |`,
    );
  }
  lines.push("");
  lines.push("## Idle keep-alive connections", "");
  const idle = report.idle;
  if (!idle) lines.push("Skipped.");
  else if (idle.error) lines.push(`Failed: ${idle.error}`);
  else {
    lines.push(
      `${fmt(idle.count)} client connections to switchyard (1 worker) from a separate Node process on 127.0.0.1, one request each ` +
        `(${fmt(idle.failed)} failed, ${fmt(idle.non2xx)} non-2xx, opened in ${fmt((idle.openMs ?? 0) / 1000, 1)} s), then idle: ` +
        `${fmt(idle.open)} still open at the end. RSS ${fmt((idle.before ?? 0) / MB)} MB before → max ${fmt((idle.after ?? 0) / MB)} MB while idle.`,
    );
  }
  lines.push("");
  lines.push("## `npm run bench:pick`", "");
  if (!report.pick) lines.push("Skipped.");
  else {
    if (report.pick.status !== "ok")
      lines.push(`${report.pick.status[0].toUpperCase()}${report.pick.status.slice(1)}.`, "");
    if (report.pick.output) lines.push("```", report.pick.output, "```");
  }
  lines.push("");
  const notes = anomalies(report, fast, slow);
  lines.push("## Anomalies", "", ...(notes.length ? notes.map((n) => `- ${n}`) : ["None detected."]), "");
  return lines.join("\n");
}
