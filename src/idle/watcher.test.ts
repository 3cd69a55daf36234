import * as assert from "node:assert/strict";
import * as http from "node:http";
import { test } from "node:test";
import { freePort } from "../../test/support/ports.ts";
import { EventLog } from "../admin/events.ts";
import { parseConfig } from "../config/load.ts";
import { silentLogger } from "../log.ts";
import { httpHealth, Service } from "../server/services.ts";
import type { IdleProvider, ProviderState, StopOptions } from "./provider.ts";
import { RunProvider } from "./run.ts";
import { IdleWatcher } from "./watcher.ts";

/** A provider whose target is a real HTTP server in this process, started and closed on demand. */
class InProcess implements IdleProvider {
  readonly kind = "exec" as const;
  starts = 0;
  stops: StopOptions[] = [];
  failWith: string | undefined;
  server: http.Server | undefined;
  readonly port: number;
  constructor(port: number) {
    this.port = port;
  }
  async state(): Promise<ProviderState> {
    return this.server ? "running" : "stopped";
  }
  async start(): Promise<void> {
    this.starts++;
    if (this.failWith) throw new Error(this.failWith);
    const s = http.createServer((_q, r) => r.end("ok"));
    await new Promise<void>((r) => s.listen(this.port, "127.0.0.1", () => r()));
    this.server = s;
  }
  async stop(o: StopOptions): Promise<void> {
    this.stops.push(o);
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
  async close(): Promise<void> {
    await this.stop({ method: "stop", signal: undefined, timeout: 1000 });
  }
}

/** Resolves once the watcher reports `status` (at once if it already does). */
function statusIs(w: IdleWatcher, status: string): Promise<void> {
  return new Promise<void>((resolve) => {
    if (w.status() === status) return resolve();
    const off = w.subscribe((s) => {
      if (s === status) {
        off();
        resolve();
      }
    });
  });
}

test("a failed wake: error status with the reason, back-off, then retried; events and metrics", async (t) => {
  const port = await freePort();
  const provider = new InProcess(port);
  provider.failWith = "disk full";
  const log = new EventLog();
  const counts: string[] = [];
  const w = new IdleWatcher({
    service: "svc",
    server: "s1",
    url: `http://127.0.0.1:${port}`,
    provider,
    idleTimeout: 60_000,
    // long enough that the checks below run inside it even on a busy machine
    errorBackoff: 1000,
    events: log.emit,
    metrics: { wake: (_s, _v, result) => counts.push(result), idleStop: () => counts.push("stop") },
  });
  const ac = new AbortController();
  t.after(() => {
    ac.abort();
    return w.close();
  });
  w.start(ac.signal);
  await assert.rejects(w.wake(), (e: Error & { code?: string }) => /disk full/.test(e.message));
  assert.equal(w.status(), "error");
  assert.match(w.detail(), /wake failed: .*disk full/);
  await assert.rejects(w.wake(), { code: "ERR_SWITCHYARD_WAKE_BACKOFF" });
  assert.equal(provider.starts, 1, "no retry within the back-off");
  await statusIs(w, "napping");
  provider.failWith = undefined;
  await w.wake();
  assert.equal(provider.starts, 2);
  assert.equal(w.status(), "healthy");
  assert.deepEqual(counts, ["error", "ok"]);
  const actions = log.recent().map((e) => `${e.action}:${e.level}`);
  assert.deepEqual(actions, ["wake:error", "wake:info"]);
});

test("a stopped state reported while a wake has not started the target yet is not news", async (t) => {
  // the docker provider's first read on connecting can answer after a wake began: it says
  // "stopped (created)", the state being woken from, and must not fail the wake as "stopped while
  // starting" (seen as a 502 on the first request under load)
  const port = await freePort();
  let report: ((state: ProviderState, detail: string) => void) | undefined;
  /** Set before the wake: its state() call waits for `release`, and says so through `held`. */
  let hold: { held: () => void; release: Promise<void> } | undefined;
  class Watched extends InProcess {
    override async state(): Promise<ProviderState> {
      const h = hold;
      hold = undefined;
      if (h) {
        h.held();
        await h.release;
      }
      return super.state();
    }
    watch(onChange: (state: ProviderState, detail: string) => void): void {
      report = onChange;
    }
  }
  const provider = new Watched(port);
  const w = new IdleWatcher({
    service: "svc",
    server: "s1",
    url: `http://127.0.0.1:${port}`,
    provider,
    idleTimeout: 60_000,
    wakeTimeout: 20_000,
  });
  const ac = new AbortController();
  t.after(() => {
    ac.abort();
    return w.close();
  });
  w.start(ac.signal);
  await statusIs(w, "napping");
  let release!: () => void;
  const held = new Promise<void>((resolve) => {
    hold = { held: resolve, release: new Promise<void>((r) => (release = r)) };
  });
  const woken = w.wake();
  await held; // the wake is reading the state, the start not asked for yet
  assert.equal(w.status(), "starting");
  report!("stopped", 'container "s1" is stopped (created)'); // the read that began before the wake
  release();
  await woken;
  assert.equal(w.status(), "healthy");
  assert.equal(provider.starts, 1);
  // once the start was asked for, a stopped report is news: the target stopped by itself
  report!("stopped", 'container "s1" exited with code 1');
  assert.equal(w.status(), "napping");
  assert.equal(w.detail(), 'container "s1" exited with code 1');
});

test("a target that stops while a readiness probe runs: the wake fails with the provider's words", async (t) => {
  // seen as "stopped while starting: not ready yet: ECONNREFUSED" instead of "process exited with
  // code 3": the probe that ended after the exit overwrote the reason
  const held: http.ServerResponse[] = [];
  let probed!: () => void;
  const probing = new Promise<void>((r) => (probed = r));
  const app = http.createServer((req, res) => {
    if (req.url === "/ready") {
      held.push(res);
      probed();
    } else res.end("ok");
  });
  await new Promise<void>((r) => app.listen(0, "127.0.0.1", () => r()));
  t.after(() => {
    app.closeAllConnections();
    app.close();
  });
  let report: ((state: ProviderState, detail: string) => void) | undefined;
  let running = false;
  const provider: IdleProvider = {
    kind: "exec",
    state: async () => (running ? "running" : "stopped"),
    start: async () => {
      running = true;
    },
    stop: async () => {
      running = false;
    },
    close: async () => {},
    watch: (onChange) => {
      report = onChange;
    },
  };
  const { port } = app.address() as { port: number };
  const w = new IdleWatcher({
    service: "svc",
    server: "s1",
    url: `http://127.0.0.1:${port}`,
    provider,
    idleTimeout: 60_000,
    wakeTimeout: 20_000,
    readiness: { path: "/ready" },
  });
  const ac = new AbortController();
  t.after(() => {
    ac.abort();
    return w.close();
  });
  w.start(ac.signal);
  const woken = w.wake();
  await probing; // the first readiness probe is in the target, unanswered
  running = false;
  report!("stopped", "process exited with code 3");
  held[0].writeHead(503).end(); // the probe ends after the exit: "not ready yet: HTTP 503"
  await assert.rejects(woken, {
    code: "ERR_SWITCHYARD_WAKE_FAILED",
    message: "server s1 stopped while starting: process exited with code 3",
  });
  assert.match(w.detail(), /process exited with code 3/);
});

test("idle stop after idle_timeout with the configured method and signal; an idle_stop event", async (t) => {
  const port = await freePort();
  const provider = new InProcess(port);
  const log = new EventLog();
  const w = new IdleWatcher({
    service: "svc",
    server: "s1",
    url: `http://127.0.0.1:${port}`,
    provider,
    idleTimeout: 100,
    stopMethod: "stop",
    stopSignal: "int",
    stopTimeout: 2000,
    events: log.emit,
  });
  const ac = new AbortController();
  t.after(() => {
    ac.abort();
    return w.close();
  });
  w.start(ac.signal);
  await w.wake();
  await statusIs(w, "napping");
  assert.deepEqual(provider.stops, [{ method: "stop", signal: "SIGINT", timeout: 2000 }]);
  assert.deepEqual(
    log.recent().map((e) => e.action),
    ["wake", "idle_stop"],
  );
});

test("Service.idleAction wakes and stops a server; a server without a provider is a coded error", async (t) => {
  const port = await freePort();
  const config = parseConfig(
    `services:
  app:
    healthcheck: { disable: true }
    idle: { idle_timeout: 1h }
    servers:
      - { name: a, url: "http://127.0.0.1:${port}", exec: { start: "true", stop: "true" } }
      - { name: b, url: "http://127.0.0.1:9" }
`,
    "s.yaml",
    {},
    {},
  );
  const svc = new Service(config.services.app, config.timeouts, silentLogger, httpHealth);
  t.after(() => {
    svc.controller.abort();
    return svc.closeIdle();
  });
  await assert.rejects(svc.idleAction("b", "wake"), { code: "ERR_SWITCHYARD_NO_PROVIDER" });
  await assert.rejects(svc.idleAction("zz", "stop"), { code: "ERR_SWITCHYARD_NO_PROVIDER" });
  // `true` starts nothing itself: the backend is this test's listener
  const server = svc.lb.servers[0];
  assert.equal(server.status(), "napping");
  const listener = http.createServer((_q, r) => r.end("up"));
  await new Promise<void>((r) => listener.listen(port, "127.0.0.1", () => r()));
  t.after(() => new Promise<void>((r) => listener.close(() => r())));
  await svc.idleAction("a", "wake");
  assert.equal(server.status(), "healthy");
  await svc.idleAction("a", "stop");
  assert.equal(server.status(), "napping");
});

test("RunProvider: a missing working directory or command is a clear start error", async () => {
  const ac = new AbortController();
  await assert.rejects(
    new RunProvider({ command: ["node"], cwd: "/nonexistent/switchyard-dir" }).start(ac.signal),
    /working directory not found: \/nonexistent\/switchyard-dir/,
  );
  await assert.rejects(
    new RunProvider({ command: ["/nonexistent/switchyard-cmd"] }).start(ac.signal),
    /command not found: \/nonexistent\/switchyard-cmd/,
  );
  assert.throws(() => new RunProvider({ command: "  " }), /command is empty/);
  assert.throws(() => new RunProvider({ command: [] }), /non-empty argv/);
});
