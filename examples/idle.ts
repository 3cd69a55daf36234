import { once } from "node:events";
import http from "node:http";
import { IdleWatcher, LoadBalancer, RunProvider, Server } from "switchyard-lb";

// A backend that switchyard starts on the first request and stops after 2 s without one.
const port = 39517;
const app = `require("node:http").createServer((q, s) => s.end("hello from the woken app\\n")).listen(${port})`;
const watcher = new IdleWatcher({
  service: "api",
  server: "app",
  url: `http://127.0.0.1:${port}`,
  provider: new RunProvider({ command: [process.execPath, "-e", app] }),
  idleTimeout: "2s",
  wakeTimeout: "30s",
});

const lb = new LoadBalancer({ link: "api" });
const controller = new AbortController();
lb.start(controller.signal);
lb.addServer(new Server({ name: "app", url: `http://127.0.0.1:${port}`, idle: watcher }));
console.log(lb.servers[0].status()); // napping: nothing runs yet

const front = http.createServer(lb.handle).listen(0, "127.0.0.1");
await once(front, "listening");
const { port: frontPort } = front.address() as { port: number };
// an API request waits for the wake, then is proxied
const res = await fetch(`http://127.0.0.1:${frontPort}/`, { headers: { accept: "application/json" } });
console.log((await res.text()).trim());
console.log(lb.servers[0].status()); // healthy

front.close();
controller.abort();
await watcher.close(); // stops the process it started
