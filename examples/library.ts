import { once } from "node:events";
import http from "node:http";
import { HttpHealthMonitor, LoadBalancer, Server } from "switchyard-lb";

// Two backends to balance (in real life: your app instances).
async function backend(name: string): Promise<string> {
  const server = http.createServer((_req, res) => res.end(`hello from ${name}\n`));
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  stopAtEnd.push(server);
  const { port } = server.address() as { port: number };
  return `http://127.0.0.1:${port}`;
}
const stopAtEnd: http.Server[] = [];
const a = await backend("a");
const b = await backend("b");

const lb = new LoadBalancer({ link: "api", mode: "round_robin", sticky: false });
const controller = new AbortController();
lb.start(controller.signal); // aborting stops health checks and timers
lb.addServer(
  new Server({ name: "a", url: a, weight: 3, health: new HttpHealthMonitor(a, { interval: "1s" }) }),
);
lb.addServer(
  new Server({ name: "b", url: b, weight: 1, health: new HttpHealthMonitor(b, { interval: "1s" }) }),
);

const front = http.createServer(lb.handle).listen(0, "127.0.0.1");
await once(front, "listening");
const { port } = front.address() as { port: number };

for (let i = 0; i < 4; i++) {
  const res = await fetch(`http://127.0.0.1:${port}/`);
  process.stdout.write(await res.text()); // a, a, b, a — weights 75/25
}
console.log(lb.detail()); // "2/2 servers are healthy"

controller.abort();
front.close();
for (const s of stopAtEnd) s.close();
