/**
 * `protocol:` and `tls:` of a service or a server (section "Backend TLS, protocols and the edge"
 * of the SPEC). Files are resolved against the config file's folder and checked at load time, so
 * `switchyard check` reports a missing CA, a file that is not PEM, or a certificate that does not
 * match its key at the line that names it. A server's own settings override the service's, key by key.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import * as v from "valibot";
import {
  parseProtocol,
  tlsProblem,
  UPSTREAM_PROTOCOLS,
  type UpstreamProtocol,
  type UpstreamTlsOptions,
} from "../upstream-tls.ts";
import { bool, type Entry, field, nonEmptyString, osReason, readMap } from "./fields.ts";
import { checked, type Path, type Problems } from "./source.ts";
import type { UpstreamTlsConfig } from "./types.ts";

export const UPSTREAM_TLS_KEYS = ["ca", "servername", "cert", "key", "insecure_skip_verify"] as const;

const protocolSchema = checked(v.string(), (value, fail): UpstreamProtocol => {
  const p = parseProtocol(value);
  if (p === undefined) {
    fail(`unknown protocol "${value}" (expected ${UPSTREAM_PROTOCOLS.join(", ")})`);
    return "http1.1";
  }
  return p;
});

/** What a service or server block says; undefined fields are not set there. */
export interface UpstreamPartial {
  protocol?: { value: UpstreamProtocol; path: Path };
  tls?: { value: Partial<UpstreamTlsConfig>; path: Path };
}

export function readProtocol(p: Problems, entry: Entry | undefined): UpstreamPartial["protocol"] {
  if (!entry) return undefined;
  const v = p.parse(protocolSchema, entry.value, entry.path);
  return v === undefined ? undefined : { value: v, path: entry.path };
}

/** Reads a `tls:` block of a service or server (files checked; problems go to `p`). */
export function readUpstreamTls(
  p: Problems,
  entry: Entry | undefined,
  baseDir: string,
): UpstreamPartial["tls"] {
  if (!entry) return undefined;
  const m = readMap(p, entry.value, entry.path, UPSTREAM_TLS_KEYS);
  if (!m) return undefined;
  const out: Partial<{ -readonly [K in keyof UpstreamTlsConfig]: UpstreamTlsConfig[K] }> = {};
  const pem = (k: "ca" | "cert" | "key"): { file: string; text: Buffer } | undefined => {
    const e = m[k];
    if (!e) return undefined;
    const rel = p.parse(nonEmptyString, e.value, e.path);
    if (rel === undefined) return undefined;
    const file = resolve(baseDir, rel);
    try {
      return { file, text: readFileSync(file) };
    } catch (err) {
      p.at(e.path, `cannot read ${file}: ${osReason(err)}`);
      return undefined;
    }
  };
  const ca = pem("ca");
  if (ca) {
    try {
      // node takes a file without a certificate as an empty list: one is needed
      if (!ca.text.includes("-----BEGIN CERTIFICATE-----")) throw new Error("no certificate in it");
      new (process.getBuiltinModule("node:crypto").X509Certificate)(ca.text);
      process.getBuiltinModule("node:tls").createSecureContext({ ca: ca.text });
      out.ca = ca.file;
    } catch (err) {
      p.at(m.ca!.path, `${ca.file}: ${tlsProblem(err)}`);
    }
  }
  const cert = pem("cert");
  const key = pem("key");
  if (m.cert && !m.key) p.at(entry.path, "`cert` needs `key` (the client certificate's private key)");
  if (m.key && !m.cert) p.at(entry.path, "`key` needs `cert` (the client certificate)");
  if (cert && key) {
    try {
      process.getBuiltinModule("node:tls").createSecureContext({ cert: cert.text, key: key.text });
      out.cert = cert.file;
      out.key = key.file;
    } catch (err) {
      p.at(m.cert!.path, `${cert.file} with ${key.file}: ${tlsProblem(err)}`);
    }
  }
  if (m.servername) {
    const s = p.parse(nonEmptyString, m.servername.value, m.servername.path);
    if (s !== undefined) out.servername = s;
  }
  if (m.insecure_skip_verify) out.insecureSkipVerify = field(p, m.insecure_skip_verify, bool, false);
  return { value: out, path: entry.path };
}

/**
 * The protocol and TLS settings of one server: its own over the service's. Problems (h2 on an
 * http:// url, h2c on https://, `tls` on a plain server) are reported at the line that set them.
 */
export function resolveUpstream(
  p: Problems,
  url: string,
  urlPath: Path,
  service: UpstreamPartial,
  own: UpstreamPartial,
): { protocol?: UpstreamProtocol; tls?: UpstreamTlsConfig } {
  const https = url.startsWith("https:");
  const proto = own.protocol ?? service.protocol;
  const out: { protocol?: UpstreamProtocol; tls?: UpstreamTlsConfig } = {};
  if (proto !== undefined) {
    if (proto.value === "h2" && !https)
      p.at(
        proto.path,
        `protocol h2 needs an https:// server (this one is ${url}); h2c is HTTP/2 without TLS`,
      );
    else if (proto.value === "h2c" && https)
      p.at(proto.path, `protocol h2c is cleartext but ${url} is https://; use h2`);
    else if (proto.value !== "http1.1") out.protocol = proto.value;
  }
  if (own.tls !== undefined && !https) {
    p.at(own.tls.path, `tls settings need an https:// url (this server is ${url})`, "key");
    void urlPath;
    return out;
  }
  if (!https || (own.tls === undefined && service.tls === undefined)) return out;
  const merged = { ...service.tls?.value, ...own.tls?.value };
  out.tls = {
    ca: merged.ca,
    servername: merged.servername,
    cert: merged.cert,
    key: merged.key,
    insecureSkipVerify: merged.insecureSkipVerify ?? false,
  };
  return out;
}

/** The library's form of a server's TLS settings: the PEM files read now. */
export function tlsOptionsOf(c: UpstreamTlsConfig | undefined): UpstreamTlsOptions | undefined {
  if (c === undefined) return undefined;
  return {
    ca: c.ca === undefined ? undefined : readFileSync(c.ca),
    servername: c.servername,
    cert: c.cert === undefined ? undefined : readFileSync(c.cert),
    key: c.key === undefined ? undefined : readFileSync(c.key),
    insecureSkipVerify: c.insecureSkipVerify,
  };
}
