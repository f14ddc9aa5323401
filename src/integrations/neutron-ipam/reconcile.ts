/**
 * Frees what Allot holds for Neutron and Neutron no longer has. Neutron does not undo an IPAM
 * allocation when an ML2 mechanism driver fails a port's pre-commit (nor a subnet's pool when undoing
 * its creation fails): the address stays held in Allot with no port behind it. A pass compares the
 * space's Neutron pools and addresses with Neutron's subnets and ports and frees each one Neutron lacks,
 * once it is older than the grace period (a port being made right now has its address before Neutron
 * commits it). Neutron is asked about each one again, directly, before it is freed; allocations an
 * operator made by hand in those pools are left alone.
 */
import { canonicalAddress } from "../../addr/index.js";
import { ApiError, type Client, seg } from "../../cli/client.js";
import { type AllotAllocation, type AllotPool, SUBNETPOOL_PREFIX, SUBNET_PREFIX } from "./naming.js";
import type { NeutronApi } from "./neutron-api.js";

export interface ReconcileItem {
  kind: "address" | "subnet" | "subnet pool";
  subnet: string;
  address: string;
  port: string;
  ageSeconds: number;
  /** freed, or why it was kept */
  action: "freed" | "would free" | "kept: younger than the grace period" | "kept: back in Neutron";
}

async function listAllocations(allot: Client, pool: AllotPool): Promise<AllotAllocation[]> {
  const out: AllotAllocation[] = [];
  for (let after: string | null = null; ; ) {
    const page: { items: AllotAllocation[]; next: string | null } = await allot.request("GET", `v1/pools/${seg(pool.id)}/allocations`, undefined, { limit: 1000, after: after ?? undefined });
    out.push(...page.items);
    if (!page.next) return out;
    after = page.next;
  }
}

/** What Neutron has: its subnets, and each fixed IP as "subnet address". */
async function neutronState(neutron: NeutronApi): Promise<{ subnets: Set<string>; addresses: Set<string> }> {
  const [subnets, ports] = await Promise.all([neutron.subnets(), neutron.ports()]);
  return {
    subnets: new Set(subnets.map((s) => s.id)),
    addresses: new Set(ports.flatMap((p) => p.fixed_ips.map((f) => `${f.subnet_id} ${canonicalAddress(f.ip_address)}`))),
  };
}

/** Allocations the driver made (labelled with the subnet, or owned by a port): an operator's own reservations are left alone. */
const madeByNeutron = (a: AllotAllocation) => a.labels["neutron-subnet"] !== undefined || (a.owner ?? "").startsWith("port:");

export async function reconcile(allot: Client, neutron: NeutronApi, o: { space: string; graceSeconds: number; dryRun: boolean; now?: Date }): Promise<ReconcileItem[]> {
  const now = (o.now ?? new Date()).getTime();
  const age = (createdAt: string) => Math.floor((now - Date.parse(createdAt)) / 1000);
  const all = (await allot.request<{ items: AllotPool[] }>("GET", "v1/pools", undefined, { space: o.space })).items;
  const state = await neutronState(neutron);
  const candidates: (ReconcileItem & { id: string })[] = [];
  for (const pool of all.filter((p) => p.name.startsWith(SUBNET_PREFIX))) {
    const subnet = pool.name.slice(SUBNET_PREFIX.length);
    if (!state.subnets.has(subnet)) {
      candidates.push({ kind: "subnet", id: pool.id, subnet, address: pool.ranges[0]?.cidr ?? pool.ranges[0]?.start ?? "", port: "", ageSeconds: age(pool.createdAt), action: "freed" });
      continue;
    }
    for (const a of await listAllocations(allot, pool)) {
      if (!madeByNeutron(a) || state.addresses.has(`${subnet} ${a.address}`)) continue;
      candidates.push({ kind: "address", id: a.id, subnet, address: a.address, port: a.labels["neutron-port"] ?? "", ageSeconds: age(a.createdAt), action: "freed" });
    }
  }
  // a subnet pool's pool that the driver made, once the subnet pool is gone and no subnet is carved from it
  const parents = new Set(all.map((p) => p.parent).filter((p): p is string => p !== null));
  for (const pool of all.filter((p) => p.name.startsWith(SUBNETPOOL_PREFIX) && p.parent === null)) {
    if (parents.has(pool.id) || parents.has(pool.name)) continue;
    const id = pool.name.slice(SUBNETPOOL_PREFIX.length);
    if (!(await neutron.hasSubnetPool(id))) candidates.push({ kind: "subnet pool", id: pool.id, subnet: id, address: pool.ranges.map((r) => r.cidr ?? r.start).join(" "), port: "", ageSeconds: age(pool.createdAt), action: "freed" });
  }
  const out: ReconcileItem[] = [];
  for (const { id, ...c } of candidates) {
    // ask Neutron about this one alone before freeing it: a list can miss what was made meanwhile
    const back = c.kind === "subnet" ? await neutron.hasSubnet(c.subnet) : c.kind === "address" ? await neutron.hasAddress(c.subnet, c.address) : false;
    if (back) out.push({ ...c, action: "kept: back in Neutron" });
    else if (c.ageSeconds < o.graceSeconds) out.push({ ...c, action: "kept: younger than the grace period" });
    else if (o.dryRun) out.push({ ...c, action: "would free" });
    else {
      try {
        if (c.kind === "address") await allot.request("DELETE", `v1/allocations/${seg(id)}`);
        else await allot.request("DELETE", `v1/pools/${seg(id)}`, undefined, { force: c.kind === "subnet" ? "true" : "false" });
      } catch (err) {
        // freed meanwhile by Neutron itself (a late deallocate): the outcome wanted
        if (!(err instanceof ApiError && (err.code === "allocation-not-found" || err.code === "pool-not-found"))) throw err;
      }
      out.push(c);
    }
  }
  return out;
}
