/**
 * `allot agent`: runs on a host, tells the server which networks it can reach, and runs a DHCP server
 * (dnsmasq, or ISC Kea) for each network it is assigned, in restricted mode. It holds a sync request
 * open on the server, which answers as soon as its assignments or their reservations change, so a
 * change reaches the DHCP server within a second or so. If the server is lost the agent goes on
 * serving what it has; a network taken from it (another agent took over) is stopped.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, chmodSync, constants, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from "node:fs";
import { delimiter, join } from "node:path";
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
  // a look at each PATH directory, not a shell: this runs on every sync and heartbeat
  return (process.env.PATH ?? "").split(delimiter).some((dir) => {
    try {
      accessSync(join(dir || ".", bin), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Whether a server process we started is still running. */
const isRunning = (proc: ChildProcess | null | undefined): proc is ChildProcess => !!proc && proc.exitCode === null && proc.signalCode === null;

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

  private applying: Promise<void> = Promise.resolve();

  /** Runs until stop(): sync, apply, repeat. */
  async run(): Promise<void> {
    this.killLeftovers();
    while (!this.stopped) {
      let res: { assignments: Assignment[] };
      try {
        res = await this.client.request<{ assignments: Assignment[] }>("POST", this.syncPath(), { ...this.report(), known: this.known(), waitSeconds: 20 });
      } catch (err) {
        if (this.stopped) break;
        const status = (err as { status?: number }).status ?? 0;
        // refused (a bad token, a name taken by another token's agent): say so, and keep asking
        if (status >= 400 && status < 500) this.o.log(`the server refused this agent: ${(err as Error).message}`);
        else if (!this.serverLost) this.o.log(`lost the server (${(err as Error).message}); still serving ${[...this.running.keys()].join(", ") || "nothing"}`);
        if (!(status >= 400 && status < 500)) this.serverLost = true;
        await new Promise((r) => setTimeout(r, status >= 400 && status < 500 ? 5000 : 1000));
        continue;
      }
      if (this.serverLost) this.o.log("the server answers again");
      this.serverLost = false;
      // starting servers takes a while: say we are alive meanwhile, so the networks are not moved away
      const beat = setInterval(() => void this.client.request("POST", this.syncPath(), { ...this.report(), known: this.known(), waitSeconds: 0 }).catch(() => {}), 2000);
      this.applying = this.apply(res.assignments).catch((err: unknown) => this.o.log(`could not apply the assignments: ${(err as Error).message}`));
      await this.applying;
      clearInterval(beat);
    }
  }

  private syncPath(): string {
    return `v1/dhcp/agents/${encodeURIComponent(this.o.name)}/sync`;
  }

  private known(): Record<string, string> {
    return Object.fromEntries([...this.running].map(([n, r]) => [n, r.assignment.hash]));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    // a start under way finishes first, so what it starts is stopped too
    await this.applying;
    for (const n of [...this.running.keys()]) await this.stopNetwork(n);
  }

  /** DHCP servers a previous run of this agent left behind (it was killed): stopped, by their pid files. */
  private killLeftovers(): void {
    let dirs: string[] = [];
    try {
      dirs = readdirSync(this.o.stateDir);
    } catch {
      return;
    }
    for (const d of dirs) {
      for (const f of ["dnsmasq.pid", "kea-dhcp4.kea-dhcp4.pid"]) {
        const file = join(this.o.stateDir, d, f);
        if (!existsSync(file)) continue;
        const pid = Number(readFileSync(file, "utf8").trim());
        const cmd = Number.isInteger(pid) && pid > 1 && existsSync(`/proc/${pid}/cmdline`) ? readFileSync(`/proc/${pid}/cmdline`, "utf8") : "";
        if (/dnsmasq|kea-dhcp4/.test(cmd) && cmd.includes(this.o.stateDir.replace(/^\.\//, ""))) {
          this.o.log(`stopping a ${f.startsWith("dnsmasq") ? "dnsmasq" : "kea-dhcp4"} left running by an earlier run (pid ${pid})`);
          try {
            process.kill(pid, "SIGTERM");
          } catch {
            // gone already
          }
        }
      }
    }
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
      if (current && current.assignment.hash === a.hash && isRunning(current.proc)) continue;
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
      // a server still running keeps serving what it had; it stays ours to stop
      const keep = isRunning(current?.proc);
      // (recorded as this assignment, so it is not retried until the assignment changes again)
      this.running.set(a.network, keep ? { ...current, assignment: a, health: { state: "failed", error, since: now() } } : { assignment: a, proc: null, health: { state: "failed", error, since: now() }, main: "" });
    };
    if (!onPath(bin)) return fail(`${bin} is not installed (Debian: ${pkg})`);
    const dir = this.dirOf(a.network);
    const rendered = render(this.o.server, a.config, { interface: a.interface, dir });
    const main = rendered.files[rendered.main]!;
    const alive = isRunning(current?.proc);
    if (this.o.server === "kea") {
      // Kea stops serving on a configuration it refuses: test it first, inside the namespace
      writeAtomic(join(dir, "kea-dhcp4.candidate.json"), main);
      const test = await run(inNetns(a, [bin, "-t", join(dir, "kea-dhcp4.candidate.json")]), { KEA_PIDFILE_DIR: dir, KEA_LOCKFILE_DIR: dir });
      if (test.code !== 0) return fail(`kea-dhcp4 refused the configuration: ${test.output.trim().split("\n").slice(-2).join(" ")}`);
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
    if (this.stopped) return;
    for (const [file, text] of Object.entries(rendered.files)) writeAtomic(join(dir, file), text);
    // the server dies with the agent (setpriv's parent-death signal), so a killed agent leaves none behind
    const server = this.o.server === "kea" ? [bin, "-c", join(dir, rendered.main)] : [bin, "-k", "-C", join(dir, rendered.main)];
    const argv = inNetns(a, PDEATHSIG ? ["setpriv", "--pdeathsig", "SIGTERM", ...server] : server);
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
    if (isRunning(entry.proc)) {
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

/** setpriv (util-linux) can give the server a parent-death signal; without it, a killed agent's server lingers until its next start. */
const PDEATHSIG = onPath("setpriv");

/** Runs a command to its end without blocking the agent (a Kea configuration check takes a moment). */
function run(argv: string[], env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const p = spawn(argv[0]!, argv.slice(1), { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    p.stdout!.on("data", (d: Buffer) => (output += d.toString()));
    p.stderr!.on("data", (d: Buffer) => (output += d.toString()));
    p.once("error", (err) => resolve({ code: -1, output: err.message }));
    p.once("close", (code) => resolve({ code, output }));
  });
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
