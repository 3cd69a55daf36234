import * as assert from "node:assert/strict";
import { test } from "node:test";
import { createParser, methodName, type ParserCallbacks } from "./binding.ts";

interface Message {
  method: string;
  url: string;
  status: number;
  headers: string[];
  body: string;
}

interface Log {
  messages: Message[];
  current: Message | null;
}

const CALLBACKS: ParserCallbacks<Log> = {
  begin() {
    this.conn!.current = { method: "", url: "", status: 0, headers: [], body: "" };
  },
  headersComplete(_major, _minor, headers, method, url, status) {
    const m = this.conn!.current!;
    // a request has no status, a response no method
    m.method = methodName(method) ?? "";
    m.url = url;
    m.status = status ?? 0;
    m.headers = [...headers];
    return 0;
  },
  body(chunk, start, length) {
    const piece = start === undefined ? chunk : chunk.subarray(start, start + (length ?? 0));
    this.conn!.current!.body += piece.toString("latin1");
  },
  complete() {
    const log = this.conn!;
    log.messages.push(log.current!);
    log.current = null;
  },
};

/** Parses `bytes` handed over in pieces of `step` bytes (0: all at once). */
function parse(type: "request" | "response", bytes: string, step = 0): Message[] {
  const log: Log = { messages: [], current: null };
  const parser = createParser(type, log, CALLBACKS, {});
  const data = Buffer.from(bytes, "latin1");
  const size = step === 0 ? data.length : step;
  for (let i = 0; i < data.length; i += size) {
    const r = parser.execute(data.subarray(i, i + size));
    if (r instanceof Error) throw r;
  }
  parser.close();
  return log.messages;
}

const TRAILER_POST =
  "POST /one HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n" +
  "3\r\nabc\r\n0\r\nX-Leak: 1\r\nHost: evil.test\r\n\r\n";

test("request parser: a request's trailers reach neither it nor the requests after it", () => {
  const bytes = `${TRAILER_POST}GET /two HTTP/1.1\r\nHost: a.test\r\n\r\nGET /three HTTP/1.1\r\nHost: b.test\r\n\r\n`;
  // whole, and at every split size down to one byte a read (the binding's slow form)
  for (const step of [0, 1, 2, 3, 7, 16, 61]) {
    const msgs = parse("request", bytes, step);
    assert.deepEqual(
      msgs.map((m) => [m.method, m.url, m.headers, m.body]),
      [
        ["POST", "/one", ["Host", "a.test", "Transfer-Encoding", "chunked"], "abc"],
        ["GET", "/two", ["Host", "a.test"], ""],
        ["GET", "/three", ["Host", "b.test"], ""],
      ],
      `split every ${step} bytes`,
    );
  }
});

test("request parser: a long head (handed over in pieces) after trailers is whole and alone", () => {
  let long = "GET /long HTTP/1.1\r\nHost: a.test\r\n";
  const expected = ["Host", "a.test"];
  for (let i = 0; i < 70; i++) {
    long += `X-H${i}: v${i}\r\n`;
    expected.push(`X-H${i}`, `v${i}`);
  }
  long += "\r\n";
  // more than 32 trailer fields: the binding flushes them mid-trailer, before message-complete
  let manyTrailers = "POST /t HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n";
  for (let i = 0; i < 40; i++) manyTrailers += `X-T${i}: t\r\n`;
  manyTrailers += "\r\n";
  for (const step of [0, 5]) {
    const msgs = parse("request", manyTrailers + long + long, step);
    assert.equal(msgs.length, 3);
    assert.deepEqual(msgs[0].headers, ["Host", "a.test", "Transfer-Encoding", "chunked"]);
    for (const m of msgs.slice(1)) {
      assert.equal(m.url, "/long");
      assert.deepEqual(m.headers, expected);
    }
  }
});

test("response parser: trailers (Set-Cookie, Location, Host) stay out of the next response", () => {
  const bytes =
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain" +
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Set-Cookie\r\n\r\n" +
    "4\r\ntrai\r\n1\r\nl\r\n0\r\nSet-Cookie: session=attacker\r\nLocation: https://evil.example/\r\n" +
    "Host: evil.test\r\n\r\n" +
    "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" +
    "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno";
  for (const step of [0, 1, 4, 9, 33]) {
    const msgs = parse("response", bytes, step);
    assert.deepEqual(
      msgs.map((m) => [m.status, m.url, m.headers, m.body]),
      [
        [200, "", ["Content-Length", "5"], "plain"],
        [200, "", ["Transfer-Encoding", "chunked", "Trailer", "Set-Cookie"], "trail"],
        [103, "", ["Link", "</a.css>"], ""],
        [404, "", ["Content-Length", "2"], "no"],
      ],
      `split every ${step} bytes`,
    );
  }
});

test("a Content-Length among the trailers of a chunked message is a parse error, both ways", () => {
  const request = `${TRAILER_POST.slice(0, -2)}Content-Length: 5\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\n\r\n`;
  const response =
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nContent-Length: 9\r\n\r\n";
  for (const [type, bytes] of [
    ["request", request],
    ["response", response],
  ] as const) {
    assert.throws(() => parse(type, bytes), { code: "HPE_INVALID_CONTENT_LENGTH" }, type);
  }
});
