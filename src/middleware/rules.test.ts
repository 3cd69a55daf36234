import * as assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { describe, test } from "node:test";
import bcrypt from "bcryptjs";
import { parse } from "yaml";
import { type RouteRef, readRules } from "../config/rules.ts";
import { Problems } from "../config/source.ts";
import { MAX_ROUTES, Rules } from "./rules.ts";
import { type Answer, kRerouted, PENDING, Reroute } from "./types.ts";

function rules(yaml: string): Rules {
  const p = new Problems("test.yaml");
  const routes: RouteRef[] = [];
  const list = readRules(p, parse(yaml), ["rules"], routes);
  assert.deepEqual(p.list(), []);
  return new Rules({ kind: "rules", rules: list! });
}

interface Req {
  method?: string;
  url?: string;
  headers?: string[];
  tls?: boolean;
  major?: number;
}

function req(r: Req = {}): IncomingMessage {
  return {
    method: r.method ?? "GET",
    url: r.url ?? "/",
    rawHeaders: r.headers ?? ["Host", "example.com"],
    httpVersionMajor: r.major ?? 1,
    socket: { encrypted: r.tls === true },
  } as unknown as IncomingMessage;
}

type Outcome = Answer | Reroute | Error | undefined;

/** Runs the rules on a request; the outcome whether synchronous or not. */
function run(
  m: Rules,
  r: IncomingMessage,
  client = "192.0.2.1",
): Promise<{ out: Outcome; pending: boolean }> {
  return new Promise((ok) => {
    const out = m.request(r, { client }, (later) => ok({ out: later, pending: true }));
    if (out !== PENDING) ok({ out, pending: false });
  });
}

async function status(m: Rules, r: IncomingMessage, client?: string): Promise<number | string> {
  const { out } = await run(m, r, client);
  if (out === undefined) return "pass";
  if (out instanceof Reroute) return `route ${out.service}`;
  if (out instanceof Error) return `error ${out.message}`;
  return out.status;
}

const header = (r: IncomingMessage, name: string) => {
  const raw = r.rawHeaders;
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i].toLowerCase() === name) out.push(raw[i + 1]);
  return out;
};

describe("evaluation, as GoDoxy's BuildHandler", () => {
  const m = rules(`
- name: tag api
  on: path glob(/api/*)
  do: set header X-Api yes
- name: tag get
  on: method GET
  do: add header X-Seen get
- name: block posts
  on: method POST
  do: error 405 "read only"
- name: never after a block
  on: method POST & path glob(/api/*)
  do: set header X-Late yes
- name: default
  do: error 404 "nothing here"
`);

  test("every matching rule runs until one ends the request; later ones do not", async () => {
    const get = req({ url: "/api/x" });
    assert.equal(await status(m, get), "pass");
    assert.deepEqual(header(get, "x-api"), ["yes"]);
    assert.deepEqual(header(get, "x-seen"), ["get"]);
    // req.headers follows the edited raw list
    assert.equal(get.headers["x-api"], "yes");
    const post = req({ method: "POST", url: "/api/x" });
    assert.equal(await status(m, post), 405);
    assert.deepEqual(header(post, "x-late"), []);
  });

  test("the default rule runs only when no other rule matched", async () => {
    // HEAD /other: nothing matches, the default answers
    assert.equal(await status(m, req({ method: "HEAD", url: "/other" })), 404);
    // GET /other: `tag get` matched (and did not end the request): no default, to the backend
    assert.equal(await status(m, req({ url: "/other" })), "pass");
  });
});

describe("conditions", () => {
  test("path: exact text, glob (where * also crosses /), regex, a plain path with wildcards as a glob", async () => {
    const m = rules(`
- on: path /exact
  do: error 201 a
- on: path glob("/g/*.css")
  do: error 202 b
- on: path regex("^/v[0-9]+/")
  do: error 203 c
- on: path /old/*
  do: error 205 d
`);
    assert.equal(await status(m, req({ url: "/exact?q=1" })), 201);
    assert.equal(await status(m, req({ url: "/exact/" })), "pass");
    assert.equal(await status(m, req({ url: "/g/deep/site.css" })), 202);
    assert.equal(await status(m, req({ url: "/v12/users" })), 203);
    assert.equal(await status(m, req({ url: "/old/x" })), 205);
    // the decoded path is matched, as GoDoxy matches r.URL.Path
    assert.equal(await status(m, req({ url: "/%65xact" })), 201);
  });

  test("lines and & are AND, | is OR; ! negates", async () => {
    const m = rules(`
- on: |
    method GET | method HEAD
    header X-A & !header X-B
  do: error 201 yes
`);
    assert.equal(await status(m, req({ headers: ["X-A", "1"] })), 201);
    assert.equal(await status(m, req({ method: "HEAD", headers: ["x-a", "1"] })), 201);
    assert.equal(await status(m, req({ method: "POST", headers: ["X-A", "1"] })), "pass");
    assert.equal(await status(m, req({ headers: ["X-A", "1", "X-B", "2"] })), "pass");
    assert.equal(await status(m, req({ headers: [] })), "pass");
  });

  test("header, query and cookie values: text, glob, regex, negated value; host as sent", async () => {
    const m = rules(`
- on: header User-Agent glob(*bot*)
  do: error 403 bots
- on: query debug true
  do: error 201 q
- on: cookie session regex("^s-[0-9]+$")
  do: error 202 c
- on: header X-Env !prod
  do: error 203 notprod
- on: host glob(*.example.com)
  do: error 204 ""
`);
    assert.equal(await status(m, req({ headers: ["user-agent", "a googlebot b"] })), 403);
    assert.equal(await status(m, req({ url: "/?a=1&debug=true" })), 201);
    assert.equal(await status(m, req({ url: "/?debug=false" })), "pass");
    assert.equal(await status(m, req({ headers: ["Cookie", "a=1; session=s-42"] })), 202);
    assert.equal(await status(m, req({ headers: ["X-Env", "dev"] })), 203);
    assert.equal(await status(m, req({ headers: ["X-Env", "prod"] })), "pass");
    assert.equal(await status(m, req({ headers: ["Host", "www.example.com"] })), 204);
    // Go's r.Host keeps the port: as GoDoxy, the pattern sees it
    assert.equal(await status(m, req({ headers: ["Host", "www.example.com:8080"] })), "pass");
  });

  test("remote: the resolved client address against CIDRs and addresses, IPv4 and IPv6", async () => {
    const m = rules(`
- on: remote 10.0.0.0/8 | remote 2001:db8::/32 | remote 192.0.2.7
  do: error 403 denied
`);
    assert.equal(await status(m, req(), "10.1.2.3"), 403);
    assert.equal(await status(m, req(), "2001:db8::1"), 403);
    assert.equal(await status(m, req(), "192.0.2.7"), 403);
    assert.equal(await status(m, req(), "192.0.2.8"), "pass");
    assert.equal(m.needsClient, true);
  });

  test("proto: http/https, h1/h2/h2c", async () => {
    const m = rules(`
- on: proto https
  do: error 201 tls
- on: proto h2c
  do: error 202 h2c
`);
    assert.equal(await status(m, req({ tls: true })), 201);
    assert.equal(await status(m, req({ major: 2 })), 202);
    assert.equal(await status(m, req()), "pass");
  });

  test("basic_auth: checked once by bcrypt (asynchronously), then remembered", async () => {
    const hash = bcrypt.hashSync("pw", 4);
    const hash2 = bcrypt.hashSync("pw2", 4);
    const m = rules(`
- name: default
  do: require_basic_auth "Admin area"
- on: basic_auth ann "${hash}" | basic_auth cid "${hash2}"
  do: pass
`);
    const basic = (s: string) => ["Authorization", `Basic ${Buffer.from(s).toString("base64")}`];
    const none = await run(m, req({ headers: [] }));
    assert.equal(none.pending, false);
    assert.equal((none.out as Answer).status, 401);
    assert.ok((none.out as Answer).headers.includes('Basic realm="Admin area"'));
    const wrong = await run(m, req({ headers: basic("ann:nope") }));
    assert.equal(wrong.pending, true);
    assert.equal((wrong.out as Answer).status, 401);
    const unknown = await run(m, req({ headers: basic("bob:pw") }));
    assert.equal(unknown.pending, true);
    assert.equal((unknown.out as Answer).status, 401);
    assert.deepEqual(await run(m, req({ headers: basic("ann:pw") })), { out: undefined, pending: true });
    assert.deepEqual(await run(m, req({ headers: basic("ann:pw") })), { out: undefined, pending: false });
    // the second credential of the rule (bit 2 of the match mask)
    assert.deepEqual(await run(m, req({ headers: basic("cid:pw2") })), { out: undefined, pending: true });
    assert.equal(((await run(m, req({ headers: basic("cid:pw") }))).out as Answer).status, 401);
  });
});

describe("commands", () => {
  test("error: GoDoxy's plain-text answer; 204 without a body", async () => {
    const m = rules(`
- on: path /a
  do: error 418 "I'm a teapot"
- on: path /b
  do: error 204 ""
`);
    const a = (await run(m, req({ url: "/a" }))).out as Answer;
    assert.equal(a.status, 418);
    assert.equal(a.body, "I'm a teapot\n");
    assert.deepEqual(a.headers.slice(0, 4), [
      "content-type",
      "text/plain; charset=utf-8",
      "x-content-type-options",
      "nosniff",
    ]);
    const b = (await run(m, req({ url: "/b" }))).out as Answer;
    assert.equal(b.status, 204);
    assert.equal(b.body, "");
  });

  test("redirect: 307 to a URL, a path, or a path relative to the request's directory", async () => {
    const m = rules(`
- on: path /abs
  do: redirect https://example.org/x?y=1
- on: path /dir/page
  do: redirect ../other/./here
- on: path /p
  do: redirect /login
`);
    const loc = async (url: string, method = "GET") => {
      const a = (await run(m, req({ url, method }))).out as Answer;
      assert.equal(a.status, 307);
      return { location: a.headers[a.headers.indexOf("location") + 1], body: a.body };
    };
    assert.equal((await loc("/abs")).location, "https://example.org/x?y=1");
    assert.equal((await loc("/dir/page")).location, "/other/here");
    const p = await loc("/p");
    assert.equal(p.location, "/login");
    assert.equal(p.body, '<a href="/login">Temporary Redirect</a>.\n\n');
    assert.equal((await loc("/p", "POST")).body, "");
  });

  test("rewrite: the prefix replaced, the query kept; later conditions see the new path", async () => {
    const m = rules(`
- on: path glob(/api/*)
  do: rewrite /api/ /v2/
- on: path glob(/v2/*)
  do: set header X-Rewritten yes
`);
    const r = req({ url: "/api/users?id=1" });
    assert.equal(await status(m, r), "pass");
    assert.equal(r.url, "/v2/users?id=1");
    assert.deepEqual(header(r, "x-rewritten"), ["yes"]);
  });

  test("set/add/remove header edit the request; resp_header edits the head the client gets", async () => {
    const m = rules(`
- on: method GET
  do: |
    set header X-One 1
    add header X-Two a
    remove header X-Drop
    set resp_header X-Served-By rules
    remove resp_header Server
- on: header X-Two
  do: add resp_header Vary Origin
`);
    const r = req({ headers: ["X-One", "0", "X-One", "00", "X-Two", "b", "x-drop", "z"] });
    assert.equal(await status(m, r), "pass");
    assert.deepEqual(header(r, "x-one"), ["1"]);
    assert.deepEqual(header(r, "x-two"), ["b", "a"]);
    assert.deepEqual(header(r, "x-drop"), []);
    const head = ["Server", "backend", "X-Served-By", "other", "Vary", "Accept"];
    assert.ok(m.head);
    m.head(r, undefined, 200, head);
    assert.deepEqual(head, ["Vary", "Accept", "X-Served-By", "rules", "Vary", "Origin"]);
    // a request no rule with response edits ran for: its head is untouched
    const plain = req({ method: "POST", headers: [] });
    await status(m, plain);
    const h2 = ["Server", "backend"];
    m.head(plain, undefined, 200, h2);
    assert.deepEqual(h2, ["Server", "backend"]);
  });

  test("route: a Reroute outcome; a request handed on too often is a loop (the middleware throws)", async () => {
    const m = rules(`
- on: path /legacy
  do: route old
`);
    assert.equal(await status(m, req({ url: "/legacy" })), "route old");
    const looping = req({ url: "/legacy" }) as IncomingMessage & { [kRerouted]?: number };
    looping[kRerouted] = MAX_ROUTES;
    assert.throws(
      () => m.request(looping, { client: "" }, () => {}),
      /route loop: the request was handed on 8 times/,
    );
  });

  test("rules without resp_header edits have no response phase (nothing on the response path)", () => {
    assert.equal(rules(`- on: method GET\n  do: set header X-A 1\n`).head, undefined);
  });
});
