/**
 * What each middleware costs on its own: the server's whole request path (bench/quick-proxy.ts
 * `switchyard-front`: config → Runtime → Front → balancer) with no middleware, then with each one
 * alone, in alternating rounds; prints CPU µs per request (robust to a busy machine) and req/s,
 * and the difference to "none". The upstream answers 12 bytes of text/plain.
 *
 *   node bench/middlewares.ts [--duration 3] [--rounds 2] [--only none,allow,...]
 *
 * Needs `wrk` and `taskset` (as quick-proxy.ts).
 */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import bcrypt from "bcryptjs";

const quick = fileURLToPath(new URL("./quick-proxy.ts", import.meta.url));
const hash = bcrypt.hashSync("bench", 10);
const auth = `Authorization: Basic ${Buffer.from("bench:bench").toString("base64")}`;

/** name → [middlewares YAML, extra request header, what it measures] */
const CASES: Record<string, [string, string, string]> = {
  none: ["", "", "no middlewares (the path every service without them takes)"],
  allow: ["[{ allow: [127.0.0.0/8] }]", "", "BlockList check of the resolved client"],
  deny: ["[{ deny: [10.0.0.0/8] }]", "", "BlockList check, passes"],
  redirect_https: ["[{ redirect_https: true }]", "", "every request answered 308 (no upstream)"],
  basic_auth: [
    `[{ basic_auth: { users: { bench: "${hash}" } } }]`,
    auth,
    "right password, remembered (salted SHA-256 + map get; bcrypt once)",
  ],
  rate_limit: ["[{ rate_limit: { rate: 1000000000/s } }]", "", "token bucket of one address, admits all"],
  request_headers: [
    "[{ request_headers: { set: { X-Env: prod }, remove: [X-Debug] } }]",
    "",
    "edit rawHeaders, rebuild req.headers",
  ],
  response_headers: [
    '[{ response_headers: { set: { Strict-Transport-Security: "max-age=1" }, remove: [Server] } }]',
    "",
    "writeHead hook, header edits",
  ],
  "compress-skip": ["[{ compress: {} }]", "Accept-Encoding: gzip", "12 B body < min_length: head check only"],
  "compress-gzip": [
    "[{ compress: { min_length: 0 } }]",
    "Accept-Encoding: gzip",
    "a gzip stream per response",
  ],
  "compress-br": ["[{ compress: { min_length: 0 } }]", "Accept-Encoding: br", "a brotli stream per response"],
  error_pages: ["[{ error_pages: { 502: ./502.html } }]", "", "writeHead hook, status not listed"],
  rules: [
    '[{ rules: [{ on: "remote 10.0.0.0/8", do: "error 403 no" }, { on: "path glob(/api/*) & method POST", do: "error 405 ro" }, { on: "header X-Legacy", do: "error 410 gone" }, { name: default, do: "set header X-Env prod" }] }]',
    "",
    "4 rules: BlockList, glob + method, header scan, default edits rawHeaders",
  ],
  "rules-resp": [
    '[{ rules: [{ on: "path glob(/static/*)", do: "set resp_header Cache-Control max-age=60" }, { name: default, do: "set resp_header X-Frame-Options DENY" }] }]',
    "",
    "2 rules with resp_header edits: writeHead hook",
  ],
  hide_forwarded: [
    "[{ hide_forwarded: true }]",
    "",
    "no chain: the upstream header builder drops forwarded headers",
  ],
};

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const duration = opt("duration", "3");
const rounds = Number(opt("rounds", "2"));
const only = opt("only", Object.keys(CASES).join(",")).split(",");

const results = new Map<string, { cpu: number[]; rps: number[] }>();
for (let r = 0; r < rounds; r++) {
  for (const name of only) {
    const [mw, header] = CASES[name];
    const out = execFileSync(
      process.execPath,
      [quick, "--only", "switchyard-front", "--duration", duration, "--connections", "32"],
      {
        encoding: "utf8",
        env: { ...process.env, QP_MW: mw, QP_HEADER: header, QP_QUIET_NON2XX: "1" },
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    const rps = Number(/(\d+) req\/s/.exec(out)?.[1] ?? 0);
    const cpu = Number(/([\d.]+) µs CPU\/req/.exec(out)?.[1] ?? Number.NaN);
    const entry = results.get(name) ?? { cpu: [], rps: [] };
    entry.cpu.push(cpu);
    entry.rps.push(rps);
    results.set(name, entry);
    process.stderr.write(`round ${r + 1} ${name}: ${cpu} µs CPU/req, ${rps} req/s\n`);
  }
}
const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const none = results.has("none") ? median(results.get("none")!.cpu) : Number.NaN;
console.log("| middleware | CPU µs/req | vs none | req/s | what runs |");
console.log("|---|---:|---:|---:|---|");
for (const [name, { cpu, rps }] of results) {
  const c = median(cpu);
  const d = c - none;
  console.log(
    `| ${name} | ${c.toFixed(1)} | ${name === "none" ? "" : `${d >= 0 ? "+" : ""}${d.toFixed(1)}`} | ${median(rps)} | ${CASES[name][2]} |`,
  );
}
