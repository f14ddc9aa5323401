import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { TEST_ADMIN_TOKEN, TEST_SECRET_KEY } from "../helpers.js";
import { cleanEnv, descendants, freePort, root, running, status, waitFor, waitReady } from "./helpers.js";

/**
 * Long-running commands started through npm stop when npm is stopped: `npm start` (its script execs the
 * server, so npm's forwarded signal reaches it) and npx (whose `sh -c` does not forward: the CLI stops
 * when that shell goes). Run from the checkout, on the dist/ that scripts/test.mjs builds first.
 */

let dir: string;
const started: ChildProcess[] = [];
before(() => {
  dir = mkdtempSync(join(tmpdir(), "allot-signals-"));
});
after(() => {
  // nothing outlives a failed test
  for (const p of started) for (const pid of [p.pid!, ...descendants(p.pid!)]) if (running(pid)) process.kill(pid, "SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

/** npm with these arguments from the checkout, as a user's shell starts it (its own process group when `group`). */
function npm(args: string[], env: Record<string, string>, group = false) {
  const proc = spawn("npm", args, { cwd: root, env: cleanEnv({ ALLOT_LOG_LEVEL: "warn", ...env }), stdio: ["ignore", "pipe", "pipe"], detached: group });
  started.push(proc);
  let out = "";
  proc.stdout!.on("data", (d: Buffer) => (out += d));
  proc.stderr!.on("data", (d: Buffer) => (out += d));
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  return { proc, exited, output: () => out };
}

/** `npm start` or `npx allot serve` on a free port and a new data directory, ready. */
async function serve(how: "npm start" | "npx allot serve", group = false) {
  const port = await freePort();
  const env = { ALLOT_PORT: String(port), ALLOT_DATA_DIR: mkdtempSync(join(dir, "data-")), ALLOT_ADMIN_TOKEN: TEST_ADMIN_TOKEN, ALLOT_SECRET_KEY: TEST_SECRET_KEY };
  const run = npm(how === "npm start" ? ["start"] : ["exec", "--", "allot", "serve"], env, group);
  const url = `http://127.0.0.1:${port}`;
  await waitReady(url, { alive: () => run.proc.exitCode === null }).catch((err: Error) => {
    throw new Error(`${err.message}\n${run.output()}`);
  });
  const below = descendants(run.proc.pid!);
  assert.ok(below.length > 0, "the server runs below npm");
  return { ...run, url, below };
}

/** After the signal: the port closes, every process npm started is gone, and npm itself exits. */
async function assertAllGone(run: { url: string; below: number[]; exited: Promise<void>; output(): string }) {
  assert.ok(await waitFor(async () => (await status(`${run.url}/healthz`)) === null, 30_000), `the server still answers:\n${run.output()}`);
  assert.ok(await waitFor(() => run.below.every((pid) => !running(pid)), 30_000), `still running: ${run.below.filter(running).join(", ")}\n${run.output()}`);
  const npmExit = await Promise.race([run.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 30_000))]);
  assert.ok(npmExit, "npm exits too");
}

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  test(`npm start: ${signal} to npm stops the server`, { timeout: 120_000 }, async () => {
    const run = await serve("npm start");
    run.proc.kill(signal);
    await assertAllGone(run);
  });
}

test("npx allot serve: SIGTERM to npm stops the server", { timeout: 120_000 }, async () => {
  const run = await serve("npx allot serve");
  run.proc.kill("SIGTERM");
  await assertAllGone(run);
});

test("npx allot serve: SIGINT to npm alone stops the server (the project's .npmrc runs it through bash, which hands over)", { timeout: 120_000 }, async () => {
  const run = await serve("npx allot serve");
  run.proc.kill("SIGINT");
  await assertAllGone(run);
});

test("npx allot serve: Ctrl-C (SIGINT to the terminal's process group) stops the server", { timeout: 120_000 }, async () => {
  const run = await serve("npx allot serve", true);
  process.kill(-run.proc.pid!, "SIGINT");
  await assertAllGone(run);
});

test("npx allot agent: SIGTERM to npm stops the agent", { timeout: 120_000 }, async () => {
  // an agent with no server to reach keeps running and retrying, which is all this needs
  const env = { ALLOT_URL: `http://127.0.0.1:${await freePort()}`, ALLOT_TOKEN: TEST_ADMIN_TOKEN };
  const run = npm(["exec", "--", "allot", "agent", "--name", "signals", "--network", "lan=lo", "--state-dir", join(dir, "agent")], env);
  assert.ok(await waitFor(() => /agent signals: reaching lan on lo/.test(run.output()), 60_000), run.output());
  const below = descendants(run.proc.pid!);
  run.proc.kill("SIGTERM");
  assert.ok(await waitFor(() => below.every((pid) => !running(pid)), 30_000), `still running: ${below.filter(running).join(", ")}\n${run.output()}`);
  assert.match(run.output(), /stopping: its DHCP servers stop too/, "it stopped through its own handler, not killed");
});
