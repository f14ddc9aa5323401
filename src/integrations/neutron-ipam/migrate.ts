/**
 * Records an existing Neutron's subnet pools, subnets and ports in Allot in the driver's layout (pool
 * names, attributes, labels; a port's first address in a subnet owned by the port, others by the port
 * and address), so an operator can switch `ipam_driver` from `internal` to `allot` with every address
 * kept. Running it again changes nothing; what Allot already holds differently is reported as
 * a conflict and left as it is.
 */
import { canonicalAddress } from "../../addr/index.js";
import { ApiError, type Client, seg } from "../../cli/client.js";
import { type AllotPool, PD_POOL_ID, SUBNETPOOL_ATTRIBUTE, SUBNETPOOL_PREFIX, SUBNET_PREFIX, poolBehind, portOwner } from "./naming.js";
import type { NeutronApi, NeutronPort, NeutronSubnet } from "./neutron-api.js";

export interface ImportItem {
  kind: "subnet pool" | "subnet" | "address";
  id: string;
  what: string;
  result: "imported" | "unchanged" | `conflict: ${string}`;
}

const conflict = (why: string): ImportItem["result"] => `conflict: ${why}`;

export async function importNeutron(allot: Client, neutron: NeutronApi, space: string): Promise<ImportItem[]> {
  const [subnetPools, subnets, ports] = await Promise.all([neutron.subnetPools(), neutron.subnets(), neutron.ports()]);
  const out: ImportItem[] = [];
  const list = async () => (await allot.request<{ items: AllotPool[] }>("GET", "v1/pools", undefined, { space })).items;
  let pools = await list();

  const behind = new Map<string, AllotPool>();
  for (const sp of subnetPools) {
    const found = poolBehind(pools, sp);
    if (found) {
      behind.set(sp.id, found);
      out.push({ kind: "subnet pool", id: sp.id, what: found.name, result: "unchanged" });
      continue;
    }
    try {
      const made = await allot.request<AllotPool>("POST", "v1/pools", {
        name: SUBNETPOOL_PREFIX + sp.id,
        space,
        ranges: sp.prefixes.map((cidr) => ({ cidr })),
        description: `Neutron subnet pool ${sp.name || sp.id}`,
        attributes: { [SUBNETPOOL_ATTRIBUTE]: sp.id },
      });
      behind.set(sp.id, made);
      out.push({ kind: "subnet pool", id: sp.id, what: made.name, result: "imported" });
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      out.push({ kind: "subnet pool", id: sp.id, what: sp.prefixes.join(" "), result: conflict(err.message) });
    }
  }
  pools = await list();

  const subnetPool = new Map<string, AllotPool>();
  for (const s of subnets) {
    const r = await importSubnet(allot, space, s, pools, behind);
    out.push({ kind: "subnet", id: s.id, what: s.cidr, result: r.result });
    if (r.pool) subnetPool.set(s.id, r.pool);
  }

  for (const port of ports) {
    const firstIn = new Set<string>();
    for (const f of port.fixed_ips) {
      const pool = subnetPool.get(f.subnet_id);
      if (!pool) continue; // its subnet's conflict is reported already
      const owner = firstIn.has(f.subnet_id) ? portOwner(port.id, f.ip_address) : portOwner(port.id);
      firstIn.add(f.subnet_id);
      out.push({ kind: "address", id: port.id, what: f.ip_address, result: await importAddress(allot, pool, port, f, owner) });
    }
  }
  return out;
}

async function importSubnet(
  allot: Client,
  space: string,
  s: NeutronSubnet,
  pools: AllotPool[],
  behind: Map<string, AllotPool>,
): Promise<{ pool?: AllotPool; result: ImportItem["result"] }> {
  const attributes = {
    neutron: {
      subnet_id: s.id,
      tenant_id: s.tenant_id ?? s.project_id ?? null,
      cidr: s.cidr,
      gateway_ip: s.gateway_ip,
      allocation_pools: s.allocation_pools.map((p) => [p.start, p.end]),
    },
  };
  const existing = pools.find((p) => p.name === SUBNET_PREFIX + s.id);
  if (existing) {
    const cidr = existing.ranges[0]?.cidr;
    if (cidr !== s.cidr) return { result: conflict(`Allot's ${existing.name} spans ${cidr ?? existing.ranges[0]?.start}, not ${s.cidr}`) };
    return { pool: existing, result: "unchanged" };
  }
  const fromPool = s.subnetpool_id && s.subnetpool_id !== PD_POOL_ID ? s.subnetpool_id : undefined;
  const parent = fromPool ? behind.get(fromPool) : undefined;
  // made on its own, it would sit where its subnet pool's pool must go once that conflict is settled
  if (fromPool && !parent) return { result: conflict(`its subnet pool ${fromPool} could not be imported`) };
  try {
    const made = parent
      ? await allot.request<AllotPool>("POST", `v1/pools/${seg(parent.id)}/children`, { name: SUBNET_PREFIX + s.id, cidr: s.cidr, allocateReserved: true, description: `Neutron subnet ${s.id}`, attributes })
      : await allot.request<AllotPool>("POST", "v1/pools", { name: SUBNET_PREFIX + s.id, space, cidr: s.cidr, allocateReserved: true, description: `Neutron subnet ${s.id}`, attributes });
    return { pool: made, result: "imported" };
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    return { result: conflict(err.message) };
  }
}

async function importAddress(allot: Client, pool: AllotPool, port: NeutronPort, f: { subnet_id: string; ip_address: string }, owner: string): Promise<ImportItem["result"]> {
  const labels: Record<string, string> = { "neutron-subnet": f.subnet_id, "neutron-port": port.id, "neutron-network": port.network_id };
  if (port.device_id) labels["device-id"] = port.device_id;
  if (port.device_owner) labels["device-owner"] = port.device_owner;
  try {
    const res = await allot.send<{ address: string }>("POST", `v1/pools/${seg(pool.id)}/allocations`, { address: f.ip_address, owner, mac: port.mac_address, labels });
    if (res.status === 201) return "imported";
    // the owner already held an allocation: this ran before if it is this address
    return res.data.address === canonicalAddress(f.ip_address) ? "unchanged" : conflict(`Allot has ${owner} holding ${res.data.address}`);
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    // held already for this very port (the driver made it after the switch): nothing to do
    if (err.code === "address-unavailable" && (await holderPort(allot, pool, f.ip_address)) === port.id) return "unchanged";
    return conflict(err.message);
  }
}

async function holderPort(allot: Client, pool: AllotPool, address: string): Promise<string | undefined> {
  const found = await allot.request<{ items: { poolId: string; allocation: { labels: Record<string, string> } | null }[] }>("GET", "v1/lookup", undefined, { address });
  return found.items.find((i) => i.poolId === pool.id)?.allocation?.labels["neutron-port"];
}

