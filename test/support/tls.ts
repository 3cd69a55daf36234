/** Self-signed certificates for TLS tests, made with openssl at test time. */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Writes a self-signed certificate for localhost / 127.0.0.1 into `dir`; returns the two file paths. */
export function selfSignedCert(dir: string): { cert: string; key: string } {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-sha256",
      "-days",
      "1",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "-keyout",
      key,
      "-out",
      cert,
    ],
    { stdio: "ignore" },
  );
  return { cert, key };
}

let cached: { key: string; cert: string } | undefined;

/** The PEM text of one self-signed certificate for localhost / 127.0.0.1, made once per process. */
export function selfSigned(): { key: string; cert: string } {
  if (cached) return cached;
  const dir = mkdtempSync(join(tmpdir(), "switchyard-cert-"));
  try {
    const files = selfSignedCert(dir);
    cached = { key: readFileSync(files.key, "utf8"), cert: readFileSync(files.cert, "utf8") };
    return cached;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** PEM files (paths) and their text, made by `testPki`. */
export interface Pem {
  cert: string;
  key: string;
  certPem: string;
  keyPem: string;
}

/**
 * A small PKI made with openssl at test time (EC P-256 keys: fast), all in `dir`:
 * - `ca`: a CA; `server`: a certificate for localhost / 127.0.0.1 signed by it;
 * - `selfSigned`: localhost / 127.0.0.1, signed by itself; `wrongHost`: signed by the CA, for
 *   other.example only; `expired`: signed by the CA, localhost / 127.0.0.1, expired yesterday;
 * - `clientCa` and `client`: a second CA and a client certificate it signed (mTLS backends).
 */
export function testPki(dir: string): {
  ca: Pem;
  server: Pem;
  selfSigned: Pem;
  wrongHost: Pem;
  expired: Pem;
  clientCa: Pem;
  client: Pem;
} {
  const run = (args: string[]) => execFileSync("openssl", args, { stdio: "ignore", cwd: dir });
  const keyArgs = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  const local = "subjectAltName=DNS:localhost,IP:127.0.0.1";
  const read = (name: string): Pem => {
    const cert = join(dir, `${name}.pem`);
    const key = join(dir, `${name}-key.pem`);
    return { cert, key, certPem: readFileSync(cert, "utf8"), keyPem: readFileSync(key, "utf8") };
  };
  /** A self-signed certificate (a CA, or with `extra` such as -addext a self-signed leaf). */
  const root = (name: string, cn: string, extra: string[] = []) =>
    run([
      "req",
      "-x509",
      ...keyArgs,
      "-days",
      "2",
      "-subj",
      `/CN=${cn}`,
      ...extra,
      "-keyout",
      `${name}-key.pem`,
      "-out",
      `${name}.pem`,
    ]);
  const signed = (name: string, ca: string, cn: string, san: string, days: string, client = false) => {
    run(["req", ...keyArgs, "-subj", `/CN=${cn}`, "-keyout", `${name}-key.pem`, "-out", `${name}.csr`]);
    const ext = join(dir, `${name}.ext`);
    writeFileSync(ext, `${san}\nextendedKeyUsage=${client ? "clientAuth" : "serverAuth"}\n`);
    run([
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      `${ca}.pem`,
      "-CAkey",
      `${ca}-key.pem`,
      "-CAcreateserial",
      "-days",
      days,
      "-extfile",
      ext,
      "-out",
      `${name}.pem`,
    ]);
  };
  root("ca", "switchyard test CA");
  signed("server", "ca", "localhost", local, "2");
  root("self", "localhost", ["-addext", local]);
  signed("wrong", "ca", "other.example", "subjectAltName=DNS:other.example", "2");
  signed("expired", "ca", "localhost", local, "-1");
  root("client-ca", "switchyard test client CA");
  signed("client", "client-ca", "switchyard", "subjectAltName=DNS:switchyard", "2", true);
  return {
    ca: read("ca"),
    server: read("server"),
    selfSigned: read("self"),
    wrongHost: read("wrong"),
    expired: read("expired"),
    clientCa: read("client-ca"),
    client: read("client"),
  };
}
