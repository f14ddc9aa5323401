import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { TEST_ADMIN_TOKEN } from "../helpers.js";
import { allot } from "../process-helpers.js";
import { cleanEnv, freePort, packTarball, root, waitFor, waitReady } from "./helpers.js";

/**
 * The container image as scripts/container-build.sh builds it on a machine without an image registry
 * (a base made from Debian packages), run with podman and a named volume, driven by the CLI and kubectl
 * from outside, stopped and started again with its data. Runs as root with podman and mmdebstrap
 * installed (.ci/run installs them); podman's configuration is kept in a temporary directory.
 */

const has = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
const skip = process.getuid?.() !== 0 ? "needs root" : !has("podman") || !has("mmdebstrap") ? "needs podman and mmdebstrap" : false;

const id = randomBytes(4).toString("hex");
const image = `localhost/allot:test-${id}`;
const volume = `allot-test-${id}`;
const containers: string[] = [];
let dir: string;
let env: NodeJS.ProcessEnv;
let port: number;
let url: string;
let caFile: string;
let kubeconfig: string;
const times: Record<string, number> = {};

function podman(args: string[], timeout = 120_000) {
  const r = spawnSync("podman", args, { env, encoding: "utf8", timeout });
  return { code: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}
function ok(args: string[]) {
  const r = podman(args);
  assert.equal(r.code, 0, `podman ${args.join(" ")}: ${r.stderr}`);
  return r.stdout.trim();
}

/** A container on the volume, published on 127.0.0.1:port, ready; serving HTTPS with its own certificate. */
async function run(name: string) {
  containers.push(name);
  ok(["run", "-d", "--name", name, "--no-healthcheck", "--network", "slirp4netns", "-p", `127.0.0.1:${port}:7878`, "-v", `${volume}:/data`, "-e", `ALLOT_ADMIN_TOKEN=${TEST_ADMIN_TOKEN}`, "-e", "ALLOT_TLS=1", image]);
  await started(name);
}
async function started(name: string) {
  const running = () => ok(["inspect", "--format", "{{.State.Running}}", name]) === "true";
  // the certificate the server made in /data on its first start, to trust it
  let ca = "";
  const gotCa = await waitFor(() => {
    const r = podman(["exec", name, "cat", "/data/tls.crt"]);
    ca = r.code === 0 ? r.stdout : "";
    return ca.includes("BEGIN CERTIFICATE") || !running();
  }, 60_000);
  assert.ok(gotCa && ca, `no certificate:\n${podman(["logs", name]).stderr}${podman(["logs", name]).stdout}`);
  writeFileSync(caFile, ca);
  await waitReady(url, { ca: () => ca, alive: running }).catch((err: Error) => {
    throw new Error(`${err.message}\n${podman(["logs", name]).stdout}`);
  });
}

/** The CLI of this checkout, pointed at the container. */
const cli = (args: string[]) => allot(args, { ALLOT_URL: url, ALLOT_CA_CERT: caFile });
function kubectl(args: string[]) {
  const r = spawnSync("kubectl", ["--kubeconfig", kubeconfig, "--request-timeout=20s", ...args], { encoding: "utf8", env: { ...process.env, HOME: dir }, timeout: 30_000 });
  assert.equal(r.status, 0, `kubectl ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

before(
  async () => {
    if (skip) return;
    dir = mkdtempSync(join(tmpdir(), "allot-container-"));
    // podman's settings for these machines, in files of its own: overlay storage here, runc with cgroupfs,
    // file events and logs, ulimits no higher than the host's hard limits, no registries
    const state = join(dir, "podman");
    mkdirSync(join(state, "tmp"), { recursive: true });
    const hardNofile = spawnSync("sh", ["-c", "ulimit -Hn"], { encoding: "utf8" }).stdout.trim();
    const nofile = hardNofile === "unlimited" ? "1048576" : hardNofile;
    writeFileSync(join(state, "storage.conf"), `[storage]\ndriver = "overlay"\ngraphroot = "${state}/graph"\nrunroot = "${state}/run"\n`);
    writeFileSync(
      join(state, "containers.conf"),
      `[containers]\nlog_driver = "k8s-file"\ndefault_ulimits = ["nofile=${nofile}:${nofile}", "nproc=32768:32768"]\n\n` +
        `[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nevents_logfile_path = "${state}/events.log"\n` +
        `tmp_dir = "${state}/tmp"\nvolume_path = "${state}/volumes"\n`,
    );
    writeFileSync(join(state, "registries.conf"), `unqualified-search-registries = []\nshort-name-mode = "enforcing"\n`);
    env = {
      ...cleanEnv(),
      CONTAINERS_STORAGE_CONF: join(state, "storage.conf"),
      CONTAINERS_CONF: join(state, "containers.conf"),
      CONTAINERS_REGISTRIES_CONF: join(state, "registries.conf"),
    };
    caFile = join(dir, "allot.crt");
    port = await freePort();
    url = `https://127.0.0.1:${port}`;

    let t0 = Date.now();
    // npm pack and its build are tested by npm-package.test.ts: here the dist/ just built will do
    const tarball = packTarball(dir, { build: false });
    times.pack = Date.now() - t0;
    t0 = Date.now();
    // the Debian root file system and Node are kept between runs
    const build = spawnSync(join(root, "scripts", "container-build.sh"), [], {
      env: { ...env, TAG: image, ALLOT_TARBALL: tarball, ALLOT_CONTAINER_CACHE: join(tmpdir(), "allot-test-cache", "container") },
      encoding: "utf8",
      timeout: 10 * 60_000,
    });
    times.build = Date.now() - t0;
    assert.equal(build.status, 0, `container-build.sh:\n${build.stdout}\n${build.stderr}`);
  },
  { timeout: 15 * 60_000 },
);

after(() => {
  if (skip || !dir) return;
  for (const c of containers) podman(["rm", "--force", "--time", "5", c]);
  podman(["volume", "rm", "--force", volume]);
  podman(["rmi", "--all", "--force"]);
  console.log(`# container: pack ${times.pack} ms, image build ${times.build} ms, first start ${times.firstStart} ms, restart ${times.restart} ms`);
  rmSync(dir, { recursive: true, force: true });
});

test("the image: non-root, a /data volume, configured to listen on 0.0.0.0:7878, no health check", { skip }, () => {
  const config = JSON.parse(ok(["image", "inspect", "--format", "{{json .Config}}", image])) as { User: string; Volumes: Record<string, unknown>; Env: string[]; ExposedPorts: Record<string, unknown>; Healthcheck?: unknown };
  assert.equal(config.User, "allot");
  assert.deepEqual(Object.keys(config.Volumes), ["/data"]);
  for (const e of ["ALLOT_HOST=0.0.0.0", "ALLOT_PORT=7878", "ALLOT_DATA_DIR=/data"]) assert.ok(config.Env.includes(e), e);
  assert.deepEqual(Object.keys(config.ExposedPorts), ["7878/tcp"]);
  assert.ok(!config.Healthcheck);
  // the entrypoint is the allot CLI
  const version = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version as string;
  assert.equal(ok(["run", "--rm", "--network", "none", image, "--version"]), version);
});

test("the container serves on a named volume, driven by the CLI and kubectl; its data survives stop and start, and a new container", { skip, timeout: 5 * 60_000 }, async () => {
  let t0 = Date.now();
  await run(`allot-test-${id}-a`);
  times.firstStart = Date.now() - t0;
  assert.equal(ok(["exec", `allot-test-${id}-a`, "id", "-u"]), "7878", "the server runs as the allot user");

  const pool = cli(["pool", "create", "lab", "10.9.0.0/24", "--gateway", "10.9.0.1", "-o", "json"]);
  assert.equal(pool.code, 0, pool.stderr);
  const allocated = cli(["allocate", "lab", "--owner", "vm-1", "-o", "json"]);
  assert.equal(allocated.code, 0, allocated.stderr);
  const address = JSON.parse(allocated.stdout).address as string;
  const manifest = join(dir, "metal3.yaml");
  writeFileSync(manifest, "apiVersion: ipam.metal3.io/v1alpha1\nkind: IPPool\nmetadata: {name: prov}\nspec:\n  namePrefix: prov\n  gateway: 192.168.111.1\n  prefix: 24\n  pools: [{start: 192.168.111.100, end: 192.168.111.199}]\n");
  const applied = cli(["apply", "-f", manifest, "-n", "metal"]);
  assert.equal(applied.code, 0, applied.stderr);

  // kubectl needs HTTPS: the server's self-signed certificate (it names 127.0.0.1) and the admin token
  kubeconfig = join(dir, "kubeconfig");
  const caData = Buffer.from(ok(["exec", `allot-test-${id}-a`, "cat", "/data/tls.crt"])).toString("base64");
  writeFileSync(
    kubeconfig,
    `apiVersion: v1\nkind: Config\nclusters: [{name: allot, cluster: {server: "${url}", certificate-authority-data: ${caData}}}]\n` +
      `users: [{name: admin, user: {token: ${TEST_ADMIN_TOKEN}}}]\ncontexts: [{name: allot, context: {cluster: allot, user: admin}}]\ncurrent-context: allot\n`,
  );
  assert.match(kubectl(["get", "ippools", "-A"]), /^metal\s+prov\s/m);

  // what should be there after each restart
  const check = () => {
    const list = cli(["allocations", "lab", "-o", "json"]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, new RegExp(`"${address.replace(/\./g, "\\.")}"`));
    assert.match(list.stdout, /"vm-1"/);
    assert.match(kubectl(["get", "ippools", "-A"]), /^metal\s+prov\s/m);
  };

  // podman stop sends SIGTERM to node (PID 1), which stops cleanly
  t0 = Date.now();
  ok(["stop", "--time", "30", `allot-test-${id}-a`]);
  assert.equal(ok(["inspect", "--format", "{{.State.ExitCode}}", `allot-test-${id}-a`]), "0");
  ok(["start", `allot-test-${id}-a`]);
  await started(`allot-test-${id}-a`);
  times.restart = Date.now() - t0;
  check();

  // the data lives in the volume, not in the container: a new container on it has it all, token included
  ok(["rm", "--force", "--time", "30", `allot-test-${id}-a`]);
  await run(`allot-test-${id}-b`);
  check();
});
