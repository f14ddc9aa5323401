import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { TEST_ADMIN_TOKEN } from "../helpers.js";
import { type ServerProcess, allot, startServerProcess } from "../process-helpers.js";

/**
 * DHCP delivery end to end, with real parts: an Allot server, `allot agent` processes running real
 * dnsmasq and ISC Kea servers in network namespaces this test makes (two server hosts and a client on
 * one bridge), and busybox udhcpc as the client. Traffic stays inside those namespaces. Agents are
 * declared lost after 5 s here: shorter would make a loaded machine look like a failed agent.
 */

const root = fileURLToPath(new URL("../..", import.meta.url));
const tag = `a${process.pid % 100000}`;
const NS = { lan: `${tag}-lan`, a: `${tag}-srva`, b: `${tag}-srvb`, cli: `${tag}-cli` };
let dir: string;
let server: ServerProcess;
const agents = new Map<string, ChildProcess & { log: string }>();

function sh(cmd: string): string {
  const r = spawnSync("sh", ["-c", cmd], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
  return r.stdout;
}

/** Two server hosts and a client on one bridge; the servers get 10.77.0.2 and .3. */
function makeNetwork() {
  sh(`ip netns add ${NS.lan} && ip -n ${NS.lan} link add br0 type bridge && ip -n ${NS.lan} link set br0 up && ip -n ${NS.lan} link set lo up`);
  const ports: [string, string, string | null][] = [[NS.a, "eth-a", "10.77.0.2/24"], [NS.b, "eth-b", "10.77.0.3/24"], [NS.cli, "eth-c", null]];
  for (const [ns, ifname, address] of ports) {
    sh(`ip netns add ${ns} && ip -n ${ns} link set lo up`);
    sh(`ip link add ${tag}${ifname} type veth peer name ${ifname}`);
    sh(`ip link set ${tag}${ifname} netns ${NS.lan} && ip -n ${NS.lan} link set ${tag}${ifname} master br0 && ip -n ${NS.lan} link set ${tag}${ifname} up`);
    sh(`ip link set ${ifname} netns ${ns} && ip -n ${ns} link set ${ifname} up`);
    if (address) sh(`ip -n ${ns} addr add ${address} dev ${ifname}`);
  }
}

/** One DHCP exchange from the client namespace with this MAC: the lease's values, or null. */
function lease(mac: string): Record<string, string> | null {
  sh(`ip -n ${NS.cli} link set eth-c address ${mac}`);
  const r = spawnSync("ip", ["netns", "exec", NS.cli, "busybox", "udhcpc", "-i", "eth-c", "-n", "-q", "-f", "-t", "3", "-T", "1", "-s", join(dir, "udhcpc.sh")], { encoding: "utf8", timeout: 20_000 });
  if (r.status !== 0) return null;
  const line = r.stdout.split("\n").find((l) => l.startsWith("LEASE "));
  return line ? (JSON.parse(line.slice(6)) as Record<string, string>) : null;
}

function startAgent(name: string, ns: string, ifname: string, server: "dnsmasq" | "kea"): ChildProcess & { log: string } {
  const proc = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "--url", server_url(), "agent", "--name", name, "--network", `lan=${ifname}@${ns}`, "--server", server, "--state-dir", join(dir, name)], {
    cwd: root,
    env: { ...process.env, ALLOT_TOKEN: TEST_ADMIN_TOKEN },
    stdio: ["ignore", "ignore", "pipe"],
  }) as ChildProcess & { log: string };
  proc.log = "";
  proc.stderr!.on("data", (d: Buffer) => (proc.log += d.toString()));
  agents.set(name, proc);
  return proc;
}
const server_url = () => server.url;

async function until<T>(what: string, probe: () => T | null | undefined | false, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const json = (args: string[]) => {
  const r = allot(["--url", server.url, ...args, "-o", "json"]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, unknown>;
};
const servingAgent = () => {
  const shown = json(["dhcp", "network", "show", "lan"]) as { agents: { name: string; alive: boolean; health: { state: string } | null }[] };
  return shown.agents.find((a) => a.alive && a.health?.state === "serving")?.name;
};
const dnsmasqIn = (ns: string) => spawnSync("ip", ["netns", "pids", ns], { encoding: "utf8" }).stdout.trim().split("\n").filter(Boolean).length;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "allot-dhcp-"));
  // dnsmasq reads its hosts file after dropping to nobody
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, "udhcpc.sh"), `#!/bin/sh\n[ "$1" = bound ] && printf 'LEASE {"ip":"%s","router":"%s","dns":"%s","domain":"%s","search":"%s","mtu":"%s","ntpsrv":"%s","lease":"%s","serverid":"%s","hostname":"%s"}\\n' "$ip" "$router" "$dns" "$domain" "$search" "$mtu" "$ntpsrv" "$lease" "$serverid" "$hostname"\nexit 0\n`, { mode: 0o755 });
  makeNetwork();
  server = await startServerProcess(join(dir, "data"), { ALLOT_DHCP_AGENT_TIMEOUT_MS: "5000" });
  const run = (args: string[]) => assert.equal(allot(["--url", server.url, ...args]).code, 0, args.join(" "));
  run(["space", "create", "lab"]);
  run(["pool", "create", "lab-net", "10.77.0.0/24", "--space", "lab", "--gateway", "10.77.0.1", "--dns", "10.77.0.53"]);
  run(["allocate", "lab-net", "--space", "lab", "--address", "10.77.0.50", "--mac", "aa:bb:cc:00:00:01", "--hostname", "host1", "--owner", "host1"]);
  run(["dhcp", "network", "create", "lan", "--space", "lab", "--search", "lab.example", "--domain", "lab.example", "--ntp", "10.77.0.123", "--mtu", "1450", "--lease-time", "600"]);
});

after(async () => {
  for (const a of agents.values()) {
    if (a.exitCode === null) {
      a.kill("SIGCONT");
      a.kill("SIGTERM");
      await new Promise((r) => a.once("exit", r));
    }
  }
  await server?.stop();
  for (const ns of Object.values(NS)) {
    // anything still running in a namespace goes with it
    spawnSync("sh", ["-c", `for p in $(ip netns pids ${ns} 2>/dev/null); do kill -9 $p; done; ip netns del ${ns}`]);
  }
  rmSync(dir, { recursive: true, force: true });
});

test("dnsmasq: a reserved MAC gets exactly its address and options; an unknown MAC gets nothing; changes arrive within seconds", async (t) => {
  startAgent("host-a", NS.a, "eth-a", "dnsmasq");
  await until("host-a serving", servingAgent);
  const got = lease("aa:bb:cc:00:00:01");
  assert.deepEqual(got, { ip: "10.77.0.50", router: "10.77.0.1", dns: "10.77.0.53", domain: "lab.example", search: "lab.example", mtu: "1450", ntpsrv: "10.77.0.123", lease: "600", serverid: "10.77.0.2", hostname: "host1" });
  assert.equal(lease("aa:bb:cc:00:00:99"), null, "an unknown MAC got a lease");

  // a reservation added reaches the server within seconds (push), then is served, by the same dnsmasq (reloaded, not restarted)
  const pidFile = join(dir, "host-a", "lan", "dnsmasq.pid");
  const pidBefore = readFileSync(pidFile, "utf8").trim();
  const added = Date.now();
  assert.equal(allot(["--url", server.url, "allocate", "lab-net", "--space", "lab", "--address", "10.77.0.51", "--mac", "aa:bb:cc:00:00:99", "--owner", "late"]).code, 0);
  const late = await until("the new reservation served", () => lease("aa:bb:cc:00:00:99"), 15_000);
  assert.equal(late.ip, "10.77.0.51");
  assert.ok(Date.now() - added < 8000, `took ${Date.now() - added} ms`);
  t.diagnostic(`reservation added to lease: ${Date.now() - added} ms (CLI call, push to the agent, SIGHUP, one DHCP exchange)`);
  assert.equal(readFileSync(pidFile, "utf8").trim(), pidBefore, "dnsmasq was restarted, not reloaded");
  // and a released one stops being answered
  assert.equal(allot(["--url", server.url, "release", "lab-net", "--space", "lab", "--owner", "late"]).code, 0);
  await until("the released MAC refused", () => lease("aa:bb:cc:00:00:99") === null, 15_000);
});

test("two agents: stopping the serving one moves service to the other; one that comes back after being replaced stops serving", async (t) => {
  startAgent("host-b", NS.b, "eth-b", "dnsmasq");
  await until("host-b registered", () => (json(["dhcp", "agents"]).items as { name: string }[]).some((a) => a.name === "host-b"));
  assert.equal(servingAgent(), "host-a");
  assert.equal(dnsmasqIn(NS.b), 0, "the standby runs no DHCP server");
  const a = agents.get("host-a")!;
  a.kill("SIGTERM");
  await new Promise((r) => a.once("exit", r));
  const stoppedAt = Date.now();
  await until("host-b serving", () => servingAgent() === "host-b", 20_000);
  t.diagnostic(`failover: host-b serving ${Date.now() - stoppedAt} ms after host-a stopped (agent timeout 5 s)`);
  const got = lease("aa:bb:cc:00:00:01");
  assert.deepEqual([got?.ip, got?.serverid], ["10.77.0.50", "10.77.0.3"]);

  // host-a comes back; host-b then goes quiet (paused) and host-a takes over; host-b, resumed, stops its server
  startAgent("host-a", NS.a, "eth-a", "dnsmasq");
  await until("host-a registered again", () => (json(["dhcp", "agents"]).items as { name: string; alive: boolean }[]).some((x) => x.name === "host-a" && x.alive));
  const b = agents.get("host-b")!;
  b.kill("SIGSTOP");
  await until("host-a serving again", () => servingAgent() === "host-a", 20_000);
  b.kill("SIGCONT");
  await until("host-b's dnsmasq stopped", () => dnsmasqIn(NS.b) === 0, 20_000);
  // (its output is read by this process's event loop, which the polls above can run ahead of)
  await until("host-b saying why", () => /no longer assigned here: stopping its DHCP server/.test(b.log), 10_000);
  const again = lease("aa:bb:cc:00:00:01");
  assert.deepEqual([again?.ip, again?.serverid], ["10.77.0.50", "10.77.0.2"]);
});

test("a restart of the server changes nothing that was running: the same agent, the same dnsmasq, the same leases", async () => {
  const serving = servingAgent()!;
  const pidFile = join(dir, serving, "lan", "dnsmasq.pid");
  const pid = readFileSync(pidFile, "utf8").trim();
  const port = new URL(server.url).port;
  await server.stop();
  server = await startServerProcess(join(dir, "data"), { ALLOT_DHCP_AGENT_TIMEOUT_MS: "5000" }, Number(port));
  // the agents find it again; the assignment was kept, so nothing moves
  await new Promise((r) => setTimeout(r, 3000));
  assert.equal(servingAgent(), serving);
  assert.equal(readFileSync(pidFile, "utf8").trim(), pid, "the DHCP server was restarted");
  assert.equal(lease("aa:bb:cc:00:00:01")?.ip, "10.77.0.50");
});

test("ISC Kea: the same network served by Kea; a missing DHCP server binary is a health error the API shows", async () => {
  for (const name of ["host-a", "host-b"]) {
    const p = agents.get(name)!;
    if (p.exitCode === null) {
      p.kill("SIGTERM");
      await new Promise((r) => p.once("exit", r));
    }
  }
  startAgent("host-k", NS.b, "eth-b", "kea");
  await until("host-k serving", () => servingAgent() === "host-k", 25_000);
  const got = await until("a lease from Kea", () => lease("aa:bb:cc:00:00:01"), 15_000);
  assert.deepEqual([got.ip, got.router, got.dns, got.mtu, got.serverid], ["10.77.0.50", "10.77.0.1", "10.77.0.53", "1450", "10.77.0.3"]);
  assert.equal(lease("aa:bb:cc:00:00:77"), null, "Kea answered an unknown MAC");

  // an agent on a host without the server binary reports it, and is given nothing
  const bare = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "--url", server.url, "agent", "--name", "no-binary", "--network", "lan=eth-a", "--state-dir", join(dir, "no-binary")], {
    cwd: root,
    env: { ...process.env, ALLOT_TOKEN: TEST_ADMIN_TOKEN, PATH: "/nonexistent" },
    stdio: "ignore",
  }) as ChildProcess & { log: string };
  bare.log = "";
  agents.set("no-binary", bare);
  const reported = await until("the missing binary reported", () => (json(["dhcp", "agents"]).items as { name: string; health: Record<string, { error?: string }> }[]).find((x) => x.name === "no-binary" && x.health.lan?.error));
  assert.match(reported.health.lan!.error!, /dnsmasq is not installed \(Debian: dnsmasq-base\)/);
});
