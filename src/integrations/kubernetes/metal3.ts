/**
 * Metal3's IPAM controller semantics on Allot's engine. A namespace is an Allot space; an IPPool is an
 * Allot pool whose ranges are the pool's entries (nothing skipped: network, broadcast and gateway can
 * be handed out, as in Metal3); a claim's address is an allocation owned by the claim's name, so a
 * claim is bound at most once and a retry finds its address again. The choice follows Metal3: entries
 * in declaration order, lowest free first (or random), preAllocations and the ipAddress annotation
 * honoured, Metal3's error messages on claims. Where Metal3 has bugs this fixes them (README lists
 * each): addresses are compared canonically, duplicate preAllocations are refused, and a claim that
 * failed because its pool was full is tried again when addresses free up.
 */
import { SERVER } from "../../engine/access.js";
import { type Address, type Family, MAX, type Prefix, formatAddress, parseAddress, parsePrefix, prefixLast } from "../../addr/index.js";
import type { Engine } from "../../engine/engine.js";
import { AllotError } from "../../engine/errors.js";
import type { Allocation, ChangeContext, Pool } from "../../engine/types.js";
import type { Sql, Store } from "../../store/store.js";
import { getObject, listObjects, putObject, removeObject } from "./objects.js";
import { CAPI, type KubeObject, METAL3, RESOURCES, type ResourceType } from "./resources.js";

const T = (group: string, resource: string) => RESOURCES.find((r) => r.group === group && r.resource === resource)!;
export const POOLS = T(METAL3, "ippools");
export const CLAIMS = T(METAL3, "ipclaims");
export const ADDRESSES = T(METAL3, "ipaddresses");
export const CAPI_CLAIMS = T(CAPI, "ipaddressclaims");
export const CAPI_ADDRESSES = T(CAPI, "ipaddresses");

/** The annotation clusterctl sets on objects while it moves them. */
export const PAUSED = "cluster.x-k8s.io/paused";
/** Marks the Allot pool an IPPool made (by the IPPool's uid), so a same-named pool made otherwise is never taken over. */
export const OWNER_ATTRIBUTE = "kubernetes.ipPoolUid";
/** Set on a remade pool until the addresses its IPAddress objects hold are all taken again. */
const RESTORING_ATTRIBUTE = "kubernetes.restoring";

export const FINALIZERS = {
  pool: "ippool.ipam.metal3.io",
  claim: "ipclaim.ipam.metal3.io",
  address: "ipaddress.ipam.metal3.io",
  capiClaim: "ipam.metal3.io/ipaddressclaim",
  capiAddress: "ipam.metal3.io/ipaddress",
};

/** An invalid object: 422 with the field named, as Kubernetes answers. */
export class InvalidObject extends Error {
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
  }
}

export interface Entry {
  first: bigint;
  last: bigint;
  family: Family;
  prefix: number;
  gateway: string | null;
  dns: string[];
}

type Spec = Record<string, unknown>;
const asString = (v: unknown) => (typeof v === "string" && v !== "" ? v : undefined);

function parseIp(text: string, field: string): Address {
  try {
    return parseAddress(text);
  } catch {
    throw new InvalidObject(`${field}: "${text}" is not an IP address`, field);
  }
}

/** Metal3 counts an entry's addresses in a Go int: its random strategy refuses an entry with more. */
export const RANDOM_LIMIT = (1n << 63n) - 1n;

/** One `spec.pools` entry as Metal3 reads it (its GetIPAddress and GetPoolSize). */
export interface ReadEntry {
  field: string;
  /** Its candidate addresses; null when it yields none. */
  entry: Entry | null;
  /** Why it yields no address, for the pool's status (Metal3 accepts such an entry and serves nothing from it). */
  idle: string | null;
  /** Why the random strategy cannot pick in it (Metal3's webhook refuses the pool then). */
  unindexable: string | null;
}

/** Every `spec.pools` entry, in declaration order; throws naming the field of a malformed one. */
export function readEntries(spec: Spec): ReadEntry[] {
  const entries = (Array.isArray(spec.pools) ? spec.pools : []) as Spec[];
  const topPrefix = typeof spec.prefix === "number" ? spec.prefix : 0;
  const topGateway = asString(spec.gateway) ?? null;
  const topDns = Array.isArray(spec.dnsServers) ? (spec.dnsServers as string[]) : [];
  return entries.map((e, i): ReadEntry => {
    const field = `spec.pools[${i}]`;
    // Metal3 parses a subnet that is present, even an empty one; only an absent one is skipped
    if (e.subnet === "") throw new InvalidObject(`${field}.subnet: is empty; give a CIDR (such as 192.168.0.0/24) or leave subnet out`, `${field}.subnet`);
    const start = asString(e.start);
    const end = asString(e.end);
    const subnet = asString(e.subnet);
    if (!start && !end && !subnet) throw new InvalidObject(`${field}: has none of start, end and subnet; give start and end, start and subnet, or subnet`, field);
    const a = start ? parseIp(start, `${field}.start`) : undefined;
    const b = end ? parseIp(end, `${field}.end`) : undefined;
    let p: Prefix | undefined;
    if (subnet) {
      try {
        p = parsePrefix(subnet, false);
      } catch {
        throw new InvalidObject(`${field}.subnet: "${subnet}" is not a CIDR`, `${field}.subnet`);
      }
    }
    if (!a && !p) return { field, entry: null, idle: `${field} yields no addresses: it has only end (give start or subnet)`, unindexable: "it has only end, so there is nothing to pick from (give start or subnet)" };
    // the first candidate: start, or (subnet alone) the address as written plus one (host bits not masked)
    const family = a ? a.family : p!.family;
    const first = a ? a.value : parseAddress(subnet!.split("/")[0]!).value + 1n;
    if (b) {
      if (b.family !== family) throw new InvalidObject(`${field}.end: ${end} is not the same family as the entry's start`, `${field}.end`);
      if (b.value < first) throw new InvalidObject(`${field}.end: ${end} is before the entry's start`, `${field}.end`);
    }
    let last = b ? b.value : MAX[family];
    let idle: string | null = null;
    if (p) {
      // Metal3 hands out from the first candidate while it is inside the subnet: one outside gives nothing
      if (p.family !== family || first < p.network || first > prefixLast(p)) {
        idle = a ? `${field} yields no addresses: start ${start} is outside its subnet ${subnet}` : `${field} yields no addresses: subnet ${subnet} has no address after the one written`;
      }
      if (prefixLast(p) < last) last = prefixLast(p);
    }
    // what the random strategy can index, as Metal3 counts it (its GetPoolSize: start and end win over
    // subnet, and a subnet alone counts from its network)
    let unindexable: string | null = null;
    if (a && !b && !p) unindexable = "start alone runs to the end of the address space (give end or subnet, or use allocationStrategy sequential)";
    else if (a && !b && (p!.family !== family || a.value > prefixLast(p!))) unindexable = `start ${start} is past the end of its subnet ${subnet}`;
    else {
      const size = a && b ? b.value - a.value + 1n : a ? prefixLast(p!) - a.value + 1n : prefixLast(p!) - p!.network;
      if (size > RANDOM_LIMIT) unindexable = `it holds ${size} addresses, more than random can pick among (${RANDOM_LIMIT}, 2^63-1); give a smaller range, or use allocationStrategy sequential`;
    }
    if (idle) return { field, entry: null, idle, unindexable };
    const prefix = typeof e.prefix === "number" && e.prefix !== 0 ? e.prefix : topPrefix;
    const gateway = asString(e.gateway) ?? topGateway;
    const dns = Array.isArray(e.dnsServers) && e.dnsServers.length > 0 ? (e.dnsServers as string[]) : topDns;
    return { field, entry: { first, last, family, prefix, gateway, dns }, idle: null, unindexable };
  });
}

/** The entries that yield addresses, in declaration order. */
export const entriesOf = (spec: Spec): Entry[] => readEntries(spec).flatMap((r) => (r.entry ? [r.entry] : []));

/** Admission checks for an IPPool (Metal3's webhook, plus the fixes). */
export function validatePool(o: KubeObject): void {
  const spec = (o.spec ?? {}) as Spec;
  if (!asString(spec.namePrefix)) throw new InvalidObject("spec.namePrefix: required", "spec.namePrefix");
  const strategy = spec.allocationStrategy ?? "sequential";
  if (strategy !== "sequential" && strategy !== "random") throw new InvalidObject(`spec.allocationStrategy: must be sequential or random, not ${String(strategy)}`, "spec.allocationStrategy");
  const read = readEntries(spec);
  // random picks an index below the entry's size, so it needs a bounded entry of at most RANDOM_LIMIT addresses
  const unindexable = strategy === "random" ? read.find((r) => r.unindexable) : undefined;
  if (unindexable) throw new InvalidObject(`${unindexable.field}: cannot be used with allocationStrategy random: ${unindexable.unindexable}`, unindexable.field);
  const entries = read.flatMap((r) => (r.entry ? [r.entry] : []));
  const families = new Set(entries.map((e) => e.family));
  if (families.size > 1) throw new InvalidObject("spec.pools: entries mix IPv4 and IPv6; use one pool per family", "spec.pools");
  for (const [i, a] of entries.entries()) {
    for (const [j, b] of entries.entries()) {
      if (j > i && a.first <= b.last && b.first <= a.last) throw new InvalidObject(`spec.pools[${j}]: overlaps spec.pools[${i}]`, `spec.pools[${j}]`);
    }
  }
  // the CRD bounds prefix to 0..128 (Metal3 answers "Invalid prefix value" on CAPI claims otherwise)
  const prefixes: [unknown, string][] = [[spec.prefix, "spec.prefix"], ...((Array.isArray(spec.pools) ? spec.pools : []) as Spec[]).map((e, i): [unknown, string] => [e.prefix, `spec.pools[${i}].prefix`])];
  for (const [value, field] of prefixes) {
    if (value !== undefined && (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 128)) {
      throw new InvalidObject(`${field}: Invalid prefix value, it must be between 0 and 128 (got ${JSON.stringify(value)})`, field);
    }
  }
  if (spec.gateway !== undefined) parseIp(String(spec.gateway), "spec.gateway");
  const pre = (spec.preAllocations ?? {}) as Record<string, string>;
  const seen = new Map<bigint, string>();
  for (const [claim, ip] of Object.entries(pre)) {
    const a = parseIp(ip, `spec.preAllocations.${claim}`);
    // compared as addresses, not strings: 2001:db8::0005 and 2001:db8::5 are one address
    const other = seen.get(a.value);
    if (other !== undefined) throw new InvalidObject(`spec.preAllocations.${claim}: ${ip} is already pre-allocated to ${other}`, `spec.preAllocations.${claim}`);
    seen.set(a.value, claim);
    if (!entries.some((e) => e.family === a.family && a.value >= e.first && a.value <= e.last)) {
      throw new InvalidObject(`spec.preAllocations.${claim}: ${ip} is outside every entry of spec.pools`, `spec.preAllocations.${claim}`);
    }
  }
}

export function validateClaim(o: KubeObject, t: ResourceType): void {
  const spec = (o.spec ?? {}) as Spec;
  const ref = (t === CLAIMS ? spec.pool : spec.poolRef) as Spec | undefined;
  const field = t === CLAIMS ? "spec.pool.name" : "spec.poolRef.name";
  if (!ref || !asString(ref.name)) throw new InvalidObject(`${field}: required`, field);
}

/** Metal3's object name rule: namePrefix-address with ':' and '.' as '-', trailing '-' trimmed. */
export function addressName(namePrefix: string, ip: string): string {
  return `${namePrefix}-${ip.replace(/[:.]/g, "-")}`.replace(/-+$/, "");
}

const poolNameOf = (claim: KubeObject, t: ResourceType) => String((((claim.spec ?? {}) as Spec)[t === CLAIMS ? "pool" : "poolRef"] as Spec | undefined)?.name ?? "");

export interface Metal3Deps {
  engine: Engine;
  store: Store;
  ctx: ChangeContext;
  now?: () => Date;
  /** Where a failed reconcile is reported (it is retried on the next change). */
  log?: (err: unknown) => void;
}

/** Serialises reconciles per namespace within this server. */
const running = new Map<string, Promise<void>>();

export function reconcile(deps: Metal3Deps, namespace: string): Promise<void> {
  const prev = running.get(namespace) ?? Promise.resolve();
  const next = prev.then(() => reconcileNow(deps, namespace)).catch((err: unknown) => deps.log?.(err));
  running.set(namespace, next);
  return next;
}

async function tx<T>(deps: Metal3Deps, fn: (sql: Sql) => Promise<T>): Promise<T> {
  return deps.store.transaction(fn);
}

/** Brings Allot's pools, allocations and the IPAddress objects of one namespace in line with its pools and claims. */
async function reconcileNow(deps: Metal3Deps, namespace: string): Promise<void> {
  // one read of the namespace per pass: a pool's pass changes only its own claims and addresses, and
  // what changes meanwhile wakes another pass
  const { pools, claims, held } = await tx(deps, async (sql) => ({ pools: await listObjects(sql, POOLS, namespace), claims: await claimsIn(sql, namespace), held: await heldByPool(sql, namespace) }));
  for (const { object: pool } of pools) {
    // paused (clusterctl move does this): the pool and its claims stand still until the annotation goes
    if (pool.metadata.annotations?.[PAUSED] !== undefined) continue;
    // each pool on its own: one that cannot be served says why in its status and the others go on
    const name = pool.metadata.name;
    try {
      await reconcilePool(deps, namespace, pool, held.get(name) ?? [], claims.filter(({ t, o }) => poolNameOf(o, t) === name));
    } catch (err) {
      deps.log?.(err);
      await recordPoolError(deps, namespace, pool, err instanceof AllotError || err instanceof PoolConflict || err instanceof InvalidObject ? err.message : "reconcile failed; see the server log");
    }
  }
  // deleted claims of a pool that is gone hold nothing any more: let them go
  const names = new Set(pools.map((p) => p.object.metadata.name));
  for (const { t, o } of claims) {
    if (o.metadata.deletionTimestamp && !names.has(poolNameOf(o, t))) await releaseClaim(deps, namespace, null, t, o);
  }
}

/** Puts (or clears, with null) the reason an IPPool cannot be served into its status. */
async function recordPoolError(deps: Metal3Deps, ns: string, pool: KubeObject, message: string | null): Promise<void> {
  await tx(deps, async (sql) => {
    const live = await getObject(sql, POOLS, ns, pool.metadata.name);
    if (!live) return;
    const { errorMessage: _e, ...rest } = (live.object.status ?? {}) as Spec;
    const next = { ...live.object, status: message === null ? rest : { ...rest, errorMessage: message } };
    if (JSON.stringify(next) !== JSON.stringify(live.object)) await putObject(sql, POOLS, next);
  });
}

/** An Allot pool of the IPPool's name that this IPPool did not make: left alone, and said so. */
class PoolConflict extends Error {}

/** Both kinds of claim in a namespace. */
async function claimsIn(sql: Sql, ns: string): Promise<{ t: ResourceType; o: KubeObject }[]> {
  return [
    ...(await listObjects(sql, CLAIMS, ns)).map((s) => ({ t: CLAIMS, o: s.object })),
    ...(await listObjects(sql, CAPI_CLAIMS, ns)).map((s) => ({ t: CAPI_CLAIMS, o: s.object })),
  ];
}

/** `held`: [claim, address] of the pool's IPAddress objects; `claims`: the pool's claims (both read at the pass's start). */
async function reconcilePool(deps: Metal3Deps, ns: string, pool: KubeObject, held: [string, string][], claims: { t: ResourceType; o: KubeObject }[]): Promise<void> {
  const name = pool.metadata.name;
  const spec = (pool.spec ?? {}) as Spec;
  const ref = { pool: name, space: ns };
  const deleting = !!pool.metadata.deletionTimestamp;
  // an entry that yields nothing is accepted (as Metal3 does) and said so, not silently ignored
  const problems: string[] = readEntries(spec).flatMap((r) => (r.idle ? [r.idle] : []));
  if (!deleting) {
    await deps.engine.ensureSpace({ name: ns, description: `Kubernetes namespace ${ns}` }, deps.ctx);
    // a change of entries that cannot be made yet leaves the pool serving as it was, and says why
    const remake = await ensureAllotPool(deps, ns, pool);
    if (remake) problems.push(remake);
    // preAllocations are held for their claims from the start, so nobody else gets them
    for (const [claim, ip] of Object.entries((spec.preAllocations ?? {}) as Record<string, string>)) {
      await deps.engine.allocate(ref, { address: formatAddress(parseAddress(ip)), owner: claim }, deps.ctx).catch(() => {});
    }
    problems.push(...(await heal(deps, ns, pool, held)));
  }
  for (const { t, o } of claims) {
    if (o.metadata.deletionTimestamp) await releaseClaim(deps, ns, pool, t, o);
    else if (!deleting) await bindClaim(deps, ns, pool, t, o);
  }
  await updatePoolStatus(deps, ns, pool, problems.length > 0 ? problems.join("; ") : null);
}

/**
 * The IPAddress objects are the record of who holds what: an address one of them names that is not
 * allocated to its claim in Allot (released through /v1, say) is taken back before any claim is served,
 * so it cannot go to a second claim. One held by someone else is reported.
 */
async function heal(deps: Metal3Deps, ns: string, pool: KubeObject, held: [string, string][]): Promise<string[]> {
  if (held.length === 0) return [];
  const ref = { pool: pool.metadata.name, space: ns };
  let allocations: Allocation[];
  try {
    allocations = await deps.engine.allAllocations(ref, SERVER);
  } catch (err) {
    if (err instanceof AllotError && err.code === "pool-not-found") return [];
    throw err;
  }
  const have = new Set(allocations.map((a) => `${a.owner} ${a.address}`));
  const problems: string[] = [];
  for (const [claim, ip] of held) {
    if (have.has(`${claim} ${ip}`)) continue;
    try {
      await deps.engine.allocate(ref, { address: ip, owner: claim }, deps.ctx);
    } catch (err) {
      if (!(err instanceof AllotError)) throw err;
      const other = allocations.find((a) => a.address === ip);
      problems.push(`${ip} belongs to claim ${claim} but is held in Allot by ${other?.owner ?? "someone else"} (${err.code}); release it there`);
    }
  }
  return problems;
}

/**
 * The Allot pool behind an IPPool: made on first sight and, when the entries change, made again with
 * every held address taken again in it. The new pool is built under a temporary name nobody else
 * allocates in, and renamed when complete; a pass cut short resumes from it. Answers why a change of
 * entries cannot be made (the pool then serves as it was), or null.
 */
async function ensureAllotPool(deps: Metal3Deps, ns: string, pool: KubeObject): Promise<string | null> {
  const spec = (pool.spec ?? {}) as Spec;
  const entries = entriesOf(spec);
  const ranges = entries.map((e) => {
    // Allot keeps each range inside a prefix; Metal3's own prefix is only reported, so use the smallest covering one
    let len = e.family === 4 ? 32 : 128;
    while (len > 0 && e.first >> BigInt((e.family === 4 ? 32 : 128) - len) !== e.last >> BigInt((e.family === 4 ? 32 : 128) - len)) len--;
    return { start: formatAddress({ family: e.family, value: e.first }), end: formatAddress({ family: e.family, value: e.last }), prefixLength: len };
  });
  const strategy = spec.allocationStrategy === "random" ? "random" : "lowest-free";
  const name = pool.metadata.name;
  const uid = pool.metadata.uid;
  let existing: Pool | undefined;
  try {
    existing = await deps.engine.getPool({ pool: name, space: ns }, SERVER);
  } catch (err) {
    if (!(err instanceof AllotError && err.code === "pool-not-found")) throw err;
  }
  if (existing && existing.attributes[OWNER_ATTRIBUTE] !== uid) {
    throw new PoolConflict(`space ${ns} already has an Allot pool named ${name} that this IPPool did not make; rename one of them`);
  }
  if (!existing) {
    // a remake cut short: finish it
    const partial = (await deps.engine.listPools({ space: ns }, SERVER)).find((p) => p.attributes[OWNER_ATTRIBUTE] === uid && p.attributes[RESTORING_ATTRIBUTE]);
    if (partial) {
      await restoreHeld(deps, ns, pool, partial.id);
      return null;
    }
  }
  const same = existing && JSON.stringify(existing.ranges.map((r) => [r.start, r.end])) === JSON.stringify(ranges.map((r) => [r.start, r.end]));
  if (existing && same) return null;
  const held = await heldByObjects(deps, ns, name);
  if (existing) {
    if (existing.usage.inChildPools !== "0") return `spec.pools changed, but child pools were carved from the Allot pool ${name} (through /v1); remove them so the pool can be remade`;
    const backed = new Set([...held.map(([claim, ip]) => `${claim} ${ip}`), ...Object.entries((spec.preAllocations ?? {}) as Record<string, string>).map(([c, ip]) => `${c} ${formatAddress(parseAddress(ip))}`)]);
    const stray = (await deps.engine.allAllocations({ pool: existing.id }, SERVER)).find((a) => a.size !== 1 || !backed.has(`${a.owner} ${a.address}`));
    if (stray) return `spec.pools changed, but ${stray.address} (owner ${stray.owner ?? "none"}) was allocated outside Kubernetes; release it (allot release) so the pool can be remade`;
    const outside = held.find(([, ip]) => !entries.some((e) => inEntry(e, parseAddress(ip))));
    if (outside) return `spec.pools no longer holds ${outside[1]}, held by claim ${outside[0]}; delete that claim first`;
    await deps.engine.deletePool({ pool: existing.id }, { force: true }, deps.ctx);
  }
  if (ranges.length === 0) return null;
  const made = await deps.engine.createPool(
    {
      name: held.length > 0 ? `${name}.remaking-${Date.now().toString(36)}` : name,
      space: ns,
      ranges,
      allocateReserved: true,
      strategy,
      description: `Metal3 IPPool ${ns}/${name}`,
      attributes: { [OWNER_ATTRIBUTE]: uid, ...(held.length > 0 ? { [RESTORING_ATTRIBUTE]: true } : {}) },
    },
    deps.ctx,
  );
  if (held.length > 0) await restoreHeld(deps, ns, pool, made.id);
  return null;
}

export const inEntry = (e: Entry, a: Address) => e.family === a.family && a.value >= e.first && a.value <= e.last;

/** The pool, claim and address an IPAddress object (Metal3's or Cluster API's) names. */
export function addressRefs(t: ResourceType, o: KubeObject): { pool: unknown; claim: unknown; address: unknown } {
  const s = (o.spec ?? {}) as Spec;
  const metal3 = t === ADDRESSES;
  return { pool: ((metal3 ? s.pool : s.poolRef) as Spec | undefined)?.name, claim: ((metal3 ? s.claim : s.claimRef) as Spec | undefined)?.name, address: s.address };
}

/** [claim, address] for every IPAddress object (either kind) of the namespace, by pool. */
async function heldByPool(sql: Sql, ns: string): Promise<Map<string, [string, string][]>> {
  const out = new Map<string, [string, string][]>();
  for (const t of [ADDRESSES, CAPI_ADDRESSES]) {
    for (const { object } of await listObjects(sql, t, ns)) {
      const { pool, claim, address } = addressRefs(t, object);
      if (typeof pool !== "string" || typeof claim !== "string" || typeof address !== "string") continue;
      const list = out.get(pool) ?? [];
      list.push([claim, formatAddress(parseAddress(address))]);
      out.set(pool, list);
    }
  }
  return out;
}

/** [claim, address] for every IPAddress object (either kind) of the pool. */
async function heldIn(sql: Sql, ns: string, poolName: string): Promise<[string, string][]> {
  return (await heldByPool(sql, ns)).get(poolName) ?? [];
}

const heldByObjects = (deps: Metal3Deps, ns: string, poolName: string) => tx(deps, (sql) => heldIn(sql, ns, poolName));

async function restoreHeld(deps: Metal3Deps, ns: string, pool: KubeObject, poolId: string): Promise<void> {
  for (const [claim, ip] of await heldByObjects(deps, ns, pool.metadata.name)) {
    await deps.engine.allocate({ pool: poolId }, { address: ip, owner: claim }, deps.ctx);
  }
  // complete: under its own name, open to everyone again
  await deps.engine.updatePool({ pool: poolId }, { name: pool.metadata.name, attributes: { [OWNER_ATTRIBUTE]: pool.metadata.uid } }, deps.ctx);
}

interface Pick {
  allocation: Allocation;
  entry: Entry;
}

/** Metal3's choice for one claim (its allocateAddress), on Allot's allocations. Throws an Error whose message goes on the claim. */
async function pick(deps: Metal3Deps, ns: string, pool: KubeObject, claim: KubeObject): Promise<Pick> {
  const spec = (pool.spec ?? {}) as Spec;
  const entries = entriesOf(spec);
  const ref = { pool: pool.metadata.name, space: ns };
  const owner = claim.metadata.name;
  const requestedText = claim.metadata.annotations?.ipAddress;
  let requested: Address | undefined;
  if (requestedText !== undefined) {
    try {
      requested = parseAddress(requestedText);
    } catch {
      throw new Error(`Invalid ipAddress annotation "${requestedText}": not a valid IP address`);
    }
  }
  const preText = ((spec.preAllocations ?? {}) as Record<string, string>)[owner];
  const pre = preText !== undefined ? parseAddress(preText) : undefined;
  if (pre && requested && pre.value !== requested.value) throw new Error("PreAllocation and requested ip address are conflicting");
  const entryOf = (a: Address) => entries.find((e) => e.family === a.family && a.value >= e.first && a.value <= e.last);
  const target = pre ?? requested;
  if (target) {
    const entry = entryOf(target);
    if (!entry) throw new Error(pre ? "Pre-allocated IP out of bounds" : "Exhausted IP Pools");
    try {
      const r = await deps.engine.allocate(ref, { address: formatAddress(target), owner }, deps.ctx);
      return { allocation: r.allocation, entry };
    } catch (err) {
      if (err instanceof AllotError && ["address-unavailable", "owner-conflict"].includes(err.code)) throw new Error("Requested IP not available");
      throw err;
    }
  }
  for (const entry of entries) {
    try {
      const r = await deps.engine.allocate(
        ref,
        { owner, within: { start: formatAddress({ family: entry.family, value: entry.first }), end: formatAddress({ family: entry.family, value: entry.last }) } },
        deps.ctx,
      );
      // an owner already holding an address (a rebind) may hold it in another entry
      const a = parseAddress(r.allocation.address);
      return { allocation: r.allocation, entry: entryOf(a) ?? entry };
    } catch (err) {
      if (err instanceof AllotError && err.code === "pool-exhausted") continue;
      throw err;
    }
  }
  throw new Error("Exhausted IP Pools");
}

/** Metal3's error on a claim: errorMessage, or a Cluster API claim's Ready=False condition (its time kept while unchanged). */
async function stampFailure(deps: Metal3Deps, ns: string, t: ResourceType, claim: KubeObject, message: string): Promise<void> {
  const capi = t === CAPI_CLAIMS;
  await tx(deps, async (sql) => {
    const live = await getObject(sql, t, ns, claim.metadata.name);
    if (!live) return;
    const o = withFinalizer(live.object, capi ? FINALIZERS.capiClaim : FINALIZERS.claim);
    if (capi) {
      const reason = message === "Exhausted IP Pools" ? "PoolExhausted" : "AllocationFailed";
      const before = ((o.status ?? {}).conditions as { type: string; status: string; reason?: string; message?: string; lastTransitionTime?: string }[] | undefined)?.find((c) => c.type === "Ready");
      const same = before && before.status === "False" && before.reason === reason && before.message === message;
      o.status = { ...(o.status ?? {}), conditions: [same ? before : readyCondition("False", reason, message, deps)] };
    } else o.status = { ...(o.status ?? {}), errorMessage: message };
    if (JSON.stringify(o) !== JSON.stringify(live.object)) await putObject(sql, t, o);
  });
}

async function bindClaim(deps: Metal3Deps, ns: string, pool: KubeObject, t: ResourceType, claim: KubeObject): Promise<void> {
  const capi = t === CAPI_CLAIMS;
  const status = (claim.status ?? {}) as Spec;
  const bound = capi ? asString((status.addressRef as Spec | undefined)?.name) : asString((status.address as Spec | undefined)?.name);
  const addrType = capi ? CAPI_ADDRESSES : ADDRESSES;
  if (bound && (await tx(deps, (sql) => getObject(sql, addrType, ns, bound)))) return;
  const finalizer = capi ? FINALIZERS.capiClaim : FINALIZERS.claim;
  // an address picked may turn out to be another claim's (released through /v1 after this pass's heal):
  // it goes back to that claim and this one picks again
  for (let attempt = 1; ; attempt++) {
    let chosen: Pick;
    try {
      chosen = await pick(deps, ns, pool, claim);
    } catch (err) {
      await stampFailure(deps, ns, t, claim, (err as Error).message);
      return;
    }
    const holder = await bindTo(deps, ns, pool, t, claim, chosen, finalizer);
    if (holder === null) return;
    const ip = chosen.allocation.address;
    await deps.engine.release({ id: chosen.allocation.id }, deps.ctx).catch(() => {});
    await deps.engine.allocate({ pool: pool.metadata.name, space: ns }, { address: ip, owner: holder }, deps.ctx).catch(() => {});
    if (attempt === 3) {
      await stampFailure(deps, ns, t, claim, `Requested IP not available (${ip} is held by claim ${holder})`);
      return;
    }
  }
}

/** Writes the IPAddress object for the address picked and binds the claim to it; or answers the claim whose object already holds it. */
async function bindTo(deps: Metal3Deps, ns: string, pool: KubeObject, t: ResourceType, claim: KubeObject, chosen: Pick, finalizer: string): Promise<string | null> {
  const capi = t === CAPI_CLAIMS;
  const spec = (pool.spec ?? {}) as Spec;
  const ip = chosen.allocation.address;
  const objectName = addressName(String(spec.namePrefix), ip);
  const collision = await tx(deps, async (sql) => {
    const live = await getObject(sql, t, ns, claim.metadata.name);
    if (!live || live.object.metadata.deletionTimestamp) return null;
    const owners = [
      { apiVersion: pool.apiVersion, kind: "IPPool", name: pool.metadata.name, uid: pool.metadata.uid },
      { apiVersion: live.object.apiVersion, kind: live.object.kind, name: live.object.metadata.name, uid: live.object.metadata.uid },
    ];
    const address: KubeObject = capi
      ? {
          apiVersion: live.object.apiVersion,
          kind: "IPAddress",
          metadata: { name: objectName, namespace: ns, labels: live.object.metadata.labels ?? {}, finalizers: [FINALIZERS.capiAddress], ownerReferences: owners },
          spec: { address: ip, prefix: chosen.entry.prefix, gateway: chosen.entry.gateway ?? "", poolRef: { name: pool.metadata.name, kind: "IPPool", apiGroup: METAL3 }, claimRef: { name: live.object.metadata.name } },
        }
      : {
          apiVersion: `${METAL3}/v1alpha1`,
          kind: "IPAddress",
          metadata: { name: objectName, namespace: ns, labels: live.object.metadata.labels ?? {}, finalizers: [FINALIZERS.address], ownerReferences: owners },
          spec: {
            address: ip,
            prefix: chosen.entry.prefix,
            ...(chosen.entry.gateway ? { gateway: chosen.entry.gateway } : {}),
            ...(chosen.entry.dns.length ? { dnsServers: chosen.entry.dns } : {}),
            pool: { name: pool.metadata.name, namespace: ns },
            claim: { name: live.object.metadata.name, namespace: ns },
          },
        };
    const prior = await getObject(sql, capi ? CAPI_ADDRESSES : ADDRESSES, ns, objectName);
    if (prior) {
      const s = (prior.object.spec ?? {}) as Spec;
      const owner = ((capi ? s.claimRef : s.claim) as Spec | undefined)?.name;
      // the object is another claim's: that claim holds the address, whatever Allot was told
      if (owner !== live.object.metadata.name) return owner;
    } else await putObject(sql, capi ? CAPI_ADDRESSES : ADDRESSES, address);
    const o = withFinalizer(live.object, finalizer);
    if (capi) {
      o.status = { ...(o.status ?? {}), addressRef: { name: objectName }, conditions: [readyCondition("True", "AddressAllocated", "", deps)] };
    } else {
      const { errorMessage: _e, ...rest } = (o.status ?? {}) as Spec;
      o.status = { ...rest, address: { name: objectName, namespace: ns } };
    }
    await putObject(sql, t, o);
    return null;
  });
  return collision === null || collision === undefined ? null : String(collision);
}

/** A deleted claim: its address goes back (unless pre-allocated, which stays reserved), its IPAddress object goes, then the claim. */
async function releaseClaim(deps: Metal3Deps, ns: string, pool: KubeObject | null, t: ResourceType, claim: KubeObject): Promise<void> {
  const capi = t === CAPI_CLAIMS;
  const ours = capi ? FINALIZERS.capiClaim : FINALIZERS.claim;
  const others = (claim.metadata.finalizers ?? []).filter((f) => f !== ours);
  if (others.length > 0) return; // someone else (a Metal3Data, say) still needs it: keep its address
  const pre = ((pool?.spec ?? {}) as Spec).preAllocations as Record<string, string> | undefined;
  if (pool && !pre?.[claim.metadata.name]) {
    try {
      await deps.engine.release({ pool: { pool: pool.metadata.name, space: ns }, owner: claim.metadata.name }, deps.ctx);
    } catch (err) {
      if (!(err instanceof AllotError && (err.code === "allocation-not-found" || err.code === "pool-not-found"))) throw err;
    }
  }
  await tx(deps, async (sql) => {
    const addrType = capi ? CAPI_ADDRESSES : ADDRESSES;
    for (const { object } of await listObjects(sql, addrType, ns)) {
      const s = (object.spec ?? {}) as Spec;
      const claimName = capi ? (s.claimRef as Spec | undefined)?.name : (s.claim as Spec | undefined)?.name;
      if (claimName === claim.metadata.name) await removeObject(sql, addrType, object);
    }
    const live = await getObject(sql, t, ns, claim.metadata.name);
    if (live) await removeObject(sql, t, live.object);
  });
}

async function updatePoolStatus(deps: Metal3Deps, ns: string, pool: KubeObject, problem: string | null = null): Promise<void> {
  // status.indexes: claim to address
  const indexesOf = async (sql: Sql): Promise<Record<string, string>> => Object.fromEntries(await heldIn(sql, ns, pool.metadata.name));
  if (pool.metadata.deletionTimestamp) {
    // not deletable while addresses reference it; the engine's own transaction runs outside ours
    if (Object.keys(await tx(deps, indexesOf)).length > 0) return;
    // only the pools this IPPool made go with it (a remake's unfinished one too), by id; one that had
    // child pools carved from it through /v1 is left for whoever made them
    for (const made of (await deps.engine.listPools({ space: ns }, SERVER).catch(() => [] as Pool[])).filter((p) => p.attributes[OWNER_ATTRIBUTE] === pool.metadata.uid && p.parent === null)) {
      if (made.usage.inChildPools !== "0") continue;
      await deps.engine.deletePool({ pool: made.id }, { force: true }, deps.ctx).catch((err: unknown) => {
        if (!(err instanceof AllotError && err.code === "pool-not-found")) throw err;
      });
    }
    await tx(deps, async (sql) => {
      const live = await getObject(sql, POOLS, ns, pool.metadata.name);
      if (live) await removeObject(sql, POOLS, live.object);
    });
    return;
  }
  await tx(deps, async (sql) => {
    const live = await getObject(sql, POOLS, ns, pool.metadata.name);
    if (!live) return;
    const indexes = await indexesOf(sql);
    const o = live.object;
    const before = JSON.stringify((o.status ?? {}).indexes ?? {});
    const changed = before !== JSON.stringify(indexes);
    const next = withFinalizer(o, FINALIZERS.pool);
    const clusterName = asString(((o.spec ?? {}) as Spec).clusterName);
    // Metal3 labels a cluster's pools so `kubectl get ippools -l cluster.x-k8s.io/cluster-name=...` finds them
    if (clusterName) next.metadata.labels = { ...(next.metadata.labels ?? {}), "cluster.x-k8s.io/cluster-name": clusterName, "cluster.x-k8s.io/provider": "ipam-metal3" };
    const { errorMessage: _e, ...kept } = (o.status ?? {}) as Spec;
    next.status = { ...kept, ...(problem ? { errorMessage: problem } : {}), indexes, lastUpdated: changed || !(o.status ?? {}).lastUpdated ? (deps.now?.() ?? new Date()).toISOString().replace(/\.\d{3}Z$/, "Z") : (o.status as Spec).lastUpdated };
    if (JSON.stringify(next) !== JSON.stringify(o)) await putObject(sql, POOLS, next);
  });
}

function withFinalizer(o: KubeObject, f: string): KubeObject {
  const finalizers = o.metadata.finalizers ?? [];
  return finalizers.includes(f) ? structuredClone(o) : { ...structuredClone(o), metadata: { ...structuredClone(o.metadata), finalizers: [...finalizers, f] } };
}

function readyCondition(status: "True" | "False", reason: string, message: string, deps: Metal3Deps) {
  return { type: "Ready", status, reason, ...(message ? { message } : {}), severity: status === "False" ? "Error" : undefined, lastTransitionTime: (deps.now?.() ?? new Date()).toISOString().replace(/\.\d{3}Z$/, "Z") };
}

/** Namespaces with a claim still waiting for an address (a full pool, say) or still being deleted. */
export async function pendingNamespaces(store: Store): Promise<string[]> {
  return store.read(async (sql) => {
    const waiting = new Set<string>();
    for (const t of [CLAIMS, CAPI_CLAIMS]) {
      for (const { object } of await listObjects(sql, t)) {
        const status = (object.status ?? {}) as Spec;
        const bound = t === CLAIMS ? (status.address as Spec | undefined)?.name : (status.addressRef as Spec | undefined)?.name;
        if (object.metadata.deletionTimestamp || !bound) waiting.add(object.metadata.namespace);
      }
    }
    return [...waiting];
  });
}

/**
 * Reconciles waiting namespaces whenever a change is committed (the change feed; at the latest every
 * `everyMs`), so a claim that found its pool full gets an address once one is released by any means
 * (the /v1 API, the CLI, an expiry, another server), not only on the next kube write. Every such
 * release is a history entry, so a pass runs only when the history has moved.
 */
export function startResync(deps: Metal3Deps, everyMs = 5000): () => void {
  const stop = new AbortController();
  void (async () => {
    /** The newest history entry when the last pass began: with nothing new since, a pass would change nothing. */
    let seen: number | null = null;
    let version = deps.engine.changes.version;
    while (!stop.signal.aborted) {
      try {
        const row = await deps.store.read((sql) => sql.get<{ s: number | string | null }>("SELECT MAX(seq) AS s FROM history"));
        const mark = Number(row?.s ?? 0);
        if (mark !== seen) {
          for (const ns of await pendingNamespaces(deps.store)) await reconcile(deps, ns);
          seen = mark;
        }
      } catch (err) {
        deps.log?.(err);
      }
      version = await deps.engine.changes.wait(version, everyMs, stop.signal);
    }
  })();
  return () => stop.abort();
}
