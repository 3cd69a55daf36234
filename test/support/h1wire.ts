/**
 * HTTP/1.1 on the wire for tests that must see exact bytes: a hand-written reader of requests and
 * responses (heads, Content-Length, chunked bodies with their trailers, close-delimited bodies,
 * 1xx) independent of llhttp, and a socket wrapper that reads messages off a raw connection.
 */
import type * as net from "node:net";

export interface WireMessage {
  /** Requests: method and target. */
  method: string;
  target: string;
  /** Responses: status code and reason. */
  status: number;
  reason: string;
  version: string;
  /** Header fields in order, names as sent. */
  headers: [string, string][];
  body: Buffer;
  /** Trailer fields of a chunked body. */
  trailers: [string, string][];
  framing: "none" | "length" | "chunked" | "close";
}

/** The first value of header `name` (case-insensitive). */
export function field(fields: readonly [string, string][], name: string): string | undefined {
  const n = name.toLowerCase();
  return fields.find(([k]) => k.toLowerCase() === n)?.[1];
}

function parseFields(lines: string[]): [string, string][] {
  return lines.map((l): [string, string] => {
    const i = l.indexOf(":");
    if (i <= 0) throw new Error(`bad header line ${JSON.stringify(l)}`);
    return [l.slice(0, i), l.slice(i + 1).trim()];
  });
}

export interface ReadOptions {
  /** The connection has ended: a close-delimited body is complete. */
  ended?: boolean;
  /** A response to HEAD: no body whatever the head says. */
  noBody?: boolean;
}

/**
 * One message from the start of `buf`: [bytes used, message], or null when more bytes are needed.
 * Throws on bytes that are not HTTP/1.1.
 */
export function readMessage(
  buf: Buffer,
  kind: "request" | "response",
  options: ReadOptions = {},
): [number, WireMessage] | null {
  const end = buf.indexOf("\r\n\r\n");
  if (end < 0) return null;
  const [first, ...rest] = buf.subarray(0, end).toString("latin1").split("\r\n");
  const m: WireMessage = {
    method: "",
    target: "",
    status: 0,
    reason: "",
    version: "",
    headers: rest.length === 1 && rest[0] === "" ? [] : parseFields(rest),
    body: Buffer.alloc(0),
    trailers: [],
    framing: "none",
  };
  if (kind === "request") {
    const r = /^([A-Z]+) (\S+) HTTP\/(\d\.\d)$/.exec(first);
    if (r === null) throw new Error(`bad request line ${JSON.stringify(first)}`);
    [, m.method, m.target, m.version] = r;
  } else {
    const r = /^HTTP\/(\d\.\d) (\d{3}) ?(.*)$/.exec(first);
    if (r === null) throw new Error(`bad status line ${JSON.stringify(first)}`);
    m.version = r[1];
    m.status = Number(r[2]);
    m.reason = r[3];
  }
  let pos = end + 4;
  const s = m.status;
  if (kind === "response" && (options.noBody || s < 200 || s === 204 || s === 304)) return [pos, m];
  const te = field(m.headers, "transfer-encoding");
  if (te !== undefined && /chunked/i.test(te)) {
    m.framing = "chunked";
    const parts: Buffer[] = [];
    for (;;) {
      const le = buf.indexOf("\r\n", pos);
      if (le < 0) return null;
      const sizeText = buf.subarray(pos, le).toString("latin1").split(";")[0].trim();
      if (!/^[0-9a-fA-F]+$/.test(sizeText)) throw new Error(`bad chunk size ${JSON.stringify(sizeText)}`);
      const size = Number.parseInt(sizeText, 16);
      if (size === 0) {
        pos = le + 2;
        break;
      }
      if (buf.length < le + 4 + size) return null;
      if (buf.subarray(le + 2 + size, le + 4 + size).toString("latin1") !== "\r\n") {
        throw new Error("chunk not followed by CRLF");
      }
      parts.push(buf.subarray(le + 2, le + 2 + size));
      pos = le + 4 + size;
    }
    // trailer section: lines up to an empty one
    const lines: string[] = [];
    for (;;) {
      const le = buf.indexOf("\r\n", pos);
      if (le < 0) return null;
      const line = buf.subarray(pos, le).toString("latin1");
      pos = le + 2;
      if (line === "") break;
      lines.push(line);
    }
    m.trailers = parseFields(lines);
    m.body = Buffer.concat(parts);
    return [pos, m];
  }
  const cl = field(m.headers, "content-length");
  if (cl !== undefined) {
    m.framing = "length";
    const len = Number(cl);
    if (buf.length < pos + len) return null;
    m.body = Buffer.from(buf.subarray(pos, pos + len));
    return [pos + len, m];
  }
  if (kind === "request") return [pos, m];
  if (!options.ended) return null;
  m.framing = "close";
  m.body = Buffer.from(buf.subarray(pos));
  return [buf.length, m];
}

/** A raw socket read message by message. */
export class Wire {
  readonly socket: net.Socket;
  readonly closed: Promise<void>;
  ended = false;
  #parts: Buffer[] = [];
  #wake: (() => void) | null = null;

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on("error", () => {});
    socket.on("data", (d: Buffer) => {
      this.#parts.push(d);
      this.#poke();
    });
    socket.on("end", () => {
      this.ended = true;
      this.#poke();
    });
    this.closed = new Promise((resolve) =>
      socket.once("close", () => {
        this.ended = true;
        this.#poke();
        resolve();
      }),
    );
  }

  #poke(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  /** Bytes received and not yet read. */
  get pending(): Buffer {
    if (this.#parts.length > 1) this.#parts = [Buffer.concat(this.#parts)];
    return this.#parts[0] ?? Buffer.alloc(0);
  }

  /** The next message; null when the connection ended cleanly before one began. */
  async read(kind: "request" | "response", options: { noBody?: boolean } = {}): Promise<WireMessage | null> {
    for (;;) {
      const buf = this.pending;
      const r = readMessage(buf, kind, { ...options, ended: this.ended });
      if (r !== null) {
        this.#parts = r[0] < buf.length ? [buf.subarray(r[0])] : [];
        return r[1];
      }
      if (this.ended) {
        if (buf.length === 0) return null;
        throw new Error(
          `connection ended inside a message: ${JSON.stringify(buf.toString("latin1").slice(0, 300))}`,
        );
      }
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
  }
}
