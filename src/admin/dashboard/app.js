// switchyard's live dashboard. Plain browser JavaScript, no build step, no dependencies.
//
// Data: GET /api/health and GET /api/stats polled every second (charts keep the last five minutes
// in memory), GET /api/events read as a stream. Everything goes through fetch so the admin token,
// when one is set, can travel as `Authorization: Bearer` (EventSource cannot send it). The token
// lives in sessionStorage only: this tab, until it closes.

const POLL_MS = 1000;
const HIDDEN_POLL_MS = 5000;
const WINDOW_MS = 5 * 60_000;
const MAX_EVENTS = 200;
const TOKEN_KEY = "switchyard.adminToken";
const SERIES_COLOURS = 8;
const ACTIONS = [
  ["drain", "Drain", "No new clients; sticky clients and in-flight requests finish"],
  ["maint", "Maint", "Maintenance: no requests at all"],
  ["ready", "Ready", "Back to normal: takes requests"],
  ["wake", "Wake", "Start an idle (napping) server"],
  ["stop", "Stop", "Stop an idle-managed server"],
];
const STATUS_ICON = {
  healthy: "✓",
  napping: "☾",
  starting: "↻",
  unhealthy: "✕",
  error: "!",
  unknown: "?",
};
const COLUMN_TITLES = {
  Weight: "The share the balancer uses (weights scaled to total 100); below it, the file's and one set here",
  "In-flight": "Requests being answered now",
  "Req/s": "Requests per second over the last 10 s",
  "5xx": "Share of 5xx answers over the last minute",
  "p50 / p99": "Latency percentiles over the last minute",
};
const STATE_ICON = { ready: "▶", draining: "⇥", maint: "■" };
const SVG = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) ?? "",
  waitingForToken: false,
  tokenWaiters: [],
  services: new Map(), // name -> service view
  pollTimer: 0,
  lastOk: 0,
  firstSample: 0,
};

// ---- DOM helpers ----

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== undefined && c !== null) node.append(c);
  return node;
}

function s(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

// ---- formatting ----

function fmtRate(v) {
  if (v === undefined || v === null || Number.isNaN(v)) return "–";
  if (v === 0) return "0";
  if (v < 10) return v.toFixed(1);
  return Math.round(v).toLocaleString();
}

function fmtMs(v) {
  if (v === undefined || v === null || Number.isNaN(v)) return "–";
  if (v < 1) return `${v.toFixed(2)} ms`;
  if (v < 10) return `${v.toFixed(1)} ms`;
  if (v < 10_000) return `${Math.round(v)} ms`;
  return `${(v / 1000).toFixed(1)} s`;
}

function errorRate(st) {
  const c = st?.status;
  if (!c) return undefined;
  const total = (c["2xx"] ?? 0) + (c["3xx"] ?? 0) + (c["4xx"] ?? 0) + (c["5xx"] ?? 0);
  if (total === 0) return undefined;
  return (c["5xx"] ?? 0) / total;
}

function fmtPct(r) {
  if (r === undefined) return "–";
  if (r === 0) return "0%";
  if (r < 0.001) return "<0.1%";
  return `${(r * 100).toFixed(r < 0.1 ? 1 : 0)}%`;
}

function fmtTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return d.toLocaleTimeString([], { hour12: false });
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// ---- API ----

class Unauthorized extends Error {}

async function api(path, init = {}) {
  const headers = { ...(init.headers ?? {}) };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const res = await fetch(path, { ...init, headers, cache: "no-store", credentials: "omit" });
  if (res.status === 401) {
    askForToken(Boolean(state.token));
    throw new Unauthorized(`${path}: 401`);
  }
  return res;
}

async function readJson(res) {
  try {
    return await res.json();
  } catch {
    return undefined;
  }
}

// ---- token prompt ----

function askForToken(refused) {
  if (state.waitingForToken) return;
  state.waitingForToken = true;
  setConn("locked", "token required");
  $("token-why").textContent = refused
    ? "The admin API refused the token. Enter it again; it is kept for this tab only (session storage)."
    : "This admin API asks for a token. It is kept for this tab only (session storage) and sent as Authorization: Bearer.";
  $("token").hidden = false;
  $("token-input").focus();
}

function tokenReady() {
  if (!state.waitingForToken) return Promise.resolve();
  return new Promise((resolve) => state.tokenWaiters.push(resolve));
}

$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const value = $("token-input").value.trim();
  if (!value) return;
  state.token = value;
  sessionStorage.setItem(TOKEN_KEY, value);
  $("token-input").value = "";
  $("token").hidden = true;
  $("forget-token").hidden = false;
  state.waitingForToken = false;
  setConn("connecting", "connecting…");
  for (const w of state.tokenWaiters.splice(0)) w();
  poll();
});

$("forget-token").hidden = !state.token;
$("forget-token").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = "";
  $("forget-token").hidden = true;
  poll();
});

// ---- connection indicator and notices ----

function setConn(kind, text) {
  const c = $("conn");
  if (c.dataset.state !== kind) c.dataset.state = kind;
  setText($("conn-text"), text);
}

let noticeTimer = 0;
function notice(text, kind = "info") {
  const n = $("notice");
  n.textContent = text;
  n.dataset.kind = kind;
  n.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    n.hidden = true;
  }, 6000);
}

// ---- charts (inline SVG, drawn from the in-memory history) ----

function makeChart(label) {
  const svg = s("svg", { viewBox: "0 0 300 80", preserveAspectRatio: "none", class: "chart-svg" });
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  for (const y of [0.5, 20, 40, 60]) {
    svg.append(
      s("line", { x1: 0, x2: 300, y1: y, y2: y, class: "grid", "vector-effect": "non-scaling-stroke" }),
    );
  }
  return svg;
}

/** The charts' time span: since the page opened, at least a minute, at most WINDOW_MS. */
function span(now) {
  return Math.min(WINDOW_MS, Math.max(60_000, now - (state.firstSample || now)));
}

function fmtSpan(ms) {
  const min = ms / 60_000;
  return `−${min < 1.5 ? "1 min" : `${Math.round(min)} min`}`;
}

/** series: [{ cls, points: [[t, v], ...] }]; returns the y-axis maximum used. */
function drawChart(svg, series, now, fixedMax) {
  let max = 0;
  const width = span(now);
  const from = now - width;
  for (const ser of series) for (const [t, v] of ser.points) if (t >= from && v > max) max = v;
  max = fixedMax ?? niceMax(max);
  const paths = svg.querySelectorAll("path");
  const xy = (t, v) =>
    `${(((t - from) / width) * 300).toFixed(1)} ${(80 - (Math.min(v, max) / max) * 76).toFixed(1)}`;
  const areas = [];
  const lines = [];
  for (const ser of series) {
    let d = "";
    let firstT = -1;
    let lastT = 0;
    for (const [t, v] of ser.points) {
      if (t < from) continue;
      d += `${d ? "L" : "M"}${xy(t, v)}`;
      if (firstT < 0) firstT = t;
      lastT = t;
    }
    if (ser.area && d) {
      // down to the series below (stacked) or to the axis
      let back = "";
      if (ser.base) {
        for (let i = ser.base.length - 1; i >= 0; i--) {
          const [t, v] = ser.base[i];
          if (t >= from) back += `L${xy(t, v)}`;
        }
      } else back = `L${xy(lastT, 0)}L${xy(firstT, 0)}`;
      areas.push({ d: `${d}${back}Z`, cls: `area ${ser.cls}` });
    }
    lines.push({ d, cls: `line ${ser.cls}` });
  }
  const wanted = [...areas, ...lines];
  for (let i = 0; i < wanted.length; i++) {
    let p = paths[i];
    if (!p) {
      p = s("path", { "vector-effect": "non-scaling-stroke" });
      svg.append(p);
    }
    if (p.getAttribute("d") !== wanted[i].d) p.setAttribute("d", wanted[i].d || "M0 80");
    if (p.getAttribute("class") !== wanted[i].cls) p.setAttribute("class", wanted[i].cls);
  }
  for (let i = wanted.length; i < paths.length; i++) paths[i].remove();
  return max;
}

/** Stacks series sampled at the same times: each one's area sits on the sum of those before it. */
function stack(series) {
  const times = [...new Set(series.flatMap((ser) => ser.points.map(([t]) => t)))].sort((a, b) => a - b);
  const below = times.map(() => 0);
  return series.map((ser) => {
    const at = new Map(ser.points);
    const base = times.map((t, i) => [t, below[i]]);
    const points = times.map((t, i) => {
      below[i] += at.get(t) ?? 0;
      return [t, below[i]];
    });
    return { cls: ser.cls, points, base, area: true };
  });
}

function push(hist, t, v) {
  hist.push([t, v]);
  while (hist.length > 0 && hist[0][0] < t - WINDOW_MS - 5000) hist.shift();
}

// ---- service cards and server rows ----

function statusBadge() {
  const b = h("span", { class: "badge status" });
  b.append(h("span", { class: "icon", "aria-hidden": "true" }), h("span", { class: "label" }));
  return b;
}

function setBadge(b, value, icons) {
  if (b.dataset.value === value) return;
  b.dataset.value = value;
  b.querySelector(".icon").textContent = icons[value] ?? "•";
  b.querySelector(".label").textContent = value;
}

function metric(label) {
  const value = h("span", { class: "metric-value", text: "–" });
  const node = h("div", { class: "metric" }, h("span", { class: "metric-label", text: label }), value);
  return { node, value };
}

function chartBox(title, label) {
  const svg = makeChart(label);
  const max = h("span", { class: "chart-max" });
  const legend = h("ul", { class: "legend" });
  const from = h("span", { class: "axis-from", text: "−1 min" });
  const node = h(
    "figure",
    { class: "chart" },
    h("figcaption", {}, h("span", { text: title }), max),
    svg,
    h("div", { class: "axis", "aria-hidden": "true" }, from, h("span", { text: "now" })),
    legend,
  );
  return { node, svg, max, legend, from };
}

function createService(name) {
  const badge = statusBadge();
  const detail = h("span", { class: "muted detail" });
  const mode = h("span", { class: "pill mode" });
  const m = {
    rps: metric("Req/s"),
    inflight: metric("In-flight"),
    err: metric("5xx rate"),
    p50: metric("p50"),
    p99: metric("p99"),
  };
  const charts = {
    rps: chartBox("Requests/s by server (stacked)", `Requests per second of ${name} by server, last minutes`),
    lat: chartBox("Latency", `Latency p50 and p99 of ${name}, last minutes`),
    err: chartBox("5xx rate", `Share of 5xx answers of ${name}, last minutes`),
  };
  charts.lat.legend.append(
    h("li", {}, h("span", { class: "swatch c0", "aria-hidden": "true" }), "p50"),
    h("li", {}, h("span", { class: "swatch c3", "aria-hidden": "true" }), "p99"),
  );
  const tbody = h("tbody");
  const table = h(
    "table",
    { class: "servers" },
    h("caption", { class: "visually-hidden", text: `Servers of ${name}` }),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ...["Server", "Status", "Weight", "In-flight", "Req/s", "5xx", "p50 / p99", "Actions"].map((t) =>
          h("th", { scope: "col", text: t, title: COLUMN_TITLES[t] }),
        ),
      ),
    ),
    tbody,
  );
  const titleId = `svc-${cssId(name)}`;
  const node = h(
    "section",
    { class: "card service", "data-service": name, "aria-labelledby": titleId },
    h(
      "div",
      { class: "card-head" },
      h("h2", { id: titleId, text: name }),
      badge,
      mode,
      detail,
      h("div", { class: "metrics" }, ...Object.values(m).map((x) => x.node)),
    ),
    h("div", { class: "charts" }, charts.rps.node, charts.lat.node, charts.err.node),
    h("div", { class: "table-wrap" }, table),
  );
  return {
    name,
    node,
    badge,
    detail,
    mode,
    m,
    charts,
    tbody,
    servers: new Map(),
    hist: { rps: [], p50: [], p99: [], err: [] },
  };
}

function cssId(name) {
  return name.replace(/[^A-Za-z0-9_-]/g, "_");
}

function createServer(svc, name) {
  const status = statusBadge();
  const adminState = h("span", { class: "badge state" });
  adminState.append(h("span", { class: "icon", "aria-hidden": "true" }), h("span", { class: "label" }));
  const url = h("span", { class: "url muted" });
  const backup = h("span", { class: "pill tag", text: "backup", hidden: true });
  const ramp = h("span", { class: "muted ramp", hidden: true });
  const weight = h("span", { class: "weight-value" });
  const weightCfg = h("span", { class: "muted weight-cfg" });
  const cells = {
    inflight: h("span", { class: "num" }),
    rps: h("span", { class: "num" }),
    err: h("span", { class: "num" }),
    lat: h("span", { class: "num" }),
  };
  const spark = makeChart(`Requests per second of ${name}, last minutes`);
  spark.classList.add("spark");
  const buttons = {};
  const actions = h("div", { class: "actions" });
  for (const [action, label, title] of ACTIONS) {
    const b = h("button", {
      type: "button",
      class: `act act-${action}`,
      "data-action": action,
      "aria-label": `${label} ${name}`,
      title,
      text: label,
      onclick: () => runAction(svc.name, name, action, b, label),
    });
    buttons[action] = b;
    actions.append(b);
  }
  const input = h("input", {
    type: "number",
    min: "0",
    step: "1",
    inputmode: "numeric",
    class: "weight-input",
    "aria-label": `Weight for ${name}`,
  });
  const set = h("button", {
    type: "submit",
    class: "act act-weight",
    "aria-label": `Set weight of ${name}`,
    text: "Set",
  });
  const form = h("form", { class: "weight-form", novalidate: true }, input, set);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const v = input.value.trim();
    if (!/^\d+$/.test(v)) {
      notice(`Weight of ${name}: a whole number ≥ 0, please`, "error");
      input.focus();
      return;
    }
    runAction(svc.name, name, "weight", set, "Set weight", { weight: Number(v) }).then((ok) => {
      if (ok) input.dataset.dirty = "";
    });
  });
  input.addEventListener("input", () => {
    input.dataset.dirty = "1";
  });
  actions.append(form);
  const td = (label, ...c) => h("td", { "data-label": label }, ...c);
  const row = h(
    "tr",
    { "data-server": name, "data-service": svc.name },
    h("th", { scope: "row", class: "server-name" }, h("span", { class: "name" }, name, backup), url),
    h("td", { class: "status-cell" }, status, adminState),
    td("Weight", weight, weightCfg, ramp),
    td("In-flight", cells.inflight),
    h("td", { "data-label": "Req/s", class: "rps-cell" }, cells.rps, spark),
    td("5xx", cells.err),
    td("p50 / p99", cells.lat),
    h("td", { class: "actions-cell" }, actions),
  );
  return {
    name,
    row,
    status,
    adminState,
    url,
    backup,
    ramp,
    weight,
    weightCfg,
    cells,
    spark,
    buttons,
    input,
    colour: svc.servers.size % SERIES_COLOURS,
    hist: [],
  };
}

function serverKeyByName(pool) {
  const out = new Map();
  for (const p of Object.values(pool ?? {})) if (p && typeof p.name === "string") out.set(p.name, p);
  return out;
}

function render(health, stats, now) {
  const root = $("services");
  const seen = new Set();
  let unhealthy = 0;
  let total = 0;
  let prev = null;
  for (const [name, sj] of Object.entries(health)) {
    seen.add(name);
    let svc = state.services.get(name);
    if (!svc) {
      svc = createService(name);
      state.services.set(name, svc);
    }
    // keep the API's order
    const expected = prev ? prev.nextSibling : root.firstChild;
    if (expected !== svc.node) root.insertBefore(svc.node, expected);
    prev = svc.node;
    renderService(svc, sj, stats?.[name], now);
    total++;
    if (sj.status !== "healthy") unhealthy++;
  }
  for (const [name, svc] of state.services) {
    if (!seen.has(name)) {
      svc.node.remove();
      state.services.delete(name);
    }
  }
  $("empty").hidden = total > 0;
  const summary =
    total === 0
      ? ""
      : unhealthy === 0
        ? `${total} service${total === 1 ? "" : "s"}, all healthy`
        : `${total} service${total === 1 ? "" : "s"}, ${unhealthy} not healthy`;
  setText($("summary"), summary);
  document.title = unhealthy > 0 ? `(${unhealthy}✕) switchyard` : "switchyard";
}

function renderService(svc, sj, st, now) {
  setBadge(svc.badge, sj.status ?? "unknown", STATUS_ICON);
  svc.node.dataset.status = sj.status ?? "unknown";
  setText(svc.detail, sj.detail ?? "");
  const mode = sj.extra?.config?.mode;
  setText(svc.mode, mode ? mode.replace(/_/g, " ") : "");
  svc.mode.hidden = !mode;

  const err = errorRate(st);
  setText(svc.m.rps.value, fmtRate(st?.rps));
  setText(svc.m.inflight.value, st ? String(st.inflight ?? 0) : "–");
  setText(svc.m.err.value, fmtPct(err));
  svc.m.err.node.classList.toggle("bad", (err ?? 0) > 0.01);
  setText(svc.m.p50.value, fmtMs(st?.p50_ms));
  setText(svc.m.p99.value, fmtMs(st?.p99_ms));
  if (st) {
    push(svc.hist.rps, now, st.rps ?? 0);
    push(svc.hist.p50, now, st.p50_ms ?? 0);
    push(svc.hist.p99, now, st.p99_ms ?? 0);
    push(svc.hist.err, now, (err ?? 0) * 100);
  }

  const pool = serverKeyByName(sj.extra?.pool);
  const seen = new Set();
  let prev = null;
  for (const [name, p] of pool) {
    seen.add(name);
    let sv = svc.servers.get(name);
    if (!sv) {
      sv = createServer(svc, name);
      svc.servers.set(name, sv);
    }
    const expected = prev ? prev.nextSibling : svc.tbody.firstChild;
    if (expected !== sv.row) svc.tbody.insertBefore(sv.row, expected);
    prev = sv.row;
    renderServer(sv, p, st?.servers?.[name], now);
  }
  for (const [name, sv] of svc.servers) {
    if (!seen.has(name)) {
      sv.row.remove();
      svc.servers.delete(name);
    }
  }

  // charts
  const rpsSeries = [];
  for (const sv of svc.servers.values()) rpsSeries.push({ cls: `c${sv.colour}`, points: sv.hist });
  setText(svc.charts.rps.max, `max ${fmtRate(drawChart(svc.charts.rps.svg, stack(rpsSeries), now))}/s`);
  const legend = svc.charts.rps.legend;
  const names = [...svc.servers.values()].map((sv) => `${sv.colour}:${sv.name}`).join("|");
  if (legend.dataset.names !== names) {
    legend.dataset.names = names;
    legend.replaceChildren(
      ...[...svc.servers.values()].map((sv) =>
        h("li", {}, h("span", { class: `swatch c${sv.colour}`, "aria-hidden": "true" }), sv.name),
      ),
    );
  }
  const latMax = drawChart(
    svc.charts.lat.svg,
    [
      { cls: "c0", points: svc.hist.p50 },
      { cls: "c3", points: svc.hist.p99 },
    ],
    now,
  );
  setText(svc.charts.lat.max, `max ${fmtMs(latMax)}`);
  const errMax = drawChart(svc.charts.err.svg, [{ cls: "bad", points: svc.hist.err, area: true }], now);
  setText(svc.charts.err.max, `max ${errMax}%`);
}

function renderServer(sv, p, st, now) {
  const status = p.status ?? "unknown";
  setBadge(sv.status, status, STATUS_ICON);
  sv.row.dataset.status = status;
  sv.status.title = p.detail ?? "";
  const adminState = p.admin_state ?? "ready";
  setBadge(sv.adminState, adminState, STATE_ICON);
  sv.row.dataset.adminState = adminState;
  const url = p.url ?? "";
  setText(sv.url, url.replace(/^http:\/\//, ""));
  if (sv.url.title !== url) sv.url.title = url;

  // `weight` is what the balancer uses (the service's weights scaled to total 100); under it the
  // file's (`configured_weight`, 0 = an equal share) and one set through the API (`runtime_weight`)
  const rw = p.runtime_weight ?? undefined;
  const cfg = p.configured_weight;
  setText(sv.weight, p.weight === undefined ? "–" : String(p.weight));
  const parts = [];
  if (rw !== undefined) parts.push(`set ${rw}`);
  if (cfg === 0) parts.push("file: auto");
  else if (cfg !== undefined && (cfg !== p.weight || rw !== undefined)) parts.push(`file ${cfg}`);
  const cfgText = parts.join(" · ");
  setText(sv.weightCfg, cfgText);
  sv.weightCfg.hidden = !cfgText;
  sv.backup.hidden = !p.backup;
  // slow start: the share of its weight a newly good server gets so far
  setText(sv.ramp, p.slow_start ? `slow start ${p.slow_start}` : "");
  sv.ramp.hidden = !p.slow_start;
  if (document.activeElement !== sv.input && !sv.input.dataset.dirty) {
    const shown = p.runtime_weight ?? (p.configured_weight || p.weight);
    if (shown !== undefined && sv.input.value !== String(shown)) sv.input.value = String(shown);
  }

  const err = errorRate(st);
  setText(sv.cells.inflight, String(st?.inflight ?? p.inflight ?? 0));
  setText(sv.cells.rps, fmtRate(st?.rps));
  setText(sv.cells.err, fmtPct(err));
  sv.cells.err.classList.toggle("bad", (err ?? 0) > 0.01);
  setText(sv.cells.lat, st ? `${fmtMs(st.p50_ms)} / ${fmtMs(st.p99_ms)}` : "–");
  if (st) push(sv.hist, now, st.rps ?? 0);
  drawChart(sv.spark, [{ cls: `c${sv.colour}`, points: sv.hist, area: true }], now);

  for (const [action, b] of Object.entries(sv.buttons)) {
    if (action === "wake" || action === "stop") {
      // only idle-managed servers (an idle provider) can be woken or stopped
      const none = p.idle !== true;
      if (b.disabled !== none && b.getAttribute("aria-busy") !== "true") b.disabled = none;
    } else if (action === "drain" || action === "maint" || action === "ready") {
      const current = (action === "drain" ? "draining" : action) === adminState;
      const pressed = current ? "true" : "false";
      if (b.getAttribute("aria-pressed") !== pressed) b.setAttribute("aria-pressed", pressed);
    }
  }
}

// ---- actions ----

async function runAction(service, server, action, button, label, body) {
  const path = `/api/services/${encodeURIComponent(service)}/servers/${encodeURIComponent(server)}/${action}`;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    const res = await api(path, {
      method: action === "weight" ? "PUT" : "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body ?? {}),
    });
    const data = await readJson(res);
    if (!res.ok) {
      notice(`${label} ${server}: ${data?.error ?? `HTTP ${res.status}`}`, "error");
      return false;
    }
    const inflight = data?.drained === false ? `${data.inflight} in flight` : "nothing in flight";
    const done = {
      weight: () => `Weight of ${server} set to ${body.weight}`,
      drain: () => `${server} is draining: no new clients, ${inflight}`,
      maint: () => `${server} is in maintenance: no requests`,
      ready: () => `${server} is ready`,
      wake: () => `${server}: wake requested`,
      stop: () => `${server}: stop requested`,
    };
    notice(done[action]?.() ?? `${label} ${server}: done`, "ok");
    return true;
  } catch (err) {
    if (!(err instanceof Unauthorized)) notice(`${label} ${server}: ${err.message}`, "error");
    return false;
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    poll();
  }
}

// ---- polling ----

let polling = false;
let pollAgain = false;

/** One refresh of health and stats; the next is scheduled when it is done (never two at once). */
async function poll() {
  clearTimeout(state.pollTimer);
  if (state.waitingForToken) return;
  if (polling) {
    pollAgain = true;
    return;
  }
  polling = true;
  try {
    const [hres, sres] = await Promise.all([api("/api/health"), api("/api/stats")]);
    if (!hres.ok) throw new Error(`/api/health: HTTP ${hres.status}`);
    const health = await hres.json();
    const stats = sres.ok ? await readJson(sres) : undefined;
    const now = Date.now();
    if (!state.firstSample) state.firstSample = now;
    render(health, stats, now);
    const label = fmtSpan(span(now));
    for (const el of document.querySelectorAll(".axis-from")) setText(el, label);
    state.lastOk = Date.now();
    setConn("live", "live");
  } catch (err) {
    if (!(err instanceof Unauthorized)) {
      setConn("down", state.lastOk ? `no answer since ${fmtTime(new Date(state.lastOk))}` : "no answer");
    }
  } finally {
    polling = false;
  }
  if (state.waitingForToken) return;
  if (pollAgain) {
    pollAgain = false;
    poll();
    return;
  }
  // a hidden tab asks less often, and catches up as soon as it is shown
  state.pollTimer = setTimeout(poll, document.hidden ? HIDDEN_POLL_MS : POLL_MS);
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden) poll();
});

// ---- events (server-sent events read through fetch) ----

function addEvent(ev) {
  const list = $("events");
  const who = [ev.service, ev.server].filter(Boolean).join(" / ");
  const li = h(
    "li",
    { class: `event level-${ev.level ?? "info"}`, "data-action": ev.action ?? "" },
    h("time", { datetime: ev.timestamp ?? "", text: fmtTime(ev.timestamp) }),
    h("span", { class: "event-action", text: ev.action ?? "" }),
    who ? h("span", { class: "event-who", text: who }) : undefined,
    h("span", { class: "event-msg", text: ev.message ?? "" }),
  );
  list.prepend(li);
  while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
  $("events-empty").hidden = true;
}

function handleFrame(frame) {
  const data = [];
  for (const line of frame.split("\n")) {
    if (line.startsWith("data:")) data.push(line.slice(line[5] === " " ? 6 : 5));
  }
  if (data.length === 0) return;
  let ev;
  try {
    ev = JSON.parse(data.join("\n"));
  } catch {
    return;
  }
  if (ev && typeof ev === "object") {
    addEvent(ev);
    // a health change or an action shows in the rows at once, not at the next poll
    clearTimeout(state.pollTimer);
    state.pollTimer = setTimeout(poll, 50);
  }
}

async function streamEvents() {
  let backoff = 1000;
  for (;;) {
    await tokenReady();
    try {
      const res = await api("/api/events", { headers: { Accept: "text/event-stream" } });
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      // the stream replays the last 100 first: start the list afresh on each connection
      $("events").replaceChildren();
      $("events-empty").hidden = false;
      setText($("events-state"), "live");
      backoff = 1000;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      let cr = ""; // a chunk ending in CR may be half of a CRLF
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        let chunk = cr + value;
        cr = chunk.endsWith("\r") ? "\r" : "";
        if (cr) chunk = chunk.slice(0, -1);
        buf += chunk.replace(/\r\n?/g, "\n");
        let i = buf.indexOf("\n\n");
        while (i >= 0) {
          handleFrame(buf.slice(0, i));
          buf = buf.slice(i + 2);
          i = buf.indexOf("\n\n");
        }
      }
      setText($("events-state"), "reconnecting…");
    } catch (err) {
      if (err instanceof Unauthorized) continue;
      setText($("events-state"), `reconnecting… (${err.message})`);
    }
    await new Promise((r) => setTimeout(r, backoff));
    backoff = Math.min(backoff * 2, 15_000);
  }
}

poll();
streamEvents();
