/**
 * The docker idle provider against a real engine: podman's Docker-compatible API service with a
 * real busybox httpd container (test/support/podman.ts). No fakes: every state comes from the
 * engine, every answer from the container. Fails (never skips) when podman is missing.
 */
import * as assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import { DockerProvider } from "../../src/idle/docker.ts";
import type { ProviderState } from "../../src/idle/provider.ts";
import { get } from "../support/http.ts";
import { type Container, type Engine, podman, startEngine } from "../support/podman.ts";
import { until } from "../support/until.ts";

/** Whether the container's httpd answers /healthz. */
const answers = async (url: string) => (await get(url, "/healthz").catch(() => undefined))?.body === "ok\n";

describe("docker provider on a real engine (podman)", () => {
  let engine: Engine;
  let app: Container;
  let provider: DockerProvider;
  const records: Record<string, unknown>[] = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => records.push(JSON.parse(line)) });
  const t0 = performance.now();
  /** start(), then wait until httpd answers: the container's shell has set its signal traps by then. */
  const startServing = async () => {
    await provider.start(AbortSignal.timeout(20_000));
    await until(() => answers(app.url), 10_000, "httpd in the container");
  };

  before(async () => {
    engine = await startEngine();
    app = await engine.createHttpd("sy-docker");
    provider = new DockerProvider({ container: app.name, socketPath: engine.socketPath, logger });
    console.log(
      `engine ready in ${engine.readyMs.toFixed(0)} ms, set up in ${(performance.now() - t0).toFixed(0)} ms`,
    );
  });
  after(async () => {
    await provider?.close();
    await engine?.close();
    console.log(`podman suite took ${(performance.now() - t0).toFixed(0)} ms`);
  });

  test("a created container is napping: stopped, nothing listens on its port", async () => {
    assert.equal(await provider.state(), "stopped");
    await assert.rejects(get(app.url, "/healthz"), { code: "ECONNREFUSED" });
  });

  test("start → running and answering HTTP; a second start changes nothing", async () => {
    await provider.start(AbortSignal.timeout(20_000));
    assert.equal(await provider.state(), "running");
    await until(() => answers(app.url), 10_000, "httpd in the container");
    const page = await get(app.url, "/");
    assert.deepEqual([page.status, page.body], [200, "<h1>hello from the container</h1>\n"]);
    await provider.start(AbortSignal.timeout(20_000)); // 304 from the engine
    assert.equal(await provider.state(), "running");
  });

  test("pause freezes it (a request waits), start unpauses it (the request is answered)", async () => {
    await provider.stop({ method: "pause", signal: undefined, timeout: 5000 });
    assert.equal(await provider.state(), "paused");
    let settled = false;
    const held = get(app.url, "/healthz").finally(() => {
      settled = true;
    });
    await new Promise((r) => setTimeout(r, 300)); // a frozen httpd cannot answer, however long we wait
    assert.equal(settled, false, "a paused container answered");
    await provider.stop({ method: "pause", signal: undefined, timeout: 5000 }); // already paused: nothing to do
    await provider.start(AbortSignal.timeout(20_000));
    assert.equal(await provider.state(), "running");
    const answer = await held;
    assert.deepEqual([answer.status, answer.body], [200, "ok\n"]);
  });

  test("stop with stop_signal SIGINT: delivered (kill + wait on this 1.41 engine), exit code 3", async () => {
    await provider.stop({ method: "stop", signal: "INT", timeout: 10_000 });
    assert.equal(await provider.state(), "stopped");
    assert.equal(await app.exitCode(), 3);
    await assert.rejects(get(app.url, "/healthz"), { code: "ECONNREFUSED" });
    await provider.stop({ method: "stop", signal: "INT", timeout: 10_000 }); // already stopped: fine
  });

  test("stop without a signal: the engine's own stop (SIGTERM), exit code 4", async () => {
    await startServing();
    await provider.stop({ method: "stop", signal: undefined, timeout: 10_000 });
    assert.equal(await provider.state(), "stopped");
    assert.equal(await app.exitCode(), 4);
  });

  test("kill: SIGKILL by default (137), a given signal (SIGTERM → 4)", async () => {
    await startServing();
    await provider.stop({ method: "kill", signal: undefined, timeout: 10_000 });
    assert.equal(await provider.state(), "stopped");
    assert.equal(await app.exitCode(), 137);
    await startServing();
    await provider.stop({ method: "kill", signal: "SIGTERM", timeout: 10_000 });
    assert.equal(await app.exitCode(), 4);
  });

  test("a stop signal the container ignores: SIGKILL after stop_timeout, logged", async () => {
    await startServing();
    await provider.stop({ method: "stop", signal: "SIGUSR1", timeout: 500 }); // PID 1 ignores SIGUSR1
    assert.equal(await provider.state(), "stopped");
    assert.equal(await app.exitCode(), 137);
    const warn = records.find((r) => r.signal === "SIGUSR1");
    assert.equal(
      warn?.msg,
      "docker: container still running after its stop signal and stop_timeout; sending SIGKILL",
    );
    assert.equal(warn?.container, app.name);
  });

  test("a stop of a paused container unpauses it first", async () => {
    await startServing();
    await provider.stop({ method: "pause", signal: undefined, timeout: 5000 });
    await provider.stop({ method: "stop", signal: "SIGINT", timeout: 10_000 });
    assert.equal(await provider.state(), "stopped");
    assert.equal(await app.exitCode(), 3);
  });

  test("watch(): starts, stops and pauses made outside (podman CLI) are reported, our own are not", async () => {
    const seen: [ProviderState, string][] = [];
    const ac = new AbortController();
    provider.watch((state, detail) => seen.push([state, detail]), ac.signal);
    let cursor = 0; // the reports come in order, each a change from the one before
    const next = async () => {
      await until(() => seen.length > cursor, 10_000, `report ${cursor + 1}`);
      return seen[cursor++];
    };
    try {
      // the state when the stream connects (the last test stopped it with SIGINT: exit code 3)
      assert.deepEqual(await next(), ["stopped", `container "${app.name}" exited with code 3`]);
      await podman(["start", app.name]);
      assert.deepEqual(await next(), ["running", `container "${app.name}" started`]);
      await until(() => answers(app.url), 10_000, "httpd in the container");
      await podman(["pause", app.name]);
      assert.deepEqual(await next(), ["paused", `container "${app.name}" paused`]);
      await podman(["unpause", app.name]);
      assert.deepEqual(await next(), ["running", `container "${app.name}" unpaused`]);
      await podman(["stop", "-t", "5", app.name]);
      assert.deepEqual(await next(), ["stopped", `container "${app.name}" exited with code 4`]);
      // what the provider itself does is not reported back (its caller knows), only what others
      // do: after our start and SIGTERM (exit 4), the next reports are podman's start and kill
      await startServing();
      await provider.stop({ method: "kill", signal: "SIGTERM", timeout: 5000 });
      await podman(["start", app.name]);
      // (the words may be "is running": a late event of ours can trigger the read that sees it first)
      const [state, words] = await next();
      assert.equal(state, "running");
      assert.ok(
        [`container "${app.name}" started`, `container "${app.name}" is running`].includes(words),
        words,
      );
      await podman(["kill", app.name]);
      assert.deepEqual(await next(), ["stopped", `container "${app.name}" exited with code 137`]);
    } finally {
      ac.abort();
    }
  });

  test("a missing container on the real engine: the engine's message", async () => {
    const ghost = new DockerProvider({ container: `${app.name}-ghost`, socketPath: engine.socketPath });
    await assert.rejects(ghost.start(AbortSignal.timeout(5000)), {
      message: `docker: container "${app.name}-ghost": no such container (inspect: no container with name or ID "${app.name}-ghost" found: no such container)`,
    });
    await ghost.close();
  });
});
