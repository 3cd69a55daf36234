/**
 * `basic_auth`: HTTP Basic credentials checked against bcrypt hashes (bcryptjs: pure JS, so no
 * native build; its async compare yields to the event loop between rounds). An unknown user is
 * checked against a dummy hash of the same cost, so it costs what a wrong password costs and the
 * answer time does not tell which user names exist. A successful check is remembered (bounded,
 * keyed by a SHA-256 of a per-process random salt and the Authorization value, never the
 * password) for `CACHE_TTL`, so a logged-in client does not pay a bcrypt run on every request.
 */
import type { MiddlewareConfig } from "../config/types.ts";
import type { ProxyRequest } from "../http-types.ts";
import { bcrypt } from "./bcrypt.ts";
import { type Answer, findHeader, type Middleware, PENDING, plainAnswer } from "./types.ts";

const CACHE_SIZE = 1024;
const CACHE_TTL = 5 * 60_000;

export class BasicAuth implements Middleware {
  readonly kind = "basic_auth";
  readonly #users: Map<string, string>;
  readonly #dummy: string;
  readonly #unauthorized: Answer;
  // node:crypto taken when a middleware is built: a server without basic auth never loads it
  readonly #crypto = process.getBuiltinModule("node:crypto");
  readonly #salt = this.#crypto.randomBytes(32).toString("base64");
  /** Salted SHA-256 of the Authorization value → expiry (ms); insertion order = age. */
  readonly #ok = new Map<string, number>();

  constructor(config: Extract<MiddlewareConfig, { kind: "basic_auth" }>) {
    this.#users = new Map(Object.entries(config.users));
    // the dummy costs what the dearest real hash costs
    let cost = 4;
    for (const h of this.#users.values()) cost = Math.max(cost, Number(h.slice(4, 6)));
    this.#dummy = bcrypt().hashSync(this.#crypto.randomBytes(16).toString("hex"), cost);
    this.#unauthorized = plainAnswer(401, "Unauthorized", [
      "www-authenticate",
      `Basic realm="${config.realm}", charset="UTF-8"`,
    ]);
  }

  request(
    req: ProxyRequest,
    _info: unknown,
    resume: (a: Answer | undefined) => void,
  ): Answer | undefined | typeof PENDING {
    const raw = req.rawHeaders;
    const i = findHeader(raw, "authorization");
    if (i < 0) return this.#unauthorized;
    const v = raw[i + 1];
    // a client that logged in lately: one hash and one map get
    const mac = this.#crypto.hash("sha256", this.#salt + v, "base64");
    const until = this.#ok.get(mac);
    if (until !== undefined) {
      if (until > Date.now()) return undefined;
      this.#ok.delete(mac);
    }
    if (v.length < 7 || v.slice(0, 6).toLowerCase() !== "basic ") return this.#unauthorized;
    const decoded = Buffer.from(v.slice(6).trim(), "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon < 0) return this.#unauthorized;
    const user = decoded.slice(0, colon);
    const password = decoded.slice(colon + 1);
    const hash = this.#users.get(user);
    bcrypt()
      .compare(password, hash ?? this.#dummy)
      .then(
        (match) => {
          if (match && hash !== undefined) {
            if (this.#ok.size >= CACHE_SIZE) this.#ok.delete(this.#ok.keys().next().value as string);
            this.#ok.set(mac, Date.now() + CACHE_TTL);
            resume(undefined);
          } else resume(this.#unauthorized);
        },
        () => resume(this.#unauthorized),
      );
    return PENDING;
  }
}
