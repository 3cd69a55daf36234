/**
 * Preloaded with `node --import` to stand for a Node release whose HTTP/1 parser binding is gone
 * or changed: BROKEN_BINDING=missing removes `_http_common`'s HTTPParser, BROKEN_BINDING=misparse
 * swaps two of its callback slots (heads arrive as bodies). node:http keeps working: it holds its
 * own reference to the parser, as it would on such a release.
 */
import { createRequire } from "node:module";

interface ParserClass {
  new (): object;
  kOnHeadersComplete: number;
  kOnBody: number;
}

const load = createRequire(import.meta.url);
// node:http's server and client take their reference to the parser as they load: load them first
load("node:http");
load("node:https");
const common = load("_http_common") as { HTTPParser?: ParserClass };
const mode = process.env.BROKEN_BINDING;
if (mode === "missing") {
  common.HTTPParser = undefined;
} else if (mode === "misparse") {
  const Original = common.HTTPParser!;
  class Misparsing extends Original {}
  Object.defineProperty(Misparsing, "kOnHeadersComplete", { value: Original.kOnBody });
  Object.defineProperty(Misparsing, "kOnBody", { value: Original.kOnHeadersComplete });
  common.HTTPParser = Misparsing as unknown as ParserClass;
}
