import * as assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { get, type Running, startSwitchyard, tempDir } from "../support/switchyard.ts";

describe("rate_limit with --workers 2: the service's limit, not each worker's", { timeout: 60_000 }, () => {
  const tmp = tempDir();
  let sy: Running;
  let backend: http.Server;
  const seen = new Set<number>();

  before(async () => {
    backend = http.createServer((req, res) => {
      seen.add(req.socket.remotePort ?? 0);
      res.end("ok");
    });
    await new Promise<void>((ok) => backend.listen(0, "127.0.0.1", ok));
    const url = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
    const file = tmp.write(
      "switchyard.yaml",
      `listen: 127.0.0.1:0
admin: 127.0.0.1:0
services:
  limited:
    hosts: [rl.test]
    healthcheck: { disable: true }
    middlewares: [{ rate_limit: { rate: 20/m, burst: 20 } }]
    servers: ["${url}"]
`,
    );
    sy = await startSwitchyard(["serve", "-c", file, "--workers", "2"]);
  });
  after(async () => {
    await sy?.stop();
    await new Promise<void>((ok) => {
      backend.close(() => ok());
      backend.closeAllConnections();
    });
    tmp.remove();
  });

  test("60 requests over fresh connections: about 20 admitted (refill ~1 per 3 s), not 40", async () => {
    const started = Date.now();
    // a new connection each time: the cluster spreads connections over the workers
    const codes = await Promise.all(
      Array.from({ length: 60 }, async () => (await get(sy.proxy[0], "/", { host: "rl.test" })).status),
    );
    const seconds = (Date.now() - started) / 1000;
    const admitted = codes.filter((c) => c === 200).length;
    assert.equal(codes.filter((c) => c !== 200 && c !== 429).length, 0, codes.join(","));
    assert.ok(
      admitted >= 20 && admitted <= 20 + Math.ceil(seconds / 3),
      `${admitted} admitted in ${seconds}s`,
    );
  });
});
