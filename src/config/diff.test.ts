import * as assert from "node:assert/strict";
import { test } from "node:test";
import { diffConfig, parseConfig } from "./load.ts";

const BASE = `services:
  api:
    hosts: [api.example.com]
    mode: round_robin
    servers:
      - { name: api-1, url: "http://10.0.0.1:80", weight: 1 }
      - { name: api-2, url: "http://10.0.0.2:80", weight: 1 }
      - { name: api-3, url: "http://10.0.0.3:80", weight: 1 }
  web:
    servers: [http://10.0.1.1:80]
`;

const parse = (text: string) => parseConfig(text, "switchyard.yaml", {}, {});

test("identical configurations: an empty diff", () => {
  const d = diffConfig(parse(BASE), parse(BASE));
  assert.equal(d.empty, true);
  assert.deepEqual(d.addedServices, []);
  assert.deepEqual(d.removedServices, []);
  assert.deepEqual(d.changedServices, []);
});

test("added and removed services", () => {
  const next = parse(BASE.replace("  web:\n", "  www:\n"));
  const d = diffConfig(parse(BASE), next);
  assert.equal(d.empty, false);
  assert.deepEqual(
    d.addedServices.map((s) => s.name),
    ["www"],
  );
  assert.deepEqual(
    d.removedServices.map((s) => s.name),
    ["web"],
  );
  assert.deepEqual(d.changedServices, []);
});

test("servers added, removed, re-weighted and replaced, matched by host:port", () => {
  const next = parse(`services:
  api:
    hosts: [api.example.com]
    mode: round_robin
    servers:
      - { name: api-1, url: "http://10.0.0.1", weight: 5 }
      - { name: renamed, url: "http://10.0.0.2:80", weight: 1 }
      - { name: api-4, url: "http://10.0.0.4:80", weight: 1 }
  web:
    servers: [http://10.0.1.1:80]
`);
  const d = diffConfig(parse(BASE), next);
  assert.equal(d.changedServices.length, 1);
  const s = d.changedServices[0];
  assert.equal(s.name, "api");
  assert.deepEqual(
    s.addedServers.map((x) => x.name),
    ["api-4"],
  );
  assert.deepEqual(
    s.removedServers.map((x) => x.name),
    ["api-3"],
  );
  assert.deepEqual(
    s.reweightedServers.map((x) => [x.before.weight, x.after.weight]),
    [[1, 5]],
  );
  assert.deepEqual(
    s.replacedServers.map((x) => [x.before.name, x.after.name]),
    [["api-2", "renamed"]],
  );
  assert.deepEqual(s.changedSettings, []);
  assert.equal(s.after, next.services.api);
});

test("changed settings are named; server lists untouched", () => {
  const next = parse(
    BASE.replace(
      "mode: round_robin",
      "mode: ip_hash\n    sticky: true\n    healthcheck: { path: /h }",
    ).replace("[api.example.com]", "[api.example.com, api.example.org]"),
  );
  const d = diffConfig(parse(BASE), next);
  assert.equal(d.changedServices.length, 1);
  assert.deepEqual(d.changedServices[0].changedSettings, ["hosts", "mode", "sticky", "healthcheck"]);
  assert.deepEqual(d.changedServices[0].addedServers, []);
  assert.deepEqual(d.changedServices[0].removedServers, []);
});

test("process-level changes are flagged separately", () => {
  const d = diffConfig(
    parse(BASE),
    parse(
      `listen: 127.0.0.1:9000\nadmin: 127.0.0.1:9001\ntimeouts: { connect: 1s }\nworkers: 2\nlog_level: debug\n${BASE}`,
    ),
  );
  assert.deepEqual(
    [d.listen, d.admin, d.timeouts, d.workers, d.logLevel, d.empty],
    [true, true, true, true, true, false],
  );
  assert.deepEqual(d.changedServices, []);
});
