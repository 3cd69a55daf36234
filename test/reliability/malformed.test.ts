/**
 * Bad input from clients over raw TCP: each malformed request gets the right 4xx or a closed
 * connection, never reaches a backend in a form the backend would read differently (no
 * smuggled second request, no request the client did not send), and a good request on
 * another connection succeeds while it happens.
 */
import * as assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type Backend, backend } from "../support/backend.ts";
import { rawRequest } from "../support/http.ts";
import { corpus, expectationFor, type TargetName } from "./corpus.ts";
import { record } from "./summary.ts";
import { startCli, startProxy } from "./switchyards.ts";

const HEADERS_TIMEOUT = 1000;

interface Target {
  name: string;
  port: number;
  backend: Backend;
  close(): Promise<void>;
}

const targets: Record<string, Target> = {};

before(async () => {
  const b1 = await backend("api-1");
  const lib = await startProxy(
    { services: { api: { servers: [{ name: "api-1", url: b1.url }] } } },
    // the server's slowloris guard, shortened for the test
    { http: { headersTimeout: HEADERS_TIMEOUT, requestTimeout: 5000, connectionsCheckingInterval: 100 } },
  );
  targets.library = {
    name: "library",
    port: lib.port,
    backend: b1,
    close: async () => {
      await lib.close();
      await b1.stop();
    },
  };
  const b2 = await backend("api-1");
  const cli = await startCli({
    // the server's slowloris guard (timeouts.client_header), shortened for the test
    timeouts: { client_header: `${HEADERS_TIMEOUT}ms` },
    services: { api: { servers: [{ name: "api-1", url: b2.url }] } },
  });
  targets.server = {
    name: "server",
    port: cli.port,
    backend: b2,
    close: async () => {
      await cli.stop("SIGKILL");
      await b2.stop();
    },
  };
  const b3 = await backend("api-1");
  const fb = await startCli(
    {
      timeouts: { client_header: `${HEADERS_TIMEOUT}ms` },
      services: { api: { servers: [{ name: "api-1", url: b3.url }] } },
    },
    { env: { SWITCHYARD_HTTP1: "fallback" } },
  );
  targets.fallback = {
    name: "fallback",
    port: fb.port,
    backend: b3,
    close: async () => {
      await fb.stop("SIGKILL");
      await b3.stop();
    },
  };
});

after(async () => {
  for (const t of Object.values(targets)) await t.close();
});

const H = "Host: api.test\r\n";

for (const targetName of ["library", "server", "fallback"] as const satisfies TargetName[]) {
  describe(`malformed requests (${targetName})`, () => {
    for (const c of corpus) {
      test(c.name, { timeout: 90_000 }, async () => {
        const target = targets[targetName];
        const wait = c.wait ?? 1500;
        const { backend, port } = target;
        const seenBefore = backend.received.length;
        const [r, good] = await Promise.all([
          rawRequest(port, c.chunks, wait),
          // a good request on another connection, sent while the bad one is in progress
          rawRequest(port, [`GET /good HTTP/1.1\r\n${H}Connection: close\r\n\r\n`], 3000),
        ]);
        const outcome = r.status !== undefined ? String(r.status) : r.closed ? "closed" : "no answer";
        const want = expectationFor(c, targetName);
        const expected = want.status.join("/") + (want.orClosed ? " or closed" : "");
        const ok =
          (r.status !== undefined && want.status.includes(r.status)) ||
          (want.orClosed === true && r.status === undefined && r.closed);
        record({
          suite: "malformed",
          target: targetName,
          scenario: c.name,
          requests: 1,
          outcome,
          expected,
          ok,
        });
        assert.equal(good.status, 200, "a good request on another connection succeeds meanwhile");
        assert.ok(
          ok,
          `${c.name}: got ${outcome} (${JSON.stringify(r.data.slice(0, 160))}), expected ${expected}`,
        );
        const seen = backend.received
          .slice(seenBefore)
          .filter((x) => x.url !== "/good" && x.method !== "HEAD");
        if (c.mustReachWithout !== undefined && r.status === 200) {
          assert.deepEqual(
            seen.map((x) => `${x.method} ${x.url}`),
            [`GET ${c.path}`],
          );
          for (const h of c.mustReachWithout) assert.equal(seen[0].headers[h], undefined, `${h} forwarded`);
        } else if (c.path !== "" && c.mayReach) {
          // the backend may have started reading it, but never as a complete request, and never
          // as anything else
          for (const x of seen) {
            assert.equal(
              x.url,
              c.path,
              `the backend saw a request the client did not send: ${x.method} ${x.url}`,
            );
            assert.equal(x.complete, false, "a rejected body must not reach the backend as complete");
          }
        } else {
          assert.deepEqual(
            seen.map((x) => `${x.method} ${x.url}`),
            [],
            "a rejected request must not reach the backend",
          );
        }
      });
    }

    test("the backend never saw a smuggled request, and the server still serves", {
      timeout: 10_000,
    }, async () => {
      const { backend, port } = targets[targetName];
      assert.deepEqual(
        backend.received.filter((x) => x.url.includes("smuggled")).map((x) => x.url),
        [],
      );
      const r = await rawRequest(port, [`GET /after HTTP/1.1\r\n${H}Connection: close\r\n\r\n`], 3000);
      assert.equal(r.status, 200);
    });
  });
}
