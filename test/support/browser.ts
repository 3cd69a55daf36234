/**
 * Headless Chromium for the page tests: Debian's `chromium` driven by puppeteer-core (no browser
 * download). .ci/run installs the package; a missing browser fails the test, it never skips.
 */
import { existsSync } from "node:fs";
import puppeteer, { type Browser } from "puppeteer-core";

const CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];

export function chromiumPath(): string {
  const fromEnv = process.env.CHROMIUM_PATH;
  if (fromEnv) return fromEnv;
  const found = CANDIDATES.find((p) => existsSync(p));
  if (!found) {
    throw new Error(
      `no Chromium found (looked in ${CANDIDATES.join(", ")}; set CHROMIUM_PATH): apt-get install chromium`,
    );
  }
  return found;
}

export async function launchBrowser(): Promise<Browser> {
  return puppeteer.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
}
