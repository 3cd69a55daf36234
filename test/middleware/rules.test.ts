/**
 * Rules, `route`, `hide_forwarded` and a failing middleware through a real `switchyard serve`:
 * what the backend receives, what the client gets, and what the log says.
 */
import * as assert from "node:assert/strict";
import { once } from "node:events";
import * as http from "node:http";
import * as net from "node:net";
import { after, before, describe, test } from "node:test";
import { Cleanup, listen } from "../support/cleanup.ts";
import type { LogRecord } from "../support/cli.ts";
import { type Running, serveYaml, splitAddress } from "../support/switchyard.ts";

const cleanup = new Cleanup();
let backend: string;
after(() => cleanup.run());
before(async () => {
  // echoes the request line and the header lines it got, names as sent
  const server = http.createServer((req, res) => {
    const body = JSON.stringify({ url: req.url, raw: req.rawHeaders });
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  });
  // an upgrade is answered 101 with what arrived: the path and the X-Via header
  server.on("upgrade", (req, socket) => {
    socket.end(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Url: ${req.url}\r\nX-Got-Via: ${req.headers["x-via"] ?? "-"}\r\n\r\n`,
    );
  });
  backend = `http://127.0.0.1:${await listen(server, cleanup)}`;
});

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  reused: boolean;
}

function request(
  sy: Running,
  host: string,
  path: string,
  headers: http.OutgoingHttpHeaders = {},
  agent: http.Agent | false = false,
): Promise<Reply> {
  const [hostname, port] = splitAddress(sy.proxy[0]);
  return new Promise((ok, fail) => {
    const req = http.request({ host: hostname, port, path, agent, headers: { host, ...headers } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () =>
        ok({ status: res.statusCode ?? 0, headers: res.headers, body, reused: req.reusedSocket }),
      );
    });
    req.on("error", fail);
    req.end();
  });
}

/** The header lines the backend got, lower-cased names. */
function seen(r: Reply): [string, string][] {
  const raw = (JSON.parse(r.body) as { raw: string[] }).raw;
  const out: [string, string][] = [];
  for (let i = 0; i < raw.length; i += 2) out.push([raw[i].toLowerCase(), raw[i + 1]]);
  return out;
}

const FORWARDED = ["forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-real-ip"];
const CLIENT_FORWARDED = {
  forwarded: "for=203.0.113.9",
  "x-forwarded-for": "203.0.113.9",
  "x-forwarded-proto": "https",
  "x-forwarded-host": "evil.test",
  "x-forwarded-port": "443",
  "x-forwarded-prefix": "/p",
  "x-real-ip": "203.0.113.9",
};

describe("switchyard serve: rules, route, hide_forwarded", { timeout: 60_000 }, () => {
  let sy: Running;
  before(async () => {
    sy = await serveYaml(
      { after: (fn) => cleanup.add(fn as () => Promise<void>) },
      `listen: 127.0.0.1:0
admin: 127.0.0.1:0
services:
  hidden:
    hosts: [hidden.test]
    servers: ["${backend}"]
    middlewares:
      - hide_forwarded: true
  shown:
    hosts: [shown.test]
    servers: ["${backend}"]
  a:
    hosts: [a.test]
    servers: ["${backend}"]
    middlewares:
      - rules:
          - name: loop
            on: path /loop
            do: route b
          - name: hand on
            on: path glob(/to-b/*)
            do: |
              set resp_header X-From a
              rewrite /to-b/ /
              route b
          - name: default
            do: set header X-Seen-By a
      - response_headers: { set: { X-A: "1" } }
  b:
    hosts: [b.test]
    servers: ["${backend}"]
    middlewares:
      - rules:
          - on: path /loop
            do: route a
          - on: method GET
            do: |
              set header X-Via b
              set resp_header X-Rule-B yes
      - response_headers: { set: { X-B: "2" } }
`,
    );
  });

  test("hide_forwarded: the backend gets no Forwarded, X-Forwarded-* or X-Real-IP, the client's or switchyard's", async () => {
    const hidden = seen(await request(sy, "hidden.test", "/", CLIENT_FORWARDED));
    const names = hidden.map(([n]) => n);
    for (const n of [...FORWARDED, "x-forwarded-port", "x-forwarded-prefix"])
      assert.ok(!names.includes(n), n);
    assert.ok(names.includes("host"));
    // the same request to a service without it: switchyard's own forwarded headers
    const shown = new Map(seen(await request(sy, "shown.test", "/", CLIENT_FORWARDED)));
    assert.equal(shown.get("x-forwarded-for"), "127.0.0.1");
    assert.equal(shown.get("x-real-ip"), "127.0.0.1");
    assert.equal(shown.get("x-forwarded-host"), "shown.test");
  });

  test("route: the request enters the other service's rules and middlewares; both services' response edits apply", async () => {
    const r = await request(sy, "a.test", "/to-b/users?x=1");
    assert.equal(r.status, 200);
    assert.equal((JSON.parse(r.body) as { url: string }).url, "/users?x=1");
    const got = new Map(seen(r));
    assert.equal(got.get("x-via"), "b");
    assert.equal(got.get("x-seen-by"), undefined, "a's default rule does not run: another rule matched");
    assert.deepEqual(
      [r.headers["x-b"], r.headers["x-rule-b"], r.headers["x-a"], r.headers["x-from"]],
      ["2", "yes", "1", "a"],
    );
    // no rule matched: a's default ran, and the request stayed with a
    const own = await request(sy, "a.test", "/own");
    assert.equal(new Map(seen(own)).get("x-seen-by"), "a");
    assert.equal(own.headers["x-b"], undefined);
  });

  test("upgrades pass the rules too: a route hands the upgrade on, a rule's answer is written on the socket", async () => {
    const upgrade = async (host: string, path: string): Promise<string> => {
      const [hostname, port] = splitAddress(sy.proxy[0]);
      const socket = net.connect(port, hostname);
      await once(socket, "connect");
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`,
      );
      let head = "";
      socket.setEncoding("latin1");
      for await (const chunk of socket) {
        head += chunk;
        if (head.includes("\r\n\r\n")) break;
      }
      socket.destroy();
      return head;
    };
    const routed = await upgrade("a.test", "/to-b/ws");
    assert.match(routed, /^HTTP\/1\.1 101 /);
    assert.match(routed, /X-Url: \/ws\r\n/, "rewritten by a's rule");
    assert.match(routed, /X-Got-Via: b\r\n/, "edited by b's rules");
    const looped = await upgrade("a.test", "/loop");
    assert.match(looped, /^HTTP\/1\.1 500 /);
  });

  test("a middleware that throws answers 500 for that request only and is logged once a minute, not per request", async () => {
    const failed = (l: LogRecord) => typeof l.msg === "string" && l.msg.startsWith("middleware rules failed");
    const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
    cleanup.add(() => keepAlive.destroy());
    // two services that hand /loop to each other: the rules middleware refuses the 8th hand-on by throwing
    const first = await request(sy, "a.test", "/loop", {}, keepAlive);
    assert.equal(first.status, 500);
    assert.equal(first.body, "Internal Server Error\n");
    const same = await request(sy, "a.test", "/own", {}, keepAlive);
    assert.equal(same.status, 200, "the next request on the same connection");
    assert.equal(same.reused, true);
    assert.equal((await request(sy, "b.test", "/x")).status, 200, "a request on another connection");
    for (let i = 0; i < 49; i++)
      assert.equal((await request(sy, "a.test", "/loop", {}, keepAlive)).status, 500);
    assert.equal((await request(sy, "a.test", "/own?last", {}, keepAlive)).status, 200);
    const line = await sy.waitForLog(failed, 5000, "the failure line");
    assert.match(
      String((line.err as { message?: string }).message),
      /route loop: the request was handed on 8 times/,
    );
    assert.equal(line.middleware, "rules");
    // 50 failures (51 with the upgrade test's) within a minute: one line; the access line of the last
    // request shows the log got past every failure
    await sy.waitForLog((l) => l.msg === "request" && l.path === "/own?last" && l.status === 200, 5000);
    assert.equal(sy.logs.filter(failed).length, 1, JSON.stringify(sy.logs.filter(failed)));
  });
});
