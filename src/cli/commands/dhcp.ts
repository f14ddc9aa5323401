/**
 * DHCP delivery from the command line: `allot dhcp network …` defines what is served, `allot dhcp
 * render` prints a server configuration for people who run their own, `allot dhcp agents` shows who
 * serves what, and `allot agent` is the agent itself, run on each DHCP host.
 */
import { Command, Option } from "commander";
import { DhcpAgent, parseReach } from "../../dhcp/agent.js";
import { seg } from "../client.js";
import { UsageError, collect, compact, context, parseInteger } from "../context.js";
import { print, printObject, printList } from "../output.js";

interface NetworkRow {
  name: string;
  space: string;
  pools: string[];
  servers: number;
  options: Record<string, unknown>;
}

/** Option flags shared by create and set: the DHCP options clients get. */
function withOptions(cmd: Command): Command {
  return cmd
    .option("--router <ip>", "default gateway (else each pool's gateway)")
    .option("--dns <ip>", "DNS server (repeat; else each pool's)", collect, [])
    .option("--domain <name>", "domain name")
    .option("--search <domain>", "search domain (repeat)", collect, [])
    .option("--ntp <ip>", "NTP server (repeat)", collect, [])
    .option("--mtu <bytes>", "interface MTU", parseInteger)
    .option("--lease-time <seconds>", "lease time (default 3600)", parseInteger)
    .option("--servers <n>", "how many agents serve it at once (default 1)", parseInteger)
    .option("--pool <name>", "a pool of the space to serve (repeat; default: every IPv4 pool in it)", collect, []);
}

interface OptionFlags {
  router?: string;
  dns: string[];
  domain?: string;
  search: string[];
  ntp: string[];
  mtu?: number;
  leaseTime?: number;
  servers?: number;
  pool: string[];
}

/** An empty pool list means every IPv4 pool of the space: say so. */
const shownPools = <T extends { pools: string[] }>(n: T): Record<string, unknown> => ({ ...n, pools: n.pools.length ? n.pools : "all" });

const optionsOf = (o: OptionFlags) =>
  compact({
    router: o.router,
    dnsServers: o.dns.length ? o.dns : undefined,
    domainName: o.domain,
    searchDomains: o.search.length ? o.search : undefined,
    ntpServers: o.ntp.length ? o.ntp : undefined,
    mtu: o.mtu,
    leaseSeconds: o.leaseTime ?? 3600,
  });

export function dhcpCommand(): Command {
  const dhcp = new Command("dhcp").description("DHCP delivery: networks served by DHCP agents, and rendered server configurations");
  const network = dhcp.command("network").alias("networks").description("what is served: a space's pools and the options clients get");
  withOptions(network.command("create <name>").description("serve a space's IPv4 pools by DHCP (only reserved MACs get an answer)"))
    .option("--space <space>", "the space (default: default)", "default")
    .action(async (name: string, o: OptionFlags & { space: string }, cmd: Command) => {
      const { client, format } = context(cmd);
      const made = await client.request<NetworkRow>("POST", "v1/dhcp/networks", compact({ name, space: o.space, pools: o.pool, servers: o.servers, options: optionsOf(o) }));
      printObject(format, shownPools(made), ["name", "space", "pools", "servers", "options"]);
    });
  withOptions(network.command("set <name>").description("change a network's options (all of them: give every option you want kept), pools or server count"))
    .action(async (name: string, o: OptionFlags, cmd: Command) => {
      const { client, format } = context(cmd);
      const hasOptions = o.router || o.dns.length || o.domain || o.search.length || o.ntp.length || o.mtu || o.leaseTime;
      const made = await client.request<NetworkRow>("PATCH", `v1/dhcp/networks/${seg(name)}`, compact({ servers: o.servers, pools: o.pool.length ? o.pool : undefined, options: hasOptions ? optionsOf(o) : undefined }));
      printObject(format, shownPools(made), ["name", "space", "pools", "servers", "options"]);
    });
  network
    .command("list")
    .description("list DHCP networks")
    .action(async (_o, cmd: Command) => {
      const { client, format } = context(cmd);
      const res = await client.request<{ items: NetworkRow[] }>("GET", "v1/dhcp/networks");
      printList(format, res.items, [
        ["NAME", (n) => n.name],
        ["SPACE", (n) => n.space],
        ["POOLS", (n) => (n.pools.length ? n.pools : "all")],
        ["SERVERS", (n) => n.servers],
      ]);
    });
  network
    .command("show <name>")
    .description("a network: options, reservations, problems, and the agents serving it with their health")
    .action(async (name: string, _o, cmd: Command) => {
      const { client, format } = context(cmd);
      const n = await client.request<NetworkRow & { reservations: number; problems: string[]; agents: { name: string; alive: boolean; health: { state: string; error?: string } | null }[] }>("GET", `v1/dhcp/networks/${seg(name)}`);
      if (format !== "table") return print(format, n, [], n);
      printObject(format, { ...shownPools(n), agents: n.agents.map((a) => `${a.name} (${a.alive ? (a.health?.state ?? "starting") : "lost"}${a.health?.error ? `: ${a.health.error}` : ""})`) }, ["name", "space", "pools", "servers", "options", "reservations", "agents", "problems"]);
    });
  network
    .command("delete <name>")
    .description("stop serving a network (its allocations stay)")
    .action(async (name: string, _o, cmd: Command) => {
      const { client, format } = context(cmd);
      printObject(format, await client.request<Record<string, unknown>>("DELETE", `v1/dhcp/networks/${seg(name)}`), ["name", "space"]);
    });

  dhcp
    .command("render <network>")
    .description("print the network's configuration for a DHCP server in restricted mode, to run it yourself")
    .addOption(new Option("--format <server>", "dnsmasq or kea").choices(["dnsmasq", "kea"]).default("dnsmasq"))
    .option("--interface <name>", "the interface it listens on", "eth0")
    .option("--dir <dir>", "where its lease, log and pid files go (default /var/lib/allot-dhcp/NETWORK)")
    .action(async (name: string, o: { format: string; interface: string; dir?: string }, cmd: Command) => {
      const { client } = context(cmd);
      const r = await client.request<{ main: string; files: Record<string, string>; problems: string[] }>("GET", `v1/dhcp/networks/${seg(name)}/config`, undefined, { format: o.format, interface: o.interface, dir: o.dir });
      process.stdout.write(r.files[r.main]!);
      for (const p of r.problems) process.stderr.write(`warning: ${p}\n`);
    });

  dhcp
    .command("agents")
    .description("DHCP agents: what they reach and serve, their health, when last heard from")
    .action(async (_o, cmd: Command) => {
      const { client, format } = context(cmd);
      const res = await client.request<{ items: { name: string; alive: boolean; lastSeen: string; server: string; networks: { network: string }[]; assignments: string[]; health: Record<string, { state: string; error?: string }> }[] }>("GET", "v1/dhcp/agents");
      printList(format, res.items, [
        ["NAME", (a) => a.name],
        ["STATE", (a) => (a.alive ? "alive" : "lost")],
        ["SERVER", (a) => a.server],
        ["REACHES", (a) => a.networks.map((n) => n.network)],
        ["SERVING", (a) => a.assignments.map((n) => `${n}:${a.health[n]?.state ?? "starting"}`)],
        ["ERRORS", (a) => Object.entries(a.health).filter(([, h]) => h.error).map(([n, h]) => `${n}: ${h.error}`)],
        ["LAST SEEN", (a) => a.lastSeen],
      ]);
    });
  dhcp
    .command("forget-agent <name>")
    .description("remove an agent that will not come back (its networks go to others); needs an admin token")
    .action(async (name: string, _o, cmd: Command) => {
      const { client } = context(cmd);
      await client.request("DELETE", `v1/dhcp/agents/${seg(name)}`);
      process.stdout.write(`agent ${name} forgotten\n`);
    });
  return dhcp;
}

export function agentCommand(): Command {
  return new Command("agent")
    .description("run a DHCP agent on this host: serve the networks the server assigns it, with dnsmasq or Kea")
    .requiredOption("--name <name>", "this agent's name (unique; the host name is a good one)")
    .requiredOption("--network <net=iface>", "a network it can serve and the interface (NET=IFACE, or NET=IFACE@NETNS to run the server in a network namespace); repeat", collect, [])
    .addOption(new Option("--server <kind>", "the DHCP server to run").choices(["dnsmasq", "kea"]).default("dnsmasq"))
    .option("--state-dir <dir>", "where server configurations, leases and logs go", "./allot-agent")
    .action(async (o: { name: string; network: string[]; server: "dnsmasq" | "kea"; stateDir: string }, cmd: Command) => {
      const { client } = context(cmd);
      let networks;
      try {
        networks = o.network.map(parseReach);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      if (networks.length === 0) throw new UsageError("name at least one network this host can serve: --network NET=IFACE");
      const log = (m: string) => process.stderr.write(`${new Date().toISOString()} agent ${o.name}: ${m}\n`);
      const agent = new DhcpAgent(client, { name: o.name, networks, server: o.server, stateDir: o.stateDir, log });
      const stop = async () => {
        log("stopping: its DHCP servers stop too");
        await agent.stop();
        process.exit(0);
      };
      process.once("SIGINT", () => void stop());
      process.once("SIGTERM", () => void stop());
      log(`reaching ${networks.map((n) => `${n.network} on ${n.interface}${n.netns ? `@${n.netns}` : ""}`).join(", ")}; serving with ${o.server}`);
      await agent.run();
    });
}
