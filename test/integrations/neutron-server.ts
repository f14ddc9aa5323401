/**
 * Debian's own Neutron (python3-neutron), run as an operator would run a standalone neutron-server: ML2
 * with no agents, no Keystone (noauth, with Neutron's own filter that fills in a project), a SQLite
 * database made from Neutron's models, and the IPAM driver neutron.conf names. The Allot driver is
 * installed from neutron-driver/ with pip, into a directory of its own on PYTHONPATH.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../process-helpers.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
/** Debian's interpreter: the first python3 on PATH may be another one, without Debian's packages. */
export const PYTHON = "/usr/bin/python3";
const NEUTRON = "/usr/lib/python3/dist-packages/neutron";

/**
 * Installs the driver package with pip, as a user would, into `dir` (with `extra` packages of the
 * repository, test-only ones); returns the PYTHONPATH entry.
 */
export function installDriver(dir: string, extra: string[] = []): string {
  const target = join(dir, "site");
  for (const pkg of ["neutron-driver", ...extra]) {
    const r = spawnSync(PYTHON, ["-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--upgrade", "--target", target, join(root, pkg)], {
      encoding: "utf8",
      env: { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: "1" },
    });
    if (r.status !== 0) throw new Error(`pip install of ${pkg} failed:\n${r.stdout}\n${r.stderr}`);
  }
  return target;
}


export interface NeutronServer {
  url: string;
  proc: ChildProcess;
  log(): string;
  stop(): Promise<void>;
}

export interface NeutronOptions {
  dir: string;
  /** "allot" or "internal" */
  ipamDriver: string;
  pythonPath?: string;
  allot?: { url: string; token: string; space: string };
  /** ML2 mechanism drivers (entry point names) and extra PYTHONPATH entries for test-only ones. */
  mechanismDrivers?: string[];
  /** The database file, made if missing (a migration keeps Neutron's database across a driver switch). */
  database?: string;
}

/** Writes the configuration, makes the database if needed, starts neutron-server and waits until it answers. */
export async function startNeutron(o: NeutronOptions): Promise<NeutronServer> {
  const port = await freePort();
  mkdirSync(join(o.dir, "state"), { recursive: true });
  mkdirSync(join(o.dir, "lock"), { recursive: true });
  const db = o.database ?? join(o.dir, "neutron.db");
  // Neutron's test pipeline, with its filter that fills in a project when there is no Keystone
  const paste = readFileSync(join(NEUTRON, "tests/etc/api-paste.ini"), "utf8")
    .replace("noauth = cors http_proxy_to_wsgi request_id catch_errors extensions neutronapiapp_v2_0", "noauth = cors http_proxy_to_wsgi request_id catch_errors noauthfakeproject extensions neutronapiapp_v2_0")
    .concat("\n[filter:noauthfakeproject]\npaste.filter_factory = neutron.auth:NoauthFakeProjectId.factory\n");
  writeFileSync(join(o.dir, "api-paste.ini"), paste);
  const conf = [
    "[DEFAULT]",
    "bind_host = 127.0.0.1",
    `bind_port = ${port}`,
    `api_paste_config = ${join(o.dir, "api-paste.ini")}`,
    "core_plugin = ml2",
    "service_plugins =",
    "auth_strategy = noauth",
    "transport_url = fake://",
    "api_workers = 0",
    "rpc_workers = 0",
    "rpc_state_report_workers = 0",
    "notify_nova_on_port_status_changes = false",
    "notify_nova_on_port_data_changes = false",
    `ipam_driver = ${o.ipamDriver}`,
    `state_path = ${join(o.dir, "state")}`,
    `log_file = ${join(o.dir, "neutron.log")}`,
    "[database]",
    `connection = sqlite:///${db}`,
    "[oslo_concurrency]",
    `lock_path = ${join(o.dir, "lock")}`,
    ...(o.allot ? ["[allot]", `url = ${o.allot.url}`, `token = ${o.allot.token}`, `space = ${o.allot.space}`, "timeout = 10"] : []),
  ].join("\n");
  writeFileSync(join(o.dir, "neutron.conf"), `${conf}\n`);
  writeFileSync(
    join(o.dir, "ml2_conf.ini"),
    [
      "[ml2]",
      "type_drivers = flat,vlan,vxlan",
      "tenant_network_types = vxlan",
      `mechanism_drivers = ${(o.mechanismDrivers ?? []).join(",")}`,
      "extension_drivers =",
      "[ml2_type_vxlan]",
      "vni_ranges = 1:1000",
      "[ml2_type_flat]",
      "flat_networks = *",
    ].join("\n") + "\n",
  );
  const env = { ...process.env, ...(o.pythonPath ? { PYTHONPATH: o.pythonPath } : {}) };
  if (!existsSync(db)) {
    // alembic cannot migrate SQLite: make the tables from Neutron's models, as its own unit tests do
    const made = spawnSync(
      PYTHON,
      ["-c", `import sqlalchemy\nfrom neutron.db.migration.models import head\nfrom neutron_lib.db import model_base\nmodel_base.BASEV2.metadata.create_all(sqlalchemy.create_engine("sqlite:///${db}"))`],
      { encoding: "utf8", env },
    );
    if (made.status !== 0) throw new Error(`making Neutron's database failed:\n${made.stderr}`);
  }
  const proc = spawn(
    PYTHON,
    ["-c", "import sys\nfrom neutron.cmd.eventlet.server import main\nsys.exit(main())", "--config-file", join(o.dir, "neutron.conf"), "--config-file", join(o.dir, "ml2_conf.ini")],
    { env, stdio: ["ignore", "pipe", "pipe"], detached: true },
  );
  let out = "";
  proc.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const log = () => {
    try {
      return out + readFileSync(join(o.dir, "neutron.log"), "utf8");
    } catch {
      return out;
    }
  };
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => proc.once("exit", () => r()));
    // the server forks workers: stop the whole group
    process.kill(-proc.pid!, "SIGTERM");
    const timer = setTimeout(() => process.kill(-proc.pid!, "SIGKILL"), 20000);
    await exited;
    clearTimeout(timer);
  };
  // it answers 20-40 s after it starts on a loaded 2-core machine: wait on readiness, generously
  const deadline = Date.now() + 240_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`neutron-server exited with ${proc.exitCode}:\n${log().slice(-4000)}`);
    try {
      const r = await fetch(`${url}/v2.0/networks`);
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`neutron-server did not answer within 240 s:\n${log().slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  return { url, proc, log, stop };
}

/** The stock openstack CLI against a noauth neutron-server; JSON output parsed. */
export function openstack(url: string, args: string[]): { code: number | null; json: unknown; stderr: string } {
  const r = spawnSync("openstack", ["--os-auth-type", "none", "--os-endpoint", url, ...args, ...(["create", "show", "list"].some((v) => args.includes(v)) ? ["-f", "json"] : [])], {
    encoding: "utf8",
    env: { ...process.env, OS_AUTH_URL: "", OS_CLOUD: "" },
  });
  let json: unknown = null;
  try {
    json = r.stdout.trim() ? JSON.parse(r.stdout) : null;
  } catch {
    json = r.stdout;
  }
  return { code: r.status, json, stderr: r.stderr };
}
