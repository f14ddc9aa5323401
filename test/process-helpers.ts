import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { TEST_ADMIN_TOKEN, TEST_SECRET_KEY } from "./helpers.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const cli = ["--import", "tsx", "src/cli/main.ts"];
/** Every test server starts with the test admin token and secret key; every CLI call sends that token. */
const serverEnv = { ALLOT_ADMIN_TOKEN: TEST_ADMIN_TOKEN, ALLOT_SECRET_KEY: TEST_SECRET_KEY };

export interface ServerProcess {
  url: string;
  proc: ChildProcess;
  /** Stops the server: SIGTERM (graceful) by default, SIGKILL to simulate a crash. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `allot serve` as its own process on a free port and waits until it listens. */
export function startServerProcess(dataDir: string, extraEnv: Record<string, string> = {}, port = 0): Promise<ServerProcess> {
  const proc = spawn(process.execPath, [...cli, "serve", "--port", String(port), "--data-dir", dataDir], {
    cwd: root,
    env: { ...process.env, ...serverEnv, ...extraEnv },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return new Promise((resolve, reject) => {
    let out = "";
    let started = false;
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 20000);
    proc.stdout!.on("data", (d: Buffer) => {
      if (started) return;
      out += d.toString();
      const m = /Allot listening on (https?:\/\/[^"\s]+)/.exec(out);
      if (m) {
        started = true;
        clearTimeout(timer);
        const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
        resolve({
          url: m[1]!,
          proc,
          async stop(signal = "SIGTERM") {
            if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
            return exited;
          },
        });
      }
    });
    proc.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    proc.once("exit", (code) => {
      if (started) return;
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${out}`));
    });
  });
}

/** Runs the `allot` CLI once, as a user would, and returns its exit code and output. */
export function allot(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [...cli, ...args], { cwd: root, env: { ...process.env, ALLOT_TOKEN: TEST_ADMIN_TOKEN, ...env }, encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A TCP port that was free on 127.0.0.1 when asked. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** A kubeconfig for kubectl against an HTTPS Allot server: its CA certificate, the admin token, namespace lab. */
export function writeKubeconfig(file: string, url: string, caFile: string): void {
  writeFileSync(
    file,
    `apiVersion: v1
kind: Config
clusters: [{name: allot, cluster: {server: "${url}", certificate-authority-data: ${readFileSync(caFile).toString("base64")}}}]
users: [{name: admin, user: {token: ${TEST_ADMIN_TOKEN}}}]
contexts: [{name: allot, context: {cluster: allot, user: admin, namespace: lab}}]
current-context: allot
`,
  );
}
