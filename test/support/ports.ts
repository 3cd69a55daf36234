import { readFileSync } from "node:fs";
import * as net from "node:net";

/**
 * The kernel's ephemeral port range: where `listen(0)` and outgoing connections get their ports.
 * A port from freePort() must not come from there: between freePort() and the later bind, any
 * `listen(0)` on the machine (the switchyard under test included, with `--listen 127.0.0.1:0`)
 * could be handed the same port, and the app meant to bind it fails with EADDRINUSE.
 */
function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8")
      .trim()
      .split(/\s+/)
      .map(Number);
    if (lo > 0 && hi >= lo) return [lo, hi];
  } catch {
    // not Linux: the IANA dynamic range
  }
  return [49152, 65535];
}

/** Ports free to hand out: below the ephemeral range (above it when there is no room below). */
function candidateRange(): [number, number] {
  const [lo, hi] = ephemeralRange();
  if (lo - 1 - 10_000 >= 4096) return [10_000, lo - 1];
  if (65535 - hi >= 4096) return [hi + 1, 65535];
  return [0, -1]; // no room outside it: listen(0) it is
}

const SLICE = 512;
const [FIRST, LAST] = candidateRange();
const slices = Math.floor((LAST - FIRST + 1) / SLICE);
/**
 * Each test process walks its own slice of the range (by pid), from a random start, so that two
 * test files running at once rarely hand out the same port before either has bound it.
 */
const sliceBase = slices > 0 ? FIRST + (process.pid % slices) * SLICE : 0;
let next = Math.floor(Math.random() * SLICE);

function tryListen(port: number): Promise<number | undefined> {
  const server = net.createServer();
  return new Promise((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EADDRINUSE" || err.code === "EACCES") resolve(undefined);
      else reject(err);
    });
    server.listen(port, "127.0.0.1", () => {
      const { port: bound } = server.address() as net.AddressInfo;
      server.close(() => resolve(bound));
    });
  });
}

/**
 * A loopback port nobody listens on right now, outside the kernel's ephemeral range so no
 * `listen(0)` takes it meanwhile: for a process that binds it later, or as a backend that
 * refuses connections. Never the same port twice in one process (until its slice wraps).
 */
export async function freePort(): Promise<number> {
  for (let i = 0; slices > 0 && i < SLICE; i++) {
    const port = sliceBase + (next++ % SLICE);
    const got = await tryListen(port);
    if (got !== undefined) return got;
  }
  const got = await tryListen(0);
  if (got === undefined) throw new Error("freePort: no free loopback port");
  return got;
}
