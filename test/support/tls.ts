/** Self-signed certificates for TLS tests, made with openssl at test time. */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
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
