/**
 * The loading page in a real browser (Debian's Chromium, headless): a napping `run` server is
 * woken by a page visit; the page shows the service and server, the progress lines arrive live
 * from /$switchyard/wake-events, and the page turns into the backend's own page by itself.
 * With UPDATE_SCREENSHOTS=1 the screenshot taken during the wake is saved as docs/loading-page.png.
 */
import * as assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import { launchBrowser } from "../support/browser.ts";
import { ROOT } from "../support/cli.ts";
import { serveIdleApp, serveIdleService } from "../support/idle.ts";
import { freePort } from "../support/ports.ts";
import { get, tempDir } from "../support/switchyard.ts";

describe("idle: loading page in Chromium", { timeout: 90_000 }, () => {
  test("page shown, progress lines appear, then the backend's own page", async (t) => {
    const tmp = tempDir();
    t.after(() => tmp.remove());
    const { sy } = await serveIdleApp(t, "shop-1", {
      service: "shop",
      healthcheck: "{ path: /healthz }",
      idle: "{ idle_timeout: 1m, wake_timeout: 30s }",
      // listens once the test creates this file (after the progress lines were seen)
      env: { READY_FILE: join(tmp.dir, "ready"), NAME: "shop-1" },
    });
    const browser = await launchBrowser();
    t.after(() => browser.close());
    const page = await browser.newPage();
    await page.setViewport({ width: 820, height: 460 });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    const res = await page.goto(`http://${sy.proxy[0]}/`, { waitUntil: "domcontentloaded" });
    assert.equal(res?.status(), 200);
    assert.equal(res?.headers()["cache-control"], "no-store");
    const text = await page.$eval("main", (m) => m.textContent ?? "");
    assert.match(text, /shop-1/);
    assert.match(text, /shop/);
    // progress lines arrive while the backend is still starting (it listens when told to)
    await page.waitForFunction('document.querySelectorAll("#log li").length >= 2', { timeout: 10_000 });
    const lines = await page.$$eval("#log li", (lis) => lis.map((li) => li.textContent ?? ""));
    assert.ok(
      lines.some((l) => l.includes("shop-1 is starting")),
      lines.join("\n"),
    );
    assert.ok(
      lines.some((l) => l.includes("shop-1 started; waiting until it is ready")),
      lines.join("\n"),
    );
    const shot =
      process.env.UPDATE_SCREENSHOTS === "1"
        ? join(ROOT, "docs/loading-page.png")
        : join(tmp.dir, "loading.png");
    await page.screenshot({ path: shot as `${string}.png` });
    // the backend listens now; the page reloads itself into the backend's own page
    tmp.write("ready", "");
    await page.waitForSelector("#app", { timeout: 20_000 });
    assert.equal(await page.$eval("#app", (h) => h.textContent), "hello from shop-1");
    assert.equal(await page.title(), "shop-1 home");
    assert.deepEqual(errors, []);
    // the server is healthy now
    const h = JSON.parse((await get(sy.admin!, "/api/health/shop")).body);
    assert.equal((Object.values(h.extra.pool)[0] as { status: string }).status, "healthy");
  });

  test("a failed wake: the page shows the error and stops (no reload)", async (t) => {
    const port = await freePort();
    const sy = await serveIdleService(
      t,
      `      - { name: shop-9, url: "http://127.0.0.1:${port}", run: { command: [/nonexistent/shop-binary] } }
`,
      { service: "shop", idle: "{ idle_timeout: 1m }" },
    );
    const browser = await launchBrowser();
    t.after(() => browser.close());
    const page = await browser.newPage();
    let navigations = 0;
    page.on("framenavigated", (f) => {
      if (f === page.mainFrame()) navigations++;
    });
    const res = await page.goto(`http://${sy.proxy[0]}/`, { waitUntil: "domcontentloaded" });
    assert.equal(res?.status(), 200);
    await page.waitForSelector("body.failed", { timeout: 10_000 });
    const errors = await page.$$eval("#log li.error", (lis) => lis.map((li) => li.textContent ?? ""));
    assert.ok(
      errors.some((l) => l.includes("command not found: /nonexistent/shop-binary")),
      errors.join("\n"),
    );
    assert.ok(
      errors.every((l) => !l.includes(String(port))),
      errors.join("\n"),
    );
    assert.equal(await page.$eval("#title", (e) => e.textContent), "Could not wake the server");
    // it stays: no reload after a failure
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(navigations, 1);
  });
});
