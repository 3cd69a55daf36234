/**
 * Takes docs/dashboard.png: a real `switchyard serve` with two services on local backends, steady
 * traffic that rises and falls (a few 5xx from one backend), one server drained, and the dashboard
 * in headless Chromium after the charts have filled.
 *
 *   node scripts/dashboard-screenshot.ts [--seconds 75] [--out docs/dashboard.png] [--width 1280]
 *     [--phone /tmp/phone.png]   (also a 375 px wide shot)  [--dark] [--scale 2]
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { launchBrowser } from "../test/support/browser.ts";
import { ROOT } from "../test/support/cli.ts";
import { splitAddress, startSwitchyard, tempDir } from "../test/support/switchyard.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "75" },
    out: { type: "string", default: join(ROOT, "docs/dashboard.png") },
    width: { type: "string", default: "1280" },
    phone: { type: "string" },
    dark: { type: "boolean", default: false },
    scale: { type: "string", default: "1" },
  },
});
const seconds = Number(values.seconds);

/** A backend that answers after a delay drawn around `ms`, and a 500 with probability `fail`. */
async function backend(name: string, ms: number, fail = 0): Promise<{ url: string; server: http.Server }> {
  const server = http.createServer((_req, res) => {
    const delay = ms * (0.4 + Math.random() * 1.2) * (Math.random() < 0.02 ? 4 : 1);
    setTimeout(() => {
      const bad = Math.random() < fail;
      res.writeHead(bad ? 500 : 200, { "content-type": "text/plain" });
      res.end(bad ? "oops\n" : `${name}\n`);
    }, delay);
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

const backends = {
  "api-1": await backend("api-1", 6),
  "api-2": await backend("api-2", 9),
  "api-3": await backend("api-3", 7),
  "web-1": await backend("web-1", 3),
  "web-2": await backend("web-2", 4, 0.03),
};
const tmp = tempDir("switchyard-shot-");
const cfg = tmp.write(
  "switchyard.yaml",
  `listen: 127.0.0.1:0
admin: 127.0.0.1:0
services:
  api:
    hosts: [api.example.com]
    mode: least_conn
    healthcheck: { interval: 1s }
    servers:
      - { name: api-1, url: "${backends["api-1"].url}", weight: 40 }
      - { name: api-2, url: "${backends["api-2"].url}", weight: 40 }
      - { name: api-3, url: "${backends["api-3"].url}", weight: 20 }
  web:
    hosts: [www.example.com]
    healthcheck: { interval: 1s }
    servers:
      - { name: web-1, url: "${backends["web-1"].url}" }
      - { name: web-2, url: "${backends["web-2"].url}" }
`,
);
const sy = await startSwitchyard(["serve", "-c", cfg]);
const [ph, pp] = splitAddress(sy.proxy[0]);
const admin = `http://${sy.admin}`;
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

let running = true;
const started = Date.now();
function send(host: string): Promise<void> {
  return new Promise((done) => {
    const req = http.request({ host: ph, port: pp, path: "/", agent, headers: { host } }, (res) => {
      res.resume();
      res.on("end", done);
    });
    req.on("error", () => done());
    req.end();
  });
}
/** A client loop: `rate(t)` requests per second at t seconds in. */
async function load(host: string, rate: (t: number) => number): Promise<void> {
  while (running) {
    const t = (Date.now() - started) / 1000;
    const r = Math.max(1, rate(t));
    await Promise.all([send(host), new Promise((ok) => setTimeout(ok, 1000 / r))]);
  }
}
const loops = [
  load("api.example.com", (t) => 60 + 35 * Math.sin(t / 9)),
  load("api.example.com", (t) => 40 + 20 * Math.sin(t / 4 + 1)),
  load("www.example.com", (t) => 30 + 15 * Math.cos(t / 7)),
];

const browser = await launchBrowser();
try {
  const page = await browser.newPage();
  await page.setViewport({
    width: Number(values.width),
    height: 900,
    deviceScaleFactor: Number(values.scale),
  });
  if (values.dark) await page.emulateMediaFeatures([{ name: "prefers-color-scheme", value: "dark" }]);
  await page.goto(`${admin}/`);
  await page.waitForSelector('tr[data-server="web-2"]');
  const action = (path: string, method: string, body: unknown) =>
    fetch(`${admin}/api/services/${path}`, {
      method,
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    }).then(
      (r) => console.log(`${method} ${path}: ${r.status}`),
      (err: Error) => console.log(`${method} ${path}: ${err.message}`),
    );
  // drain api-3 a third of the way in, so its share falls to zero on the charts; shift weight
  // from api-2 to api-1 a little later
  setTimeout(() => action("api/servers/api-3/drain", "POST", {}), (seconds * 1000) / 3);
  setTimeout(() => action("api/servers/api-1/weight", "PUT", { weight: 50 }), (seconds * 1000) / 2);
  setTimeout(() => action("api/servers/api-2/weight", "PUT", { weight: 30 }), (seconds * 1000) / 2);
  await new Promise((ok) => setTimeout(ok, seconds * 1000));
  await page.screenshot({ path: values.out, fullPage: true });
  console.log(`wrote ${values.out}`);
  if (values.phone) {
    await page.setViewport({ width: 375, height: 800, deviceScaleFactor: 1 });
    await page.waitForFunction(() => document.documentElement.clientWidth === 375);
    await page.screenshot({ path: values.phone as `${string}.png`, fullPage: true });
    console.log(`wrote ${values.phone}`);
  }
} finally {
  running = false;
  await Promise.allSettled(loops);
  await browser.close();
  await sy.stop();
  agent.destroy();
  for (const b of Object.values(backends)) b.server.close();
  tmp.remove();
}
