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

/** Failures of an upstream request that switchyard itself detects (socket errors keep Node's own codes). */
export class UpstreamError extends Error {
  readonly code:
    | "ERR_SWITCHYARD_UPSTREAM_CONNECT_TIMEOUT"
    | "ERR_SWITCHYARD_UPSTREAM_HEADERS_TIMEOUT"
    | "ERR_SWITCHYARD_UPSTREAM_BODY_TIMEOUT"
    | "ERR_SWITCHYARD_UPSTREAM_CLOSED"
    | "ERR_SWITCHYARD_UPSTREAM_DESTROYED"
    | "ERR_SWITCHYARD_UPSTREAM_PROTOCOL"
    | "ERR_SWITCHYARD_UPSTREAM_NOT_H2"
    | "ERR_SWITCHYARD_UPSTREAM_REFUSED_STREAM"
    | "ERR_SWITCHYARD_UPSTREAM_NO_EXTENDED_CONNECT"
    | "ERR_SWITCHYARD_CLIENT_ABORTED";
  override name = "UpstreamError";
  constructor(message: string, code: UpstreamError["code"], options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/** Idle wake and provider failures; `code` tells a timeout (504) from a failed wake (502). */
export class IdleError extends Error {
  readonly code:
    | "ERR_SWITCHYARD_WAKE_TIMEOUT"
    | "ERR_SWITCHYARD_WAKE_FAILED"
    | "ERR_SWITCHYARD_WAKE_BACKOFF"
    | "ERR_SWITCHYARD_NO_PROVIDER"
    | "ERR_SWITCHYARD_PROVIDER";
  override name = "IdleError";
  constructor(message: string, code: IdleError["code"], options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/**
 * The status a gateway answers for a failed upstream request or wake: 504 when it is a timeout (no
 * connection within timeouts.connect, no response head within timeouts.response_header, a wake past
 * wake_timeout; as nginx answers them), else 502. The one place that decides.
 */
export function gatewayStatus(err: unknown): 502 | 504 {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return code === "ERR_SWITCHYARD_UPSTREAM_CONNECT_TIMEOUT" ||
    code === "ERR_SWITCHYARD_UPSTREAM_HEADERS_TIMEOUT" ||
    code === "ERR_SWITCHYARD_WAKE_TIMEOUT"
    ? 504
    : 502;
}
