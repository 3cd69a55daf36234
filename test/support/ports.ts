import * as net from "node:net";

/**
 * A loopback port nobody listens on right now (listen on 0, read it, close): for a process that
 * binds it later, or as a backend that refuses connections.
 */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((ok, fail) => {
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => ok());
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}
