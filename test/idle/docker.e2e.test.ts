/**
 * The `docker` provider end to end: `switchyard serve` with servers that are real containers
 * behind podman's Docker-compatible API (test/support/podman.ts), found through DOCKER_HOST. A
 * napping container is not started before the first request, that request wakes it and is answered
 * by the container, idle stops it, and a container started or stopped outside switchyard changes
 * the server's status on the admin API.
 */
import * as assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { healthPool } from "../support/admin.ts";
import { type Container, type Engine, podman, startEngine } from "../support/podman.ts";
import { eventually, get, serveYaml, yamlHead } from "../support/switchyard.ts";

/** The health entry of the service's (first) server. */
const health = async (admin: string, service: string) => Object.values(await healthPool(admin, service))[0];

const status = (c: Container) => podman(["inspect", "--format", "{{.State.Status}}", c.name]);
/**
 * Waits until podman says "exited": right after the process ended it says "stopped" until its
 * cleanup (run by conmon, a moment later) is done.
 */
const exited = (c: Container) =>
  eventually(async () => (await status(c)) === "exited", 10_000, `${c.name} exited (podman's cleanup)`);

describe("idle: docker provider through switchyard serve (podman engine)", { timeout: 120_000 }, () => {
  let engine: Engine;
  before(async () => {
    engine = await startEngine();
  });
  after(() => engine?.close());

  test("napping until the first request, woken by it, answered by the container, stopped when idle", async (t) => {
    const app = await engine.createHttpd("sy-e2e");
    const sy = await serveYaml(
      t,
      `${yamlHead()}  app:
    hosts: ["*"]
    healthcheck: { path: /healthz, interval: 1s }
    idle: { idle_timeout: 500ms, wake_timeout: 20s, stop_signal: SIGINT, stop_timeout: 5s }
    servers:
      - name: app-3
        url: ${app.url}
        docker: { container: ${app.name} }
`,
      [],
      { env: { DOCKER_HOST: `unix://${engine.socketPath}` } },
    );

    assert.equal((await health(sy.admin!, "app")).status, "napping");
    assert.equal(await status(app), "created", "not started before a request");

    // a program's request is held through the wake and answered by httpd in the container
    const r = await get(sy.proxy[0], "/index.html", { headers: { accept: "application/json" } });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.body, "<h1>hello from the container</h1>\n");
    assert.equal(await status(app), "running");
    await sy.waitForLog((l) => typeof l.msg === "string" && l.msg.startsWith("server app-3 woke in"));

    // 500 ms without requests: stopped with stop_signal SIGINT (the container's shell exits 3)
    await sy.waitForLog((l) => l.msg === "server app-3 stopped (idle)", 15_000, "the idle stop");
    await exited(app);
    assert.equal(await app.exitCode(), 3);
    assert.equal((await health(sy.admin!, "app")).status, "napping");

    // the next request wakes it again
    const again = await get(sy.proxy[0], "/healthz", { headers: { accept: "application/json" } });
    assert.deepEqual([again.status, again.body], [200, "ok\n"]);
    assert.equal((await sy.stop("SIGTERM")).code, 0);
  });

  test("a container started or stopped outside switchyard changes the server's status", async (t) => {
    const app = await engine.createHttpd("sy-e2e-ext");
    const sy = await serveYaml(
      t,
      `${yamlHead()}  ext:
    hosts: ["*"]
    healthcheck: { path: /healthz, interval: 1s }
    idle: { idle_timeout: 1h, wake_timeout: 20s }
    servers:
      - name: ext-1
        url: ${app.url}
        docker: { container: ${app.name}, socket: ${engine.socketPath} }
`,
      ["--log-level", "debug"],
    );
    assert.equal((await health(sy.admin!, "ext")).status, "napping");

    await sy.waitForLog((l) => l.msg === "docker: following the engine's events", 15_000, "the event stream");

    // started outside: healthy (switchyard's start-up read may be the one that sees it first)
    await podman(["start", app.name]);
    await eventually(
      async () => (await health(sy.admin!, "ext")).status === "healthy",
      20_000,
      "ext-1 healthy after a start outside switchyard",
    );
    const r = await get(sy.proxy[0], "/healthz", { headers: { accept: "application/json" } });
    assert.deepEqual([r.status, r.body], [200, "ok\n"]);

    // stopped outside: napping, with the exit code the engine's events reported
    await podman(["stop", "-t", "5", app.name]);
    await eventually(
      async () => (await health(sy.admin!, "ext")).status === "napping",
      20_000,
      "ext-1 napping after a stop outside switchyard",
    );
    assert.match(String((await health(sy.admin!, "ext")).detail), /exited with code 4/);
    await sy.waitForLog(
      (l) => l.msg === `server ext-1 stopped by itself: container "${app.name}" exited with code 4`,
    );

    // started outside again: only the event stream can tell switchyard now
    await podman(["start", app.name]);
    await sy.waitForLog(
      (l) => l.msg === "server ext-1 started outside switchyard",
      15_000,
      "the start event",
    );
    await eventually(
      async () => (await health(sy.admin!, "ext")).status === "healthy",
      20_000,
      "ext-1 healthy again",
    );
    await podman(["stop", "-t", "5", app.name]);
    await eventually(
      async () => (await health(sy.admin!, "ext")).status === "napping",
      20_000,
      "napping again",
    );
    assert.equal((await sy.stop("SIGTERM")).code, 0);
    // switchyard's shutdown leaves the container as it is
    await exited(app);
  });
});
