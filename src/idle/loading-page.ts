/**
 * The loading page a browser gets while its server wakes: names the service and server, shows
 * each progress frame of `/$switchyard/wake-events` as it arrives, reloads itself when the server
 * is ready, and shows the error and stops on failure. No inline script (a strict CSP on the
 * backend's own pages does not matter here, but the page needs none): the logic is
 * `/$switchyard/loading.js`, the look `/$switchyard/loading.css`, both served by switchyard.
 */
import type { ProxyResponse } from "../http-types.ts";

export const LOADING_CSS_PATH = "/$switchyard/loading.css";
export const LOADING_JS_PATH = "/$switchyard/loading.js";

const CSS = `:root{color-scheme:light dark;--bg:#0f172a;--fg:#e2e8f0;--dim:#94a3b8;--ok:#4ade80;--err:#f87171}
*{box-sizing:border-box}
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif}
main{width:min(36rem,92vw)}
h1{font-size:1.35rem;font-weight:600;margin:0 0 .25rem}
h1 .dots span{animation:blink 1.4s infinite both}
h1 .dots span:nth-child(2){animation-delay:.2s}
h1 .dots span:nth-child(3){animation-delay:.4s}
@keyframes blink{0%,80%,100%{opacity:0}40%{opacity:1}}
p.sub{margin:0 0 1rem;color:var(--dim)}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace}
ol#log{list-style:none;margin:0;padding:.75rem 1rem;border-radius:.5rem;background:#1e293b;font:13px/1.6 ui-monospace,SFMono-Regular,Menlo,monospace;min-height:6rem}
ol#log li{white-space:pre-wrap}
ol#log li time{color:var(--dim);margin-right:.6em}
ol#log li.error{color:var(--err)}
ol#log li.ready{color:var(--ok)}
body.failed h1 .dots,body.ready h1 .dots{display:none}
`;

const JS = `"use strict";
(function () {
  var root = document.documentElement;
  var path = root.getAttribute("data-wake-events") || "/$switchyard/wake-events";
  var log = document.getElementById("log");
  var title = document.getElementById("title");
  function line(text, cls, ts) {
    var li = document.createElement("li");
    if (cls) li.className = cls;
    var t = document.createElement("time");
    var d = ts ? new Date(ts) : new Date();
    t.textContent = d.toLocaleTimeString();
    li.appendChild(t);
    li.appendChild(document.createTextNode(text));
    log.appendChild(li);
    return li;
  }
  var done = false;
  var es = new EventSource(path);
  es.onmessage = function (m) {
    var e;
    try { e = JSON.parse(m.data); } catch (_) { return; }
    var msg = e.message || "";
    var who = e.server && msg.indexOf(e.server) !== 0 ? e.server + ": " : "";
    if (e.action === "error" || e.level === "error") {
      line(who + (e.error || e.message || "wake failed"), "error", e.timestamp);
      if (!e.server) {
        done = true;
        es.close();
        document.body.className = "failed";
        title.textContent = "Could not wake the server";
      }
      return;
    }
    if (e.action === "ready" && !e.server) {
      done = true;
      es.close();
      document.body.className = "ready";
      title.textContent = "Ready, loading…";
      line("ready, loading the page…", "ready", e.timestamp);
      setTimeout(function () { location.reload(); }, 200);
      return;
    }
    line(who + (e.message || e.action), e.action === "ready" ? "ready" : "", e.timestamp);
  };
  es.onerror = function () {
    if (done) return;
    done = true;
    es.close();
    document.body.className = "failed";
    line("connection lost; reload the page to try again", "error");
  };
})();
`;

const CSS_BUF = Buffer.from(CSS);
const JS_BUF = Buffer.from(JS);

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The page's HTML for a wake of `server` in `service`. */
export function loadingPageHtml(service: string, server: string): string {
  const svc = escapeHtml(service);
  const srv = escapeHtml(server);
  return `<!doctype html>
<html lang="en" data-wake-events="/$switchyard/wake-events">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>Waking ${srv}…</title>
<link rel="stylesheet" href="${LOADING_CSS_PATH}">
<script src="${LOADING_JS_PATH}" defer></script>
</head>
<body>
<main>
<h1><span id="title">Waking <code>${srv}</code></span><span class="dots"><span>.</span><span>.</span><span>.</span></span></h1>
<p class="sub">Service <code>${svc}</code> is starting on demand; this page reloads itself when it is ready.</p>
<ol id="log" aria-live="polite"></ol>
</main>
</body>
</html>
`;
}

/** Answers the loading page (200, text/html, no-store). */
export function sendLoadingPage(res: ProxyResponse, service: string, server: string): void {
  const body = loadingPageHtml(service, server);
  res.writeHead(200, {
    "content-type": "text/html; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
  });
  res.end(body);
}

/** Serves `/$switchyard/loading.css` and `.js`; false for any other path. */
export function sendLoadingAsset(res: ProxyResponse, path: string): boolean {
  const asset =
    path === LOADING_CSS_PATH
      ? { body: CSS_BUF, type: "text/css; charset=utf-8" }
      : path === LOADING_JS_PATH
        ? { body: JS_BUF, type: "text/javascript; charset=utf-8" }
        : undefined;
  if (!asset) return false;
  res.writeHead(200, {
    "content-type": asset.type,
    "content-length": asset.body.length,
    "cache-control": "no-store",
  });
  res.end(asset.body);
  return true;
}

/**
 * "Accepts HTML" as GoDoxy means it: a GET whose Accept has text/html, text/* or *\/*, or `/`
 * with no Accept at all.
 */
export function acceptsHtml(method: string | undefined, url: string, accept: string | undefined): boolean {
  if (method !== "GET") return false;
  if (accept === undefined || accept === "") return url === "/";
  return accept.includes("text/html") || accept.includes("text/*") || accept.includes("*/*");
}
