/**
 * The HTTP/1.1 front of this process's path (src/http1/mode.ts): switchyard's own on the llhttp
 * binding, or node:http's server. Only the server's listeners import it: a library program
 * (`LoadBalancer`, `pick()`, `lb.handle` on its own node:http server) never loads the front.
 */
import { createNodeFront } from "./fallback-server.ts";
import { http1Path } from "./mode.ts";
import { H1Server, type Http1Front, type Http1Handler, type Http1Timeouts } from "./server.ts";

export function createHttp1Server(handler: Http1Handler, timeouts: Http1Timeouts): Http1Front {
  return http1Path() === "native" ? new H1Server(handler, timeouts) : createNodeFront(handler, timeouts);
}
