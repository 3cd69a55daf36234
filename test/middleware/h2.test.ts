import * as assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { gunzipSync } from "node:zlib";
import {
  type Running,
  selfSignedCert,
  splitAddress,
  startSwitchyard,
  tempDir,
} from "../support/switchyard.ts";

const tmp = tempDir();
let sy: Running;
let backend: http.Server;
let ca: Buffer;
const text = "an HTTP/2 client gets compressed text too. ".repeat(100);

before(async () => {
  backend = http.createServer((req, res) => {
    res.writeHead(200, {
      "content-type": "text/plain",
      "x-backend": "yes",
      server: "b",
      "x-path": req.url ?? "",
    });
    res.end(text);
  });
  await new Promise<void>((ok) => backend.listen(0, "127.0.0.1", ok));
  const { cert, key } = selfSignedCert(tmp.dir);
  ca = readFileSync(cert);
  const file = tmp.write(
    "switchyard.yaml",
    `listen:
  - { address: "127.0.0.1:0", tls: { cert: ${cert}, key: ${key} } }
admin: 127.0.0.1:0
services:
  web:
    hosts: [localhost]
    paths: [/app/]
    strip_prefix: true
    middlewares:
      - response_headers: { set: { X-Frame-Options: DENY }, remove: [Server] }
      - compress: { min_length: 100 }
    servers: ["http://127.0.0.1:${(backend.address() as AddressInfo).port}"]
`,
  );
  sy = await startSwitchyard(["serve", "-c", file]);
});
after(async () => {
  await sy?.stop();
  backend.close();
  backend.closeAllConnections();
  tmp.remove();
});

test("HTTP/2 front: path routing, response header edits and gzip keep the backend's own headers", async () => {
  const [, port] = splitAddress(sy.proxy[0]);
  const session = http2.connect(`https://localhost:${port}`, { ca, servername: "localhost" });
  try {
    const { headers, body } = await new Promise<{ headers: http2.IncomingHttpHeaders; body: Buffer }>(
      (ok, fail) => {
        const req = session.request({ ":path": "/app/x", "accept-encoding": "gzip" });
        let headers: http2.IncomingHttpHeaders = {};
        const chunks: Buffer[] = [];
        req.on("response", (h) => (headers = h));
        req.on("data", (c: Buffer) => chunks.push(c));
        req.on("end", () => ok({ headers, body: Buffer.concat(chunks) }));
        req.on("error", fail);
        req.end();
      },
    );
    assert.equal(headers[":status"], 200);
    assert.equal(headers["x-backend"], "yes");
    assert.equal(headers["x-path"], "/x");
    assert.equal(headers["x-frame-options"], "DENY");
    assert.equal(headers.server, undefined);
    assert.equal(headers["content-encoding"], "gzip");
    assert.equal(gunzipSync(body).toString(), text);
  } finally {
    session.close();
  }
});
