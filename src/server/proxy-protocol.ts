/**
 * PROXY protocol v1 (text) and v2 (binary) on a listener, as HAProxy's spec describes them
 * (https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt): switchyard behind an L4 balancer
 * (a cloud NLB, HAProxy in TCP mode, IPVS) learns the client's address from the header the balancer
 * writes first on each connection. That address then replaces the TCP peer everywhere
 * (`socket.remoteAddress`: real-IP trust checks, forwarded headers, ip_hash, logs).
 *
 * Only peers inside `trusted` may send one; anyone else's connection is closed at once (a client
 * that could send its own header could claim any address). A header that is malformed, too long or
 * does not arrive within the timeout closes the connection without a response, and is counted.
 *
 * Written here rather than taken from npm: the packages that parse it (`proxy-protocol-js`, the
 * best kept) take a whole buffer and leave the socket side — reading a header split across
 * reads, bounding its size and time, handing the rest of the bytes on — to the caller, which is
 * most of the work; the parsing itself is the hundred lines below.
 */

import type * as net from "node:net";
import { isIPv4, isIPv6 } from "node:net";

export interface ProxyAddress {
  address: string;
  port: number;
  family: "IPv4" | "IPv6";
}

export interface ProxyHeader {
  version: 1 | 2;
  /** `local` (v2 LOCAL, v1 UNKNOWN): the balancer's own connection (a health check); keep the TCP peer. */
  command: "proxy" | "local";
  /** The client, for a PROXY command over TCP/UDP; null otherwise (UNKNOWN, unix sockets). */
  source: ProxyAddress | null;
  destination: ProxyAddress | null;
}

export type ParseResult =
  | { ok: true; header: ProxyHeader; length: number }
  | { ok: false; reason: "malformed" }
  | null; // more bytes needed

const V1_PREFIX = Buffer.from("PROXY ", "latin1");
const V1_MAX = 107; // the whole line with its CRLF (spec §2.1)
const V2_SIG = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** Longest v2 header accepted (address block and TLVs): cloud balancers send a few hundred bytes. */
export const V2_MAX = 16 + 4096;

const MALFORMED = { ok: false, reason: "malformed" } as const;

/** Parses a PROXY header at the start of `buf`. */
export function parseProxyHeader(buf: Buffer): ParseResult {
  if (buf.length === 0) return null;
  if (buf[0] === 0x50 /* P */) return parseV1(buf);
  if (buf[0] === 0x0d) return parseV2(buf);
  return MALFORMED;
}

function startsLike(buf: Buffer, sig: Buffer): boolean {
  const n = Math.min(buf.length, sig.length);
  return buf.subarray(0, n).equals(sig.subarray(0, n));
}

const PORT = /^(?:0|[1-9][0-9]{0,4})$/;

function parseV1(buf: Buffer): ParseResult {
  if (!startsLike(buf, V1_PREFIX)) return MALFORMED;
  const end = buf.indexOf("\r\n", 0, "latin1");
  if (end === -1) return buf.length >= V1_MAX ? MALFORMED : null;
  if (end + 2 > V1_MAX) return MALFORMED;
  const parts = buf.toString("latin1", V1_PREFIX.length, end).split(" ");
  const proto = parts[0];
  if (proto === "UNKNOWN") {
    // "the receiver must ignore anything presented before the CRLF is found"
    return {
      ok: true,
      length: end + 2,
      header: { version: 1, command: "local", source: null, destination: null },
    };
  }
  if ((proto !== "TCP4" && proto !== "TCP6") || parts.length !== 5) return MALFORMED;
  const [, src, dst, sport, dport] = parts;
  const valid = proto === "TCP4" ? isIPv4 : isIPv6;
  if (!valid(src) || !valid(dst) || !PORT.test(sport) || !PORT.test(dport)) return MALFORMED;
  const sp = Number(sport);
  const dp = Number(dport);
  if (sp > 65535 || dp > 65535) return MALFORMED;
  const family = proto === "TCP4" ? "IPv4" : "IPv6";
  return {
    ok: true,
    length: end + 2,
    header: {
      version: 1,
      command: "proxy",
      source: { address: src, port: sp, family },
      destination: { address: dst, port: dp, family },
    },
  };
}

function parseV2(buf: Buffer): ParseResult {
  if (!startsLike(buf, V2_SIG)) return MALFORMED;
  if (buf.length < 16) return null;
  const verCmd = buf[12];
  if (verCmd >> 4 !== 2) return MALFORMED;
  const cmd = verCmd & 0x0f;
  if (cmd > 1) return MALFORMED;
  const famProto = buf[13];
  const len = buf.readUInt16BE(14);
  if (16 + len > V2_MAX) return MALFORMED;
  if (buf.length < 16 + len) return null;
  const total = 16 + len;
  if (cmd === 0) {
    // LOCAL: the balancer's own connection; the address block (if any) is ignored
    return {
      ok: true,
      length: total,
      header: { version: 2, command: "local", source: null, destination: null },
    };
  }
  const family = famProto >> 4;
  const proto = famProto & 0x0f;
  if (proto > 2 || family > 3) return MALFORMED;
  if (family === 1) {
    if (len < 12) return MALFORMED;
    const src = `${buf[16]}.${buf[17]}.${buf[18]}.${buf[19]}`;
    const dst = `${buf[20]}.${buf[21]}.${buf[22]}.${buf[23]}`;
    return {
      ok: true,
      length: total,
      header: {
        version: 2,
        command: "proxy",
        source: { address: src, port: buf.readUInt16BE(24), family: "IPv4" },
        destination: { address: dst, port: buf.readUInt16BE(26), family: "IPv4" },
      },
    };
  }
  if (family === 2) {
    if (len < 36) return MALFORMED;
    return {
      ok: true,
      length: total,
      header: {
        version: 2,
        command: "proxy",
        source: { address: ipv6(buf, 16), port: buf.readUInt16BE(48), family: "IPv6" },
        destination: { address: ipv6(buf, 32), port: buf.readUInt16BE(50), family: "IPv6" },
      },
    };
  }
  if (family === 3 && len < 216) return MALFORMED;
  // UNSPEC or a unix socket: no address to take; the TCP peer stays
  return {
    ok: true,
    length: total,
    header: { version: 2, command: "proxy", source: null, destination: null },
  };
}

/** An IPv6 address in the compressed form Node itself reports (`::1`, `::ffff:1.2.3.4`). */
function ipv6(buf: Buffer, at: number): string {
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push(buf.readUInt16BE(at + i * 2));
  // an IPv4-mapped address, as Node shows a v4 client on a dual-stack socket
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    return `::ffff:${buf[at + 12]}.${buf[at + 13]}.${buf[at + 14]}.${buf[at + 15]}`;
  }
  // the longest run of zero words (two or more) becomes "::"
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (best === -1) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
}

// ---- on a listener ------------------------------------------------------------------------------

export type ProxyProtocolError = "untrusted" | "malformed" | "timeout" | "closed";

export interface ProxyProtocolOptions {
  /** Whether the TCP peer may send a header. */
  isTrusted(address: string | undefined): boolean;
  /** How long the header may take to arrive (ms). */
  timeout: number;
  /** The header was read: the socket (its address replaced, the rest of its bytes unread) goes on. */
  accept(socket: net.Socket, header: ProxyHeader): void;
  /** The connection was closed without a response. */
  refuse(reason: ProxyProtocolError, socket: net.Socket): void;
}

/** Set on a socket whose addresses came from a PROXY header. */
export const kProxied: unique symbol = Symbol("switchyard.proxied");

/**
 * Reads the PROXY header off a fresh connection, then hands the socket on with `remoteAddress`,
 * `remotePort` and `remoteFamily` those of the client the header names.
 */
export function readProxyHeader(socket: net.Socket, o: ProxyProtocolOptions): void {
  if (!o.isTrusted(socket.remoteAddress)) {
    socket.destroy();
    o.refuse("untrusted", socket);
    return;
  }
  let buf: Buffer | null = null;
  let done = false;
  const finish = (reason: ProxyProtocolError | null): boolean => {
    if (done) return false;
    done = true;
    clearTimeout(timer);
    socket.off("data", onData);
    socket.off("end", onEnd);
    socket.off("close", onEnd);
    if (reason !== null) {
      socket.destroy();
      o.refuse(reason, socket);
    }
    return true;
  };
  const onData = (chunk: Buffer) => {
    buf = buf === null ? chunk : Buffer.concat([buf, chunk]);
    const r = parseProxyHeader(buf);
    if (r === null) return;
    if (!r.ok) {
      finish("malformed");
      return;
    }
    const rest = buf.subarray(r.length);
    socket.pause();
    finish(null);
    if (rest.length > 0) socket.unshift(rest);
    if (r.header.source !== null) applyAddress(socket, r.header.source);
    // as a fresh connection: the next 'data' listener starts the flow
    (socket as { readableFlowing: boolean | null }).readableFlowing = null;
    o.accept(socket, r.header);
  };
  const onEnd = () => finish("closed");
  const timer = setTimeout(() => finish("timeout"), o.timeout);
  timer.unref();
  socket.on("error", noop);
  socket.on("data", onData);
  socket.once("end", onEnd);
  socket.once("close", onEnd);
}

function applyAddress(socket: net.Socket, a: ProxyAddress): void {
  Object.defineProperty(socket, "remoteAddress", { value: a.address, configurable: true });
  Object.defineProperty(socket, "remotePort", { value: a.port, configurable: true });
  Object.defineProperty(socket, "remoteFamily", { value: a.family, configurable: true });
  (socket as net.Socket & { [kProxied]?: ProxyAddress })[kProxied] = a;
}

/**
 * A TLS socket over a proxied connection reports the TCP peer of its handle: give it the address
 * the header named too.
 */
export function adoptProxiedAddress(tlsSocket: net.Socket): void {
  const parent = (tlsSocket as { _parent?: net.Socket & { [kProxied]?: ProxyAddress } })._parent;
  const a = parent?.[kProxied];
  if (a !== undefined) applyAddress(tlsSocket, a);
}

function noop(): void {}
