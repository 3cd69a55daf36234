/**
 * How switchyard talks to one backend: the protocol (HTTP/1.1, h2 over TLS with ALPN, h2c by prior
 * knowledge) and the TLS settings of `https://` backends. Certificates are verified by default
 * against Node's CA store (plus `ca` when given); `insecureSkipVerify` accepts any certificate.
 * The settings are turned into one `SecureContext` per server (not per connection: a context with
 * Node's ~150 roots costs milliseconds to build).
 */
import type * as tls from "node:tls";
import { InvalidArgumentError } from "./errors.ts";

export type UpstreamProtocol = "http1.1" | "h2" | "h2c";
export const UPSTREAM_PROTOCOLS: readonly UpstreamProtocol[] = ["http1.1", "h2", "h2c"];

/** TLS towards an `https://` backend (library form: PEM text, not file names). */
export interface UpstreamTlsOptions {
  /** Roots to trust besides Node's own (PEM text; several certificates may be concatenated). */
  ca?: string | Buffer | readonly (string | Buffer)[];
  /** SNI and the name the certificate must carry; default the URL's host. */
  servername?: string;
  /** Client certificate (PEM) for backends that require one (mTLS); needs `key`. */
  cert?: string | Buffer;
  /** The client certificate's private key (PEM). */
  key?: string | Buffer;
  /** Accept any certificate (a `warn` is logged when the server is added to a balancer). */
  insecureSkipVerify?: boolean;
}

/** What a TLS connect to the backend is given: built once per server. */
export interface TlsClientSettings {
  readonly secureContext: tls.SecureContext | undefined;
  readonly servername: string | undefined;
  readonly rejectUnauthorized: boolean;
}

/** The resolved transport of one server. */
export interface Transport {
  readonly protocol: UpstreamProtocol;
  /** Undefined for an `http://` backend. */
  readonly tls: TlsClientSettings | undefined;
}

/** Parses a protocol name (`http1.1`, `http/1.1`, `h1`, `h2`, `h2c`); undefined when unknown. */
export function parseProtocol(value: string): UpstreamProtocol | undefined {
  const v = value.trim().toLowerCase();
  if (v === "http1.1" || v === "http/1.1" || v === "http1" || v === "h1" || v === "http/1") return "http1.1";
  if (v === "h2" || v === "http2" || v === "http/2") return "h2";
  if (v === "h2c") return "h2c";
  return undefined;
}

/**
 * Checks the options and builds the connect settings for a backend URL. Throws
 * `InvalidArgumentError` (naming `who`) on a bad combination or PEM that Node refuses, including a
 * certificate that does not match its key.
 */
export function resolveTransport(
  who: string,
  url: URL,
  protocol: UpstreamProtocol | undefined,
  options: UpstreamTlsOptions | undefined,
): Transport {
  const p = protocol ?? "http1.1";
  if (!UPSTREAM_PROTOCOLS.includes(p)) {
    throw new InvalidArgumentError(
      `${who}: protocol must be one of ${UPSTREAM_PROTOCOLS.join(", ")}, got ${p}`,
    );
  }
  const https = url.protocol === "https:";
  if (p === "h2" && !https) {
    throw new InvalidArgumentError(`${who}: protocol h2 needs an https:// url (h2c is HTTP/2 without TLS)`);
  }
  if (p === "h2c" && https) {
    throw new InvalidArgumentError(`${who}: protocol h2c is cleartext: use an http:// url (or h2 for https)`);
  }
  if (!https) return { protocol: p, tls: undefined };
  return { protocol: p, tls: tlsSettings(who, options ?? {}) };
}

function tlsSettings(who: string, o: UpstreamTlsOptions): TlsClientSettings {
  if ((o.cert === undefined) !== (o.key === undefined)) {
    throw new InvalidArgumentError(
      `${who}: tls.cert and tls.key go together (a client certificate needs its key)`,
    );
  }
  const skip = o.insecureSkipVerify === true;
  let secureContext: tls.SecureContext | undefined;
  if (o.ca !== undefined || o.cert !== undefined) {
    const extra = o.ca === undefined ? [] : Array.isArray(o.ca) ? [...o.ca] : [o.ca as string | Buffer];
    try {
      secureContext = process.getBuiltinModule("node:tls").createSecureContext({
        // `ca` replaces Node's roots: keep them, as the contract says "besides Node's own"
        ca:
          extra.length > 0 ? [...process.getBuiltinModule("node:tls").rootCertificates, ...extra] : undefined,
        cert: o.cert,
        key: o.key,
      });
    } catch (err) {
      throw new InvalidArgumentError(`${who}: tls: ${tlsProblem(err)}`, { cause: err });
    }
  }
  const servername = o.servername === undefined || o.servername === "" ? undefined : o.servername;
  return { secureContext, servername, rejectUnauthorized: !skip };
}

/** Node's reason for refusing TLS material, in words a person acts on. */
export function tlsProblem(err: unknown): string {
  const e = err as { code?: string; message?: string };
  const msg = e?.message ?? String(err);
  if (/key values mismatch/i.test(msg)) return "the certificate does not match its key";
  if (/no start line|bad base64|PEM/i.test(msg)) return `not a PEM file (${msg})`;
  return msg;
}

/** TLS connect options for a backend at `host`: SNI from `servername`, else the host (none for an IP). */
export function tlsConnectOptions(
  settings: TlsClientSettings,
  host: string,
  ipHost: boolean,
): Pick<
  tls.ConnectionOptions,
  "secureContext" | "servername" | "rejectUnauthorized" | "checkServerIdentity"
> {
  const servername = settings.servername ?? (ipHost ? undefined : host);
  const out: ReturnType<typeof tlsConnectOptions> = {
    rejectUnauthorized: settings.rejectUnauthorized,
  };
  if (settings.secureContext !== undefined) out.secureContext = settings.secureContext;
  if (servername !== undefined) out.servername = servername;
  return out;
}

/** The codes Node gives a certificate it refuses (and TLS handshake failures). */
export function isTlsError(err: unknown): boolean {
  const e = err as { code?: unknown; cause?: { code?: unknown } } | undefined;
  const code = typeof e?.code === "string" ? e.code : typeof e?.cause?.code === "string" ? e.cause.code : "";
  return (
    code.startsWith("ERR_TLS") ||
    code.startsWith("ERR_SSL") ||
    /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|HOSTNAME|IP_MISMATCH/.test(code)
  );
}

/** `CERT_HAS_EXPIRED: certificate has expired`, for the log line of a refused certificate. */
export function tlsReason(err: unknown): string {
  const e = err as { code?: string; message?: string; reason?: string };
  const code = e?.code ?? "";
  const msg = e?.reason ?? e?.message ?? String(err);
  return code && !msg.includes(code) ? `${code}: ${msg}` : msg;
}
