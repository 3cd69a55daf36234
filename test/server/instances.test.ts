/**
 * Two servers in one process keep their own per-listener state: requests in flight (drain) are
 * counted per runtime, so one draining does not wait on, or count, the other's requests; and two
 * LoadBalancers forward and close their upstream pools apart.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import { test } from "node:test";
import pino from "pino";
import { parseConfig } from "../../src/config/load.ts";
import { LoadBalancer, Server } from "../../src/index.ts";
import { Runtime } from "../../src/server/runtime.ts";
import { Cleanup, listen } from "../support/cleanup.ts";
import { send } from "../support/http.ts";
import { startBackend, yamlConfig } from "../support/switchyard.ts";
import { until } from "../support/until.ts";

async function runtime(backend: string, cleanup: Cleanup): Promise<{ rt: Runtime; port: number }> {
  const rt = new Runtime({ logger: pino({ level: "silent" }), proxy: true, admin: false, ownsHealth: true });
  const yaml = yamlConfig(
    { web: { hosts: ["*"], servers: [{ name: "b", url: backend }] } },
    "timeouts: { shutdown: 60s }\n",
  );
  // admin: false: the config's admin address is not bound
  await rt.start(parseConfig(yaml, "instances.yaml"));
  cleanup.add(() => rt.shutdown());
  const address = rt.listeners!.addresses()[0].address;
  return { rt, port: Number(address.slice(address.lastIndexOf(":") + 1)) };
}

test("two runtimes in one process: in-flight requests and drain are each runtime's own", async (t) => {
  const cleanup = new Cleanup();
  t.after(() => cleanup.run());
  const backend = await startBackend("b");
  cleanup.add(() => backend.stop());
  const a = await runtime(backend.url, cleanup);
  const b = await runtime(backend.url, cleanup);

  // a request held by the backend, through runtime a only
  const held = send(a.port, { path: "/hold", agent: false });
  await until(() => a.rt.front!.inflight === 1, 5000, "a's request in flight");
  assert.equal(b.rt.front!.inflight, 0, "b counts none of a's requests");
  assert.equal((await send(b.port, { agent: false })).body, "b\n");
  assert.equal(b.rt.front!.inflight, 0);

  // b drains and stops (its grace is 60 s) while a's request is still held: nothing of b's is in flight
  await b.rt.shutdown();
  assert.equal(a.rt.front!.inflight, 1, "a's request is still in flight after b stopped");
  backend.release();
  assert.equal((await held).status, 200);
  await until(() => a.rt.front!.inflight === 0, 5000, "a's request done");
});

test("two LoadBalancers in one process: stopping one leaves the other forwarding", async (t) => {
  const cleanup = new Cleanup();
  t.after(() => cleanup.run());
  const backend = await startBackend("b");
  cleanup.add(() => backend.stop());
  const fronts: number[] = [];
  const controllers: AbortController[] = [];
  for (const link of ["one", "two"]) {
    const lb = new LoadBalancer({ link, sticky: false });
    const c = new AbortController();
    lb.start(c.signal);
    controllers.push(c);
    cleanup.add(() => c.abort());
    lb.addServer(new Server({ name: "b", url: backend.url }));
    fronts.push(await listen(http.createServer(lb.handle), cleanup));
  }
  assert.equal((await send(fronts[0], { agent: false })).body, "b\n");
  assert.equal((await send(fronts[1], { agent: false })).body, "b\n");
  // the first stops: its timers and upstream pool close; the second's pool is its own
  controllers[0].abort();
  for (let i = 0; i < 3; i++) assert.equal((await send(fronts[1], { agent: false })).body, "b\n");
  assert.equal(backend.counts.GET, 5);
});
