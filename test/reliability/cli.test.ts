/**
 * The same faults against the real server (`switchyard serve` as a child process): hot reloads
 * of the config file under load, SIGTERM during load, misbehaving backends counted in the
 * server's own file descriptors, and the admin listener's bearer token.
 */
import * as assert from "node:assert/strict";
import { once } from "node:events";
import * as net from "node:net";
import { after, test } from "node:test";
import { Pool, request } from "undici";
import { backend, backends } from "../support/backend.ts";
import { Cleanup } from "../support/cleanup.ts";
import { freePort } from "../support/ports.ts";
import { until } from "../support/until.ts";
import { runLoad } from "./load.ts";
import { record } from "./summary.ts";
import { type ProxySpec, reloadSteps, type ServiceSpec, startCli } from "./switchyards.ts";

const CONCURRENCY = 64;
// smaller than the in-process runs: here every request crosses two processes
const TOTAL = Number(process.env.RELIABILITY_CLI_LOAD ?? 4_000);

const cleanup = new Cleanup();
after(() => cleanup.run());

async function cli(spec: ProxySpec & Record<string, unknown>, opts?: Parameters<typeof startCli>[1]) {
  const c = await startCli(spec, opts);
  cleanup.add(() => c.stop("SIGKILL"));
  return c;
}

test("real server: 10 hot reloads of the config file under load, 0 failed requests", {
  timeout: 90_000,
}, async () => {
  const bs = await backends(["r1", "r2", "r3", "r4", "r5"], { cleanup });
  const steps = reloadSteps(bs);
  const spec = (servers: ServiceSpec["servers"]) => ({
    services: { api: { healthcheck: { path: "/healthz", interval: "1s" }, servers } },
  });
  const c = await cli(spec(steps[0]));
  let reloads = 0;
  let loadDone = false;
  // Paced by events, not by time, so every step serves requests and every reload lands under
  // load on a fast or a slow machine: reload i starts once MIN requests sent after reload i-1
  // was applied are answered (so each step surely serves some), and the load runs at most one
  // window of `every` requests ahead of the reloads (window w waits for reload w-1), so it
  // cannot run out while reloads lag behind (the file watch debounces, a busy server is slow).
  const every = Math.floor(TOTAL / (steps.length + 1));
  const MIN = Math.floor(every / 4);
  /** The reloads applied when each request was sent, and the answers per such generation. */
  let generation = 0;
  const sentIn = new Map<number, number>();
  const answeredIn: number[] = [0];
  const applied: Promise<void>[] = [];
  const started: (() => void)[] = [];
  for (let i = 1; i < steps.length; i++) {
    const p = new Promise<void>((resolve, reject) => {
      started.push(() => c.reload(spec(steps[i])).then(resolve, reject));
    });
    // the first reaction: the requests this reload releases count for its generation
    p.then(
      () => {
        answeredIn[i] = 0;
        generation = i;
      },
      () => {},
    );
    applied.push(p);
  }
  const reloader = (async () => {
    for (let i = 1; i < steps.length; i++) {
      await until(() => answeredIn[i - 1] >= MIN || loadDone, 120_000, `answers under step ${i - 1}`);
      if (loadDone) break;
      started[i - 1]();
      await applied[i - 1];
      reloads++;
    }
  })();
  const result = await runLoad({
    url: c.url,
    host: "api.test",
    total: TOTAL,
    concurrency: CONCURRENCY,
    onProgress: (_done, index) => {
      const g = sentIn.get(index)!;
      answeredIn[g]++;
      sentIn.delete(index);
    },
    gate: (index) => {
      const w = Math.min(Math.floor(index / every), steps.length);
      const held = w >= 2 ? applied[w - 2] : undefined;
      if (held === undefined) {
        sentIn.set(index, generation);
        return undefined;
      }
      return held.then(() => {
        sentIn.set(index, generation);
      });
    },
  });
  loadDone = true;
  await reloader;
  const failedReloads = c.logs.filter((l) => String(l.msg).startsWith("config reload failed")).length;
  record({
    suite: "faults",
    scenario: "10 hot reloads of the config file (real server)",
    requests: result.sent,
    failed: result.failed,
    faults: reloads,
    concurrency: CONCURRENCY,
    perBackend: result.bodies,
  });
  assert.equal(failedReloads, 0);
  assert.equal(reloads, 10, "all ten reloads happened while the load ran");
  assert.equal(result.failed, 0, `failed requests: ${result.errors.join("; ")}`);
  for (const b of bs) assert.ok(b.served() > 0, `${b.name} served requests`);
});

test("real server: one of three backends killed and restarted under load, 0 failed requests", {
  timeout: 90_000,
}, async () => {
  // the victim listens again on its port after the kill: one outside the ephemeral range, which
  // no listen(0) on the machine can take while it is down
  const victim = await backend("k2", { port: await freePort(), cleanup });
  const [k1, k3] = await backends(["k1", "k3"], { cleanup });
  const bs = [k1, victim, k3];
  const c = await cli({
    services: {
      api: {
        // passive ejection does not wait for the interval
        healthcheck: { path: "/healthz", interval: "500ms", timeout: "1s" },
        servers: bs.map((b) => ({ name: b.name, url: b.url })),
      },
    },
  });
  let phase: Promise<void> | undefined;
  let receivedAtRestart = 0;
  // the last 40% of the load waits until the restarted backend is back in: otherwise a fast run
  // finishes its load before the first good probe and nothing is left to reach it
  let backIn!: () => void;
  const held = new Promise<void>((r) => {
    backIn = r;
  });
  const healthOf = async () => {
    const res = await request(`${c.adminUrl}/api/health/api`);
    const h = (await res.body.json()) as { extra: { pool: Record<string, { status: string }> } };
    return h.extra.pool[`127.0.0.1:${victim.port}`]?.status;
  };
  const result = await runLoad({
    url: c.url,
    host: "api.test",
    total: TOTAL,
    concurrency: CONCURRENCY,
    gate: (index) => (index >= Math.floor(TOTAL * 0.6) ? held : undefined),
    onProgress: (done) => {
      if (done !== Math.floor(TOTAL * 0.15)) return;
      phase = (async () => {
        try {
          await victim.kill();
          // out: the admin API says so (passive health, then the failing probes)
          await until(async () => (await healthOf()) !== "healthy", 5000, "the killed backend to be out");
          await new Promise((r) => setTimeout(r, 300));
          receivedAtRestart = victim.received.length;
          // back within one successful probe: the restarted backend answers one probe and holds
          // the next ones, so traffic can only reach it if one good probe was enough (however
          // slow the machine is next to the probe interval)
          victim.probeBudget = 1;
          await victim.restart();
          await until(async () => (await healthOf()) === "healthy", 10_000, "the restarted backend to be in");
        } finally {
          backIn();
        }
        const served = victim.served();
        await until(
          () => victim.served() > served,
          10_000,
          "the restarted backend to get traffic after one good probe",
        );
        victim.probeBudget = undefined;
        victim.release();
      })();
    },
  });
  await phase;
  // probes that reached it before its first request (the first answered, any later one held)
  const probesBeforeTraffic = victim.probesFirst(receivedAtRestart);
  record({
    suite: "faults",
    scenario: "kill + restart 1 of 3 backends (real server)",
    requests: result.sent,
    failed: result.failed,
    faults: 2,
    concurrency: CONCURRENCY,
    probesBeforeTraffic,
    perBackend: result.bodies,
  });
  assert.equal(result.failed, 0, `failed requests: ${result.errors.join("; ")}`);
  assert.ok(probesBeforeTraffic >= 1, "its first request came after a good probe");
});

test("real server: SIGTERM during load — every accepted request completes, exit 0 within the grace period", {
  timeout: 60_000,
}, async () => {
  const GRACE = 5000;
  const [slow] = await backends(["slow"], {
    handler: (req, res) => {
      req.resume();
      // long enough that SIGTERM lands while every one of them is in flight
      setTimeout(() => res.end(`done ${req.headers["x-req-id"]}`), 600);
    },
    cleanup,
  });
  const c = await cli({
    timeouts: { shutdown: `${GRACE / 1000}s` },
    services: { api: { servers: [{ name: "slow", url: slow.url }] } },
  });
  const pool = new Pool(c.url, { connections: CONCURRENCY, pipelining: 1 });
  cleanup.add(() => pool.destroy());
  const answered = new Map<string, number>();
  const errors: string[] = [];
  let id = 0;
  let stopping = false;
  const one = async () => {
    const rid = String(id++);
    try {
      const res = await pool.request({
        path: "/",
        method: "GET",
        headers: { host: "api.test", "x-req-id": rid },
      });
      const body = await res.body.text();
      answered.set(rid, res.statusCode);
      if (res.statusCode === 200) assert.equal(body, `done ${rid}`);
    } catch (err) {
      errors.push((err as { code?: string }).code ?? String(err));
    }
  };
  // 64 clients keep sending until the server is gone
  const clients = Array.from({ length: CONCURRENCY }, async () => {
    while (!stopping) await one();
  });
  await until(() => slow.served() >= CONCURRENCY * 2, 15_000, "the load to be running");
  const t0 = Date.now();
  c.child.kill("SIGTERM");
  const { code } = await c.exited;
  const took = Date.now() - t0;
  stopping = true;
  await Promise.all(clients);
  // every request the backend received (so switchyard accepted and forwarded it) was answered 200
  const received = slow.received
    .filter((r) => r.headers["x-req-id"] !== undefined)
    .map((r) => String(r.headers["x-req-id"]));
  const lost = received.filter((rid) => answered.get(rid) !== 200);
  const non200 = [...answered.values()].filter((s) => s !== 200).length;
  record({
    suite: "faults",
    scenario: "SIGTERM during load (real server)",
    requests: id,
    failed: lost.length + non200,
    faults: 1,
    concurrency: CONCURRENCY,
    acceptedAndCompleted: received.length - lost.length,
    refusedAfterStop: errors.length,
    exitCode: code,
    exitMs: took,
  });
  assert.equal(code, 0, `exit code; stderr: ${c.stderr().slice(-500)}`);
  assert.ok(took < GRACE, `exited within the grace period (${took}ms)`);
  assert.deepEqual(lost, [], "every accepted request completed");
  assert.equal(non200, 0, "no accepted request got an error status");
  // what failed was refused at the door (the listener was closed), not cut off mid-way
  for (const e of errors) assert.match(e, /ECONNREFUSED|ECONNRESET|UND_ERR_SOCKET|UND_ERR_CLOSED/);
});

test("real server: misbehaving backends leave no file descriptor or in-flight request behind", {
  timeout: 60_000,
}, async () => {
  const [good] = await backends(["good"], { cleanup });
  const raws: net.Server[] = [];
  const raw = async (fn: (s: net.Socket) => void) => {
    const sockets = new Set<net.Socket>();
    const srv = net.createServer((s) => {
      sockets.add(s);
      s.on("error", () => {});
      s.on("close", () => sockets.delete(s));
      fn(s);
    });
    srv.listen(0, "127.0.0.1");
    await once(srv, "listening");
    raws.push(srv);
    cleanup.add(async () => {
      srv.close();
      for (const s of sockets) s.destroy();
    });
    return `http://127.0.0.1:${(srv.address() as net.AddressInfo).port}`;
  };
  const onHead = (s: net.Socket, fn: () => void) => {
    let buf = "";
    s.on("data", (d: Buffer) => {
      if (buf.includes("\r\n\r\n")) return;
      buf += d.toString("latin1");
      if (buf.includes("\r\n\r\n")) fn();
    });
  };
  const hang = await raw((s) => s.resume());
  const garbage = await raw((s) => onHead(s, () => s.end("NOT HTTP\r\n\r\n")));
  const midbody = await raw((s) =>
    onHead(s, () => {
      s.write("HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n");
      s.write(Buffer.alloc(5000, 1), () => s.destroy());
    }),
  );
  const huge = await raw((s) =>
    onHead(s, () => {
      let head = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n";
      while (head.length < 1024 * 1024) head += `x-filler: ${"h".repeat(1000)}\r\n`;
      s.end(`${head}\r\nok`);
    }),
  );
  const one = (url: string) => ({ servers: [{ name: "only", url }] });
  const c = await cli({
    timeouts: { response_header: "700ms", idle: "700ms" },
    services: {
      good: { servers: [{ name: "good", url: good.url }] },
      hang: one(hang),
      garbage: one(garbage),
      midbody: one(midbody),
      huge: one(huge),
    },
  });
  const send = async (host: string) => {
    try {
      const res = await request(`${c.url}/`, {
        headers: { host, connection: "close" },
        signal: AbortSignal.timeout(8000),
      });
      try {
        await res.body.text();
        return String(res.statusCode);
      } catch {
        return `${res.statusCode} aborted`;
      }
    } catch (err) {
      return `error ${(err as { code?: string }).code}`;
    }
  };
  assert.equal(await send("good.test"), "200");
  const base = c.fds();
  const expected: Record<string, string> = {
    hang: "504",
    garbage: "502",
    midbody: "200 aborted",
    huge: "502",
  };
  const ROUNDS = 5;
  for (let round = 0; round < ROUNDS; round++) {
    const got = await Promise.all([
      ...Object.keys(expected).map((h) => send(`${h}.test`)),
      send("good.test"),
    ]);
    assert.deepEqual(got, [...Object.values(expected), "200"]);
  }
  const inflight = async () => {
    const res = await request(`${c.adminUrl}/api/health`);
    const all = (await res.body.json()) as Record<
      string,
      { extra: { pool: Record<string, { inflight: number }> } }
    >;
    return Object.values(all).reduce(
      (n, svc) => n + Object.values(svc.extra.pool).reduce((m, s) => m + (s.inflight ?? 0), 0),
      0,
    );
  };
  await until(async () => (await inflight()) === 0, 5000, "in-flight back to 0");
  // idle upstream keep-alive connections (one per service at most) may stay open
  const slack = Object.keys(expected).length + 1;
  await until(() => c.fds() <= base + slack, 5000, `fds back to baseline (${base}, now ${c.fds()})`);
  const after = c.fds();
  assert.equal(c.child.exitCode, null, "the server is still running");
  record({
    suite: "bad-backend",
    scenario: "all four through the real server, fd count",
    requests: ROUNDS * 5,
    outcome: `fds ${base} before, ${after} after ${ROUNDS} rounds`,
    expected: "no growth",
    ok: true,
  });
});

test("admin: loopback needs no token", { timeout: 30_000 }, async () => {
  const [b] = await backends(["a"], { cleanup });
  const c = await cli({ services: { api: { servers: [{ name: "a", url: b.url }] } } });
  const res = await request(`${c.adminUrl}/api/health`);
  await res.body.dump();
  assert.equal(res.statusCode, 200);
  assert.ok(c.logs.some((l) => /loopback only, no token/.test(String(l.msg))));
});

for (const how of ["config", "environment"] as const) {
  test(`admin bound beyond loopback requires the bearer token from the ${how}`, {
    timeout: 30_000,
  }, async () => {
    const [b] = await backends(["a"], { cleanup });
    const token = `tok-${how}-${Math.random().toString(36).slice(2)}`;
    const c = await cli(
      {
        ...(how === "config" ? { admin: { address: "127.0.0.1:0", token } } : {}),
        services: { api: { servers: [{ name: "a", url: b.url }] } },
      },
      // bound to every interface; the test still only talks to 127.0.0.1
      { admin: "0.0.0.0:0", env: how === "environment" ? { SWITCHYARD_ADMIN_TOKEN: token } : {} },
    );
    assert.ok(
      c.logs.some((l) => /requires Authorization: Bearer/.test(String(l.msg))),
      "says at start that a token is required",
    );
    const status = async (path: string, auth?: string) => {
      const res = await request(`${c.adminUrl}${path}`, { headers: auth ? { authorization: auth } : {} });
      await res.body.dump();
      return res.statusCode;
    };
    const outcomes: string[] = [];
    for (const path of ["/api/health", "/metrics", "/api/health/api"]) {
      assert.equal(await status(path), 401, `${path} without a token`);
      assert.equal(await status(path, "Bearer wrong"), 401, `${path} with a wrong token`);
      assert.equal(await status(path, token), 401, `${path} with the token but no Bearer scheme`);
      assert.equal(await status(path, `Bearer ${token}x`), 401, `${path} with a longer token`);
      assert.equal(await status(path, `Bearer ${token}`), 200, `${path} with the token`);
      outcomes.push(path);
    }
    record({
      suite: "admin",
      scenario: `admin on 0.0.0.0, token from the ${how}`,
      requests: outcomes.length * 5,
      outcome: "401 without / wrong / unprefixed token, 200 with it",
      expected: "401 / 200",
      ok: true,
    });
  });
}

test("admin bound beyond loopback without any token: refuses to start, and says why", {
  timeout: 30_000,
}, async () => {
  const [b] = await backends(["a"], { cleanup });
  await assert.rejects(
    cli(
      { services: { api: { servers: [{ name: "a", url: b.url }] } } },
      { admin: "0.0.0.0:0", env: { SWITCHYARD_ADMIN_TOKEN: "" } },
    ),
    /token|SWITCHYARD_ADMIN_TOKEN/,
  );
});
