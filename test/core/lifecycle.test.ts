import * as assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";

const NODE = fileURLToPath(new URL("../../node_modules/.bin/node", import.meta.url));
const FIXTURE = fileURLToPath(new URL("./fixtures/lifecycle.ts", import.meta.url));

describe("lifecycle", () => {
  for (const mode of ["round_robin", "least_conn", "ip_hash"]) {
    test(`aborting the signal leaves no handle open: the process exits by itself (${mode})`, {
      timeout: 20000,
    }, async () => {
      const child = spawn(NODE, [FIXTURE, mode], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      let err = "";
      child.stdout.setEncoding("utf8").on("data", (d: string) => {
        out += d;
      });
      child.stderr.setEncoding("utf8").on("data", (d: string) => {
        err += d;
      });
      const timer = setTimeout(() => child.kill("SIGKILL"), 10000);
      const [code, signal] = (await once(child, "exit")) as [number | null, string | null];
      clearTimeout(timer);
      assert.equal(signal, null, `the fixture did not exit within 10s (killed); stderr: ${err}`);
      assert.equal(code, 0, `exit code; stderr: ${err}`);
      assert.equal(out.trim(), "ok 3 false", "served a request through the balancer and stopped its monitor");
    });
  }
});
