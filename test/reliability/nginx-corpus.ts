/**
 * The malformed-input corpus (corpus.ts) against nginx and `switchyard serve` (native and fallback
 * HTTP/1 paths), side by side: what each answered and whether the backend saw the request. Not part
 * of `npm test` (it needs nginx); the table it prints is the one in docs/reliability.md.
 *
 *   npx node test/reliability/nginx-corpus.ts            # installs nginx with apt-get when missing (root)
 *
 * nginx runs as a plain reverse proxy as most set-ups have it: HTTP/1.1 to the backend, Host passed
 * on, request bodies streamed (proxy_request_buffering off, as switchyard does), the same 1 s
 * client header timeout as the switchyard instances here.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { backend } from "../support/backend.ts";
import { rawRequest } from "../support/http.ts";
import { freePort } from "../support/ports.ts";
import { corpus, expectationFor, type TargetName } from "./corpus.ts";
import { startCli } from "./switchyards.ts";

function has(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

function ensureNginx(): string {
  for (const p of ["nginx", "/usr/sbin/nginx"]) if (has(p)) return p;
  if (process.getuid?.() !== 0)
    throw new Error("nginx is not installed: run as root, or apt-get install -y nginx");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  execFileSync("apt-get", ["update"], { stdio: "inherit", env });
  execFileSync("apt-get", ["install", "-y", "nginx"], { stdio: "inherit", env });
  // Debian starts the packaged service; this run uses its own config and port
  spawnSync("sh", ["-c", "systemctl stop nginx 2>/dev/null || service nginx stop 2>/dev/null"], {
    stdio: "ignore",
  });
  return "/usr/sbin/nginx";
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, "127.0.0.1");
      c.once("connect", () => {
        c.destroy();
        resolve(true);
      });
      c.once("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on ${port}`);
}

const nginxBin = ensureNginx();
const version = /nginx\/(\S+)/.exec(spawnSync(nginxBin, ["-v"], { encoding: "utf8" }).stderr)?.[1] ?? "?";
const dir = mkdtempSync(join(tmpdir(), "switchyard-nginx-corpus-"));

const nginxBackend = await backend("api-1");
const port = await freePort();
writeFileSync(
  join(dir, "nginx.conf"),
  `daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  client_header_timeout 1s;
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass ${nginxBackend.url};
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header Connection "";
      proxy_request_buffering off;
    }
  }
}
`,
);
const nginx = spawn(nginxBin, ["-c", join(dir, "nginx.conf"), "-p", dir], { stdio: "inherit" });
await waitForPort(port);

const spec = (url: string) => ({
  timeouts: { client_header: "1000ms" },
  services: { api: { servers: [{ name: "api-1", url }] } },
});
const nativeBackend = await backend("api-1");
const native = await startCli(spec(nativeBackend.url));
const fallbackBackend = await backend("api-1");
const fallback = await startCli(spec(fallbackBackend.url), { env: { SWITCHYARD_HTTP1: "fallback" } });

const targets: { name: TargetName; port: number; backend: typeof nginxBackend }[] = [
  { name: "nginx", port, backend: nginxBackend },
  { name: "server", port: native.port, backend: nativeBackend },
  { name: "fallback", port: fallback.port, backend: fallbackBackend },
];

interface Row {
  name: string;
  cells: Record<string, string>;
  ok: Record<string, boolean>;
}
const rows: Row[] = [];
try {
  for (const c of corpus) {
    const row: Row = { name: c.name, cells: {}, ok: {} };
    for (const t of targets) {
      const before = t.backend.received.length;
      const r = await rawRequest(t.port, c.chunks, c.wait ?? 1500);
      const reached = t.backend.received
        .slice(before)
        .filter((x) => c.path !== "" && x.url.startsWith(c.path.split("?")[0]));
      const answer = r.status !== undefined ? String(r.status) : r.closed ? "closed" : "no answer";
      const seen =
        reached.length === 0 ? "" : reached.some((x) => x.complete) ? ", reached backend" : ", reached (cut)";
      row.cells[t.name] = answer + seen;
      const want = expectationFor(c, t.name === "nginx" ? "server" : t.name);
      row.ok[t.name] =
        (r.status !== undefined && want.status.includes(r.status)) || (want.orClosed === true && r.closed);
    }
    rows.push(row);
    process.stderr.write(".");
  }
} finally {
  nginx.kill("SIGTERM");
  await native.stop("SIGKILL");
  await fallback.stop("SIGKILL");
  for (const t of targets) await t.backend.stop();
  rmSync(dir, { recursive: true, force: true });
}
process.stderr.write("\n");

const differ = rows.filter((r) => r.cells.nginx !== r.cells.server || r.cells.server !== r.cells.fallback);
console.log(`nginx ${version}, switchyard native and fallback HTTP/1 paths; ${rows.length} cases\n`);
console.log("| case | nginx | switchyard (native) | switchyard (fallback) |");
console.log("| --- | --- | --- | --- |");
for (const r of rows) {
  const mark = differ.includes(r) ? " **≠**" : "";
  console.log(`| ${r.name}${mark} | ${r.cells.nginx} | ${r.cells.server} | ${r.cells.fallback} |`);
}
const bad = rows.filter((r) => !r.ok.server || !r.ok.fallback);
if (bad.length > 0) {
  console.log(`\nswitchyard outside the corpus' expectation: ${bad.map((r) => r.name).join("; ")}`);
  process.exitCode = 1;
}
