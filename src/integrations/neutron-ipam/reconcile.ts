/**
 * Frees what Allot holds for Neutron and Neutron no longer has. Neutron does not undo an IPAM
 * allocation when an ML2 mechanism driver fails a port's pre-commit (nor a subnet's pool when undoing
 * its creation fails): the address stays held in Allot with no port behind it. A pass compares the
 * space's Neutron pools and addresses with Neutron's subnets and ports and frees each one Neutron lacks,
 * once it is older than the grace period (a port being made right now has its address before Neutron
 * commits it).
 */
import { canonicalAddress } from "../../addr/index.js";
import { ApiError, type Client, seg } from "../../cli/client.js";
import { type AllotAllocation, type AllotPool, SUBNET_PREFIX } from "./naming.js";
import type { NeutronApi } from "./neutron-api.js";

export interface ReconcileItem {
  kind: "address" | "subnet";
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

export async function reconcile(allot: Client, neutron: NeutronApi, o: { space: string; graceSeconds: number; dryRun: boolean; now?: Date }): Promise<ReconcileItem[]> {
  const now = (o.now ?? new Date()).getTime();
  const age = (createdAt: string) => Math.floor((now - Date.parse(createdAt)) / 1000);
  const pools = (await allot.request<{ items: AllotPool[] }>("GET", "v1/pools", undefined, { space: o.space })).items.filter((p) => p.name.startsWith(SUBNET_PREFIX));
  const before = await neutronState(neutron);
  const candidates: (ReconcileItem & { id: string })[] = [];
  for (const pool of pools) {
    const subnet = pool.name.slice(SUBNET_PREFIX.length);
    if (!before.subnets.has(subnet)) {
      candidates.push({ kind: "subnet", id: pool.id, subnet, address: pool.ranges[0]?.cidr ?? pool.ranges[0]?.start ?? "", port: "", ageSeconds: age(pool.createdAt), action: "freed" });
      continue;
    }
    for (const a of await listAllocations(allot, pool)) {
      if (before.addresses.has(`${subnet} ${a.address}`)) continue;
      candidates.push({ kind: "address", id: a.id, subnet, address: a.address, port: a.labels["neutron-port"] ?? "", ageSeconds: age(a.createdAt), action: "freed" });
    }
  }
  if (candidates.length === 0) return [];
  // read Neutron again: what appeared while the space was read is not a leak
  const after = await neutronState(neutron);
  const out: ReconcileItem[] = [];
  for (const { id, ...c } of candidates) {
    const back = c.kind === "subnet" ? after.subnets.has(c.subnet) : after.addresses.has(`${c.subnet} ${c.address}`);
    if (back) out.push({ ...c, action: "kept: back in Neutron" });
    else if (c.ageSeconds < o.graceSeconds) out.push({ ...c, action: "kept: younger than the grace period" });
    else if (o.dryRun) out.push({ ...c, action: "would free" });
    else {
      try {
        if (c.kind === "subnet") await allot.request("DELETE", `v1/pools/${seg(id)}`, undefined, { force: "true" });
        else await allot.request("DELETE", `v1/allocations/${seg(id)}`);
      } catch (err) {
        // freed meanwhile by Neutron itself (a late deallocate): the outcome wanted
        if (!(err instanceof ApiError && (err.code === "allocation-not-found" || err.code === "pool-not-found"))) throw err;
      }
      out.push(c);
    }
  }
  return out;
}
