/**
 * The docker provider's fault cases against a small fake engine on a unix socket: an engine
 * answering 500, a container that does not exist, a socket path that does not exist, a socket
 * that vanishes mid-answer and mid-stream. The normal operations run against a real engine in
 * test/idle/docker.podman.test.ts.
 */
import * as assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import * as http from "node:http";
import type * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, test } from "node:test";
import { pino } from "pino";
import { until } from "../../test/support/until.ts";
import { DockerProvider, dockerSocketPath, PAUSE_TRIES, providerState, signalName } from "./docker.ts";
import type { ProviderState } from "./provider.ts";

const dir = mkdtempSync(join(tmpdir(), "sy-docker-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

/** A fake engine: `handle` answers every request; `sockets` are its open connections. */
async function fakeEngine(handle: http.RequestListener, path = join(dir, `engine-${++n}.sock`)) {
  const sockets = new Set<net.Socket>();
  const server = http.createServer(handle);
  server.on("connection", (s) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  server.listen(path);
  await once(server, "listening");
  const engine = {
    path,
    server,
    sockets,
    /** Closes the listener (its socket file goes) and cuts every connection. */
    async vanish() {
      live.delete(engine);
      const closed = new Promise((r) => server.close(r));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
  live.add(engine);
  return engine;
}

/** A provider closed after the test whatever happens (a failed assertion must not leave a watch retrying). */
function provider(options: ConstructorParameters<typeof DockerProvider>[0]): DockerProvider {
  const p = new DockerProvider(options);
  live.add(p);
  return p;
}

/** Engines and providers still open; closed after each test, also one that failed half-way. */
const live = new Set<{ vanish(): Promise<void> } | DockerProvider>();
afterEach(async () => {
  for (const x of live) {
    if (x instanceof DockerProvider) await x.close();
    else await x.vanish();
  }
  live.clear();
});

/** A pino logger whose records land in `records`. */
function capture() {
  const records: Record<string, unknown>[] = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => records.push(JSON.parse(line)) });
  return { logger, records };
}

/** Sockets, pipes and timers open now (test-runner resources included; compare before/after). */
function handles(): string[] {
  return process
    .getActiveResourcesInfo()
    .filter((r) => r !== "FSReqCallback")
    .sort();
}

/** Nothing leaked: the open handles return to what they were before the test (closing takes a tick or two). */
async function noLeaks(before: string[]): Promise<void> {
  await until(() => handles().join() === before.join(), 2000, `handles back to ${before.join()}`).catch(
    () => {
      assert.deepEqual(handles(), before);
    },
  );
}

const json = (res: http.ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
};

test("helpers: DOCKER_HOST, signal names, state mapping", () => {
  assert.equal(dockerSocketPath({}), "/var/run/docker.sock");
  assert.equal(dockerSocketPath({ DOCKER_HOST: "unix:///tmp/e.sock" }), "/tmp/e.sock");
  assert.throws(() => dockerSocketPath({ DOCKER_HOST: "tcp://10.0.0.1:2375" }), /only a unix socket/);
  assert.equal(signalName("term"), "SIGTERM");
  assert.equal(signalName("SIGINT"), "SIGINT");
  assert.equal(signalName("9"), "9");
  assert.equal(providerState({ Status: "running", Running: true }), "running");
  assert.equal(providerState({ Status: "paused", Running: true, Paused: true }), "paused");
  assert.equal(providerState({ Status: "restarting" }), "running");
  for (const s of ["created", "exited", "dead", "removing", "stopped"])
    assert.equal(providerState({ Status: s }), "stopped");
});

test("an engine answering 500: every operation fails with the engine's own message", async () => {
  const before = handles();
  const engine = await fakeEngine((req, res) => {
    if (req.url?.endsWith("/json")) return json(res, 200, { State: { Status: "exited" } });
    json(res, 500, { message: "runc: container_linux.go:380: starting container process caused: boom" });
  });
  const p = provider({ container: "app3", socketPath: engine.path });
  await assert.rejects(p.start(AbortSignal.timeout(5000)), {
    message:
      'docker: container "app3": start: HTTP 500: runc: container_linux.go:380: starting container process caused: boom',
  });
  // state read fine; an engine 500 on the inspect itself too:
  await engine.vanish();
  const engine2 = await fakeEngine((_req, res) => {
    res.writeHead(500, { "content-type": "text/plain" });
    res.end("internal trouble\n");
  }, engine.path);
  await assert.rejects(p.state(), {
    message: 'docker: container "app3": inspect: HTTP 500: internal trouble',
  });
  await assert.rejects(p.stop({ method: "stop", signal: undefined, timeout: 1000 }), /inspect: HTTP 500/);
  await p.close();
  await engine2.vanish();
  await noLeaks(before);
});

test("a container that does not exist: 'no such container' with the engine's message", async () => {
  const before = handles();
  const engine = await fakeEngine((_req, res) => json(res, 404, { message: "No such container: ghost" }));
  const p = provider({ container: "ghost", socketPath: engine.path });
  await assert.rejects(p.state(), {
    message: 'docker: container "ghost": no such container (inspect: No such container: ghost)',
  });
  await assert.rejects(
    p.start(AbortSignal.timeout(5000)),
    /^Error: docker: container "ghost": no such container/,
  );
  await assert.rejects(p.stop({ method: "pause", signal: undefined, timeout: 1000 }), /no such container/);
  await p.close();
  await engine.vanish();
  await noLeaks(before);
});

test("a socket path that does not exist: 'cannot reach the engine', for calls and for watch", async () => {
  const before = handles();
  const path = join(dir, "nobody-here.sock");
  const { logger, records } = capture();
  const p = provider({ container: "app3", socketPath: path, logger });
  await assert.rejects(p.state(), { message: `docker: cannot reach the engine at ${path}: ENOENT` });
  await assert.rejects(p.start(AbortSignal.timeout(5000)), {
    message: `docker: cannot reach the engine at ${path}: ENOENT`,
  });
  const err = await p.state().catch((e: Error) => e);
  assert.equal((err as Error & { cause: { code: string } }).cause.code, "ENOENT");

  const seen: ProviderState[] = [];
  const ac = new AbortController();
  p.watch((s) => seen.push(s), ac.signal);
  await until(() => records.some((r) => r.msg === "docker: cannot follow the engine's events; retrying"));
  const rec = records.find((r) => r.msg === "docker: cannot follow the engine's events; retrying")!;
  assert.equal(rec.container, "app3");
  assert.equal(rec.retryMs, 500);
  assert.match((rec.err as { message: string }).message, /cannot reach the engine at .*: ENOENT/);
  assert.deepEqual(seen, []);
  ac.abort(); // stops the back-off timer too
  await p.close();
  await noLeaks(before);
});

test("DOCKER_HOST picks the socket when none is given", async () => {
  const engine = await fakeEngine((_req, res) =>
    json(res, 200, { State: { Status: "paused", Paused: true } }),
  );
  const saved = process.env.DOCKER_HOST;
  process.env.DOCKER_HOST = `unix://${engine.path}`;
  try {
    const p = provider({ container: "app3" });
    assert.equal(p.socketPath, engine.path);
    assert.equal(await p.state(), "paused");
    await p.close();
  } finally {
    if (saved === undefined) delete process.env.DOCKER_HOST;
    else process.env.DOCKER_HOST = saved;
    await engine.vanish();
  }
});

test("a socket that vanishes before answering: a clear error, nothing left open", async () => {
  const before = handles();
  const engine = await fakeEngine((req) => req.socket.destroy());
  const p = provider({ container: "app3", socketPath: engine.path });
  await assert.rejects(p.state(), (err: Error) => {
    assert.match(
      err.message,
      /^docker: container "app3": inspect: the engine at .* closed the connection \(ECONNRESET\)$/,
    );
    return true;
  });
  await p.close();
  await engine.vanish();
  await noLeaks(before);
});

test("an event stream whose socket vanishes: logged, retried with back-off, resumed when the engine is back", async () => {
  const before = handles();
  let state: { Status: string; ExitCode?: number } = { Status: "running" };
  let holdInspect = false;
  const held: http.ServerResponse[] = [];
  const events: http.ServerResponse[] = [];
  const handler: http.RequestListener = (req, res) => {
    if (req.url?.startsWith("/events?")) {
      const filters = JSON.parse(new URL(req.url, "http://x").searchParams.get("filters")!);
      assert.deepEqual(filters, { type: ["container"], container: ["app3"] });
      res.writeHead(200, { "content-type": "application/json" });
      res.flushHeaders();
      events.push(res);
      return;
    }
    if (req.url === "/containers/app3/json") {
      if (holdInspect) held.push(res);
      else json(res, 200, { State: state });
      return;
    }
    json(res, 404, { message: "page not found" });
  };
  const event = (Action: string, attrs: Record<string, string> = {}) =>
    JSON.stringify({
      Type: "container",
      Action,
      Actor: { ID: "abc123", Attributes: { name: "app3", ...attrs } },
    });
  let engine = await fakeEngine(handler);
  const { logger, records } = capture();
  const count = (msg: string) => records.filter((r) => r.msg === msg).length;
  const p = provider({ container: "app3", socketPath: engine.path, logger });
  const seen: [ProviderState, string][] = [];
  const ac = new AbortController();
  p.watch((s, d) => seen.push([s, d]), ac.signal);

  // the state read on connect, then events as JSON lines (one split across two writes); the state
  // reported is read from the engine after the event, the words come from the event
  await until(() => seen.length === 1, 5000, "the first report");
  assert.deepEqual(seen[0], ["running", 'container "app3" is running']);
  state = { Status: "exited", ExitCode: 137 };
  const die = event("die", { exitCode: "137" });
  events[0].write(`${die.slice(0, 20)}`);
  events[0].write(`${die.slice(20)}\n${event("stop")}\n`);
  await until(() => seen.length === 2, 5000, "the die event");
  assert.deepEqual(seen[1], ["stopped", 'container "app3" exited with code 137']); // the stop after it changes nothing

  // the engine goes away mid-stream: a warning, then retries that cannot connect
  await engine.vanish();
  await until(() => count("docker: the event stream broke; reconnecting") > 0, 5000, "the warning");
  await until(() => count("docker: cannot follow the engine's events; retrying") > 0, 5000, "a retry");
  const retries = records.filter((r) => typeof r.retryMs === "number").map((r) => r.retryMs as number);
  assert.ok(retries[1] > retries[0], `back-off grows: ${retries}`);

  // it comes back (someone started the container meanwhile): the reconnect reads the state again
  state = { Status: "running" };
  engine = await fakeEngine(handler, engine.path);
  await until(() => seen.length === 3, 10_000, "the state after reconnecting");
  assert.deepEqual(seen[2], ["running", 'container "app3" is running']);
  assert.equal(events.length, 2);

  // a late event (podman delivers them from a file): a "die" that arrives while the state read
  // is out, whose answer predates it, and a second read that says running again. Nothing to
  // report: the stale "exited" of the first read is read again, not reported (a transient
  // "stopped" could undo a wake under way)
  holdInspect = true;
  const events1 = count("docker: event");
  events[1].write(`${event("pause")}\n`);
  await until(() => held.length === 1, 5000, "the read after the pause event");
  events[1].write(`${event("die", { exitCode: "0" })}\n`);
  await until(() => count("docker: event") === events1 + 2, 5000, "the die event in");
  json(held[0], 200, { State: { Status: "exited", ExitCode: 0 } }); // read before the container came back
  await until(() => held.length === 2, 5000, "a second read");
  const reads = count("docker: state read");
  json(held[1], 200, { State: { Status: "running" } });
  await until(() => count("docker: state read") > reads, 5000, "the second read done");
  assert.equal(seen.length, 3, `nothing new to report: ${JSON.stringify(seen.slice(3))}`);

  ac.abort();
  await p.close();
  await engine.vanish();
  await noLeaks(before);
});

test('podman\'s "stopped" (exited, not yet cleaned up) is reported with the exit code', async () => {
  // podman's compat API answers Status "stopped" for a moment after the process exited and
  // before its cleanup makes it "exited": a read that lands then still names the exit code
  const engine = await fakeEngine((req, res) => {
    if (req.url?.startsWith("/events?")) {
      res.writeHead(200, { "content-type": "application/json" });
      res.flushHeaders();
      return;
    }
    json(res, 200, { State: { Status: "stopped", Running: false, ExitCode: 137 } });
  });
  const p = provider({ container: "app3", socketPath: engine.path });
  assert.equal(await p.state(), "stopped");
  const seen: [ProviderState, string][] = [];
  const ac = new AbortController();
  p.watch((s, d) => seen.push([s, d]), ac.signal);
  await until(() => seen.length === 1, 5000, "the report on connect");
  assert.deepEqual(seen[0], ["stopped", 'container "app3" exited with code 137']);
  ac.abort();
});

test("a pause the engine fails while the container still runs is tried again, logged; bounded", async () => {
  const before = handles();
  // podman's answer when runc's cgroup v1 freezer gives up on a busy host
  const RUNC = "`/usr/bin/runc pause 0123abcd` failed: exit status 1";
  let failures = 2;
  let status = "running";
  const pauses: number[] = [];
  const engine = await fakeEngine((req, res) => {
    if (req.url === "/containers/app3/json") return json(res, 200, { State: { Status: status } });
    if (req.url === "/containers/app3/pause") {
      pauses.push(Date.now());
      if (failures-- > 0) return json(res, 500, { message: RUNC });
      status = "paused";
      res.writeHead(204).end();
      return;
    }
    json(res, 404, { message: "page not found" });
  });
  const { logger, records } = capture();
  const p = provider({ container: "app3", socketPath: engine.path, logger });
  await p.stop({ method: "pause", signal: undefined, timeout: 5000 });
  assert.equal(await p.state(), "paused");
  assert.equal(pauses.length, 3);
  const warned = records.filter(
    (r) => r.msg === "docker: the engine could not pause the container; trying again",
  );
  assert.deepEqual(
    warned.map((r) => [r.container, r.attempt, r.retryMs]),
    [
      ["app3", 1, 250],
      ["app3", 2, 500],
    ],
  );
  assert.equal(
    (warned[0].err as { message: string }).message,
    `docker: container "app3": pause: HTTP 500: ${RUNC}`,
  );

  // it keeps failing: PAUSE_TRIES tries in all, then the engine's own message
  status = "running";
  failures = Number.POSITIVE_INFINITY;
  pauses.length = 0;
  await assert.rejects(p.stop({ method: "pause", signal: undefined, timeout: 5000 }), {
    message: `docker: container "app3": pause: HTTP 500: ${RUNC}`,
  });
  assert.equal(pauses.length, PAUSE_TRIES);

  // a failed pause that left the container paused after all (or exited) is not tried again
  status = "running";
  pauses.length = 0;
  const engine2 = await fakeEngine((req, res) => {
    if (req.url === "/containers/app3/json") return json(res, 200, { State: { Status: status } });
    pauses.push(Date.now());
    status = "paused";
    json(res, 500, { message: "pause answered late" });
  });
  const p2 = provider({ container: "app3", socketPath: engine2.path });
  await p2.stop({ method: "pause", signal: undefined, timeout: 5000 });
  assert.equal(pauses.length, 1);
  await p.close();
  await p2.close();
  await engine.vanish();
  await engine2.vanish();
  await noLeaks(before);
});

test("close() ends a call in flight and an open event stream, and later calls fail", async () => {
  const before = handles();
  const engine = await fakeEngine((req, res) => {
    if (req.url?.startsWith("/events?")) {
      res.writeHead(200);
      res.flushHeaders();
    }
    // never answers anything else
  });
  const p = provider({ container: "app3", socketPath: engine.path });
  const ac = new AbortController();
  p.watch(() => {}, ac.signal);
  const start = p.start(AbortSignal.timeout(60_000)).then(
    () => assert.fail("start resolved"),
    (err: Error) => err,
  );
  await until(
    () => engine.sockets.size === 2,
    5000,
    "the stream + start's inspect (the stream's own read waits for the start)",
  );
  await p.close();
  assert.equal((await start).message, 'docker: container "app3": provider closed');
  await assert.rejects(p.state(), /provider closed/);
  await until(() => engine.sockets.size === 0, 5000, "the engine sees every connection closed");
  await engine.vanish();
  await noLeaks(before);
});

test("a wake bounded by its signal: start aborts with a message naming the container", async () => {
  const before = handles();
  let startSent = false;
  const engine = await fakeEngine((req, res) => {
    if (req.url?.endsWith("/json")) return json(res, 200, { State: { Status: "exited" } });
    startSent = req.url === "/containers/app3/start"; // and it hangs
  });
  const p = provider({ container: "app3", socketPath: engine.path });
  const ac = new AbortController();
  const start = p.start(ac.signal);
  await until(() => startSent, 5000, "start sent");
  ac.abort(new Error("wake_timeout"));
  await assert.rejects(start, (err: Error) => {
    assert.equal(err.message, 'docker: container "app3": start aborted');
    assert.equal((err.cause as Error).message, "wake_timeout");
    return true;
  });
  await p.close();
  await until(() => engine.sockets.size === 0, 5000, "the engine sees the connection closed");
  await engine.vanish();
  await noLeaks(before);
});
