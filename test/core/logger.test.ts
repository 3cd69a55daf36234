/** A library user's own logger (not pino) receives switchyard's lines through the Logger interface. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { LoadBalancer, type Logger, Server } from "../../src/index.ts";

function recorder(
  lines: { level: string; bindings: object; obj: unknown; msg?: string }[],
  bindings = {},
): Logger {
  const at =
    (level: string) =>
    (obj: unknown, msg?: string): void => {
      lines.push({ level, bindings, obj, msg });
    };
  return {
    fatal: at("fatal"),
    error: at("error"),
    warn: at("warn"),
    info: at("info"),
    debug: at("debug"),
    trace: at("trace"),
    child: (more) => recorder(lines, { ...bindings, ...more }),
  };
}

test("LoadBalancer logs through a plain object implementing Logger, with the service bound", () => {
  const lines: { level: string; bindings: object; obj: unknown; msg?: string }[] = [];
  const lb = new LoadBalancer({ link: "api", logger: recorder(lines) });
  lb.addServer(new Server({ name: "a", url: "http://127.0.0.1:9" }));
  const added = lines.find((l) => l.msg === "server added");
  assert.ok(added, `a "server added" line, got ${JSON.stringify(lines)}`);
  assert.equal(added.level, "debug");
  assert.deepEqual(added.bindings, { service: "api" });
  assert.deepEqual(added.obj, { server: "a", servers: 1 });
});
