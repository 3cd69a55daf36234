/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/**
 * The dashboard in a real browser (Debian's Chromium, headless) against a real `switchyard serve`
 * with real backends. What the page claims is checked in the DOM; what a button does is checked
 * by sending traffic through the proxy, never by trusting the page.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Browser, Page } from "puppeteer-core";
import { launchBrowser } from "../support/browser.ts";
import { type Backend, type Running, serveYaml, spread, startBackend } from "../support/switchyard.ts";

let browser: Browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

const WAIT = { timeout: 15_000, polling: 50 };

interface Setup {
  sy: Running;
  admin: string;
  backends: Record<string, Backend>;
  page: Page;
  /** Console errors and CSP violations seen by the page. */
  problems: string[];
}

/**
 * Backends named in `services` (service -> server names), a config with fast health checks, the
 * CLI, and a fresh browser context on the dashboard. `adminExtra` replaces the admin line.
 */
async function setup(
  t: { after(fn: () => unknown): void },
  services: Record<string, string[]>,
  options: { admin?: string; weights?: Record<string, number>; width?: number } = {},
): Promise<Setup> {
  const backends: Record<string, Backend> = {};
  for (const names of Object.values(services)) {
    for (const n of names) backends[n] = await startBackend(n, 0, t);
  }
  let yaml = `listen: 127.0.0.1:0\n${options.admin ?? "admin: 127.0.0.1:0"}\nservices:\n`;
  for (const [svc, names] of Object.entries(services)) {
    yaml += `  ${svc}:\n    hosts: [${svc}.test]\n    healthcheck: { interval: 100ms, timeout: 1s, retries: 1 }\n    servers:\n`;
    for (const n of names) {
      const w = options.weights?.[n];
      yaml += `      - { name: ${n}, url: "${backends[n].url}"${w === undefined ? "" : `, weight: ${w}`} }\n`;
    }
  }
  const sy = await serveYaml(t, yaml);
  const context = await browser.createBrowserContext();
  t.after(() => context.close());
  const page = await context.newPage();
  await page.setViewport({ width: options.width ?? 1280, height: 900 });
  const problems: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(m.text());
  });
  page.on("pageerror", (err) => problems.push(String(err)));
  const admin = `http://${sy.admin}`;
  await page.goto(`${admin}/`);
  return { sy, admin, backends, page, problems };
}

/** Sends `n` requests to service `svc` through the proxy; returns how many each backend answered. */
function traffic(sy: Running, svc: string, n: number): Promise<Record<string, number>> {
  return spread(sy.proxy[0], n, { host: `${svc}.test` });
}

function rowStatus(page: Page, server: string, status: string): Promise<unknown> {
  return page.waitForFunction(
    (name, want) => {
      const row = document.querySelector(`tr[data-server="${name}"]`) as HTMLElement | null;
      return row?.dataset.status === want && row.querySelector(".status")?.textContent?.includes(want);
    },
    WAIT,
    server,
    status,
  );
}

function rowAdminState(page: Page, server: string, state: string): Promise<unknown> {
  return page.waitForFunction(
    (name, want) => {
      const row = document.querySelector(`tr[data-server="${name}"]`) as HTMLElement | null;
      return row?.dataset.adminState === want && row.querySelector(".state")?.textContent?.includes(want);
    },
    WAIT,
    server,
    state,
  );
}

test("the page lists every service and server, with named buttons, under its CSP, at phone width too", async (t) => {
  const { page, problems } = await setup(t, { api: ["api-1", "api-2"], web: ["web-1"] });
  await page.waitForFunction(() => document.querySelectorAll("tr[data-server]").length === 3, WAIT);
  const listed = await page.$$eval("section[data-service]", (cards) =>
    cards.map((c) => ({
      service: c.getAttribute("data-service"),
      title: c.querySelector("h2")?.textContent,
      servers: [...c.querySelectorAll("tr[data-server]")].map((r) => r.getAttribute("data-server")),
    })),
  );
  assert.deepEqual(listed, [
    { service: "api", title: "api", servers: ["api-1", "api-2"] },
    { service: "web", title: "web", servers: ["web-1"] },
  ]);
  await rowStatus(page, "api-1", "healthy");
  // every action has an accessible name that says which server it acts on
  for (const label of ["Drain", "Maint", "Ready", "Wake", "Stop"]) {
    assert.ok(await page.$(`button[aria-label="${label} api-2"]`), `${label} api-2`);
  }
  assert.ok(await page.$('input[aria-label="Weight for web-1"]'));
  assert.ok(await page.$('button[aria-label="Set weight of web-1"]'));

  // 375 px wide: nothing wider than the screen
  await page.setViewport({ width: 375, height: 800 });
  await page.waitForFunction(() => document.documentElement.clientWidth === 375, WAIT);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(overflow <= 375, `page is ${overflow}px wide at 375px`);
  assert.deepEqual(problems, [], "console errors (a CSP violation shows here)");
});

test("killing a backend turns its row unhealthy without a reload", async (t) => {
  const { page, backends, problems } = await setup(t, { api: ["api-1", "api-2"] });
  await rowStatus(page, "api-2", "healthy");
  await page.evaluate(() => {
    (window as unknown as { marker: number }).marker = 42;
  });
  await backends["api-2"].stop();
  await rowStatus(page, "api-2", "unhealthy");
  await page.waitForFunction(
    () => document.querySelector('section[data-service="api"] .card-head')?.textContent?.includes("1/2"),
    WAIT,
  );
  // and the event log says so, from the live stream
  await page.waitForFunction(
    () =>
      [...document.querySelectorAll('#events li[data-action="health"]')].some((li) =>
        li.textContent?.includes("api-2 is unhealthy"),
      ),
    WAIT,
  );
  assert.equal(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 42, "reloaded");
  assert.equal(await page.$eval('tr[data-server="api-1"]', (r) => r.getAttribute("data-status")), "healthy");
  assert.deepEqual(problems, []);
});

test("Drain: after the click the server takes no new requests (checked by traffic)", async (t) => {
  const { page, sy, problems } = await setup(t, { api: ["api-1", "api-2"] });
  await rowStatus(page, "api-2", "healthy");
  const before = await traffic(sy, "api", 10);
  assert.equal(before["api-2"], 5, `before the drain: ${JSON.stringify(before)}`);

  await page.click('button[aria-label="Drain api-2"]');
  await rowAdminState(page, "api-2", "draining");
  assert.equal(
    await page.$eval('button[aria-label="Drain api-2"]', (b) => b.getAttribute("aria-pressed")),
    "true",
  );
  await page.waitForSelector('#events li[data-action="drain"]', WAIT);
  assert.match(await page.$eval("#notice", (n) => n.textContent ?? ""), /^api-2 is draining/);
  const after = await traffic(sy, "api", 20);
  assert.deepEqual(after, { "api-1": 20 }, "a draining server got new requests");

  await page.click('button[aria-label="Ready api-2"]');
  await rowAdminState(page, "api-2", "ready");
  const back = await traffic(sy, "api", 10);
  assert.ok((back["api-2"] ?? 0) > 0, `ready again: ${JSON.stringify(back)}`);

  // wake/stop apply only to idle-managed servers: disabled for the others
  assert.equal(
    await page.$eval('button[aria-label="Wake api-1"]', (b) => (b as HTMLButtonElement).disabled),
    true,
  );
  assert.equal(
    await page.$eval('button[aria-label="Stop api-1"]', (b) => (b as HTMLButtonElement).disabled),
    true,
  );
  assert.deepEqual(problems, []);
});

test("Set weight: the split follows the new weight (checked by traffic)", async (t) => {
  const { page, sy, problems } = await setup(
    t,
    { api: ["api-1", "api-2"] },
    { weights: { "api-1": 50, "api-2": 50 } },
  );
  await rowStatus(page, "api-2", "healthy");
  const even = await traffic(sy, "api", 20);
  assert.deepEqual(even, { "api-1": 10, "api-2": 10 });

  const setWeight = async (server: string, weight: number) => {
    const input = `input[aria-label="Weight for ${server}"]`;
    await page.click(input, { count: 3 });
    await page.type(input, String(weight));
    await page.click(`button[aria-label="Set weight of ${server}"]`);
    await page.waitForFunction(
      (name, w) => document.querySelector("#notice")?.textContent === `Weight of ${name} set to ${w}`,
      WAIT,
      server,
      weight,
    );
  };
  await setWeight("api-1", 90);
  await setWeight("api-2", 10);
  await page.waitForFunction(
    () => document.querySelector('tr[data-server="api-1"] .weight-value')?.textContent === "90",
    WAIT,
  );
  const split = await traffic(sy, "api", 100);
  // smooth weighted round robin: any 100 picks in a row give each server its weight, give or take one
  assert.ok(split["api-1"] >= 88 && split["api-1"] <= 92, `after 90/10: ${JSON.stringify(split)}`);
  assert.deepEqual(problems, []);
});

test("with a token: the page asks for it, the API refuses without it, and the token lasts only for the tab", async (t) => {
  const token = "s3cret-dashboard-token";
  const { page, admin } = await setup(
    t,
    { api: ["api-1"] },
    { admin: `admin: { address: "127.0.0.1:0", token: ${token} }` },
  );
  // the shell loads without the token (it holds no data) ...
  const shell = await fetch(`${admin}/`);
  assert.equal(shell.status, 200);
  // ... the API does not
  for (const path of ["/api/health", "/api/stats", "/api/events"]) {
    const r = await fetch(`${admin}${path}`);
    assert.equal(r.status, 401, path);
    assert.match(r.headers.get("www-authenticate") ?? "", /^Bearer/, path);
    await r.body?.cancel();
  }
  const refused = await fetch(`${admin}/api/services/api/servers/api-1/drain`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
  });
  assert.equal(refused.status, 401);

  await page.waitForFunction(() => {
    const box = document.querySelector("#token") as HTMLElement | null;
    return box && !box.hidden && box.getBoundingClientRect().height > 0;
  }, WAIT);
  assert.equal(await page.$$eval("tr[data-server]", (rows) => rows.length), 0, "rows shown without a token");
  assert.equal(await page.evaluate(() => document.activeElement?.id), "token-input");

  // a wrong token is refused and asked for again
  await page.type("#token-input", "wrong");
  await page.click('#token-form button[type="submit"]');
  await page.waitForFunction(
    () =>
      !(document.querySelector("#token") as HTMLElement).hidden &&
      document.querySelector("#token-why")?.textContent?.includes("refused"),
    WAIT,
  );

  await page.type("#token-input", token);
  await page.click('#token-form button[type="submit"]');
  await page.waitForSelector('tr[data-server="api-1"][data-status="healthy"]', WAIT);
  assert.equal(await page.evaluate(() => (document.querySelector("#token") as HTMLElement).hidden), true);
  assert.equal(await page.evaluate(() => sessionStorage.getItem("switchyard.adminToken")), token);
  assert.equal(await page.evaluate(() => localStorage.length), 0, "nothing kept beyond the session");
  // the event stream is read with the token too
  await page.waitForFunction(() => document.querySelector("#events-state")?.textContent === "live", WAIT);

  // another tab (a new browsing context) starts without it
  const other = await browser.createBrowserContext();
  t.after(() => other.close());
  const page2 = await other.newPage();
  await page2.goto(`${admin}/`);
  await page2.waitForFunction(() => !(document.querySelector("#token") as HTMLElement).hidden, WAIT);
});
