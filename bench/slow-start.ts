// The slow-start curve: `npm run bench:slow-start` writes docs/slow-start.svg.
// Three servers of equal weight; the third joins a running pool with `slowStart: 30s`. On a
// simulated clock, every second of the window gets 1,000 picks, and the plot shows the share the
// new server got in each second, per mode, next to the expected share w·f / (others + w·f).
// For ip_hash it shows the share of 1,000 fixed client IPs that moved to the new server.
import { writeFileSync } from "node:fs";
import type { IncomingMessage } from "node:http";
import { join } from "node:path";
import { Server } from "../src/balancer/server.ts";
import { LoadBalancer } from "../src/load-balancer.ts";

const WINDOW = 30_000;
const SECONDS = 36;
const PICKS = 1000;

function req(i: number): IncomingMessage {
  return {
    socket: { remoteAddress: "127.0.0.1" },
    headers: { "x-real-ip": `198.51.${(i >> 8) & 255}.${i & 255}` },
    url: "/",
  } as unknown as IncomingMessage;
}
const reqs = Array.from({ length: PICKS }, (_, i) => req(i));

function curve(mode: string): number[] {
  let now = 0;
  const lb = new LoadBalancer({
    link: "plot",
    mode,
    slowStart: WINDOW,
    options: { from: ["127.0.0.1"] },
    now: () => now,
  });
  lb.addServer(new Server({ name: "a", url: "http://10.0.0.1:80" }));
  lb.addServer(new Server({ name: "b", url: "http://10.0.0.2:80" }));
  lb.start(new AbortController().signal);
  lb.addServer(new Server({ name: "new", url: "http://10.0.0.3:80" }));
  const out: number[] = [];
  for (let sec = 0; sec < SECONDS; sec++) {
    let hits = 0;
    for (let i = 0; i < PICKS; i++) {
      now = sec * 1000 + (i * 1000) / PICKS;
      if (lb.pick(reqs[i])?.name === "new") hits++;
    }
    out.push(hits / PICKS);
  }
  return out;
}

const weightNew = 33; // rebalanced: 34, 33, 33
const expected = Array.from({ length: SECONDS }, (_, sec) => {
  const f = Math.min(1, (sec + 0.5) / (WINDOW / 1000));
  return (weightNew * f) / (100 - weightNew + weightNew * f);
});
const series = [
  { name: "expected", color: "#999", dash: "4 3", data: expected },
  { name: "round_robin", color: "#1f77b4", dash: "", data: curve("round_robin") },
  { name: "least_conn", color: "#2ca02c", dash: "", data: curve("least_conn") },
  { name: "ip_hash (clients moved)", color: "#d62728", dash: "", data: curve("ip_hash") },
];

const W = 640;
const H = 360;
const M = { l: 50, r: 20, t: 30, b: 40 };
const x = (sec: number) => M.l + ((sec + 0.5) / SECONDS) * (W - M.l - M.r);
const y = (share: number) => H - M.b - (share / 0.4) * (H - M.t - M.b);
const parts: string[] = [];
parts.push(
  `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
  "<title>Share of picks of a server joining a pool of three with slow_start: 30s, per mode, against the expected share</title>",
  `<rect width="${W}" height="${H}" fill="#fff"/>`,
  `<text x="${M.l}" y="18" font-size="14">slow_start: 30s: share of picks of a server joining a pool of 3 (1,000 picks per second)</text>`,
);
for (let v = 0; v <= 0.4001; v += 0.1) {
  parts.push(
    `<line x1="${M.l}" x2="${W - M.r}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/>`,
    `<text x="${M.l - 8}" y="${y(v) + 4}" text-anchor="end">${Math.round(v * 100)}%</text>`,
  );
}
for (let s = 0; s <= SECONDS; s += 6) {
  parts.push(
    `<text x="${x(s) - (W - M.l - M.r) / SECONDS / 2}" y="${H - M.b + 16}" text-anchor="middle">${s}s</text>`,
  );
}
parts.push(
  `<line x1="${M.l}" x2="${M.l}" y1="${M.t}" y2="${H - M.b}" stroke="#333"/>`,
  `<line x1="${M.l}" x2="${W - M.r}" y1="${H - M.b}" y2="${H - M.b}" stroke="#333"/>`,
  `<text x="${(W + M.l) / 2}" y="${H - 6}" text-anchor="middle">time since the server joined</text>`,
);
series.forEach((s, i) => {
  const pts = s.data.map((v, sec) => `${x(sec).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  parts.push(
    `<polyline fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ""} points="${pts}"/>`,
    `<line x1="${M.l + 16}" x2="${M.l + 40}" y1="${M.t + 14 + i * 16}" y2="${M.t + 14 + i * 16}" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ""}/>`,
    `<text x="${M.l + 46}" y="${M.t + 18 + i * 16}">${s.name}</text>`,
  );
});
parts.push("</svg>\n");
const file = join(import.meta.dirname, "../docs/slow-start.svg");
writeFileSync(file, parts.join("\n"));
for (const s of series) {
  console.log(`${s.name.padEnd(24)} ${s.data.map((v) => `${Math.round(v * 100)}`.padStart(3)).join("")}`);
}
console.log(`wrote ${file}`);
