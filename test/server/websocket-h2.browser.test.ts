/// <reference lib="dom" />
/**
 * A real browser (Debian's Chromium, headless) on switchyard's TLS listener, which advertises
 * extended CONNECT (RFC 8441): the page loads over HTTP/2 and its WebSocket echoes through to an
 * HTTP/1.1 backend. Chromium opens it as an extended CONNECT stream on the page's HTTP/2
 * connection: the backend's handshake tells (switchyard writes its own `sec-websocket-key` in lower
 * case, Chromium's HTTP/1.1 one is capitalized).
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import { after, before, test } from "node:test";
import type { Browser } from "puppeteer-core";
import { type RawData, WebSocketServer } from "ws";
import { launchBrowser } from "../support/browser.ts";
import { Cleanup, listen } from "../support/cleanup.ts";
import { type Running, selfSignedCert, startSwitchyard, tempDir } from "../support/switchyard.ts";

const PAGE = `<!doctype html><meta charset="utf-8"><title>ws</title><script>
const ws = new WebSocket("wss://" + location.host + "/ws");
window.result = new Promise((resolve, reject) => {
  ws.onopen = () => ws.send("ping from the page");
  ws.onmessage = (e) => { resolve(String(e.data)); ws.close(1000); };
  ws.onerror = () => reject(new Error("websocket error"));
});
</script>`;

let browser: Browser;
const c = new Cleanup();
let sy: Running;
const handshakes: string[][] = [];

before(async () => {
  browser = await launchBrowser();
  c.add(() => browser.close());
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(PAGE);
  });
  const wss = new WebSocketServer({ server });
  wss.on("connection", (ws, req) => {
    handshakes.push(req.rawHeaders);
    ws.on("message", (data: RawData) => ws.send(`echo: ${data}`));
  });
  const port = await listen(server, c);
  c.add(() => {
    for (const ws of wss.clients) ws.terminate();
    wss.close();
  });
  const tmp = tempDir();
  c.add(() => tmp.remove());
  selfSignedCert(tmp.dir);
  const yaml = `listen:
  - { address: "127.0.0.1:0", tls: { cert: cert.pem, key: key.pem } }
admin: 127.0.0.1:0
services:
  app:
    hosts: ["*"]
    servers: ["http://127.0.0.1:${port}"]
`;
  sy = await startSwitchyard(["serve", "-c", tmp.write("s.yaml", yaml)]);
  c.add(() => sy.stop("SIGKILL"));
});
after(() => c.run());

test("Chromium's WebSocket over the TLS listener echoes through to an HTTP/1.1 backend", {
  timeout: 60_000,
}, async () => {
  const context = await browser.createBrowserContext();
  try {
    const page = await context.newPage();
    // the listener's certificate is self-signed
    const cdp = await page.createCDPSession();
    await cdp.send("Security.setIgnoreCertificateErrors", { ignore: true });
    const res = await page.goto(`https://${sy.proxy[0]}/`);
    assert.equal(res?.status(), 200);
    assert.equal(
      await page.evaluate(() => performance.getEntriesByType("navigation")[0]?.toJSON().nextHopProtocol),
      "h2",
    );
    const reply = await page.evaluate(() => (window as unknown as { result: Promise<string> }).result);
    assert.equal(reply, "echo: ping from the page");
    assert.equal(handshakes.length, 1);
    // Chromium takes the advertised extended CONNECT: the WebSocket rode the page's HTTP/2 connection
    assert.ok(handshakes[0].includes("sec-websocket-key"), `not via RFC 8441: ${handshakes[0]}`);
  } finally {
    await context.close();
  }
});
