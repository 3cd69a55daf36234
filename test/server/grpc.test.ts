/**
 * gRPC through switchyard: real @grpc/grpc-js servers (h2c backends, `protocol: h2c`) behind
 * `switchyard serve`'s TLS listener (HTTP/2 by ALPN), called by a real grpc-js client. Unary,
 * server streaming, bidi streaming, a non-OK status with details and trailing metadata, and a
 * deadline: each call arrives intact with its status, and calls are balanced across both backends.
 * The service definition is written by hand (JSON messages): no .proto needed.
 */
import * as assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import {
  type Running,
  selfSignedCert,
  splitAddress,
  startSwitchyard,
  tempDir,
} from "../support/switchyard.ts";
import { until } from "../support/until.ts";

type Msg = { text: string; backend?: string; n?: number };

const json = {
  serialize: (v: Msg) => Buffer.from(JSON.stringify(v)),
  deserialize: (b: Buffer) => JSON.parse(b.toString()) as Msg,
};
function method(name: string, requestStream: boolean, responseStream: boolean) {
  return {
    path: `/switchyard.test.Echo/${name}`,
    requestStream,
    responseStream,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  };
}
const ECHO = {
  Echo: method("Echo", false, false),
  Count: method("Count", false, true),
  Chat: method("Chat", true, true),
  Fail: method("Fail", false, false),
  Slow: method("Slow", false, false),
} as const satisfies grpc.ServiceDefinition;

interface Backend {
  name: string;
  port: number;
  server: grpc.Server;
  calls: string[];
  cancelled: number;
}

async function startGrpc(name: string): Promise<Backend> {
  const server = new grpc.Server();
  const b: Backend = { name, port: 0, server, calls: [], cancelled: 0 };
  server.addService(ECHO, {
    Echo(call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) {
      b.calls.push("Echo");
      const md = new grpc.Metadata();
      md.set("x-backend", name);
      call.sendMetadata(md);
      cb(null, { text: call.request.text, backend: name });
    },
    Count(call: grpc.ServerWritableStream<Msg, Msg>) {
      b.calls.push("Count");
      const n = call.request.n ?? 0;
      for (let i = 1; i <= n; i++) call.write({ text: `${call.request.text}-${i}`, n: i, backend: name });
      call.end();
    },
    Chat(call: grpc.ServerDuplexStream<Msg, Msg>) {
      b.calls.push("Chat");
      call.on("data", (m: Msg) => call.write({ text: m.text.toUpperCase(), backend: name }));
      call.on("end", () => call.end());
    },
    Fail(call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) {
      b.calls.push("Fail");
      const md = new grpc.Metadata();
      md.set("x-reason", `rejected by ${name}`);
      cb({ code: grpc.status.INVALID_ARGUMENT, details: `bad input: ${call.request.text}`, metadata: md });
    },
    Slow(call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) {
      b.calls.push("Slow");
      const timer = setTimeout(() => cb(null, { text: "too late", backend: name }), 10_000);
      call.on("cancelled", () => {
        b.cancelled++;
        clearTimeout(timer);
      });
    },
  });
  b.port = await new Promise<number>((ok, fail) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) =>
      err ? fail(err) : ok(port),
    ),
  );
  return b;
}

describe("gRPC through switchyard (TLS h2 front, h2c backends)", { timeout: 120_000 }, () => {
  const tmp = tempDir();
  let backends: Backend[];
  let sy: Running;
  let client: grpc.Client & Record<string, (...a: unknown[]) => unknown>;

  before(async () => {
    backends = [await startGrpc("g1"), await startGrpc("g2")];
    const { cert } = selfSignedCert(tmp.dir);
    const file = tmp.write(
      "grpc.yaml",
      `listen:
  - { address: "127.0.0.1:0", tls: { cert: cert.pem, key: key.pem } }
admin: 127.0.0.1:0
services:
  grpc:
    hosts: ["*"]
    protocol: h2c
    healthcheck: { disable: true }
    servers:
${backends.map((b) => `      - { name: ${b.name}, url: "http://127.0.0.1:${b.port}" }`).join("\n")}
`,
    );
    sy = await startSwitchyard(["serve", "-c", file]);
    const [, port] = splitAddress(sy.proxy[0]);
    const Client = grpc.makeGenericClientConstructor(ECHO, "Echo");
    client = new Client(`localhost:${port}`, grpc.credentials.createSsl(readFileSync(cert))) as typeof client;
  });

  after(async () => {
    client?.close();
    const exit = await sy?.stop();
    for (const b of backends ?? []) b.server.forceShutdown();
    tmp.remove();
    assert.equal(exit?.code, 0);
  });

  function unary(name: string, req: Msg, options: grpc.CallOptions = {}) {
    return new Promise<{ reply?: Msg; err?: grpc.ServiceError; headers?: grpc.Metadata }>((resolve) => {
      let headers: grpc.Metadata | undefined;
      const call = client[name](
        req,
        new grpc.Metadata(),
        options,
        (err: grpc.ServiceError | null, reply: Msg) => resolve(err ? { err, headers } : { reply, headers }),
      ) as grpc.ClientUnaryCall;
      call.on("metadata", (md: grpc.Metadata) => (headers = md));
    });
  }

  test("unary calls arrive intact with their metadata and status, balanced across both backends", async () => {
    const big = "x".repeat(200_000);
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const text = i === 0 ? big : `hello ${i} ✓`;
      const { reply, err, headers } = await unary("Echo", { text });
      assert.equal(err, undefined);
      assert.equal(reply?.text, text);
      assert.equal(headers?.get("x-backend")[0], reply?.backend);
      seen.add(reply!.backend!);
    }
    assert.deepEqual([...seen].sort(), ["g1", "g2"]);
  });

  test("server streaming: every message in order, then OK", async () => {
    const call = client.Count({ text: "tick", n: 20 }) as grpc.ClientReadableStream<Msg>;
    const got: Msg[] = [];
    call.on("data", (m: Msg) => got.push(m));
    const status = await new Promise<grpc.StatusObject>((r) => call.on("status", r));
    assert.equal(status.code, grpc.status.OK);
    assert.deepEqual(
      got.map((m) => m.text),
      Array.from({ length: 20 }, (_, i) => `tick-${i + 1}`),
    );
    assert.equal(new Set(got.map((m) => m.backend)).size, 1, "one stream, one backend");
  });

  test("bidi streaming: each message answered on the same stream, in order", async () => {
    const call = client.Chat() as grpc.ClientDuplexStream<Msg, Msg>;
    const got: string[] = [];
    const done = new Promise<grpc.StatusObject>((r) => call.on("status", r));
    const words = ["alpha", "beta", "gamma", "delta"];
    for (const w of words) {
      const answered = new Promise<void>((r) =>
        call.once("data", (m: Msg) => {
          got.push(m.text);
          r();
        }),
      );
      call.write({ text: w });
      await answered; // a real round trip per message: no buffering of the stream
    }
    call.end();
    assert.equal((await done).code, grpc.status.OK);
    assert.deepEqual(got, ["ALPHA", "BETA", "GAMMA", "DELTA"]);
  });

  test("a non-OK status reaches the client with its details and trailing metadata", async () => {
    const { err } = await unary("Fail", { text: "nope" });
    assert.equal(err?.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(err?.details, "bad input: nope");
    assert.match(String(err?.metadata.get("x-reason")[0]), /^rejected by g[12]$/);
  });

  test("a deadline: the client gets DEADLINE_EXCEEDED and the backend hears the cancellation", async () => {
    const before = backends.reduce((n, b) => n + b.cancelled, 0);
    const { err } = await unary("Slow", { text: "wait" }, { deadline: Date.now() + 300 });
    assert.equal(err?.code, grpc.status.DEADLINE_EXCEEDED);
    await until(
      () => backends.reduce((n, b) => n + b.cancelled, 0) > before,
      5000,
      "the backend's call cancelled",
    );
    // the proxy is fine afterwards: no server was taken out by the cancelled stream
    const after = await Promise.all([unary("Echo", { text: "a" }), unary("Echo", { text: "b" })]);
    assert.deepEqual(after.map((r) => r.reply?.backend ?? r.err?.message).sort(), ["g1", "g2"]);
  });
});
