/**
 * A real Docker Engine API for tests: podman's API service on a unix socket of its own, a busybox
 * image imported from a local rootfs tar (no registry), and containers running busybox httpd on
 * 127.0.0.1 (host network). Flags and the reasons for them: ../../docs/docker.md ("Trying it with
 * podman"). Every name is unique to the run, so parallel test files never share a container, and
 * `close()` removes everything (containers, image, service, socket, files) — call it from
 * `after`/`t.after` so a failing test cleans up too. Without podman, `startEngine` throws with
 * what to install: these tests never skip themselves.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { track } from "./cli.ts";

/** The global flags every podman call needs in this sandbox (no systemd, hybrid cgroups, no CAP_SYS_RESOURCE). */
export const PODMAN_FLAGS = [
  "--storage-driver=vfs",
  "--cgroup-manager=cgroupfs",
  "--runtime",
  "runc",
  "--events-backend=file",
];

const INSTALL_HINT =
  "install it with `apt-get install -y podman runc busybox-static` (.ci/run does this on a fresh machine)";

/** Runs `podman <flags> <args>`; resolves with its stdout, rejects with its stderr. */
export function podman(args: string[], timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("podman", [...PODMAN_FLAGS, ...args], { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) {
        const e = err as Error & { code?: string | number };
        if (e.code === "ENOENT")
          reject(new Error(`podman is not installed: ${INSTALL_HINT}`, { cause: err }));
        else
          reject(new Error(`podman ${args.join(" ")} failed: ${stderr.trim() || e.message}`, { cause: err }));
      } else resolve(stdout.trim());
    });
  });
}

import { freePort } from "./ports.ts";

export { freePort };

/** `GET path` on a unix socket: the status, or undefined when nothing answers. */
function get(socketPath: string, path: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = http.get({ socketPath, path, agent: false, timeout: 2000 }, (res) => {
      res.resume();
      res.once("end", () => resolve(res.statusCode));
    });
    req.once("timeout", () => req.destroy());
    req.once("error", () => resolve(undefined));
  });
}

export interface Container {
  readonly name: string;
  readonly port: number;
  /** `http://127.0.0.1:<port>`; `/healthz` answers `ok`. */
  readonly url: string;
  /** The last exit code the engine recorded. */
  exitCode(): Promise<number>;
}

export interface Engine {
  /** The API service's socket (what DOCKER_HOST=unix://… names). */
  readonly socketPath: string;
  /** The imported busybox image, unique to this engine. */
  readonly image: string;
  /** How long the service took to answer `/_ping`, ms. */
  readonly readyMs: number;
  /**
   * Creates (does not start) a container named `<prefix>-<unique>` that runs busybox httpd on a free
   * port of 127.0.0.1. Its PID 1 is a shell that exits with 3 on SIGINT and 4 on SIGTERM, so a
   * test can tell which signal stopped it (137: SIGKILL); any other signal is ignored (PID 1).
   */
  createHttpd(prefix: string): Promise<Container>;
  /** Removes every container made here, the image, stops the service, deletes the files. Idempotent. */
  close(): Promise<void>;
}

/** Starts a podman API service on a fresh socket, ready (`/_ping` answers 200), with the busybox image imported. */
export async function startEngine(): Promise<Engine> {
  const id = `sy${process.pid}-${Date.now().toString(36)}`;
  const dir = mkdtempSync(join(tmpdir(), `${id}-`));
  const socketPath = join(dir, "engine.sock");
  const image = `localhost/switchyard-test-httpd-${id}`;
  const containers: string[] = [];
  let service: ChildProcess | undefined;
  let serviceErr = "";
  let imported = false;
  let closed = false;

  const close = async () => {
    if (closed) return;
    closed = true;
    for (const name of containers) await podman(["rm", "-f", "-t", "0", name]).catch(() => {});
    if (imported) await podman(["rmi", "-f", image]).catch(() => {});
    if (service && service.exitCode === null && service.signalCode === null) {
      const exited = new Promise((r) => service!.once("exit", r));
      service.kill("SIGTERM");
      const timer = setTimeout(() => service!.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await podman(["--version"]);
    for (const [file, pkg] of [
      ["/bin/busybox", "busybox-static"],
      ["/usr/sbin/runc", "runc"],
    ]) {
      if (!existsSync(file)) throw new Error(`${file} is missing (Debian package ${pkg}): ${INSTALL_HINT}`);
    }

    // the image: a rootfs with the static busybox and a page to serve
    const rootfs = join(dir, "rootfs");
    mkdirSync(join(rootfs, "bin"), { recursive: true });
    mkdirSync(join(rootfs, "www"), { recursive: true });
    await new Promise<void>((resolve, reject) =>
      execFile("cp", ["/bin/busybox", join(rootfs, "bin/busybox")], (err) => (err ? reject(err) : resolve())),
    );
    writeFileSync(join(rootfs, "www/healthz"), "ok\n");
    writeFileSync(join(rootfs, "www/index.html"), "<h1>hello from the container</h1>\n");
    const tar = join(dir, "rootfs.tar");
    await new Promise<void>((resolve, reject) =>
      execFile("tar", ["-C", rootfs, "-cf", tar, "."], (err) => (err ? reject(err) : resolve())),
    );
    await podman(["import", tar, image]);
    imported = true;

    // the API service, ready when /_ping answers
    const t0 = performance.now();
    service = spawn("podman", [...PODMAN_FLAGS, "system", "service", "--time=0", `unix://${socketPath}`], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    track(service);
    service.stderr!.setEncoding("utf8");
    service.stderr!.on("data", (chunk: string) => {
      serviceErr = (serviceErr + chunk).slice(-4000);
    });
    const exited = new Promise<void>((r) => service!.once("exit", () => r()));
    let ready = false;
    const deadline = Date.now() + 15_000;
    while (!ready) {
      if (service.exitCode !== null || service.signalCode !== null) {
        throw new Error(`podman system service exited before it was ready: ${serviceErr.trim()}`);
      }
      if (Date.now() > deadline)
        throw new Error(`podman system service not ready after 15 s: ${serviceErr.trim()}`);
      ready = existsSync(socketPath) && (await get(socketPath, "/_ping")) === 200;
      if (!ready) await Promise.race([exited, new Promise((r) => setTimeout(r, 50))]);
    }
    const readyMs = performance.now() - t0;

    return {
      socketPath,
      image,
      readyMs,
      async createHttpd(prefix) {
        const name = `${prefix}-${id}-${containers.length}`;
        const port = await freePort();
        const script = `trap "exit 3" INT; trap "exit 4" TERM; /bin/busybox httpd -f -p 127.0.0.1:${port} -h /www & wait`;
        containers.push(name);
        await podman([
          "create",
          "--name",
          name,
          "--network",
          "host",
          "--ulimit",
          "nofile=4096:4096",
          "--ulimit",
          "nproc=4096:4096",
          image,
          "/bin/busybox",
          "sh",
          "-c",
          script,
        ]);
        return {
          name,
          port,
          url: `http://127.0.0.1:${port}`,
          exitCode: async () => Number(await podman(["inspect", "--format", "{{.State.ExitCode}}", name])),
        };
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
