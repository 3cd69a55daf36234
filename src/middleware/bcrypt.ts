/**
 * bcryptjs, loaded when a middleware first checks a password. Its ES module imports node:crypto
 * whole (Web Crypto included): ~2 MB of RSS that a server without basic auth does without
 * (test/server/footprint.test.ts). Its CommonJS build is the same code.
 */
import { createRequire } from "node:module";
import type Bcrypt from "bcryptjs";

let loaded: typeof Bcrypt | undefined;

export function bcrypt(): typeof Bcrypt {
  loaded ??= createRequire(import.meta.url)("bcryptjs") as typeof Bcrypt;
  return loaded;
}
