/**
 * Neutron's networks, subnets, subnet pools and ports on Allot's engine. A project is an Allot space;
 * a subnet is an Allot pool spanning its CIDR (a child pool when it comes from a subnet pool, which is
 * itself an Allot pool of its prefixes); each fixed IP of a port is an allocation carrying the port's
 * MAC, so DHCP delivery and `/v1` lookups see it. Allocation walks the subnet's allocation pools in
 * order, lowest free first; a specific IP need only be inside the CIDR (not its network or IPv4
 * broadcast address), as in Neutron.
 */
import { SERVER } from "../../engine/access.js";
import { randomUUID } from "node:crypto";
import { BITS, type Family, type Prefix, canonicalAddress, formatAddress, formatPrefix, prefixContains, prefixLast } from "../../addr/index.js";
import type { Engine } from "../../engine/engine.js";
import { AllotError } from "../../engine/errors.js";
import type { Token } from "../../engine/tokens.js";
import type { ChangeContext, Pool } from "../../engine/types.js";
import { ConstraintError } from "../../store/store.js";
import { type Range, checkPools, defaultGateway, defaultPools, eui64, parseCidr, parseIp, parseMac, randomMac, usableBounds } from "./addressing.js";
import { NeutronError, fromAllot, invalidInput, notFound } from "./errors.js";
import type { Sql } from "../../store/store.js";
import { type Doc, type Kind, type Stored, getDoc, insertDoc, listDocs, lockDoc, nextOrder, portByMac, replaceDoc, takeDoc } from "./objects.js";

/** Who is asking: their Allot token and the project (space) their Keystone token is scoped to. */
export interface Caller {
  token: Token;
  project: string;
  projectId: string;
  ctx: ChangeContext;
}

type Body = Record<string, unknown>;
interface FixedIp {
  subnet_id: string;
  ip_address: string;
}
interface Held extends FixedIp {
  allocation: string;
}
type Subnet = Doc & { network_id: string; cidr: string; ip_version: number; gateway_ip: string | null; allocation_pools: Range[]; ipv6_address_mode: string | null; ipv6_ra_mode: string | null; _pool: string };
type Port = Doc & { network_id: string; mac_address: string; fixed_ips: FixedIp[]; device_id: string; device_owner: string; _held: Held[] };
type SubnetPool = Doc & { prefixes: string[]; min_prefixlen: number; max_prefixlen: number; default_prefixlen: number; ip_version: number; default_quota: number | null; _pool: string };

/** Neutron's times: ISO 8601 to the second. */
export const neutronTime = (ms = Date.now()) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
const now = () => neutronTime();
const str = (v: unknown, field: string, max = 255): string => {
  if (typeof v !== "string" || v.length > max) throw invalidInput(`'${String(v)}' is not a valid string for ${field} (at most ${max} characters)`);
  return v;
};
const bool = (v: unknown, field: string): boolean => {
  if (typeof v === "boolean") return v;
  if (v === "true" || v === "True") return true;
  if (v === "false" || v === "False") return false;
  throw invalidInput(`'${String(v)}' is not a valid boolean value for ${field}`);
};
const int = (v: unknown, field: string): number => {
  const n = typeof v === "number" ? v : typeof v === "string" && /^\d+$/.test(v.trim()) ? Number(v) : NaN;
  if (!Number.isInteger(n)) throw invalidInput(`'${String(v)}' is not an integer for ${field}`);
  return n;
};
/** A subnet pool's prefix lengths, as Neutron bounds them. */
function checkBounds(min: number, def: number, max: number, bits: number): void {
  if (!(0 <= min && min <= def && def <= max && max <= bits)) {
    throw new NeutronError(400, "IllegalSubnetPoolPrefixBounds", `Illegal prefix bounds: min_prefixlen=${min}, default_prefixlen=${def}, max_prefixlen=${max}; they must satisfy 0 <= min <= default <= max <= ${bits}.`);
  }
}

/** A subnet pool's default_quota: a whole number of at least 0, or null for none. */
const quotaOf = (v: unknown): number | null => {
  if (v === null) return null;
  const n = int(v, "default_quota");
  if (n < 0) throw invalidInput(`default_quota ${n} is negative; give 0 or more, or null for no quota`);
  return n;
};

type Span = [bigint, bigint];
/** The addresses of some prefixes as sorted, merged first-last spans. */
function spansOf(prefixes: Prefix[]): Span[] {
  const sorted = prefixes.map((p): Span => [p.network, prefixLast(p)]).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: Span[] = [];
  for (const [first, last] of sorted) {
    const top = out[out.length - 1];
    if (top && first <= top[1] + 1n) top[1] = last > top[1] ? last : top[1];
    else out.push([first, last]);
  }
  return out;
}
/** What of the spans `a` is in none of the spans `b` (both merged). */
function spansMinus(a: Span[], b: Span[]): Span[] {
  const out: Span[] = [];
  for (const [first, last] of a) {
    let at = first;
    for (const [bf, bl] of b) {
      if (bl < at || bf > last) continue;
      if (bf > at) out.push([at, bf - 1n]);
      at = bl + 1n;
      if (at > last) break;
    }
    if (at <= last) out.push([at, last]);
  }
  return out;
}
/** Spans written as the fewest CIDRs. */
function cidrsOf(family: Family, spans: Span[]): string[] {
  const bits = BITS[family];
  const out: string[] = [];
  for (const [first, last] of spans) {
    for (let at = first; at <= last; ) {
      let length = bits;
      while (length > 0 && at % (1n << BigInt(bits - length + 1)) === 0n && at + (1n << BigInt(bits - length + 1)) - 1n <= last) length--;
      out.push(formatPrefix({ family, network: at, length }));
      at += 1n << BigInt(bits - length);
    }
  }
  return out;
}

/** Slaac and dhcpv6-stateless subnets give each port its EUI-64 address. */
const autoAddress = (s: Subnet) => s.ipv6_address_mode === "slaac" || s.ipv6_address_mode === "dhcpv6-stateless";
const IPV6_MODES = ["slaac", "dhcpv6-stateful", "dhcpv6-stateless"];
/** Router interfaces get no automatic (EUI-64) addresses (Neutron's ROUTER_INTERFACE_OWNERS_SNAT). */
const ROUTER_INTERFACES = ["network:router_interface", "network:ha_router_replicated_interface", "network:router_interface_distributed", "network:router_centralized_snat"];

/** What a client sees: stored documents without Allot's own bookkeeping (fields starting with _). */
export function shown(doc: Doc): Body {
  return Object.fromEntries(Object.entries(doc).filter(([k]) => !k.startsWith("_")));
}

export class NeutronService {
  constructor(private readonly engine: Engine) {}

  private get store() {
    return this.engine.store;
  }

  /** An all-spaces admin sees every project, as Neutron's admin does; anyone else their own. */
  private scope(c: Caller): string | null {
    return c.token.scope === "admin" && c.token.spaces === null ? null : c.project;
  }

  private async find<T extends Doc>(c: Caller, kind: Kind, id: string): Promise<Stored<T>> {
    const found = await this.store.read((sql) => getDoc<T>(sql, kind, id));
    const scope = this.scope(c);
    if (!found || (scope !== null && found.project !== scope)) throw notFound(kind, id);
    return found;
  }

  async list(c: Caller, kind: Kind): Promise<Doc[]> {
    const docs = (await this.store.read((sql) => listDocs(sql, kind, this.scope(c)))).map((d) => d.body);
    return kind === "network" ? this.withSubnets(docs) : docs;
  }

  async show(c: Caller, kind: Kind, id: string): Promise<Doc> {
    const d = (await this.find(c, kind, id)).body;
    return kind === "network" ? (await this.withSubnets([d]))[0]! : d;
  }

  /** A network lists its subnets' ids; they are read, not stored twice (for one network, by its index). */
  private async withSubnets(networks: Doc[]): Promise<Doc[]> {
    if (networks.length === 0) return networks;
    const one = networks.length === 1 ? networks[0]!.id : undefined;
    const subnets = await this.store.read((sql) => listDocs<Subnet>(sql, "subnet", null, one));
    return networks.map((n) => ({ ...n, subnets: subnets.filter((s) => s.body.network_id === n.id).map((s) => s.body.id) }));
  }

  private base(c: Caller, body: Body): Doc {
    const t = now();
    return {
      id: randomUUID(),
      name: body.name === undefined ? "" : str(body.name, "name"),
      description: body.description === undefined ? "" : str(body.description, "description"),
      tenant_id: c.projectId,
      project_id: c.projectId,
      tags: [],
      created_at: t,
      updated_at: t,
      revision_number: 0,
      _order: nextOrder(),
    };
  }

  /** Stores a new document; `still` checks, in the same transaction, that what it hangs on is still there. */
  private async insert(kind: Kind, project: string, doc: Doc, keys: { networkId?: string; mac?: string } = {}, still?: (sql: Sql) => Promise<void>): Promise<void> {
    await this.store.transaction(async (sql) => {
      await still?.(sql);
      await insertDoc(sql, kind, project, doc, keys);
    });
  }

  /**
   * Stores a change made from `prev` (its next revision, stamped now) and answers it as stored; refused
   * (changing nothing) if another change or a delete came first.
   */
  private async update<T extends Doc>(kind: Kind, prev: Doc, changed: T, mac: string | null = null): Promise<T> {
    const next = { ...changed, updated_at: now(), revision_number: Number(prev.revision_number ?? 0) + 1 };
    const ok = await this.store.transaction((sql) => replaceDoc(sql, next, Number(prev.revision_number ?? 0), mac));
    if (ok) return next;
    const gone = !(await this.store.read((sql) => getDoc(sql, kind, prev.id)));
    if (gone) throw notFound(kind, prev.id);
    throw new NeutronError(409, "Conflict", `${kind} ${prev.id} was changed by another request meanwhile; read it again and retry`);
  }

  /** In a creating transaction: the network (and subnets) a new document refers to still exist. */
  private exists(kind: Kind, ids: string[]) {
    return async (sql: Sql) => {
      for (const id of ids) if (!(await getDoc(sql, kind, id))) throw notFound(kind, id);
    };
  }

  /** A new network, subnet, subnet pool or port, as POST of one object makes it. */
  create(c: Caller, kind: Kind, body: Body): Promise<Doc> {
    if (kind === "network") return this.createNetwork(c, body);
    if (kind === "subnet") return this.createSubnet(c, body);
    if (kind === "subnetpool") return this.createSubnetPool(c, body);
    return this.createPort(c, body);
  }

  remove(c: Caller, kind: Kind, id: string): Promise<void> {
    if (kind === "network") return this.deleteNetwork(c, id);
    if (kind === "subnet") return this.deleteSubnet(c, id);
    if (kind === "subnetpool") return this.deleteSubnetPool(c, id);
    return this.deletePort(c, id);
  }

  /**
   * Neutron's bulk create: every element made, in order, each as a single create makes it, or none.
   * One create is several engine transactions (a subnet's pool, a port's addresses) and then its
   * document's, and the engine has no transaction spanning them, so all or nothing is had by undoing:
   * on a failure what the earlier elements made is deleted again, newest first, through the same
   * deletes a client would send (which give back pools and addresses); the element that failed has
   * already given back what it took. Its error is the answer, `detail` saying which element it was.
   */
  async createMany(c: Caller, kind: Kind, bodies: Body[]): Promise<Doc[]> {
    const made: Doc[] = [];
    for (const [i, body] of bodies.entries()) {
      try {
        made.push(await this.create(c, kind, body));
      } catch (err) {
        const left: string[] = [];
        for (const doc of [...made].reverse()) {
          await this.remove(c, kind, doc.id).catch((e: unknown) => {
            // already deleted by another request is as good as undone; one put to use meanwhile (a port on a new network) stays, and is named
            if (!(e instanceof NeutronError && e.status === 404)) left.push(`${doc.id} (${e instanceof Error ? e.message : String(e)})`);
          });
        }
        const failed = err instanceof NeutronError ? err : err instanceof AllotError ? fromAllot(err) : null;
        if (!failed) throw err;
        const where = `${kind}s[${i}] failed`;
        if (left.length === 0) throw new NeutronError(failed.status, failed.type, failed.message, `${where}; nothing of the request was kept`);
        throw new NeutronError(
          failed.status,
          failed.type,
          `${failed.message} (${where}; of the ${kind}s made by earlier elements these could not be removed again and remain: ${left.join("; ")})`,
          `${where}; ${left.length} ${kind}s made by earlier elements remain`,
        );
      }
    }
    return made;
  }

  // ---- networks

  async createNetwork(c: Caller, body: Body): Promise<Doc> {
    const doc: Doc = {
      ...this.base(c, body),
      admin_state_up: body.admin_state_up === undefined ? true : bool(body.admin_state_up, "admin_state_up"),
      status: "ACTIVE",
      shared: body.shared === undefined ? false : bool(body.shared, "shared"),
      mtu: body.mtu === undefined ? 1500 : int(body.mtu, "mtu"),
      "router:external": false,
      port_security_enabled: body.port_security_enabled === undefined ? true : bool(body.port_security_enabled, "port_security_enabled"),
      availability_zone_hints: [],
      availability_zones: [],
      ipv4_address_scope: null,
      ipv6_address_scope: null,
      "provider:network_type": body["provider:network_type"] ?? null,
      "provider:physical_network": body["provider:physical_network"] ?? null,
      "provider:segmentation_id": body["provider:segmentation_id"] ?? null,
    };
    await this.insert("network", c.project, doc);
    return { ...doc, subnets: [] };
  }

  async updateNetwork(c: Caller, id: string, body: Body): Promise<Doc> {
    const { body: doc } = await this.find(c, "network", id);
    const next: Doc = { ...doc };
    if (body.name !== undefined) next.name = str(body.name, "name");
    if (body.description !== undefined) next.description = str(body.description, "description");
    if (body.admin_state_up !== undefined) next.admin_state_up = bool(body.admin_state_up, "admin_state_up");
    if (body.mtu !== undefined) next.mtu = int(body.mtu, "mtu");
    if (body.port_security_enabled !== undefined) next.port_security_enabled = bool(body.port_security_enabled, "port_security_enabled");
    await this.update("network", doc, next);
    return this.show(c, "network", id);
  }

  async deleteNetwork(c: Caller, id: string): Promise<void> {
    await this.find(c, "network", id);
    // the network goes first, checked free of ports in the same transaction: a port being made on it
    // meanwhile then finds it gone and gives its addresses back
    await this.store.transaction(async (sql) => {
      if ((await listDocs(sql, "port", null, id)).length > 0) {
        throw new NeutronError(409, "NetworkInUse", `Unable to complete operation on network ${id}. There are one or more ports still in use on the network.`);
      }
      await takeDoc(sql, "network", id);
    });
    for (const s of await this.store.read((sql) => listDocs<Subnet>(sql, "subnet", null, id))) {
      await this.store.transaction((sql) => takeDoc(sql, "subnet", s.body.id));
      await this.dropPool(c, s.body._pool);
    }
  }

  // ---- subnet pools

  async createSubnetPool(c: Caller, body: Body): Promise<Doc> {
    if (!Array.isArray(body.prefixes) || body.prefixes.length === 0) throw invalidInput("prefixes: a subnet pool needs at least one prefix");
    const prefixes = body.prefixes.map((p) => parseCidr(p));
    const family = prefixes[0]!.family;
    if (prefixes.some((p) => p.family !== family)) throw invalidInput("prefixes: all prefixes of a subnet pool must be of one IP version");
    const bits = family === 4 ? 32 : 128;
    const min = body.min_prefixlen === undefined ? (family === 4 ? 8 : 64) : int(body.min_prefixlen, "min_prefixlen");
    const max = body.max_prefixlen === undefined ? bits : int(body.max_prefixlen, "max_prefixlen");
    const def = body.default_prefixlen === undefined ? min : int(body.default_prefixlen, "default_prefixlen");
    checkBounds(min, def, max, bits);
    const quota = body.default_quota === undefined ? null : quotaOf(body.default_quota);
    const doc = this.base(c, body);
    let pool: Pool;
    try {
      pool = await this.engine.createPool(
        {
          name: `neutron-subnetpool-${doc.id}`,
          space: c.project,
          ranges: prefixes.map((p) => ({ cidr: formatPrefix(p) })),
          description: `Neutron subnet pool ${doc.name || doc.id}`,
          attributes: { "neutron.subnetpool": doc.id },
        },
        c.ctx,
      );
    } catch (err) {
      if (err instanceof AllotError && err.code === "pool-overlap") throw invalidInput(`prefixes ${prefixes.map(formatPrefix).join(", ")} overlap ${await this.overlapping(c.project, err)} in project ${c.project}`);
      throw err instanceof AllotError ? fromAllot(err) : err;
    }
    const sp: SubnetPool = {
      ...doc,
      prefixes: prefixes.map(formatPrefix),
      ip_version: family,
      min_prefixlen: min,
      max_prefixlen: max,
      default_prefixlen: def,
      shared: false,
      is_default: body.is_default === undefined ? false : bool(body.is_default, "is_default"),
      default_quota: quota,
      address_scope_id: null,
      _pool: pool.id,
    };
    await this.insert("subnetpool", c.project, sp);
    return sp;
  }

  async updateSubnetPool(c: Caller, id: string, body: Body): Promise<Doc> {
    const { body: doc } = await this.find<SubnetPool>(c, "subnetpool", id);
    const next: SubnetPool = { ...doc };
    if (body.name !== undefined) next.name = str(body.name, "name");
    if (body.description !== undefined) next.description = str(body.description, "description");
    const added = body.prefixes !== undefined ? this.prefixUpdate(doc, body.prefixes) : [];
    for (const k of ["min_prefixlen", "max_prefixlen", "default_prefixlen"] as const) if (body[k] !== undefined) next[k] = int(body[k], k);
    if (body.default_quota !== undefined) next.default_quota = quotaOf(body.default_quota);
    checkBounds(next.min_prefixlen, next.default_prefixlen, next.max_prefixlen, doc.ip_version === 4 ? 32 : 128);
    if (added.length > 0) {
      // the Allot pool behind it grows first: a prefix another pool of the project holds is refused there.
      // What it already holds is not added again: a growth whose document update lost a race is then
      // finished by the retry instead of refused for good
      const held = (await this.engine.getPool({ pool: doc._pool }, c.ctx)).ranges.map((r) => r.cidr);
      const missing = added.filter((cidr) => !held.includes(cidr));
      try {
        if (missing.length > 0) await this.engine.addRanges({ pool: doc._pool }, missing.map((cidr) => ({ cidr })), c.ctx);
      } catch (err) {
        if (err instanceof AllotError && err.code === "pool-overlap") throw new NeutronError(400, "IllegalSubnetPoolPrefixUpdate", `Illegal update to prefixes: ${err.message}`);
        throw err;
      }
      next.prefixes = [...doc.prefixes, ...added];
    }
    return this.update("subnetpool", doc, next);
  }

  /**
   * New prefixes for a subnet pool, as Neutron takes them: they must hold every address the old ones
   * did (more is growing the pool; the openstack CLI sends the old prefixes along with the new). Answers
   * the prefixes that add addresses.
   */
  private prefixUpdate(sp: SubnetPool, prefixes: unknown): string[] {
    if (!Array.isArray(prefixes) || prefixes.length === 0) throw invalidInput("prefixes: a subnet pool needs at least one prefix");
    const wanted = prefixes.map((p) => parseCidr(p));
    const family = sp.ip_version as Family;
    if (wanted.some((p) => p.family !== family)) throw new NeutronError(400, "PrefixVersionMismatch", `Cannot mix IPv4 and IPv6 prefixes in a subnet pool: subnet pool ${sp.id} is IPv${family}.`);
    const old = spansOf(sp.prefixes.map((p) => parseCidr(p)));
    const asked = spansOf(wanted);
    const lost = spansMinus(old, asked);
    if (lost.length > 0) {
      throw new NeutronError(
        400,
        "IllegalSubnetPoolPrefixUpdate",
        `Illegal update to prefixes: Existing prefixes must be a subset of the new prefixes (${cidrsOf(family, lost).join(", ")} would be removed). Send every current prefix (${sp.prefixes.join(", ")}) along with any new one.`,
      );
    }
    return cidrsOf(family, spansMinus(asked, old));
  }

  async deleteSubnetPool(c: Caller, id: string): Promise<void> {
    const { body: sp } = await this.find<SubnetPool>(c, "subnetpool", id);
    await this.store.transaction(async (sql) => {
      const subnets = (await listDocs<Subnet>(sql, "subnet", null)).filter((s) => s.body.subnetpool_id === id);
      if (subnets.length > 0) throw new NeutronError(409, "SubnetPoolInUse", `Unable to delete subnet pool ${id}: ${subnets.length} subnets are allocated from it.`);
      await takeDoc(sql, "subnetpool", id);
    });
    await this.dropPool(c, sp._pool);
  }

  // ---- subnets

  async createSubnet(c: Caller, body: Body): Promise<Doc> {
    if (typeof body.network_id !== "string") throw invalidInput("network_id: a subnet needs its network's id");
    const network = await this.find(c, "network", body.network_id);
    let pool: Stored<SubnetPool> | null = null;
    if (body.subnetpool_id !== undefined && body.subnetpool_id !== null) pool = await this.find<SubnetPool>(c, "subnetpool", str(body.subnetpool_id, "subnetpool_id"));
    if ((body.cidr === undefined || body.cidr === null) && !pool) throw new NeutronError(400, "BadRequest", "Bad subnets request: a cidr must be specified in the absence of a subnet pool.");
    const requested = body.cidr === undefined || body.cidr === null ? null : parseCidr(body.cidr);
    const prefixlen = body.prefixlen === undefined || body.prefixlen === null ? null : int(body.prefixlen, "prefixlen");
    if (requested && prefixlen !== null && prefixlen !== requested.length) {
      throw new NeutronError(400, "BadRequest", `Bad subnets request: cidr ${formatPrefix(requested)} is a /${requested.length} but prefixlen is ${prefixlen}. Send only one of them, or both with the same length.`);
    }
    const version = body.ip_version === undefined ? (requested?.family ?? pool!.body.ip_version) : int(body.ip_version, "ip_version");
    if (version !== 4 && version !== 6) throw invalidInput(`ip_version ${version} is neither 4 nor 6`);
    if (requested && requested.family !== version) throw invalidInput(`cidr ${String(body.cidr)} is not an IPv${version} subnet (ip_version ${version})`);
    if (pool && pool.body.ip_version !== version) throw invalidInput(`subnet pool ${pool.body.id} is IPv${pool.body.ip_version}, the subnet IPv${version}`);
    const ra = body.ipv6_ra_mode ?? null;
    const mode = body.ipv6_address_mode ?? null;
    for (const [v, f] of [[ra, "ipv6_ra_mode"], [mode, "ipv6_address_mode"]] as const) {
      if (v !== null && (version !== 6 || !IPV6_MODES.includes(String(v)))) throw invalidInput(`${f} '${String(v)}' is not valid${version !== 6 ? " on an IPv4 subnet" : `; use ${IPV6_MODES.join(", ")}`}`);
    }
    if (ra !== null && mode !== null && ra !== mode) throw invalidInput(`ipv6_ra_mode set to '${String(ra)}' with ipv6_address_mode set to '${String(mode)}' is not valid. If both attributes are set, they must be the same value`);
    const addressMode = (mode ?? ra) as string | null;
    const doc = this.base(c, body);

    // the block: the CIDR asked for, or one carved from the subnet pool
    let allotPool: Pool;
    let prefix: Prefix;
    const common = { description: `Neutron subnet ${doc.name || doc.id}`, allocateReserved: true, attributes: { "neutron.subnet": doc.id } };
    const length = requested ? requested.length : (prefixlen ?? pool!.body.default_prefixlen);
    if (pool) {
      const sp = pool.body;
      if (length < sp.min_prefixlen) throw new NeutronError(400, "MinPrefixSubnetAllocationError", `Unable to allocate subnet with prefix length ${length}, minimum allowed prefix is ${sp.min_prefixlen}.`);
      if (length > sp.max_prefixlen) throw new NeutronError(400, "MaxPrefixSubnetAllocationError", `Unable to allocate subnet with prefix length ${length}, maximum allowed prefix is ${sp.max_prefixlen}.`);
      // refused before a block is carved (and carved back); the transaction storing the subnet decides
      await this.store.read((sql) => this.checkQuota(sql, sp, c.projectId, length));
    }
    try {
      if (pool) {
        const sp = pool.body;
        allotPool = await this.engine.createChildPool({ pool: sp._pool }, { name: `neutron-subnet-${doc.id}`, ...(requested ? { cidr: formatPrefix(requested) } : { prefixLength: length }), ...common }, c.ctx);
        prefix = parseCidr(allotPool.ranges[0]!.start + "/" + length);
      } else {
        prefix = requested!;
        allotPool = await this.engine.createPool({ name: `neutron-subnet-${doc.id}`, space: c.project, cidr: formatPrefix(prefix), ...common }, c.ctx);
      }
    } catch (err) {
      if (err instanceof AllotError) {
        if (err.code === "pool-overlap") throw invalidInput(`Requested subnet with cidr: ${requested ? formatPrefix(requested) : "?"} for network: ${network.body.id} overlaps with ${await this.overlapping(c.project, err)} in project ${c.project}.`);
        if (err.code === "block-unavailable") {
          throw new NeutronError(409, "SubnetAllocationError", requested ? `Failed to allocate subnet: ${formatPrefix(requested)} is not free in subnet pool ${pool?.body.id}.` : `Failed to allocate subnet: no free /${String(body.prefixlen ?? pool?.body.default_prefixlen)} left in subnet pool ${pool?.body.id}.`);
        }
        if (err.code === "address-outside-pool" && requested && pool) {
          throw new NeutronError(
            409,
            "SubnetAllocationError",
            `Failed to allocate subnet: ${formatPrefix(requested)} is not inside one of the prefixes of subnet pool ${pool.body.id} (${pool.body.prefixes.join(", ")}). Ask for a cidr inside them, or give only prefixlen to take any free block.`,
          );
        }
        if (err.code === "address-outside-pool" || err.code === "invalid-range") throw invalidInput(`cidr ${requested ? formatPrefix(requested) : ""} is not inside subnet pool ${pool?.body.id}: ${err.message}`);
        throw fromAllot(err);
      }
      throw err;
    }
    try {
      const subnet = this.subnetFields(prefix, body, addressMode, ra as string | null);
      const s: Subnet = { ...doc, network_id: network.body.id, ...subnet, subnetpool_id: pool?.body.id ?? null, service_types: [], _pool: allotPool.id };
      await this.engine.updatePool({ pool: allotPool.id }, { attributes: { ...common.attributes, "neutron.gateway": s.gateway_ip, "neutron.dns": s.dns_nameservers } }, c.ctx);
      await this.insert("subnet", c.project, s, { networkId: s.network_id }, async (sql) => {
        await this.exists("network", [s.network_id])(sql);
        if (!pool) return;
        // the subnet pool locked: subnets taken from it at once count against its quota one after another
        const sp = await lockDoc<SubnetPool>(sql, "subnetpool", pool.body.id);
        if (!sp) throw notFound("subnetpool", pool.body.id);
        await this.checkQuota(sql, sp.body, c.projectId, prefix.length);
      });
      return s;
    } catch (err) {
      // nothing stays of a refused subnet
      await this.engine.deletePool({ pool: allotPool.id }, { force: true }, c.ctx).catch(() => {});
      throw err instanceof AllotError ? fromAllot(err) : err;
    }
  }

  /**
   * Neutron's per-project quota of a subnet pool, `default_quota`: addresses for IPv4, /64s for IPv6
   * (a longer IPv6 prefix is a fraction of one). Refused if a /`length` more would take the project
   * past it.
   */
  private async checkQuota(sql: Sql, sp: SubnetPool, projectId: string, length: number): Promise<void> {
    if (sp.default_quota === null || sp.default_quota === undefined) return;
    const bits = sp.ip_version === 4 ? 32 : 128;
    const unitBits = sp.ip_version === 4 ? 32 : 64;
    // counted in addresses, exactly
    const size = (len: number) => 1n << BigInt(bits - len);
    const mine = (await listDocs<Subnet>(sql, "subnet", null)).filter((s) => s.body.subnetpool_id === sp.id && s.body.project_id === projectId);
    const used = mine.reduce((n, s) => n + size(parseCidr(s.body.cidr).length), 0n);
    const limit = BigInt(sp.default_quota) << BigInt(bits - unitBits);
    if (used + size(length) <= limit) return;
    const inUnits = (n: bigint) => (sp.ip_version === 4 ? `${n} addresses` : `${Number(n) / 2 ** 64} /64s`);
    throw new NeutronError(
      409,
      "SubnetPoolQuotaExceeded",
      `Per-tenant subnet pool prefix quota exceeded. The project holds ${inUnits(used)} of subnet pool ${sp.id}, whose default_quota is ${inUnits(limit)}; a /${length} is ${inUnits(size(length))} more. Ask for a longer prefix, delete a subnet taken from the pool, or raise the pool's default_quota.`,
    );
  }

  /** What a refused CIDR overlaps (the engine's error names the pool), in the words of whoever made it. */
  private async overlapping(space: string, err: AllotError): Promise<string> {
    const name = err.details.pool;
    const hit = typeof name === "string" ? await this.engine.getPool({ pool: name, space }, SERVER).catch(() => null) : null;
    if (!hit) return "another pool";
    const attrs = hit.attributes as Record<string, unknown>;
    if (attrs["neutron.subnet"]) return `subnet ${String(attrs["neutron.subnet"])}`;
    if (attrs["neutron.subnetpool"]) return `subnet pool ${String(attrs["neutron.subnetpool"])} (take a subnet from it with subnetpool_id)`;
    return `the Allot pool ${hit.name}`;
  }

  /** Gateway, pools, DNS and the rest of a subnet, checked as Neutron checks them. */
  private subnetFields(prefix: Prefix, body: Body, addressMode: string | null, ra: string | null) {
    const cidr = formatPrefix(prefix);
    if (addressMode !== null && addressMode !== "dhcpv6-stateful" && prefix.length !== 64) {
      throw invalidInput(`Invalid CIDR ${cidr} for IPv6 address mode. OpenStack uses the EUI-64 address format, which requires the prefix to be /64`);
    }
    let gateway: string | null;
    if (body.gateway_ip === undefined) gateway = defaultGateway(prefix);
    else if (body.gateway_ip === null || body.gateway_ip === "none") gateway = null;
    else {
      const g = parseIp(body.gateway_ip, "gateway_ip");
      if (g.family !== prefix.family) throw invalidInput(`gateway_ip ${String(body.gateway_ip)} is not an IPv${prefix.family} address`);
      if (prefix.family === 4 && prefix.length < 31 && (g.value === prefix.network || g.value === prefixLast(prefix))) {
        throw new NeutronError(400, "InvalidInput", `Invalid input for operation: Gateway is not valid on subnet: ${String(body.gateway_ip)} is the network or broadcast address of ${cidr}.`);
      }
      gateway = formatAddress(g);
    }
    const pools = body.allocation_pools === undefined || body.allocation_pools === null ? defaultPools(prefix, gateway) : checkPools(prefix, body.allocation_pools, gateway);
    const dns = body.dns_nameservers === undefined ? [] : Array.isArray(body.dns_nameservers) ? body.dns_nameservers.map((d) => String(d)) : null;
    if (dns === null) throw invalidInput("dns_nameservers must be a list of addresses");
    for (const d of dns) parseIp(d, "dns_nameservers");
    return {
      cidr,
      ip_version: prefix.family,
      gateway_ip: gateway,
      allocation_pools: pools,
      dns_nameservers: dns,
      host_routes: Array.isArray(body.host_routes) ? body.host_routes : [],
      enable_dhcp: body.enable_dhcp === undefined ? true : bool(body.enable_dhcp, "enable_dhcp"),
      ipv6_ra_mode: ra,
      ipv6_address_mode: addressMode,
    };
  }

  async updateSubnet(c: Caller, id: string, body: Body): Promise<Doc> {
    const { body: s } = await this.find<Subnet>(c, "subnet", id);
    const next: Subnet = { ...s };
    if (body.name !== undefined) next.name = str(body.name, "name");
    if (body.description !== undefined) next.description = str(body.description, "description");
    if (body.enable_dhcp !== undefined) next.enable_dhcp = bool(body.enable_dhcp, "enable_dhcp");
    if (body.host_routes !== undefined) next.host_routes = Array.isArray(body.host_routes) ? body.host_routes : [];
    if (body.gateway_ip !== undefined || body.dns_nameservers !== undefined || (body.allocation_pools !== undefined && body.allocation_pools !== null)) {
      const prefix = parseCidr(s.cidr);
      const fields = this.subnetFields(
        prefix,
        {
          gateway_ip: body.gateway_ip === undefined ? s.gateway_ip : body.gateway_ip,
          allocation_pools: body.allocation_pools ?? s.allocation_pools,
          dns_nameservers: body.dns_nameservers ?? s.dns_nameservers,
        },
        s.ipv6_address_mode,
        s.ipv6_ra_mode,
      );
      Object.assign(next, { gateway_ip: fields.gateway_ip, allocation_pools: fields.allocation_pools, dns_nameservers: fields.dns_nameservers });
      await this.engine.updatePool({ pool: s._pool }, { attributes: { "neutron.subnet": s.id, "neutron.gateway": next.gateway_ip, "neutron.dns": next.dns_nameservers } }, c.ctx);
    }
    return this.update("subnet", s, next);
  }

  async deleteSubnet(c: Caller, id: string): Promise<void> {
    const { body: s } = await this.find<Subnet>(c, "subnet", id);
    await this.store.transaction(async (sql) => {
      const ports = await listDocs<Port>(sql, "port", null, s.network_id);
      if (ports.some((p) => p.body.fixed_ips.some((f) => f.subnet_id === id))) {
        throw new NeutronError(409, "SubnetInUse", `Unable to complete operation on subnet ${id}: One or more ports have an IP allocation from this subnet.`);
      }
      await takeDoc(sql, "subnet", id);
    });
    await this.dropPool(c, s._pool);
  }

  /** The Allot pool behind a subnet or subnet pool, gone with it (already gone is fine). */
  private async dropPool(c: Caller, pool: string): Promise<void> {
    await this.engine.deletePool({ pool }, { force: true }, c.ctx).catch((err: unknown) => {
      if (!(err instanceof AllotError && err.code === "pool-not-found")) throw err;
    });
  }

  // ---- ports

  async createPort(c: Caller, body: Body): Promise<Doc> {
    if (typeof body.network_id !== "string") throw invalidInput("network_id: a port needs its network's id");
    const network = await this.find(c, "network", body.network_id);
    const mac = body.mac_address === undefined || body.mac_address === null ? randomMac() : parseMac(body.mac_address);
    const doc = this.base(c, body);
    const port: Port = {
      ...doc,
      network_id: network.body.id,
      mac_address: mac,
      admin_state_up: body.admin_state_up === undefined ? true : bool(body.admin_state_up, "admin_state_up"),
      status: "DOWN",
      device_id: body.device_id === undefined ? "" : str(body.device_id, "device_id"),
      device_owner: body.device_owner === undefined ? "" : str(body.device_owner, "device_owner"),
      fixed_ips: [],
      allowed_address_pairs: [],
      extra_dhcp_opts: [],
      security_groups: Array.isArray(body.security_groups) ? body.security_groups : [],
      port_security_enabled: body.port_security_enabled === undefined ? true : bool(body.port_security_enabled, "port_security_enabled"),
      "binding:host_id": body["binding:host_id"] === undefined ? "" : str(body["binding:host_id"], "binding:host_id"),
      "binding:vif_type": "unbound",
      "binding:vnic_type": typeof body["binding:vnic_type"] === "string" ? body["binding:vnic_type"] : "normal",
      "binding:profile": {},
      "binding:vif_details": {},
      dns_name: body.dns_name === undefined ? "" : str(body.dns_name, "dns_name"),
      _held: [],
    };
    const taken = await this.store.read((sql) => portByMac(sql, port.network_id, mac));
    if (taken) throw macInUse(port.network_id, mac);
    let held: Held[];
    try {
      held = await this.allocateFor(c, port, body.fixed_ips, [], { autoFill: !(Array.isArray(body.fixed_ips) && body.fixed_ips.length === 0) });
    } catch (err) {
      // a port with this MAC made meanwhile took the EUI-64 address first: say what really clashed
      if (err instanceof NeutronError && err.type === "IpAddressAlreadyAllocated" && (await this.store.read((sql) => portByMac(sql, port.network_id, mac)))) throw macInUse(port.network_id, mac);
      throw err;
    }
    port._held = held;
    port.fixed_ips = held.map(({ subnet_id, ip_address }) => ({ subnet_id, ip_address }));
    try {
      // the network and the subnets it has addresses on are checked in the same transaction: a delete
      // that won the race leaves this port unmade and its addresses given back
      await this.insert("port", network.project, port, { networkId: port.network_id, mac }, async (sql) => {
        await this.exists("network", [port.network_id])(sql);
        await this.exists("subnet", [...new Set(held.map((h) => h.subnet_id))])(sql);
      });
    } catch (err) {
      await this.release(c, held);
      if (err instanceof ConstraintError && err.constraint === "unique") throw macInUse(port.network_id, mac);
      throw err;
    }
    return port;
  }

  async updatePort(c: Caller, id: string, body: Body): Promise<Doc> {
    const { body: port } = await this.find<Port>(c, "port", id);
    const next: Port = { ...port };
    for (const k of ["name", "description", "device_id", "device_owner", "binding:host_id", "dns_name"] as const) if (body[k] !== undefined) next[k] = str(body[k], k);
    for (const k of ["admin_state_up", "port_security_enabled"] as const) if (body[k] !== undefined) next[k] = bool(body[k], k);
    if (body.security_groups !== undefined) next.security_groups = Array.isArray(body.security_groups) ? body.security_groups : [];
    const macChanged = body.mac_address !== undefined && body.mac_address !== null && parseMac(body.mac_address) !== port.mac_address;
    if (macChanged) {
      next.mac_address = parseMac(body.mac_address);
      if (await this.store.read((sql) => portByMac(sql, port.network_id, next.mac_address))) throw macInUse(port.network_id, next.mac_address);
    }
    // addresses stay unless fixed_ips change (or a new MAC moves its EUI-64 addresses)
    let added: Held[] = [];
    let dropped: Held[] = [];
    if (body.fixed_ips !== undefined || macChanged) {
      if (body.fixed_ips !== undefined && !Array.isArray(body.fixed_ips)) throw invalidInput("fixed_ips must be a list of {subnet_id, ip_address}");
      const subnets = await this.subnetsOf(port.network_id);
      const onAuto = (subnetId: unknown) => subnets.some((s) => s.id === subnetId && autoAddress(s));
      const wanted = ((body.fixed_ips ?? port.fixed_ips) as { subnet_id?: unknown; ip_address?: unknown }[]).filter((w) => !(macChanged && w?.ip_address !== undefined && onAuto(w.subnet_id ?? subnets.find((s) => prefixContains(parseCidr(s.cidr), parseIp(w.ip_address, "ip_address")))?.id)));
      const matches = (w: { subnet_id?: unknown; ip_address?: unknown }, h: Held) => w?.ip_address !== undefined && sameIp(String(w.ip_address), h.ip_address) && (w.subnet_id === undefined || w.subnet_id === h.subnet_id);
      // an EUI-64 address belongs to the port while its MAC does, listed or not (as in Neutron); an
      // entry naming only a subnet keeps the address the port already has there
      const keep: Held[] = [];
      for (const h of port._held) {
        if (onAuto(h.subnet_id) ? !macChanged : wanted.some((w) => matches(w, h))) keep.push(h);
      }
      const rest = wanted.filter((w) => !keep.some((h) => matches(w, h)));
      const subnetOnly = rest.filter((w) => w?.ip_address === undefined && w?.subnet_id !== undefined);
      for (const w of subnetOnly) {
        const had = port._held.find((h) => h.subnet_id === w.subnet_id && !keep.includes(h));
        if (had) {
          keep.push(had);
          rest.splice(rest.indexOf(w), 1);
        }
      }
      added = await this.allocateFor(c, next, rest, keep);
      dropped = port._held.filter((h) => !keep.includes(h));
      next._held = [...keep, ...added];
      next.fixed_ips = next._held.map(({ subnet_id, ip_address }) => ({ subnet_id, ip_address }));
    }
    let saved: Port;
    try {
      saved = await this.update("port", port, next, next.mac_address);
    } catch (err) {
      // nothing of this update stays: what it took goes back
      await this.release(c, added);
      if (err instanceof ConstraintError && err.constraint === "unique") throw macInUse(port.network_id, next.mac_address);
      throw err;
    }
    await this.release(c, dropped);
    if (macChanged || body.device_id !== undefined || body.device_owner !== undefined) {
      for (const h of saved._held) await this.engine.updateAllocation(h.allocation, { mac: saved.mac_address, labels: labelsOf(saved) }, c.ctx).catch(() => {});
    }
    return saved;
  }

  async deletePort(c: Caller, id: string): Promise<void> {
    await this.find<Port>(c, "port", id);
    // the addresses released are those of the port as it was deleted, whatever updates came before
    const port = await this.store.transaction((sql) => takeDoc<Port>(sql, "port", id));
    if (!port) throw notFound("port", id);
    await this.release(c, port._held);
  }

  private async subnetsOf(networkId: string): Promise<Subnet[]> {
    return (await this.store.read((sql) => listDocs<Subnet>(sql, "subnet", null, networkId))).map((s) => s.body);
  }

  /**
   * The addresses a port asks for, taken; on any failure those taken in this call are given back
   * (Neutron's rollback for an external IPAM). `requested` undefined is Neutron's default: one address
   * from the IPv4 subnets and one from the stateful IPv6 ones. A list asks for specific addresses
   * (first) and "any address of this subnet" (then). Either way, unless `autoFill` is off (fixed_ips
   * given as []) or the port is a router's, each automatic-address subnet not yet covered adds the
   * port's EUI-64 address there.
   */
  private async allocateFor(c: Caller, port: Port, requested: unknown, already: Held[], opts: { autoFill: boolean } = { autoFill: true }): Promise<Held[]> {
    const subnets = await this.subnetsOf(port.network_id);
    const taken: Held[] = [];
    const net = port.network_id;
    try {
      if (requested === undefined) {
        for (const group of [subnets.filter((s) => s.ip_version === 4), subnets.filter((s) => s.ip_version === 6 && !autoAddress(s))]) {
          if (group.length > 0) taken.push(await this.anyIn(c, port, group, net, [...already, ...taken]));
        }
      } else {
        if (!Array.isArray(requested)) throw invalidInput("fixed_ips must be a list of {subnet_id, ip_address}");
        const asks = requested.map((r) => this.resolveAsk(port, subnets, r));
        for (const a of asks.filter((x) => x.ip !== undefined)) taken.push(await this.specific(c, port, a.subnet, a.ip!, [...already, ...taken]));
        for (const a of asks.filter((x) => x.ip === undefined)) {
          const sofar = [...already, ...taken];
          taken.push(autoAddress(a.subnet) ? await this.specific(c, port, a.subnet, eui64(parseCidr(a.subnet.cidr), port.mac_address), sofar) : await this.anyIn(c, port, [a.subnet], net, sofar));
        }
      }
      const routerPort = ROUTER_INTERFACES.includes(port.device_owner);
      if (opts.autoFill && !routerPort) {
        for (const s of subnets.filter(autoAddress)) {
          if (![...already, ...taken].some((h) => h.subnet_id === s.id)) taken.push(await this.specific(c, port, s, eui64(parseCidr(s.cidr), port.mac_address), [...already, ...taken]));
        }
      }
      return taken;
    } catch (err) {
      await this.release(c, taken);
      throw err instanceof AllotError ? fromAllot(err) : err;
    }
  }

  /** One fixed_ips entry: its subnet (given, or the one on the network holding the address) and address, checked. */
  private resolveAsk(port: Port, subnets: Subnet[], r: unknown): { subnet: Subnet; ip?: string } {
    const net = port.network_id;
    const o = (r ?? {}) as { subnet_id?: unknown; ip_address?: unknown };
    if (o.subnet_id === undefined && o.ip_address === undefined) throw invalidInput("each fixed_ips entry needs subnet_id or ip_address");
    let subnet: Subnet | undefined;
    if (o.subnet_id !== undefined) {
      subnet = subnets.find((s) => s.id === o.subnet_id);
      if (!subnet) throw invalidInput(`Failed to create port on network ${net}, because fixed_ips included invalid subnet ${String(o.subnet_id)}`);
    }
    if (o.ip_address === undefined) return { subnet: subnet! };
    const a = parseIp(o.ip_address, "ip_address");
    if (!subnet) {
      subnet = subnets.find((s) => prefixContains(parseCidr(s.cidr), a));
      if (!subnet) throw new NeutronError(400, "InvalidIpForNetwork", `IP address ${String(o.ip_address)} is not a valid IP for any of the subnets on the specified network.`);
    }
    const p = parseCidr(subnet.cidr);
    // inside the CIDR and not its network or (IPv4) broadcast address: the bounds Neutron's pools have
    const [lo, hi] = usableBounds(p);
    if (!prefixContains(p, a) || a.value < lo || a.value > hi) {
      throw new NeutronError(400, "InvalidIpForSubnet", `IP address ${String(o.ip_address)} is not a valid IP for the specified subnet.`);
    }
    const ip = formatAddress(a);
    if (autoAddress(subnet) && !sameIp(ip, eui64(p, port.mac_address))) {
      throw new NeutronError(400, "AllocationOnAutoAddressSubnet", `IPv6 address ${ip} cannot be directly assigned to a port on subnet ${subnet.id} as the subnet is configured for automatic addresses`);
    }
    return { subnet, ip };
  }

  /** The lowest free address of the first subnet (in order) with one, walking each subnet's pools in order. */
  private async anyIn(c: Caller, port: Port, subnets: Subnet[], net: string, held: Held[]): Promise<Held> {
    for (const s of subnets) {
      for (const r of s.allocation_pools) {
        try {
          const got = await this.engine.allocate({ pool: s._pool }, { within: { start: r.start, end: r.end }, ...ownerFor(port, s, held), mac: port.mac_address, labels: labelsOf(port) }, c.ctx);
          return { subnet_id: s.id, ip_address: got.allocation.address, allocation: got.allocation.id };
        } catch (err) {
          if (err instanceof AllotError && err.code === "pool-not-found") throw notFound("subnet", s.id);
          if (!(err instanceof AllotError && err.code === "pool-exhausted")) throw err;
        }
      }
    }
    throw new NeutronError(409, "IpAddressGenerationFailure", `No more IP addresses available on network ${net}.`);
  }

  private async specific(c: Caller, port: Port, s: Subnet, address: string, held: Held[]): Promise<Held> {
    try {
      const got = await this.engine.allocate({ pool: s._pool }, { address, ...ownerFor(port, s, held), mac: port.mac_address, labels: labelsOf(port) }, c.ctx);
      return { subnet_id: s.id, ip_address: got.allocation.address, allocation: got.allocation.id };
    } catch (err) {
      if (err instanceof AllotError && err.code === "address-unavailable") throw new NeutronError(409, "IpAddressAlreadyAllocated", `IP address ${address} already allocated in subnet ${s.id}`);
      if (err instanceof AllotError && err.code === "pool-not-found") throw notFound("subnet", s.id);
      throw err;
    }
  }

  private async release(c: Caller, held: Held[]): Promise<void> {
    for (const h of held) {
      await this.engine.release({ id: h.allocation }, c.ctx).catch((err: unknown) => {
        if (!(err instanceof AllotError && err.code === "allocation-not-found")) throw err;
      });
    }
  }
}

const sameIp = (a: string, b: string) => {
  try {
    return canonicalAddress(a) === canonicalAddress(b);
  } catch {
    return false;
  }
};
const macInUse = (net: string, mac: string) => new NeutronError(409, "MacAddressInUse", `Unable to complete operation for network ${net}. The mac address ${mac} is in use.`);
/**
 * A port's first address in a subnet is owned by the port (so `allot lookup` names it); others, and
 * one taken while an address being dropped is still held, have no owner.
 */
const ownerFor = (port: Port, s: Subnet, held: Held[]) => ([...held, ...port._held].some((h) => h.subnet_id === s.id) ? {} : { owner: `port:${port.id}` });
/** What an allocation says about its port, for `/v1` readers and DHCP delivery. */
const labelsOf = (p: Port): Record<string, string> => ({
  "neutron-port": p.id,
  "neutron-network": p.network_id,
  ...(p.device_id ? { "device-id": p.device_id } : {}),
  ...(p.device_owner ? { "device-owner": p.device_owner } : {}),
});
