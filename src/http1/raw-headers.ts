/**
 * The one scanner of raw header lists ([name, value, name, value, ...] as the parser gives them):
 * finds headers without building `req.headers`. Names are compared by length first, so most names
 * cost one integer compare and no lower-casing.
 */

/** Whether raw header name `name` is `lower` (a lower-case header name), ignoring case. */
export function nameIs(name: string, lower: string): boolean {
  return name.length === lower.length && (name === lower || name.toLowerCase() === lower);
}

/** The first value of header `lower` in a raw list (undefined when absent). */
export function rawHeader(raw: readonly string[] | undefined, lower: string): string | undefined {
  if (raw === undefined) return undefined;
  for (let i = 0; i < raw.length; i += 2) if (nameIs(raw[i], lower)) return raw[i + 1];
  return undefined;
}

/** How many lines of header `lower` a raw list has. */
export function rawHeaderCount(raw: readonly string[], lower: string): number {
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) if (nameIs(raw[i], lower)) n++;
  return n;
}

export const NO_BODY = 0;
export const BODY = 1;
/** A Transfer-Encoding whose last coding is not chunked: RFC 9112 §6.3, the length cannot be known. */
export const BAD_FRAMING = -1;

/**
 * A request's body framing from its raw headers: BODY for a Content-Length other than 0 or a
 * Transfer-Encoding ending in chunked, BAD_FRAMING for another Transfer-Encoding, else NO_BODY.
 */
export function bodyFraming(raw: readonly string[]): number {
  let body = NO_BODY;
  let te: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i];
    if (nameIs(n, "content-length")) {
      if (raw[i + 1] !== "0") body = BODY;
    } else if (nameIs(n, "transfer-encoding")) te = raw[i + 1];
  }
  if (te === undefined) return body;
  return /(?:^|,)[ \t]*chunked[ \t]*$/i.test(te) ? BODY : BAD_FRAMING;
}
