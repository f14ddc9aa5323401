/**
 * DHCP networks: what a set of DHCP servers delivers. A network is a space's IPv4 pools (all of them, or
 * those named), each a DHCP subnet, with the options clients get; its reservations are the allocations
 * in those pools that carry a MAC. The servers answer only those MACs.
 */
import { z } from "zod";
import { formatAddress, formatPrefix, maskOf, parseAddress, prefixContaining } from "../addr/index.js";
import { type Caller, SERVER, mayUse } from "../engine/access.js";
import { AllotError } from "../engine/errors.js";
import type { Engine } from "../engine/engine.js";
import type { Pool } from "../engine/types.js";
import type { Sql } from "../store/store.js";

const ipv4 = (field: string) =>
  z.string().refine(
    (s) => {
      try {
        return parseAddress(s).family === 4;
      } catch {
        return false;
      }
    },
    { message: `${field}: must be an IPv4 address such as 10.0.0.1` },
  );
const domain = z.string().regex(/^(?=.{1,253}$)([a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)*$/, "must be a domain name such as example.com");

export const DhcpOptions = z.strictObject({
  router: ipv4("router").optional().describe("default gateway; else each pool's gateway"),
  dnsServers: z.array(ipv4("dnsServers")).max(8).optional().describe("else each pool's DNS servers"),
  domainName: domain.optional(),
  searchDomains: z.array(domain).max(8).optional(),
  ntpServers: z.array(ipv4("ntpServers")).max(8).optional(),
  mtu: z.number().int().min(576).max(65535).optional(),
  leaseSeconds: z.number().int().min(60).max(31_536_000).default(3600),
});
export type DhcpOptions = z.infer<typeof DhcpOptions>;

export const NAME = /^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/;

export const DhcpNetworkInput = z.strictObject({
  name: z.string().regex(NAME, "lower-case letters, digits, '-' and '.', at most 63"),
  space: z.string().min(1).max(128).default("default"),
  pools: z.array(z.string().min(1).max(128)).max(256).default([]).describe("pool names in the space; empty: every IPv4 pool in it"),
  options: DhcpOptions.default({ leaseSeconds: 3600 }),
  servers: z.number().int().min(1).max(16).default(1).describe("how many agents serve it at once"),
});
export type DhcpNetworkInput = z.input<typeof DhcpNetworkInput>;
export type DhcpNetwork = z.infer<typeof DhcpNetworkInput> & { createdAt: string };

export interface DhcpSubnet {
  pool: string;
  cidr: string;
  network: string;
  netmask: string;
  router: string | null;
  dnsServers: string[];
}

export interface Reservation {
  mac: string;
  ip: string;
  hostname: string | null;
  pool: string;
}

/** Everything a DHCP server needs for one network, and what was left out and why. */
export interface NetworkConfig {
  network: string;
  options: DhcpOptions;
  subnets: DhcpSubnet[];
  reservations: Reservation[];
  problems: string[];
}

/** A network the caller may see (one of another space answers as missing), read in the caller's read or transaction. */
async function networkIn(sql: Sql, name: string, caller: Caller): Promise<DhcpNetwork> {
  const row = await sql.get<{ body: string }>("SELECT body FROM dhcp_networks WHERE name = ?", [name]);
  const n = row ? (JSON.parse(row.body) as DhcpNetwork) : null;
  if (!n || !mayUse(caller, n.space)) throw new AllotError("not-found", `no DHCP network is named ${name}; see allot dhcp network list`);
  return n;
}

export function readNetwork(engine: Engine, name: string, caller: Caller): Promise<DhcpNetwork> {
  return engine.store.read((sql) => networkIn(sql, name, caller));
}

export async function listNetworks(engine: Engine, caller: Caller): Promise<DhcpNetwork[]> {
  const rows = await engine.store.read((sql) => sql.all<{ body: string }>("SELECT body FROM dhcp_networks ORDER BY name"));
  return rows.map((r) => JSON.parse(r.body) as DhcpNetwork).filter((n) => mayUse(caller, n.space));
}

/**
 * The IPv4 pools a network serves: the named ones (or every one in the space), and where a pool has
 * child pools carved from it (a Neutron subnet pool, say), those children instead, at any depth.
 * With `strict`, a named pool that is missing or not IPv4 is an error; otherwise it is a problem.
 */
async function poolsOf(engine: Engine, n: Pick<DhcpNetwork, "space" | "pools">, problems: string[] | null = null): Promise<Pool[]> {
  // (every pool of the space, children included)
  const all = await engine.listPools({ space: n.space }, SERVER); // the network's space was checked
  const children = (p: Pool): Pool[] => {
    if (p.usage.inChildPools === "0") return [p];
    return all.filter((c) => c.parent === p.name).flatMap(children);
  };
  let roots: Pool[];
  if (n.pools.length === 0) roots = all.filter((p) => p.family === 4 && p.parent === null);
  else {
    roots = [];
    for (const name of n.pools) {
      const p = all.find((x) => x.name === name);
      const why = !p ? `pool ${name} does not exist in space ${n.space}` : p.family !== 4 ? `pool ${name} is IPv${p.family}; DHCP delivery serves IPv4 pools` : null;
      if (why === null) roots.push(p!);
      else if (problems) problems.push(`${why}; it is left out`);
      else throw new AllotError(!p ? "pool-not-found" : "invalid-request", why);
    }
  }
  return roots.flatMap(children);
}

export async function createNetwork(engine: Engine, input: z.infer<typeof DhcpNetworkInput>, caller: Caller): Promise<DhcpNetwork> {
  await engine.getSpace(input.space, caller);
  await poolsOf(engine, input);
  const network: DhcpNetwork = { ...input, createdAt: new Date().toISOString() };
  await engine.store.transaction(async (sql) => {
    if (await sql.get("SELECT 1 AS x FROM dhcp_networks WHERE name = ?", [input.name])) throw new AllotError("conflict", `a DHCP network named ${input.name} already exists`);
    await sql.run("INSERT INTO dhcp_networks (name, body) VALUES (?, ?)", [input.name, JSON.stringify(network)]);
  });
  return network;
}

type NetworkPatch = { options?: DhcpOptions; servers?: number; pools?: string[] };
const patched = (n: DhcpNetwork, patch: NetworkPatch): DhcpNetwork => ({
  ...n,
  ...(patch.options ? { options: patch.options } : {}),
  ...(patch.servers ? { servers: patch.servers } : {}),
  ...(patch.pools ? { pools: patch.pools } : {}),
});

export async function updateNetwork(engine: Engine, name: string, patch: NetworkPatch, caller: Caller): Promise<DhcpNetwork> {
  // the pools are checked against the network as read; the write applies the patch to it as it is then
  await poolsOf(engine, patched(await readNetwork(engine, name, caller), patch));
  return engine.store.transaction(async (sql) => {
    const next = patched(await networkIn(sql, name, caller), patch);
    await sql.run("UPDATE dhcp_networks SET body = ? WHERE name = ?", [JSON.stringify(next), name]);
    return next;
  });
}

export async function deleteNetwork(engine: Engine, name: string, caller: Caller): Promise<DhcpNetwork> {
  return engine.store.transaction(async (sql) => {
    const current = await networkIn(sql, name, caller);
    await sql.run("DELETE FROM dhcp_assignments WHERE network = ?", [name]);
    await sql.run("DELETE FROM dhcp_networks WHERE name = ?", [name]);
    return current;
  });
}

/** dnsmasq reads some host names as keywords or lease times (ignore, infinite, 1h): those are not sent. */
function servableHostname(name: string | null): boolean {
  return (
    name !== null &&
    /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/.test(name) &&
    /[a-zA-Z]/.test(name) &&
    !/^\d+[smhdw]?$/i.test(name) &&
    !["ignore", "infinite", "set", "tag", "id"].includes(name.toLowerCase())
  );
}

/** The network's subnets and reservations as they stand now, and anything left out, with why. */
export async function networkConfig(engine: Engine, name: string, caller: Caller): Promise<NetworkConfig> {
  const n = await readNetwork(engine, name, caller);
  const problems: string[] = [];
  const subnets = new Map<string, DhcpSubnet>();
  const reservations: Reservation[] = [];
  const byMac = new Map<string, Reservation>();
  let pools: Pool[] = [];
  try {
    pools = await poolsOf(engine, n, problems);
  } catch (err) {
    problems.push((err as Error).message);
  }
  for (const p of pools) {
    const attrs = p.attributes as Record<string, unknown>;
    // one subnet per distinct prefix: ranges of one prefix (in one pool or several) are one DHCP subnet
    for (const r of p.ranges) {
      // the DHCP subnet a range is served as: the prefix of its prefix length around it
      const prefix = prefixContaining(parseAddress(r.start), r.prefixLength);
      const cidr = formatPrefix(prefix);
      if (subnets.has(cidr)) continue;
      subnets.set(cidr, {
        pool: p.name,
        cidr,
        network: formatAddress({ family: 4, value: prefix.network }),
        netmask: formatAddress({ family: 4, value: maskOf(4, r.prefixLength) }),
        router: n.options.router ?? r.gateway ?? p.gateway ?? (typeof attrs["neutron.gateway"] === "string" ? (attrs["neutron.gateway"] as string) : null),
        dnsServers: n.options.dnsServers ?? (r.dns.length > 0 ? r.dns : p.dns.length > 0 ? p.dns : Array.isArray(attrs["neutron.dns"]) ? (attrs["neutron.dns"] as string[]) : []),
      });
    }
    for (const a of await engine.allAllocations({ pool: p.id }, SERVER)) {
      if (!a.mac || a.size !== 1) continue;
      const hostname = servableHostname(a.hostname) ? a.hostname : null;
      if (a.hostname && !hostname) problems.push(`the host name of ${a.address} (${JSON.stringify(a.hostname)}) is not sent: DHCP servers would misread it`);
      const r: Reservation = { mac: a.mac, ip: a.address, hostname, pool: p.name };
      const other = byMac.get(a.mac);
      // one MAC, one address per network: a second reservation would make the servers' answers depend on order
      if (other) {
        problems.push(`MAC ${a.mac} is reserved twice on network ${name} (${other.ip} in ${other.pool}, ${a.address} in ${p.name}); only ${other.ip} is served`);
        continue;
      }
      byMac.set(a.mac, r);
      reservations.push(r);
    }
  }
  return { network: name, options: n.options, subnets: [...subnets.values()], reservations, problems };
}
