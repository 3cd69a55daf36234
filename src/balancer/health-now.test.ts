import * as assert from "node:assert/strict";
import { test } from "node:test";
import type { HealthStatus } from "../health/status.ts";
import { LoadBalancer } from "../load-balancer.ts";
import { Server } from "./server.ts";

test("lb.status(), detail() and toJSON() read a custom health object's status() when called, not at the last pick", () => {
  let status: HealthStatus = "healthy";
  const lb = new LoadBalancer({ link: "svc" });
  lb.addServer(new Server({ name: "a", url: "http://127.0.0.1:1", health: { status: () => status } }));
  assert.equal(lb.status(), "healthy");
  // no pick in between: nothing refreshed the cached availability
  status = "unhealthy";
  assert.equal(lb.status(), "unhealthy");
  assert.equal(lb.detail(), "0/1 servers are healthy");
  const json = lb.toJSON();
  assert.equal(json.status, "unhealthy");
  assert.equal(json.extra.pool["127.0.0.1:1"].status, "unhealthy");
  assert.equal(json.extra.pool["127.0.0.1:1"].available, false);
  status = "napping";
  assert.equal(lb.status(), "healthy", "napping is good");
  assert.equal(lb.detail(), "1/1 servers are healthy");
});
