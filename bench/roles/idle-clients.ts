/**
 * Opens COUNT keep-alive connections to 127.0.0.1:PORT, sends one GET on each, reads the answer and
 * keeps the socket open and idle. Prints `READY {json}` once all are done, then `STATUS {json}` every
 * second. `node bench/roles/idle-clients.ts PORT COUNT [BATCH]`
 */
import * as net from "node:net";

const [port, count, batch = 500] = process.argv.slice(2).map(Number);
const sockets: net.Socket[] = [];
let open = 0;
let failed = 0;
let closed = 0;
let non2xx = 0;

function one(): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: "127.0.0.1" });
    let buf = "";
    let done = false;
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      if (ok) open++;
      else failed++;
      resolve();
    };
    s.setNoDelay(true);
    s.on("connect", () => s.write("GET / HTTP/1.1\r\nHost: bench\r\n\r\n"));
    s.on("data", (d) => {
      if (done) return;
      buf += d.toString("latin1");
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = buf.slice(0, end).toLowerCase();
      const body = buf.slice(end + 4);
      const len = /content-length:\s*(\d+)/.exec(head);
      const complete = len ? body.length >= Number(len[1]) : body.endsWith("0\r\n\r\n");
      if (!complete) return;
      if (!/^http\/1\.1 2\d\d/.test(head)) non2xx++;
      finish(true);
    });
    s.on("error", () => finish(false));
    s.on("close", () => {
      if (done) closed++;
      finish(false);
    });
    sockets.push(s);
  });
}

const t0 = Date.now();
for (let i = 0; i < count; i += batch) {
  await Promise.all(Array.from({ length: Math.min(batch, count - i) }, one));
}
const status = () => JSON.stringify({ open: open - closed, failed, closed, non2xx, ms: Date.now() - t0 });
process.stdout.write(`READY ${status()}\n`);
setInterval(() => process.stdout.write(`STATUS ${status()}\n`), 1000);
process.on("SIGTERM", () => {
  for (const s of sockets) s.destroy();
  process.exit(0);
});
