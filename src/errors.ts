/** Errors carry a Node-style `code` so callers can branch without parsing messages. */

/** A bad argument or option given to the library API. */
export class InvalidArgumentError extends TypeError {
  readonly code = "ERR_SWITCHYARD_INVALID_ARG";
  override name = "InvalidArgumentError";
}

/** A configuration problem; `problems` lists every one found, already formatted `file:line: path: message`. */
export class ConfigError extends Error {
  readonly code = "ERR_SWITCHYARD_CONFIG";
  override name = "ConfigError";
  readonly problems: readonly string[];
  constructor(message: string, problems: readonly string[] = [], options?: ErrorOptions) {
    super(problems.length ? `${message}\n${problems.map((p) => `  ${p}`).join("\n")}` : message, options);
    this.problems = problems;
  }
}

/** Upstream failures, classified for retry decisions and status codes. */
export class UpstreamError extends Error {
  readonly code:
    | "ERR_SWITCHYARD_UPSTREAM_REFUSED"
    | "ERR_SWITCHYARD_UPSTREAM_RESET"
    | "ERR_SWITCHYARD_UPSTREAM_TIMEOUT"
    | "ERR_SWITCHYARD_UPSTREAM";
  override name = "UpstreamError";
  constructor(message: string, code: UpstreamError["code"], options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}
