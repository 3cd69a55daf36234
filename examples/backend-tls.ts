import { readFileSync } from "node:fs";
import { HttpHealthMonitor, LoadBalancer, Server } from "switchyard-lb";

const lb = new LoadBalancer({ link: "api" });
const tls = {
  ca: readFileSync("internal-ca.pem"),
  cert: readFileSync("client.pem"),
  key: readFileSync("client-key.pem"),
};
lb.addServer(
  new Server({
    name: "api-1",
    url: "https://10.0.0.11:8443",
    tls, // or tls: { insecureSkipVerify: true }
    health: new HttpHealthMonitor("https://10.0.0.11:8443", { path: "/healthz", tls }),
  }),
);
