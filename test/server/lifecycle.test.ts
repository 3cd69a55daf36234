import * as assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { describe, test } from "node:test";
import { eventually, get, serveYaml, startBackend, yamlConfig } from "../support/switchyard.ts";

const INTERVAL = 200;

describe("switchyard serve: health, reload, shutdown", { timeout: 180_000 }, () => {
  test("a backend stopped under traffic: GETs keep succeeding, it stops getting traffic, health says 2/3", async (t) => {
    const b = [
      await startBackend("h-1", 0, t),
      await startBackend("h-2", 0, t),
      await startBackend("h-3", 0, t),
    ];
    const sy = await serveYaml(
      t,
      yamlConfig({ web: { hosts: ["*"], servers: b.map((x) => ({ name: x.name, url: x.url })) } }),
      [],
      { cleanExit: true },
    );
    let failures = 0;
    let done = false;
    const bodies: string[] = [];
    const traffic = (async () => {
      while (!done) {
        const r = await get(sy.proxy[0], "/");
        if (r.status !== 200) failures++;
        bodies.push(r.body.trim());
      }
    })();
    await eventually(() => bodies.length > 20, 5000, "traffic");
    await b[1].stop();
    const stoppedAt = bodies.length;
    // within three intervals the stopped server gets nothing
    await new Promise((r) => setTimeout(r, INTERVAL * 3));
    const mark = bodies.length;
    await eventually(() => bodies.length > mark + 30, 5000, "more traffic");
    done = true;
    await traffic;
    assert.equal(failures, 0, "GETs are retried on another server");
    assert.ok(stoppedAt > 0);
    assert.ok(!bodies.slice(mark).includes("h-2"), "no traffic to the stopped server");
    const health = JSON.parse((await get(sy.admin!, "/api/health/web")).body);
    assert.equal(health.detail, "2/3 servers are healthy");
    assert.equal(health.status, "healthy");
    // the transition is logged once at info
    await sy.waitForLog((r) => r.msg === "server h-2 is unhealthy" && r.level === 30);
  });

  test("hot reload adds a server under concurrent traffic with zero failures; SIGHUP reloads too", async (t) => {
    const b = [
      await startBackend("r-1", 0, t),
      await startBackend("r-2", 0, t),
      await startBackend("r-3", 0, t),
    ];
    const conf = (n: number) =>
      yamlConfig({
        web: { hosts: ["*"], servers: b.slice(0, n).map((x) => ({ name: x.name, url: x.url })) },
      });
    const sy = await serveYaml(t, conf(1), [], { cleanExit: true });
    const file = sy.file;
    let failures = 0;
    let done = false;
    const seen = new Set<string>();
    const worker = async () => {
      while (!done) {
        const r = await get(sy.proxy[0], "/");
        if (r.status !== 200) failures++;
        else seen.add(r.body.trim());
      }
    };
    const traffic = Promise.all([worker(), worker(), worker(), worker()]);
    await new Promise((r) => setTimeout(r, 100));
    writeFileSync(file, conf(2));
    await sy.waitForLog(
      (r) => typeof r.msg === "string" && r.msg.startsWith("config reloaded") && /\+r-2/.test(r.msg),
    );
    await eventually(() => seen.has("r-2"), 5000, "traffic on the new server");
    done = true;
    await traffic;
    assert.equal(failures, 0);

    // SIGHUP: the file is re-read even without a change event
    writeFileSync(file, conf(3));
    sy.child.kill("SIGHUP");
    await sy.waitForLog((r) => typeof r.msg === "string" && /\+r-3/.test(r.msg));
    const health = JSON.parse((await get(sy.admin!, "/api/health/web")).body);
    assert.equal(health.detail, "3/3 servers are healthy");
    const m = (await get(sy.admin!, "/metrics")).body;
    assert.match(m, /switchyard_config_reloads_total\{result="ok"\} [1-9]/);
  });

  test("a bad reload logs every problem and keeps serving the old config", async (t) => {
    const a = await startBackend("keep", 0, t);
    const sy = await serveYaml(
      t,
      yamlConfig({ web: { hosts: ["*"], servers: [{ name: "keep", url: a.url }] } }),
      [],
      { cleanExit: true },
    );
    const file = sy.file;
    writeFileSync(
      file,
      `listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nservices:\n  web:\n    hosts: ["*"]\n    mode: fastest\n    servers:\n      - { name: x, url: "ftp://nope" }\n`,
    );
    const rec = await sy.waitForLog((r) => r.level === 50 && /reload failed/.test(String(r.msg)));
    const problems = rec.problems as string[];
    assert.ok(Array.isArray(problems) && problems.length >= 2, JSON.stringify(rec));
    assert.ok(problems.some((p) => /s\.yaml:6: services\.web\.mode/.test(p)));
    assert.ok(problems.some((p) => /s\.yaml:8: services\.web\.servers\[0\]\.url/.test(p)));
    assert.equal((await get(sy.proxy[0], "/")).body, "keep\n");
    const m = (await get(sy.admin!, "/metrics")).body;
    assert.match(m, /switchyard_config_reloads_total\{result="error"\} [1-9]/);
  });

  test("SIGTERM with a slow request in flight: it completes with 200, then exit 0", async (t) => {
    const a = await startBackend("slow", 0, t);
    const sy = await serveYaml(
      t,
      yamlConfig({ web: { hosts: ["*"], servers: [{ name: "slow", url: a.url }] } }),
      [],
    );
    const pending = get(sy.proxy[0], "/hold");
    await eventually(() => a.counts.GET === 1, 10_000, "the request at the backend");
    sy.child.kill("SIGTERM");
    await sy.waitForLog((r) => /draining 1 in-flight/.test(String(r.msg)));
    // while draining: no new connections, the held request still open
    await assert.rejects(get(sy.proxy[0], "/"));
    a.release();
    const r = await pending;
    assert.equal(r.status, 200);
    assert.equal(r.body, "slow\n");
    const exit = await sy.exited;
    assert.equal(exit.code, 0);
  });
});
