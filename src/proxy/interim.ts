/**
 * What the forwarder passes on besides the response itself, on whichever front the client came
 * in by (switchyard's HTTP/1 front, node:http's server, the h2 compatibility API): a backend's 1xx
 * interim responses and its trailer fields (docs/edge.md).
 */

import type { ProxyRequest, ProxyResponse } from "../http-types.ts";
import { kContinued } from "../http1/respond.ts";

// node:http taken with getBuiltinModule, not an ES import: importing it as an ES module reads
// every export, and its lazy ones (WebSocket & co.) load undici, tls, http2 and zlib: ~13 MB of RSS
const nodeHttp = process.getBuiltinModule("node:http");

/** An HTTP/1.1 `Expect: 100-continue` (other expectations were refused 417 by the front). */
export function expectsContinue(req: ProxyRequest): boolean {
  if (req.httpVersionMajor !== 1 || req.httpVersionMinor < 1) return false;
  const e = req.headers.expect;
  return typeof e === "string" && e.trim().toLowerCase() === "100-continue";
}

/** node:http's own parts its public interim writers use (node:http has no writer for other 1xx). */
type NodeInternals = { _writeRaw?(data: string, encoding: BufferEncoding): boolean; _sent100?: boolean };

/**
 * A backend's 1xx to the client: the native front writes any; HTTP/2 sends it as an informational
 * HEADERS frame; node:http's server has 100, 102 and 103 (others are not relayed there).
 */
export function relayInterim(
  res: ProxyResponse,
  req: ProxyRequest,
  status: number,
  text: string,
  headers: string[],
): void {
  if (res.headersSent || res.destroyed || status === 101) return;
  try {
    if (res.writeInterim !== undefined) res.writeInterim(status, text, headers);
    else if (req.httpVersionMajor === 2) {
      const h: Record<string, string | string[] | number> = { ":status": status };
      for (let i = 0; i < headers.length; i += 2) appendField(h, headers[i].toLowerCase(), headers[i + 1]);
      const stream = res.stream;
      if (stream !== undefined && !stream.destroyed) stream.additionalHeaders(h);
    } else if (req.httpVersionMajor === 1 && req.httpVersionMinor >= 1) {
      // node:http queues the answers of pipelined requests; an interim response written before this
      // one owns the socket would land behind its head: not relayed then
      const owner = (res.socket as { _httpMessage?: unknown } | null)?._httpMessage;
      if (owner !== res) return;
      if (status === 100) {
        const c = res as ProxyResponse & NodeInternals & { [kContinued]?: boolean };
        if (c[kContinued] !== true && c._sent100 !== true) {
          c[kContinued] = true;
          res.writeContinue();
        }
      } else if (typeof (res as NodeInternals)._writeRaw === "function") {
        // node:http has public writers for 102 and 103-with-Link only; its own writeContinue and
        // writeEarlyHints write this way (a missing _writeRaw: those public writers)
        let head = `HTTP/1.1 ${status} ${/[\r\n]/.test(text) || text === "" ? (nodeHttp.STATUS_CODES[status] ?? "Interim") : text}\r\n`;
        for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
        (res as NodeInternals)._writeRaw?.(`${head}\r\n`, "latin1");
      } else if (status === 102) res.writeProcessing?.();
      else if (status === 103) {
        const h: Record<string, string | string[]> = {};
        for (let i = 0; i < headers.length; i += 2) appendField(h, headers[i].toLowerCase(), headers[i + 1]);
        if (h.link !== undefined) res.writeEarlyHints?.(h);
      }
    }
  } catch {
    // a field node refuses in an interim response: the final one still comes
  }
}

function appendField(h: Record<string, string | string[] | number>, k: string, v: string): void {
  const prev = h[k];
  if (prev === undefined) h[k] = v;
  else if (Array.isArray(prev)) prev.push(v);
  else h[k] = [String(prev), v];
}

/** Trailer fields on the client's response (a chunked HTTP/1.1 one, or HTTP/2). */
export function addTrailers(res: ProxyResponse, t: readonly string[]): void {
  try {
    // the HTTP/2 compatibility response takes an object (repeated fields joined); node:http and the
    // front take [name, value] pairs
    if (res.stream !== undefined) {
      const obj: Record<string, string> = {};
      for (let i = 0; i < t.length; i += 2) {
        const k = t[i].toLowerCase();
        obj[k] = obj[k] === undefined ? t[i + 1] : `${obj[k]}, ${t[i + 1]}`;
      }
      res.addTrailers(obj);
      return;
    }
    const pairs: [string, string][] = [];
    for (let i = 0; i < t.length; i += 2) pairs.push([t[i], t[i + 1]]);
    res.addTrailers(pairs);
  } catch {
    // a trailer value node refuses: the response ends without trailers
  }
}
