/**
 * What changed between two configurations, per service, for hot reload. Servers are matched by
 * key (URL host:port), the identity the balancer uses.
 */
import { isDeepStrictEqual } from "node:util";
import type { ServerConfig, ServiceConfig, SwitchyardConfig } from "./types.ts";

/** Service settings that can change without touching the server list. */
export type ServiceSetting =
  | "hosts"
  | "mode"
  | "sticky"
  | "stickyMaxAge"
  | "stickySecret"
  | "options"
  | "healthcheck"
  | "slowStart"
  | "panicThreshold";

const SETTINGS: readonly ServiceSetting[] = [
  "hosts",
  "mode",
  "sticky",
  "stickyMaxAge",
  "stickySecret",
  "options",
  "healthcheck",
  "slowStart",
  "panicThreshold",
];

export interface ServiceDiff {
  readonly name: string;
  readonly before: ServiceConfig;
  readonly after: ServiceConfig;
  readonly addedServers: readonly ServerConfig[];
  readonly removedServers: readonly ServerConfig[];
  /** Same key, different weight (name and url unchanged). */
  readonly reweightedServers: readonly { readonly before: ServerConfig; readonly after: ServerConfig }[];
  /** Same key, different name, url (e.g. http → https) or backup flag: replace the server. */
  readonly replacedServers: readonly { readonly before: ServerConfig; readonly after: ServerConfig }[];
  /** Settings whose value differs; empty when only servers changed. */
  readonly changedSettings: readonly ServiceSetting[];
}

export interface ConfigDiff {
  readonly addedServices: readonly ServiceConfig[];
  readonly removedServices: readonly ServiceConfig[];
  /** Services present in both whose settings or servers changed. */
  readonly changedServices: readonly ServiceDiff[];
  /** Process-level settings that changed; listeners, admin and workers need a restart or rebind. */
  readonly listen: boolean;
  readonly admin: boolean;
  readonly timeouts: boolean;
  readonly workers: boolean;
  readonly logLevel: boolean;
  /** True when nothing at all changed. */
  readonly empty: boolean;
}

export function serverKey(s: ServerConfig): string {
  const u = new URL(s.url);
  return u.port ? u.host : `${u.host}:${u.protocol === "https:" ? 443 : 80}`;
}

export function diffConfig(old: SwitchyardConfig, next: SwitchyardConfig): ConfigDiff {
  const addedServices: ServiceConfig[] = [];
  const removedServices: ServiceConfig[] = [];
  const changedServices: ServiceDiff[] = [];
  for (const [name, svc] of Object.entries(next.services)) {
    const before = old.services[name];
    if (!before) addedServices.push(svc);
    else {
      const d = diffService(before, svc);
      if (d) changedServices.push(d);
    }
  }
  for (const [name, svc] of Object.entries(old.services)) if (!next.services[name]) removedServices.push(svc);
  const listen = !isDeepStrictEqual(old.listen, next.listen);
  const admin = !isDeepStrictEqual(old.admin, next.admin);
  const timeouts = !isDeepStrictEqual(old.timeouts, next.timeouts);
  const workers = old.workers !== next.workers;
  const logLevel = old.logLevel !== next.logLevel;
  return {
    addedServices,
    removedServices,
    changedServices,
    listen,
    admin,
    timeouts,
    workers,
    logLevel,
    empty:
      !addedServices.length &&
      !removedServices.length &&
      !changedServices.length &&
      !listen &&
      !admin &&
      !timeouts &&
      !workers &&
      !logLevel,
  };
}

/** undefined when the service is unchanged. */
export function diffService(before: ServiceConfig, after: ServiceConfig): ServiceDiff | undefined {
  const oldByKey = new Map(before.servers.map((s) => [serverKey(s), s]));
  const newKeys = new Set<string>();
  const addedServers: ServerConfig[] = [];
  const reweightedServers: ServiceDiff["reweightedServers"][number][] = [];
  const replacedServers: ServiceDiff["replacedServers"][number][] = [];
  for (const s of after.servers) {
    const key = serverKey(s);
    newKeys.add(key);
    const o = oldByKey.get(key);
    if (!o) addedServers.push(s);
    else if (o.name !== s.name || o.url !== s.url || o.backup !== s.backup)
      replacedServers.push({ before: o, after: s });
    else if (o.weight !== s.weight) reweightedServers.push({ before: o, after: s });
  }
  const removedServers = before.servers.filter((s) => !newKeys.has(serverKey(s)));
  const changedSettings = SETTINGS.filter((k) => !isDeepStrictEqual(before[k], after[k]));
  if (
    !addedServers.length &&
    !removedServers.length &&
    !reweightedServers.length &&
    !replacedServers.length &&
    !changedSettings.length
  )
    return undefined;
  return {
    name: after.name,
    before,
    after,
    addedServers,
    removedServers,
    reweightedServers,
    replacedServers,
    changedSettings,
  };
}
