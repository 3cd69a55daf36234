/**
 * `allow` / `deny`: by the resolved client address (the service's real-IP rules applied), with
 * node:net's BlockList. Others (allow) or these (deny) get 403 and never reach a backend.
 */
import { BlockList, isIPv4 } from "node:net";
import type { MiddlewareConfig } from "../config/types.ts";
import { type Answer, type Middleware, plainAnswer, type RequestInfo } from "./types.ts";

const FORBIDDEN = plainAnswer(403, "Forbidden");

export function blockListOf(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of cidrs) {
    const [ip, prefix] = entry.split("/");
    const family = isIPv4(ip) ? "ipv4" : "ipv6";
    if (prefix === undefined) list.addAddress(ip, family);
    else list.addSubnet(ip, Number(prefix), family);
  }
  return list;
}

/** True when `address` is in `list` (an IPv4-mapped IPv6 address is matched as IPv4). */
export function inList(list: BlockList, address: string): boolean {
  if (address === "") return false;
  if (isIPv4(address)) return list.check(address, "ipv4");
  if (address.startsWith("::ffff:") && isIPv4(address.slice(7))) return list.check(address.slice(7), "ipv4");
  try {
    return list.check(address, "ipv6");
  } catch {
    return false; // not an address at all
  }
}

export class Access implements Middleware {
  readonly kind: "allow" | "deny";
  readonly needsClient = true;
  readonly #list: BlockList;
  readonly #allow: boolean;

  constructor(config: Extract<MiddlewareConfig, { kind: "allow" | "deny" }>) {
    this.kind = config.kind;
    this.#allow = config.kind === "allow";
    this.#list = blockListOf(config.cidrs);
  }

  request(_req: unknown, info: RequestInfo): Answer | undefined {
    return inList(this.#list, info.client) === this.#allow ? undefined : FORBIDDEN;
  }
}
