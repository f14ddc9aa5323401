/**
 * How the Neutron IPAM driver (neutron-driver/allot_neutron/driver.py) lays Neutron out in Allot. The
 * migration and the reconcile read and write the same shapes, so the two must agree.
 */
export const SUBNET_PREFIX = "neutron-subnet-";
export const SUBNETPOOL_PREFIX = "neutron-subnetpool-";
/** An Allot pool with this attribute set to a subnet pool's id or name is the one behind that subnet pool. */
export const SUBNETPOOL_ATTRIBUTE = "neutron-subnetpool";
/** Neutron's provisional subnet pool of prefix delegation: not a real one. */
export const PD_POOL_ID = "prefix_delegation";

/** A port's first address in a subnet is owned by the port; any other by the port and that address. */
export const portOwner = (portId: string, ip?: string) => (ip === undefined ? `port:${portId}` : `port:${portId}@${ip}`);

export interface AllotPool {
  id: string;
  name: string;
  parent: string | null;
  ranges: { cidr?: string; start: string; end: string }[];
  attributes: Record<string, unknown>;
  createdAt: string;
}

export interface AllotAllocation {
  id: string;
  address: string;
  owner: string | null;
  labels: Record<string, string>;
  createdAt: string;
}

/**
 * The operator's pool of the space behind a Neutron subnet pool, as the driver finds it: marked with the
 * subnet pool's id, or (for a shared subnet pool, an operator's) marked with or named by its name; never
 * one of the driver's own pools. Undefined when there is none (the driver then makes one).
 */
export function poolBehind(pools: AllotPool[], sp: { id: string; name: string; shared: boolean }): AllotPool | undefined {
  const sharedName = sp.shared && sp.name ? sp.name : undefined;
  return pools.find((p) => {
    if (p.parent !== null || p.name.startsWith(SUBNET_PREFIX) || p.name.startsWith(SUBNETPOOL_PREFIX)) return false;
    const mark = String(p.attributes[SUBNETPOOL_ATTRIBUTE] ?? "");
    return mark === sp.id || (sharedName !== undefined && (mark === sharedName || p.name === sharedName));
  }) ?? pools.find((p) => p.parent === null && p.name === SUBNETPOOL_PREFIX + sp.id);
}
