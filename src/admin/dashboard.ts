/**
 * The live dashboard on the admin listener: `GET /` (the HTML shell) and its static assets under
 * `/dashboard/`. The page is plain HTML, JS and CSS (no build step, no CDN) read from
 * `./dashboard/` beside this module, which works from src/ and from dist/ (the build copies the
 * files, scripts/copy-assets.ts). Everything the page shows comes from the admin API
 * (`/api/health`, `/api/stats`, `/api/events`), which needs the token when one is set; the shell
 * and assets carry no data, so the admin serves them without one.
 *
 * Answers carry a strict CSP (no inline script or style, same-origin fetches only, no framing),
 * `nosniff`, and `Cache-Control: no-cache` with a content-hash `ETag`, so a reload revalidates
 * and gets a 304 when nothing changed.
 */
import { readFileSync } from "node:fs";
import type * as http from "node:http";

export const DASHBOARD_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

interface Asset {
  readonly body: Buffer;
  readonly type: string;
  readonly etag: string;
}

/** Path on the admin listener -> file under ./dashboard/ and its content type. */
const FILES: Record<string, [file: string, type: string]> = {
  "/": ["index.html", "text/html; charset=utf-8"],
  "/dashboard/app.js": ["app.js", "text/javascript; charset=utf-8"],
  "/dashboard/app.css": ["app.css", "text/css; charset=utf-8"],
  "/dashboard/favicon.svg": ["favicon.svg", "image/svg+xml"],
};

const DIR = new URL("./dashboard/", import.meta.url);

// process-wide: the files are the package's own and never change while it runs
let cache: Map<string, Asset> | undefined;

/** Reads every asset once (they are small and never change while the process runs). */
function assets(): Map<string, Asset> {
  if (cache) return cache;
  const out = new Map<string, Asset>();
  for (const [path, [file, type]] of Object.entries(FILES)) {
    let body: Buffer;
    try {
      body = readFileSync(new URL(file, DIR));
    } catch (err) {
      throw new Error(`dashboard asset ${file} is missing from ${DIR.pathname} (was the package built?)`, {
        cause: err,
      });
    }
    const etag = `"${process.getBuiltinModule("node:crypto").createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`;
    out.set(path, { body, type, etag });
  }
  cache = out;
  return out;
}

/** True when `If-None-Match` names `etag` (a list, weak tags, or `*`). */
function matches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  for (const part of header.split(",")) {
    const tag = part.trim();
    if (tag === "*" || tag === etag || tag === `W/${etag}`) return true;
  }
  return false;
}

/**
 * Answers `req` when `path` (the URL path, without the query) is the dashboard or one of its
 * assets and the method is GET or HEAD; returns false (and writes nothing) otherwise.
 */
export function serveDashboard(req: http.IncomingMessage, res: http.ServerResponse, path: string): boolean {
  if (req.method !== "GET" && req.method !== "HEAD") return false;
  if (!Object.hasOwn(FILES, path)) return false;
  const asset = assets().get(path)!;
  const headers: http.OutgoingHttpHeaders = {
    "cache-control": "no-cache",
    etag: asset.etag,
    "content-security-policy": DASHBOARD_CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
  };
  if (matches(req.headers["if-none-match"], asset.etag)) {
    res.writeHead(304, headers);
    res.end();
    return true;
  }
  headers["content-type"] = asset.type;
  headers["content-length"] = asset.body.length;
  res.writeHead(200, headers);
  res.end(req.method === "HEAD" ? undefined : asset.body);
  return true;
}
