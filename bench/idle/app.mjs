// Bench backend: listens on PORT after READY_DELAY ms and reports, in each answer, how long after
// its own process start it became ready (`readyMs`): the backend's share of a wake.
import * as http from "node:http";
import { performance } from "node:perf_hooks";

let readyMs = 0;
const server = http.createServer((_req, res) => res.end(JSON.stringify({ readyMs, pid: process.pid })));
setTimeout(
  () => {
    server.listen(Number(process.env.PORT), "127.0.0.1", () => {
      readyMs = performance.now();
      // PRINT=1: says so, as most servers do (switchyard then probes at once)
      if (process.env.PRINT === "1") console.log(`listening on ${process.env.PORT}`);
    });
  },
  Number(process.env.READY_DELAY ?? 300),
);
