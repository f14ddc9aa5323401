// A highly available PostgreSQL on one machine, for trying Allot's scale-out mode and for its failover
// test: one etcd member, two PostgreSQL nodes run by Patroni with synchronous replication, and HAProxy in
// front sending connections to whichever node Patroni says is the primary. Every process listens on
// loopback only and runs from one directory (as the postgres user when started by root: PostgreSQL
// refuses root). The configs are the templates beside this file, filled in with free ports.
//
//   node --import tsx deploy/postgres-ha/local-cluster.ts [--dir DIR]
//
// starts the cluster, prints the database URL to give `allot serve` (ALLOT_DATABASE_URL), and stops
// everything (fast: no clean shutdown, the data is thrown away) on Ctrl-C.
//
// Needs Debian's (12) packages: patroni etcd-server haproxy python3-etcd, and PostgreSQL's binaries
// (postgresql-15, found in /usr/lib/postgresql/*/bin, or set PG_BIN_DIR).
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chownSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";

const here = fileURLToPath(new URL(".", import.meta.url));

export interface HaNode {
  name: string;
  pgPort: number;
  restPort: number;
  dataDir: string;
}

export interface HaCluster {
  /** The run directory: rendered configs, data directories and each daemon's log. */
  dir: string;
  /** The database for Allot, through HAProxy (always the primary): give it to `allot serve`. */
  url: string;
  /** The superuser's URL through HAProxy, for looking around. */
  adminUrl: string;
  nodes: HaNode[];
  /** The node whose Patroni answers 200 to GET /primary, if one does. */
  primary(): Promise<HaNode | null>;
  /** The node whose Patroni answers 200 to GET /sync (the synchronous standby), if one does. */
  syncStandby(): Promise<HaNode | null>;
  /** The PID of a node's postmaster, from its data directory's postmaster.pid, if it runs. */
  postmasterPid(node: HaNode): number | null;
  /** Resolves once a writable primary answers through HAProxy and a synchronous standby exists. */
  waitReady(timeoutMs?: number): Promise<void>;
  /** The last lines of every daemon's log, for a failure's message. */
  logs(lines?: number): string;
  /** Stops every process fast (nothing is kept) and removes the run directory unless kept. */
  stop(): Promise<void>;
}

export interface ClusterOptions {
  /** The run directory (made if missing); a fresh one under the system's temp directory by default. */
  dir?: string;
  /** Keep the run directory after stop (its logs, for a look after a failure). */
  keep?: boolean;
  /** How long to wait for the cluster to be ready (writable primary and a sync standby); 150 s. */
  readyTimeoutMs?: number;
  /** Progress lines (which step is being waited for). */
  log?: (line: string) => void;
}

/** The commands the cluster needs, and the Debian package that has each. */
const NEEDS: [string, string][] = [["etcd", "etcd-server"], ["patroni", "patroni"], ["haproxy", "haproxy"]];

export async function startCluster(options: ClusterOptions = {}): Promise<HaCluster> {
  const log = options.log ?? (() => {});
  const commands = Object.fromEntries(NEEDS.map(([cmd]) => [cmd, which(cmd)])) as Record<string, string | null>;
  const missing = NEEDS.filter(([cmd]) => !commands[cmd]).map(([, pkg]) => pkg);
  if (spawnSync("/usr/bin/python3", ["-c", "import etcd"]).status !== 0) missing.push("python3-etcd");
  const binDir = process.env.PG_BIN_DIR ?? findPgBinDir();
  if (!binDir) missing.push("postgresql-15");
  if (missing.length > 0) throw new Error(`the PostgreSQL HA cluster needs: apt-get install --no-install-recommends ${[...new Set(missing)].join(" ")}`);

  const dir = options.dir ?? mkdtempSync(join(tmpdir(), "allot-ha-"));
  mkdirSync(dir, { recursive: true });
  const owner = daemonUser();
  const ports = await freePorts(7);
  const [etcdClient, etcdPeer, pg1, pg2, rest1, rest2, haproxyPort] = ports as [number, number, number, number, number, number, number];
  const secrets = { superuser: hex(), replication: hex(), rewind: hex(), allot: hex() };
  const nodes: HaNode[] = [
    { name: "pg1", pgPort: pg1, restPort: rest1, dataDir: join(dir, "pg1", "data") },
    { name: "pg2", pgPort: pg2, restPort: rest2, dataDir: join(dir, "pg2", "data") },
  ];
  const common = { RUN_DIR: dir, BIN_DIR: binDir!, ETCD_CLIENT_PORT: etcdClient, ETCD_PEER_PORT: etcdPeer };
  writeFileSync(join(dir, "etcd.yml"), render("etcd.yml", common));
  for (const node of nodes) {
    mkdirSync(join(dir, node.name), { recursive: true });
    writeFileSync(
      join(dir, `patroni-${node.name}.yml`),
      render("patroni-node.yml", {
        ...common,
        NODE: node.name,
        PG_PORT: node.pgPort,
        REST_PORT: node.restPort,
        SUPERUSER_PASSWORD: secrets.superuser,
        REPLICATION_PASSWORD: secrets.replication,
        REWIND_PASSWORD: secrets.rewind,
      }),
    );
  }
  writeFileSync(join(dir, "haproxy.cfg"), render("haproxy.cfg", { HAPROXY_PORT: haproxyPort, PG1_PORT: pg1, PG1_REST_PORT: rest1, PG2_PORT: pg2, PG2_REST_PORT: rest2 }));
  if (owner) chownTree(dir, owner);

  const daemons = new Map<string, ChildProcess>();
  const start = (name: string, command: string, args: string[]) => {
    const out = openSync(join(dir, `${name}.log`), "a");
    const argv = owner
      ? ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "env", `HOME=${dir}`, command, ...args]
      : [command, ...args];
    // its own process group, so that stopping it also stops what it started (pg_basebackup, initdb);
    // setpriv and env replace themselves, so the PID is the daemon's own
    const proc = spawn(argv[0]!, argv.slice(1), { cwd: dir, detached: true, stdio: ["ignore", out, out] });
    closeSync(out);
    proc.on("error", () => {});
    daemons.set(name, proc);
  };
  const running = (proc: ChildProcess) => proc.exitCode === null && proc.signalCode === null;
  const postmasterPid = (node: HaNode): number | null => {
    try {
      const pid = Number(readFileSync(join(node.dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
      if (!Number.isInteger(pid) || pid <= 0) return null;
      process.kill(pid, 0);
      return pid;
    } catch {
      return null;
    }
  };
  const killGroup = (proc: ChildProcess | undefined, signal: NodeJS.Signals) => {
    if (!proc?.pid || !running(proc)) return;
    try {
      process.kill(-proc.pid, signal);
    } catch {
      // already gone
    }
  };
  // a test runner or an operator's shell that ends abruptly still takes the cluster with it
  const killAllNow = () => {
    killGroup(daemons.get("haproxy"), "SIGKILL");
    for (const node of nodes) killGroup(daemons.get(node.name), "SIGKILL");
    for (const node of nodes) {
      const pid = postmasterPid(node);
      if (pid) process.kill(pid, "SIGQUIT");
    }
    killGroup(daemons.get("etcd"), "SIGKILL");
  };
  process.on("exit", killAllNow);
  // a signal ends node without "exit": stop the cluster first, then end as the signal would have
  const onSignal = (signal: NodeJS.Signals) => {
    log(`${signal}: stopping the cluster`);
    void cluster.stop().finally(() => process.exit(128 + (signal === "SIGINT" ? 2 : signal === "SIGHUP" ? 1 : 15)));
  };
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  for (const signal of signals) process.on(signal, onSignal);

  const rest = async (node: HaNode, path: string): Promise<number> => {
    try {
      const res = await fetch(`http://127.0.0.1:${node.restPort}${path}`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      return res.status;
    } catch {
      return 0;
    }
  };
  const logs = (lines = 15) =>
    readdirSync(dir)
      .filter((f) => f.endsWith(".log"))
      .map((f) => `--- ${f}\n${readFileSync(join(dir, f), "utf8").trimEnd().split("\n").slice(-lines).join("\n")}`)
      .join("\n");
  const adminUrl = `postgres://postgres:${secrets.superuser}@127.0.0.1:${haproxyPort}/postgres`;
  const url = `postgres://allot:${secrets.allot}@127.0.0.1:${haproxyPort}/allot`;

  let stopped = false;
  const cluster: HaCluster = {
    dir,
    url,
    adminUrl,
    nodes,
    async primary() {
      for (const node of nodes) if ((await rest(node, "/primary")) === 200) return node;
      return null;
    },
    async syncStandby() {
      for (const node of nodes) if ((await rest(node, "/sync")) === 200) return node;
      return null;
    },
    postmasterPid,
    async waitReady(timeoutMs = 150_000) {
      const deadline = Date.now() + timeoutMs;
      const until = async (what: string, ok: () => Promise<boolean>) => {
        const t0 = Date.now();
        log(`waiting for ${what}`);
        for (;;) {
          for (const [name, proc] of daemons) if (!running(proc)) throw new Error(`${name} exited (${proc.exitCode ?? proc.signalCode}) while waiting for ${what}\n${logs()}`);
          if (await ok()) break;
          if (Date.now() > deadline) throw new Error(`no ${what} within ${Math.round(timeoutMs / 1000)} s\n${logs()}`);
          await sleep(250);
        }
        log(`${what}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      };
      await until("a writable primary through HAProxy", () => writable(adminUrl));
      await until("a synchronous standby", async () => (await cluster.syncStandby()) !== null);
    },
    logs,
    async stop() {
      if (stopped) return;
      stopped = true;
      // fast, for a throwaway cluster: no Patroni left to restart PostgreSQL, then PostgreSQL's
      // immediate shutdown, then etcd
      killGroup(daemons.get("haproxy"), "SIGKILL");
      for (const node of nodes) killGroup(daemons.get(node.name), "SIGKILL");
      await Promise.all([...daemons].filter(([name]) => name !== "etcd").map(([, proc]) => exited(proc, 5000)));
      await Promise.all(
        nodes.map(async (node) => {
          // a postmaster is not a child of Patroni's process group (Patroni detaches it): by its PID
          for (let round = 0; round < 3; round++) {
            const pid = postmasterPid(node);
            if (!pid) return;
            process.kill(pid, round === 0 ? "SIGQUIT" : "SIGKILL");
            for (let i = 0; i < 50 && postmasterPid(node) === pid; i++) await sleep(100);
          }
        }),
      );
      killGroup(daemons.get("etcd"), "SIGTERM");
      if (!(await exited(daemons.get("etcd"), 5000))) killGroup(daemons.get("etcd"), "SIGKILL");
      process.off("exit", killAllNow);
      for (const signal of signals) process.off(signal, onSignal);
      if (!options.keep) rmSync(dir, { recursive: true, force: true });
    },
  };

  try {
    log(`starting etcd, Patroni (pg1, pg2) and HAProxy in ${dir}`);
    start("etcd", commands.etcd!, ["--config-file", join(dir, "etcd.yml")]);
    const etcdDeadline = Date.now() + 30_000;
    while (!(await etcdHealthy(etcdClient))) {
      if (!running(daemons.get("etcd")!) || Date.now() > etcdDeadline) throw new Error(`etcd did not become healthy\n${logs()}`);
      await sleep(100);
    }
    for (const node of nodes) start(node.name, commands.patroni!, [join(dir, `patroni-${node.name}.yml`)]);
    start("haproxy", commands.haproxy!, ["-db", "-f", join(dir, "haproxy.cfg")]);
    await cluster.waitReady(options.readyTimeoutMs);
    await createAllotDatabase(adminUrl, secrets.allot);
    return cluster;
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

/** True once a new connection through HAProxy reaches a primary (not in recovery) that takes writes. */
async function writable(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000, query_timeout: 2000 });
  client.on("error", () => {});
  try {
    await client.connect();
    const r = await client.query<{ recovery: boolean; ro: string }>("SELECT pg_is_in_recovery() AS recovery, current_setting('transaction_read_only') AS ro");
    return r.rows[0]!.recovery === false && r.rows[0]!.ro === "off";
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/** A login role and a database of its own for Allot (Allot creates its tables on start). */
async function createAllotDatabase(adminUrl: string, password: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 5000 });
  client.on("error", () => {});
  await client.connect();
  try {
    await client.query(`CREATE ROLE allot LOGIN PASSWORD '${password}'`);
    await client.query("CREATE DATABASE allot OWNER allot");
  } finally {
    await client.end().catch(() => {});
  }
}

async function etcdHealthy(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(1000) });
    return ((await res.json()) as { health?: string }).health === "true";
  } catch {
    return false;
  }
}

function render(template: string, values: Record<string, string | number>): string {
  return readFileSync(join(here, template), "utf8").replace(/\{\{(\w+)\}\}/g, (_, key: string) => {
    if (!(key in values)) throw new Error(`${template}: no value for {{${key}}}`);
    return String(values[key]);
  });
}

function which(cmd: string): string | null {
  const r = spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8", env: { ...process.env, PATH: `${process.env.PATH ?? ""}:/usr/sbin:/sbin` } });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** The newest /usr/lib/postgresql/N/bin with a postgres binary. */
function findPgBinDir(): string | null {
  const base = "/usr/lib/postgresql";
  if (!existsSync(base)) return null;
  const versions = readdirSync(base)
    .filter((v) => existsSync(join(base, v, "bin", "postgres")))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(base, versions[0], "bin") : null;
}

/** Root runs the daemons as the postgres user (initdb and postgres refuse root); others as themselves. */
function daemonUser(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const uid = spawnSync("id", ["-u", "postgres"], { encoding: "utf8" });
  const gid = spawnSync("id", ["-g", "postgres"], { encoding: "utf8" });
  if (uid.status !== 0) throw new Error("run as root, the cluster needs the postgres user (made by the postgresql-common package)");
  return { uid: Number(uid.stdout), gid: Number(gid.stdout) };
}

function chownTree(path: string, owner: { uid: number; gid: number }) {
  chownSync(path, owner.uid, owner.gid);
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    if (entry.isDirectory()) chownTree(join(path, entry.name), owner);
    else chownSync(join(path, entry.name), owner.uid, owner.gid);
  }
}

/** Ports free on loopback now (all held open at once, so they differ). */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
      const s = createServer();
      s.once("error", reject);
      s.listen(0, "127.0.0.1", () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

function exited(proc: ChildProcess | undefined, timeoutMs: number): Promise<boolean> {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    proc.once("exit", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const hex = () => randomBytes(12).toString("hex");

// run directly: start, print the URL; Ctrl-C or SIGTERM stops the cluster (the handlers above)
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const at = process.argv.indexOf("--dir");
  const t0 = Date.now();
  const cluster = await startCluster({ dir: at > 0 ? process.argv[at + 1] : undefined, log: (line) => console.error(`# ${line}`) });
  console.error(`# ready in ${((Date.now() - t0) / 1000).toFixed(1)} s; primary ${(await cluster.primary())?.name}, sync standby ${(await cluster.syncStandby())?.name}; logs in ${cluster.dir}`);
  console.log(`ALLOT_DATABASE_URL=${cluster.url}`);
  console.error("# Ctrl-C stops the cluster and removes its data");
  setInterval(() => {}, 1 << 30); // stay up until a signal
}
