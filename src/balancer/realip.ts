import { InvalidArgumentError } from "../errors.ts";

export interface RealIpOptions {
  /** Header that carries the client address (default X-Real-IP). */
  header?: string;
  /** Trusted peers: addresses or CIDRs. Empty = nobody is trusted. */
  from?: readonly string[] | string;
  /** Take the right-most address not inside `from` instead of the last one. */
  recursive?: boolean;
}

/** A trusted network: IPv4 as one 32-bit word, IPv6 as four; `mask` per word. */
interface Net {
  v6: boolean;
  words: Uint32Array;
  masks: Uint32Array;
}

/**
 * nginx realip semantics, precomputed once per service: the header is believed only when
 * the TCP peer is inside `from`; repeated lines and comma lists form one list read right to
 * left; ports are stripped; garbage leaves the peer address. Addresses are parsed and matched
 * by hand (no allocation, no native call): this runs on every ip_hash pick.
 */
export class RealIpResolver {
  readonly header: string;
  readonly from: readonly string[];
  readonly recursive: boolean;
  readonly #nets: Net[] = [];
  readonly #any: boolean;
  /** The last peer checked and whether it is trusted: requests mostly come from the same proxies. */
  #lastPeer = "";
  #lastTrusted = false;

  constructor(options: RealIpOptions = {}) {
    const header = options.header ?? "X-Real-IP";
    if (typeof header !== "string" || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(header)) {
      throw new InvalidArgumentError(`options.header: ${JSON.stringify(header)} is not a header name`);
    }
    this.header = header.toLowerCase();
    const from =
      options.from === undefined || options.from === null
        ? []
        : typeof options.from === "string"
          ? options.from.split(",")
          : options.from;
    if (!Array.isArray(from)) {
      throw new InvalidArgumentError("options.from: expected a list of IP addresses or CIDRs");
    }
    const entries: string[] = [];
    from.forEach((f: unknown, i: number) => {
      if (typeof f !== "string") {
        throw new InvalidArgumentError(
          `options.from[${i}]: ${JSON.stringify(f)} is not an IP address or CIDR`,
        );
      }
      if (f.trim() !== "") entries.push(f.trim());
    });
    this.from = entries;
    this.recursive = options.recursive === true;
    for (const entry of entries) this.#nets.push(parseNet(entry));
    this.#any = entries.length > 0;
  }

  /** Whether `address` (the TCP peer, or a hop) is inside `from`. */
  isTrusted(address: string | undefined): boolean {
    if (!this.#any || !address) return false;
    return parseIp(address, 0, address.length, scratch) && this.#inside(scratch);
  }

  #inside(a: Parsed): boolean {
    const nets = this.#nets;
    for (let i = 0; i < nets.length; i++) {
      const n = nets[i];
      if (n.v6) {
        const w = a.v6;
        if (
          ((w[0] ^ n.words[0]) & n.masks[0]) === 0 &&
          ((w[1] ^ n.words[1]) & n.masks[1]) === 0 &&
          ((w[2] ^ n.words[2]) & n.masks[2]) === 0 &&
          ((w[3] ^ n.words[3]) & n.masks[3]) === 0
        )
          return true;
      } else if (a.isV4 && ((a.v4 ^ n.words[0]) & n.masks[0]) === 0) return true;
    }
    return false;
  }

  /**
   * `resolve` for a request: its `headers` are read only when its peer is trusted (a request's
   * header object may be built on first read, which costs more than the answer when nobody is).
   */
  resolveRequest(req: {
    socket: { remoteAddress?: string } | null;
    headers: Record<string, string | string[] | undefined>;
  }): string {
    const peer = req.socket?.remoteAddress;
    if (!this.#any) return normalizePeer(peer);
    return this.resolve(peer, req.headers);
  }

  /** The client address for a request whose TCP peer is `peer` and whose headers are `headers`. */
  resolve(peer: string | undefined, headers: Record<string, string | string[] | undefined>): string {
    const p = normalizePeer(peer);
    if (!this.#any) return p;
    if (p !== this.#lastPeer) {
      this.#lastTrusted = this.isTrusted(p);
      this.#lastPeer = p;
    }
    if (!this.#lastTrusted) return p;
    const raw = headers[this.header];
    if (raw === undefined) return p;
    const text = typeof raw === "string" ? raw : raw.join(",");
    let found: string | undefined;
    let end = text.length;
    // right to left over the comma list, without splitting it
    while (end > 0) {
      const comma = text.lastIndexOf(",", end - 1);
      const entry = parseEntry(text, comma + 1, end);
      end = Math.max(comma, 0);
      if (entry === EMPTY) continue; // `a, , b` and a trailing comma are skipped, as nginx does
      if (entry === undefined) return p; // garbage: keep the peer
      found = entry;
      if (!this.recursive || !this.#inside(scratch)) return entry;
    }
    // every hop is trusted: the left-most is the client
    return found ?? p;
  }
}

/** Strips the IPv4-mapped prefix so `::ffff:1.2.3.4` and `1.2.3.4` are one client. */
export function normalizePeer(peer: string | undefined): string {
  if (!peer) return "";
  if (peer.length > 7 && peer.charCodeAt(0) === 58 && peer.startsWith("::ffff:") && peer.includes(".")) {
    const v4 = peer.slice(7);
    if (parseV4(v4, 0, v4.length) >= 0) return v4;
  }
  return peer;
}

/** One entry of a forwarded-address list: `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]:80`. */
export function parseAddress(entry: string): string | undefined {
  const a = parseEntry(entry, 0, entry.length);
  return a === EMPTY ? undefined : a;
}

// ---- parsing ----

interface Parsed {
  isV4: boolean;
  /** the IPv4 address (also set for IPv4-mapped IPv6) */
  v4: number;
  /** the address as IPv6 words (IPv4 as ::ffff:a.b.c.d) */
  v6: Uint32Array;
}

/** Scratch for the synchronous parse-and-match of one address. */
const scratch: Parsed = { isV4: false, v4: 0, v6: new Uint32Array(4) };
const groups = new Uint16Array(8);
const EMPTY = "";

/** Parses text[start, end) as a header entry; "" when blank, undefined when garbage. Leaves it in `scratch`. */
function parseEntry(text: string, start: number, end: number): string | undefined {
  while (start < end && isSpace(text.charCodeAt(start))) start++;
  while (end > start && isSpace(text.charCodeAt(end - 1))) end--;
  if (start === end) return EMPTY;
  let s = start;
  let e = end;
  if (text.charCodeAt(s) === 91 /* [ */) {
    const close = indexIn(text, "]", s, e);
    if (close < 0) return undefined;
    if (close + 1 < e && !isPort(text, close + 2, e, close + 1)) return undefined;
    s++;
    e = close;
    if (indexIn(text, ":", s, e) < 0) return undefined; // brackets only around IPv6
  } else {
    const colon = indexIn(text, ":", s, e);
    if (colon >= 0 && indexIn(text, ":", colon + 1, e) < 0) {
      // a single colon: IPv4 host:port (IPv6 has at least two)
      if (!isPort(text, colon + 1, e, colon)) return undefined;
      e = colon;
      if (parseV4(text, s, e) < 0) return undefined;
    }
  }
  if (!parseIp(text, s, e, scratch)) return undefined;
  if (scratch.isV4 && indexIn(text, ":", s, e) >= 0) return formatV4(scratch.v4); // ::ffff:a.b.c.d
  return s === 0 && e === text.length ? text : text.slice(s, e);
}

function indexIn(text: string, ch: string, from: number, to: number): number {
  const i = text.indexOf(ch, from);
  return i >= 0 && i < to ? i : -1;
}

function isSpace(c: number): boolean {
  return c === 32 || c === 9;
}

/** text[sep] is ':' and text[from, end) is 1-5 digits. */
function isPort(text: string, from: number, end: number, sep: number): boolean {
  if (text.charCodeAt(sep) !== 58 || from >= end || end - from > 5) return false;
  for (let i = from; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

function formatV4(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

/** Dotted-quad IPv4 in text[start, end) as an unsigned 32-bit number, or -1. No leading zeros. */
function parseV4(text: string, start: number, end: number): number {
  let value = 0;
  let octet = -1;
  let digits = 0;
  let dots = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return -1; // leading zero
      octet = octet < 0 ? c - 48 : octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return -1;
    } else if (c === 46 && digits > 0 && dots < 3) {
      value = value * 256 + octet;
      octet = -1;
      digits = 0;
      dots++;
    } else return -1;
  }
  if (dots !== 3 || digits === 0) return -1;
  return value * 256 + octet;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** IPv4 or IPv6 (with an optional %zone) in text[start, end) into `out`. */
function parseIp(text: string, start: number, end: number, out: Parsed): boolean {
  const v4 = parseV4(text, start, end);
  if (v4 >= 0) {
    out.isV4 = true;
    out.v4 = v4;
    out.v6[0] = 0;
    out.v6[1] = 0;
    out.v6[2] = 0xffff;
    out.v6[3] = v4;
    return true;
  }
  if (!parseV6(text, start, end)) return false;
  const w = out.v6;
  for (let k = 0; k < 4; k++) w[k] = ((groups[2 * k] << 16) | groups[2 * k + 1]) >>> 0;
  out.isV4 = w[0] === 0 && w[1] === 0 && w[2] === 0xffff;
  out.v4 = w[3];
  return true;
}

/** IPv6 text into `groups` (8 hextets); `::` once, an IPv4 tail, and a %zone allowed. */
function parseV6(text: string, start: number, end: number): boolean {
  let e = end;
  const zone = indexIn(text, "%", start, end);
  if (zone >= 0) {
    if (zone === end - 1) return false;
    e = zone;
  }
  const g = parsedGroups;
  let n = 0;
  let gap = -1;
  let i = start;
  if (i < e && text.charCodeAt(i) === 58) {
    if (i + 1 >= e || text.charCodeAt(i + 1) !== 58) return false;
    gap = 0;
    i += 2;
  }
  while (i < e) {
    let j = i;
    let v = 0;
    while (j < e && j - i < 5) {
      const h = hexValue(text.charCodeAt(j));
      if (h < 0) break;
      v = v * 16 + h;
      j++;
    }
    if (j === i) return false;
    if (j < e && text.charCodeAt(j) === 46 /* . */) {
      if (n > 6) return false;
      const tail = parseV4(text, i, e);
      if (tail < 0) return false;
      g[n++] = tail >>> 16;
      g[n++] = tail & 0xffff;
      break;
    }
    if (j - i > 4 || n >= 8) return false;
    g[n++] = v;
    if (j === e) break;
    if (text.charCodeAt(j) !== 58) return false;
    if (j + 1 < e && text.charCodeAt(j + 1) === 58) {
      if (gap >= 0) return false;
      gap = n;
      i = j + 2;
    } else {
      i = j + 1;
      if (i === e) return false;
    }
  }
  if (gap < 0 ? n !== 8 : n > 7) return false;
  const zeros = gap < 0 ? 0 : 8 - n;
  let out = 0;
  for (let k = 0; k < n; k++) {
    if (k === gap) for (let z = 0; z < zeros; z++) groups[out++] = 0;
    groups[out++] = g[k];
  }
  if (gap === n) for (let z = 0; z < zeros; z++) groups[out++] = 0;
  return true;
}
const parsedGroups = new Uint16Array(8);

function parseNet(entry: string): Net {
  const slash = entry.indexOf("/");
  const addr = slash < 0 ? entry : entry.slice(0, slash);
  const p: Parsed = { isV4: false, v4: 0, v6: new Uint32Array(4) };
  if (!parseIp(addr, 0, addr.length, p) || addr.includes("%")) {
    throw new InvalidArgumentError(`options.from: "${entry}" is not an IP address or CIDR`);
  }
  // a plain dotted quad is an IPv4 network; an IPv6 text (even ::ffff:…) is an IPv6 one
  const v6 = addr.includes(":");
  const max = v6 ? 128 : 32;
  let bits = max;
  if (slash >= 0) {
    const text = entry.slice(slash + 1);
    bits = Number(text);
    if (!/^\d{1,3}$/.test(text) || bits > max) {
      throw new InvalidArgumentError(`options.from: "${entry}" has an invalid prefix length (0-${max})`);
    }
  }
  const words = v6 ? Uint32Array.from(p.v6) : Uint32Array.of(p.v4);
  const masks = new Uint32Array(words.length);
  for (let k = 0; k < masks.length; k++) {
    const b = Math.min(32, Math.max(0, bits - 32 * k));
    masks[k] = b === 0 ? 0 : (0xffffffff << (32 - b)) >>> 0;
    words[k] = (words[k] & masks[k]) >>> 0;
  }
  return { v6, words, masks };
}
