/**
 * `allot agent`: runs on a host, tells the server which networks it can reach, and runs a DHCP server
 * (dnsmasq, or ISC Kea) for each network it is assigned, in restricted mode. It holds a sync request
 * open on the server, which answers as soon as its assignments or their reservations change, so a
 * change reaches the DHCP server within a second or so. If the server is lost the agent goes on
 * serving what it has; a network taken from it (another agent took over) is stopped.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Client } from "../cli/client.js";
import type { AgentReport, Assignment, Health, Reach } from "./agents.js";
import { type ServerKind, dnsmasqHosts, render } from "./render.js";

export interface AgentOptions {
  name: string;
  networks: Reach[];
  server: ServerKind;
  stateDir: string;
  log: (message: string) => void;
}

interface Running {
  assignment: Assignment;
  proc: ChildProcess | null;
  health: Health;
  /** The main configuration last started with (a change there needs a restart, not a reload). */
  main: string;
}

const now = () => new Date().toISOString();
const BINARIES: Record<ServerKind, { bin: string; pkg: string }> = { dnsmasq: { bin: "dnsmasq", pkg: "dnsmasq-base" }, kea: { bin: "kea-dhcp4", pkg: "kea-dhcp4-server" } };

function onPath(bin: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${bin}`], { encoding: "utf8" }).status === 0;
}

/** A command, run inside the network's namespace when it has one. */
const inNetns = (reach: Reach, argv: string[]) => (reach.netns ? ["ip", "netns", "exec", reach.netns, ...argv] : argv);

/** Writes a file whole or not at all (readable by dnsmasq once it has dropped to nobody). */
function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}~`;
  writeFileSync(tmp, text, { mode: 0o644 });
  renameSync(tmp, file);
}

export class DhcpAgent {
  private readonly running = new Map<string, Running>();
  private stopped = false;
  private serverLost = false;

  constructor(
    private readonly client: Client,
    private readonly o: AgentOptions,
  ) {
    mkdirSync(o.stateDir, { recursive: true });
    chmodSync(o.stateDir, 0o755);
  }

  private report(): AgentReport {
    const health: Record<string, Health> = {};
    for (const [n, r] of this.running) health[n] = r.health;
    // a network whose server binary is missing is reported failed before anything is assigned
    if (!onPath(BINARIES[this.o.server].bin)) {
      for (const reach of this.o.networks) health[reach.network] = { state: "failed", error: `${BINARIES[this.o.server].bin} is not installed (Debian: ${BINARIES[this.o.server].pkg})`, since: now() };
    }
    return { networks: this.o.networks, server: this.o.server, health };
  }

  /** Runs until stop(): sync, apply, repeat. */
  async run(): Promise<void> {
    while (!this.stopped) {
      try {
        const known = Object.fromEntries([...this.running].map(([n, r]) => [n, r.assignment.hash]));
        const res = await this.client.request<{ assignments: Assignment[] }>("POST", `v1/dhcp/agents/${encodeURIComponent(this.o.name)}/sync`, { ...this.report(), known, waitSeconds: 20 });
        if (this.serverLost) this.o.log("the server answers again");
        this.serverLost = false;
        await this.apply(res.assignments);
      } catch (err) {
        if (this.stopped) break;
        if (!this.serverLost) this.o.log(`lost the server (${(err as Error).message}); still serving ${[...this.running.keys()].join(", ") || "nothing"}`);
        this.serverLost = true;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const n of [...this.running.keys()]) await this.stopNetwork(n);
  }

  private async apply(assignments: Assignment[]): Promise<void> {
    for (const n of [...this.running.keys()]) {
      if (!assignments.some((a) => a.network === n)) {
        this.o.log(`network ${n} is no longer assigned here: stopping its DHCP server`);
        await this.stopNetwork(n);
      }
    }
    for (const a of assignments) {
      const current = this.running.get(a.network);
      if (current && current.assignment.hash === a.hash && current.proc && current.proc.exitCode === null) continue;
      await this.startOrReload(a, current);
    }
  }

  private dirOf(network: string): string {
    const dir = join(this.o.stateDir, network);
    mkdirSync(dir, { recursive: true });
    chmodSync(dir, 0o755);
    return dir;
  }

  private async startOrReload(a: Assignment, current: Running | undefined): Promise<void> {
    const { bin, pkg } = BINARIES[this.o.server];
    const fail = (error: string) => {
      this.o.log(`network ${a.network}: ${error}`);
      this.running.set(a.network, { assignment: a, proc: null, health: { state: "failed", error, since: now() }, main: "" });
    };
    if (!onPath(bin)) return fail(`${bin} is not installed (Debian: ${pkg})`);
    const dir = this.dirOf(a.network);
    const rendered = render(this.o.server, a.config, { interface: a.interface, dir });
    const main = rendered.files[rendered.main]!;
    const alive = current?.proc && current.proc.exitCode === null && current.proc.signalCode === null;
    if (this.o.server === "kea") {
      // Kea stops serving on a configuration it refuses: test it first, inside the namespace
      writeAtomic(join(dir, "kea-dhcp4.candidate.json"), main);
      const test = spawnSync(inNetns(a, [bin, "-t", join(dir, "kea-dhcp4.candidate.json")])[0]!, inNetns(a, [bin, "-t", join(dir, "kea-dhcp4.candidate.json")]).slice(1), { encoding: "utf8", env: { ...process.env, KEA_PIDFILE_DIR: dir, KEA_LOCKFILE_DIR: dir } });
      if (test.status !== 0) return fail(`kea-dhcp4 refused the configuration: ${(test.stdout + test.stderr).trim().split("\n").slice(-2).join(" ")}`);
    }
    if (alive && current.main === main && this.o.server === "dnsmasq") {
      // only reservations changed: the hosts file, then SIGHUP
      writeAtomic(join(dir, "hosts"), dnsmasqHosts(a.config));
      current.proc!.kill("SIGHUP");
      this.running.set(a.network, { ...current, assignment: a, health: { state: "serving", since: current.health.since } });
      this.o.log(`network ${a.network}: ${a.config.reservations.length} reservations reloaded`);
      return;
    }
    if (alive && this.o.server === "kea") {
      writeAtomic(join(dir, rendered.main), main);
      current.proc!.kill("SIGHUP");
      this.running.set(a.network, { ...current, assignment: a, main, health: { state: "serving", since: current.health.since } });
      this.o.log(`network ${a.network}: configuration reloaded (${a.config.reservations.length} reservations)`);
      return;
    }
    if (current?.proc) await this.stopNetwork(a.network);
    for (const [file, text] of Object.entries(rendered.files)) writeAtomic(join(dir, file), text);
    const argv = this.o.server === "kea" ? inNetns(a, [bin, "-c", join(dir, rendered.main)]) : inNetns(a, [bin, "-k", "-C", join(dir, rendered.main)]);
    const proc = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, KEA_PIDFILE_DIR: dir, KEA_LOCKFILE_DIR: dir } });
    let stderr = "";
    proc.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    const entry: Running = { assignment: a, proc, health: { state: "starting", since: now() }, main };
    this.running.set(a.network, entry);
    proc.once("exit", (code, signal) => {
      if (this.running.get(a.network) !== entry) return; // replaced or stopped on purpose
      const error = `${bin} exited (${signal ?? `code ${code}`}): ${stderr.trim().split("\n").slice(-2).join(" ") || logTail(dir)}`;
      this.o.log(`network ${a.network}: ${error}`);
      entry.health = { state: "failed", error, since: now() };
      entry.proc = null;
    });
    // give it a moment to bind (or to fail), so the health reported next is true
    await new Promise((r) => setTimeout(r, 300));
    if (entry.proc && entry.proc.exitCode === null) {
      entry.health = { state: "serving", since: now() };
      this.o.log(`network ${a.network}: ${bin} serving ${a.config.reservations.length} reservations on ${a.interface}${a.netns ? ` (netns ${a.netns})` : ""}`);
    }
  }

  private async stopNetwork(network: string): Promise<void> {
    const r = this.running.get(network);
    this.running.delete(network);
    const proc = r?.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    proc.kill("SIGTERM");
    const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  }
}

function logTail(dir: string): string {
  for (const f of ["dnsmasq.log", "kea-dhcp4.log"]) {
    const p = join(dir, f);
    if (existsSync(p)) return readFileSync(p, "utf8").trim().split("\n").slice(-2).join(" ");
  }
  return "";
}

/** `NET=IFACE` or `NET=IFACE@NETNS`. */
export function parseReach(text: string): Reach {
  const m = /^([a-z0-9][-a-z0-9.]*)=([^@\s]+)(?:@(\S+))?$/.exec(text);
  if (!m) throw new Error(`--network ${text}: write it as NETWORK=INTERFACE or NETWORK=INTERFACE@NETNS`);
  return { network: m[1]!, interface: m[2]!, ...(m[3] ? { netns: m[3] } : {}) };
}
