import { BlockList, isIP } from "node:net";
import { InvalidArgumentError } from "../errors.ts";

export interface RealIpOptions {
  /** Header that carries the client address (default X-Real-IP). */
  header?: string;
  /** Trusted peers: addresses or CIDRs. Empty = nobody is trusted. */
  from?: readonly string[] | string;
  /** Take the right-most address not inside `from` instead of the last one. */
  recursive?: boolean;
}

/**
 * nginx realip semantics, precomputed once per service: the header is believed only when
 * the TCP peer is inside `from`; repeated lines and comma lists form one list read right to
 * left; ports are stripped; garbage leaves the peer address.
 */
export class RealIpResolver {
  readonly header: string;
  readonly from: readonly string[];
  readonly recursive: boolean;
  readonly #trusted: BlockList;
  readonly #any: boolean;

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
    this.from = from.map((f, i) => {
      if (typeof f !== "string") {
        throw new InvalidArgumentError(
          `options.from[${i}]: ${JSON.stringify(f)} is not an IP address or CIDR`,
        );
      }
      return f.trim();
    });
    this.from = this.from.filter((f) => f !== "");
    this.recursive = options.recursive === true;
    this.#trusted = new BlockList();
    for (const entry of this.from) addTrusted(this.#trusted, entry);
    this.#any = this.from.length > 0;
  }

  /** Whether the TCP peer (or any address) is inside `from`. */
  isTrusted(address: string | undefined): boolean {
    if (!this.#any || !address) return false;
    address = normalizePeer(address);
    const family = isIP(address);
    if (family === 0) return false;
    return this.#trusted.check(address, family === 6 ? "ipv6" : "ipv4");
  }

  /** The client address for a request whose TCP peer is `peer` and whose headers are `headers`. */
  resolve(peer: string | undefined, headers: Record<string, string | string[] | undefined>): string {
    const p = normalizePeer(peer);
    if (!this.#any || !this.isTrusted(p)) return p;
    const raw = headers[this.header];
    if (raw === undefined) return p;
    const list = typeof raw === "string" ? raw.split(",") : raw.flatMap((line) => line.split(","));
    let found: string | undefined;
    for (let i = list.length - 1; i >= 0; i--) {
      // empty entries (`a, , b`, a trailing comma) are skipped, as nginx does
      if (list[i].trim() === "") continue;
      const addr = parseAddress(list[i]);
      if (addr === undefined) return p; // garbage: keep the peer
      found = addr;
      if (!this.recursive || !this.isTrusted(addr)) return addr;
    }
    // every hop is trusted: the left-most is the client
    return found ?? p;
  }
}

/** Strips the IPv4-mapped prefix so `::ffff:1.2.3.4` and `1.2.3.4` are one client. */
export function normalizePeer(peer: string | undefined): string {
  if (!peer) return "";
  if (peer.startsWith("::ffff:") && isIP(peer.slice(7)) === 4) return peer.slice(7);
  return peer;
}

/** One entry of a forwarded-address list: `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]:80`. */
export function parseAddress(entry: string): string | undefined {
  let s = entry.trim();
  if (s === "") return undefined;
  if (s.startsWith("[")) {
    const end = s.indexOf("]");
    if (end < 0) return undefined;
    const rest = s.slice(end + 1);
    if (rest !== "" && !/^:\d{1,5}$/.test(rest)) return undefined;
    s = s.slice(1, end);
    return isIP(s) === 6 ? normalizePeer(s) : undefined;
  }
  const family = isIP(s);
  if (family === 6) return normalizePeer(s);
  if (family === 4) return s;
  const colon = s.lastIndexOf(":");
  if (colon > 0 && s.indexOf(":") === colon && /^\d{1,5}$/.test(s.slice(colon + 1))) {
    const host = s.slice(0, colon);
    if (isIP(host) === 4) return host;
  }
  return undefined;
}

function addTrusted(list: BlockList, entry: string): void {
  const slash = entry.indexOf("/");
  const addr = slash < 0 ? entry : entry.slice(0, slash);
  const family = isIP(addr);
  if (family === 0) throw new InvalidArgumentError(`options.from: "${entry}" is not an IP address or CIDR`);
  const type = family === 6 ? "ipv6" : "ipv4";
  if (slash < 0) {
    list.addAddress(addr, type);
    return;
  }
  const bitsText = entry.slice(slash + 1);
  const bits = Number(bitsText);
  const max = family === 6 ? 128 : 32;
  if (!/^\d{1,3}$/.test(bitsText) || bits > max) {
    throw new InvalidArgumentError(`options.from: "${entry}" has an invalid prefix length (0-${max})`);
  }
  list.addSubnet(addr, bits, type);
}
