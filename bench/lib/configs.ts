/** Config files for the upstreams and the reference balancers, all paths under the run's temp dir. */

/** A ~100-byte body (with the newline). */
export const BODY = `${"switchyard bench upstream ".repeat(4).slice(0, 99)}\n`;
export const ECHO_MODULE = "/usr/lib/nginx/modules/ngx_http_echo_module.so";

function nginxMain(dir: string, name: string, workers: number, http: string, preamble = ""): string {
  return `${preamble}daemon off;
master_process on;
worker_processes ${workers};
worker_rlimit_nofile 65536;
pid ${dir}/${name}.pid;
error_log ${dir}/${name}-error.log warn;
events { worker_connections 30000; }
http {
  access_log off;
  client_body_temp_path ${dir}/${name}-body;
  proxy_temp_path ${dir}/${name}-proxy;
  fastcgi_temp_path ${dir}/${name}-fastcgi;
  uwsgi_temp_path ${dir}/${name}-uwsgi;
  scgi_temp_path ${dir}/${name}-scgi;
  keepalive_requests 100000000;
  keepalive_timeout 120s;
  default_type text/plain;
${http}
}
`;
}

/** One nginx, one server block per port; `delayMs` > 0 uses the echo module's echo_sleep. */
export function nginxUpstreams(dir: string, ports: number[], workers: number, delayMs = 0): string {
  const content =
    delayMs > 0
      ? `echo_sleep ${(delayMs / 1000).toFixed(3)};\n      echo -n "${BODY.replace("\n", "\\n")}";`
      : `return 200 "${BODY.replace("\n", "\\n")}";`;
  const servers = ports
    .map(
      (p) =>
        `  server {\n    listen 127.0.0.1:${p} backlog=4096;\n    location / {\n      ${content}\n    }\n  }`,
    )
    .join("\n");
  return nginxMain(
    dir,
    delayMs > 0 ? "upstream-slow" : "upstream",
    workers,
    servers,
    delayMs > 0 ? `load_module ${ECHO_MODULE};\n` : "",
  );
}

/** nginx with one worker balancing the upstreams round robin over kept-alive connections. */
export function nginxBalancer(dir: string, port: number, ups: number[]): string {
  const http = `  upstream up {
${ups.map((p) => `    server 127.0.0.1:${p};`).join("\n")}
    keepalive 1024;
    keepalive_requests 100000000;
    keepalive_timeout 120s;
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }`;
  return nginxMain(dir, "nginx-lb", 1, http);
}

/** HAProxy, one thread, connection reuse to the upstreams. */
export function haproxyBalancer(port: number, ups: number[], fdLimit: number): string {
  // HAProxy refuses to start when maxconn needs more descriptors than it may open (~2 per connection).
  const maxconn = Math.max(1000, Math.min(60_000, Math.floor((fdLimit - 200) / 2)));
  return `global
  maxconn ${maxconn}
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  timeout http-keep-alive 120s
  option http-keep-alive
  http-reuse always
frontend fe
  bind 127.0.0.1:${port}
  default_backend be
backend be
  balance roundrobin
${ups.map((p, i) => `  server up${i + 1} 127.0.0.1:${p}`).join("\n")}
`;
}

/** switchyard's YAML (SPEC format): one service matching any Host. */
export function switchyardYaml(port: number, admin: number, ups: number[]): string {
  return `listen: 127.0.0.1:${port}
admin: 127.0.0.1:${admin}
timeouts: { connect: 5s, response_header: 60s, idle: 120s }
services:
  bench:
    hosts: ["*"]
    servers:
${ups.map((p, i) => `      - { name: up-${i + 1}, url: "http://127.0.0.1:${p}" }`).join("\n")}
`;
}
