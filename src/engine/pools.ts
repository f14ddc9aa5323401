import { type Family, BITS, canonicalAddress, formatPrefix, fromKey, parseAddress, prefixFirst, prefixLast } from "../addr/index.js";
import { type AllocationRow, toAllocation } from "./allocation-repo.js";
import { type TxEnv, insertAllocation, releaseRow } from "./allocations.js";
import { AllotError } from "./errors.js";
import { DNS_TEMPLATE, checkTemplate } from "../dns/names.js";
import { findCarve, isCarvable, takeCarve } from "./carve.js";
import { insertRun } from "./free-space.js";
import type { SealedSecret } from "./secrets.js";
import { record } from "./history.js";
import { type PoolPlan, dnsList, fmt, planPool, prefix } from "./pool-plan.js";
import { type PoolState, key, listPoolStates, loadPoolById, saveCounters, toPool } from "./pool-repo.js";
import { STRATEGIES, type ChildPoolInput, type Pool, type PoolInput, type PoolPatch, type Strategy } from "./types.js";

const iso = (ms: number) => new Date(ms).toISOString();
const plural = (n: number | bigint, one: string, many: string) => `${n} ${n === 1 || n === 1n ? one : many}`;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** A naming template for DNS records (attribute dns.template) must make valid names; see src/dns/names.ts. */
function checkDnsTemplate(attributes: Record<string, unknown> | undefined, family: Family): void {
  if (attributes && attributes[DNS_TEMPLATE] !== undefined) checkTemplate(attributes[DNS_TEMPLATE], family, `attributes.${DNS_TEMPLATE}`);
}

export function checkName(kind: string, name: unknown): string {
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new AllotError(
      "invalid-request",
      `${kind} name ${JSON.stringify(name)} is not valid: use 1 to 128 ASCII letters (a-z, A-Z), digits, '.', '_', ':' or '-', starting with a letter or digit`,
    );
  }
  return name;
}

/** Utilisation thresholds: up to 10 percentages above 0 and at most 100, kept sorted. */
function checkThresholds(list: unknown): number[] {
  if (list === undefined) return [];
  if (!Array.isArray(list) || list.length > 10 || list.some((t) => typeof t !== "number" || !Number.isFinite(t) || t <= 0 || t > 100)) {
    throw new AllotError("invalid-request", "thresholds must be a list of up to 10 percentages above 0 and at most 100, such as [80, 95]");
  }
  return [...new Set(list as number[])].sort((a, b) => a - b);
}

/** Seals new secret values over `current`; a null value removes that secret. */
function sealSecrets(env: TxEnv, current: Record<string, SealedSecret>, changes: Record<string, string | null>): Record<string, SealedSecret> {
  const out = { ...current };
  for (const [name, value] of Object.entries(changes)) {
    checkName("secret", name);
    if (value === null) {
      delete out[name];
      continue;
    }
    if (!env.secrets) throw new AllotError("secrets-unavailable", "this server has no key to encrypt secrets with; set ALLOT_SECRET_KEY or let the server create secret.key in its data directory");
    out[name] = env.secrets.seal(value);
  }
  return out;
}

function checkStrategy(s: unknown): Strategy {
  if (s === undefined) return "lowest-free";
  if (!STRATEGIES.includes(s as Strategy)) {
    throw new AllotError("invalid-request", `strategy ${JSON.stringify(s)} is unknown: use ${STRATEGIES.join(" or ")}`);
  }
  return s as Strategy;
}

async function assertNameFree(env: TxEnv, spaceId: string, space: string, name: string): Promise<void> {
  if (await env.sql.get("SELECT 1 AS x FROM pools WHERE space_id = ? AND name = ?", [spaceId, name])) {
    throw new AllotError("pool-exists", `pool ${name} already exists in space ${space}; pick another name or delete it first`);
  }
}

/** Writes a planned pool: its row, ranges, exclusions and free runs, and the history record. */
async function insertPool(
  env: TxEnv,
  input: PoolInput,
  plan: PoolPlan,
  space: { id: string; name: string },
  parentId: string | null,
): Promise<PoolState> {
  const id = env.newId();
  const at = iso(env.now);
  const dns = dnsList(input.dns, "dns") ?? [];
  const thresholds = checkThresholds(input.thresholds);
  checkDnsTemplate(input.attributes, plan.family);
  const secrets = sealSecrets(env, {}, input.secrets ?? {});
  await env.sql.run(
    `INSERT INTO pools (id, space_id, name, family, parent_id, strategy, allocate_reserved, prefix_length, gateway, dns,
       description, attributes, total, created_at, updated_at, thresholds, secrets, provider) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [
      id, space.id, input.name, plan.family, parentId, checkStrategy(input.strategy), input.allocateReserved ? 1 : 0,
      input.prefixLength ?? null, input.gateway === undefined ? null : canonicalAddress(input.gateway), JSON.stringify(dns), input.description ?? "",
      JSON.stringify(input.attributes ?? {}), plan.total.toString(), at, at, JSON.stringify(thresholds), JSON.stringify(secrets),
      input.provider ? JSON.stringify(input.provider) : null,
    ],
  );
  for (const r of plan.ranges) {
    // checked here to name the other pool; the trigger behind it refuses the row regardless
    if (parentId === null) await assertNoOverlap(env, space, plan, r);
    await env.sql.run(
      `INSERT INTO pool_ranges (pool_id, seq, space_id, family, top_level, first, last, prefix_length, gateway, dns)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [id, r.seq, space.id, plan.family, parentId === null ? 1 : 0, key(r.first), key(r.last), r.prefixLength, r.gateway, r.dns === null ? null : JSON.stringify(r.dns)],
    );
  }
  for (const e of plan.exclusions) {
    await env.sql.run("INSERT INTO exclusions (pool_id, first, last) VALUES (?, ?, ?)", [id, key(e.first), key(e.last)]);
  }
  for (const run of plan.free) await insertRun(env.sql, id, run);
  const state = await loadPoolById(env.sql, id);
  await record(env.sql, env.ctx, at, { action: "create", entity: "pool", entityId: id, spaceId: space.id, poolId: id, after: toPool(state) });
  return state;
}

/** Refuses a top-level range that overlaps another pool of the space (the nearest range below its end). */
export async function assertNoOverlap(env: TxEnv, space: { id: string; name: string }, plan: PoolPlan, r: { first: bigint; last: bigint }) {
  const other = await env.sql.get<{ name: string; last: Buffer }>(
    `SELECT p.name, x.last FROM pool_ranges x JOIN pools p ON p.id = x.pool_id
     WHERE x.space_id = ? AND x.family = ? AND x.top_level = 1 AND x.first <= ? ORDER BY x.first DESC LIMIT 1`,
    [space.id, plan.family, key(r.last)],
  );
  if (!other || fromKey(other.last) < r.first) return;
  throw new AllotError(
    "pool-overlap",
    `${fmt(plan.family, r.first)}-${fmt(plan.family, r.last)} overlaps pool ${other.name} in space ${space.name}; pools in one space may not overlap (use another space for an overlapping plan)`,
    { pool: other.name },
  );
}

export async function createPool(env: TxEnv, input: PoolInput, space: { id: string; name: string }): Promise<Pool> {
  checkName("pool", input.name);
  checkStrategy(input.strategy);
  const plan = planPool(input);
  await assertNameFree(env, space.id, space.name, input.name);
  return toPool(await insertPool(env, input, plan, space, null));
}

/**
 * Carves a child pool out of `parent`: the first free aligned block of `prefixLength`, or exactly `cidr`.
 * The block is held in the parent as a run owned by the child, so the parent never hands it out.
 */
export async function carveChild(env: TxEnv, parent: PoolState, input: ChildPoolInput): Promise<Pool> {
  checkName("pool", input.name);
  checkStrategy(input.strategy);
  const bits = BITS[parent.family];
  let first: bigint;
  let length: number;
  if (input.cidr !== undefined) {
    if (input.prefixLength !== undefined) throw new AllotError("invalid-request", "give either cidr or prefixLength for a child pool, not both");
    const p = prefix(input.cidr, "cidr");
    if (p.family !== parent.family) throw new AllotError("invalid-address", `cidr ${input.cidr} is IPv${p.family} but pool ${parent.name} is IPv${parent.family}`);
    first = prefixFirst(p);
    length = p.length;
    if (!(await isCarvable(env.sql, parent, { first, last: prefixLast(p) }))) {
      const inside = parent.ranges.some((r) => first >= r.first && prefixLast(p) <= r.last);
      throw new AllotError(
        inside ? "block-unavailable" : "address-outside-pool",
        inside
          ? `${formatPrefix(p)} is not wholly free in pool ${parent.name} (part of it is allocated, excluded, reserved or already a child)`
          : `${formatPrefix(p)} is not inside one range of pool ${parent.name}`,
      );
    }
  } else {
    if (input.prefixLength === undefined) throw new AllotError("invalid-request", "a child pool needs prefixLength (carve the first free block of that size) or cidr");
    length = input.prefixLength;
    if (!Number.isInteger(length) || length < 0 || length > bits) {
      throw new AllotError("invalid-request", `prefixLength ${length} is out of range for IPv${parent.family} (0 to ${bits})`);
    }
    const size = 1n << BigInt(bits - length);
    const found = await findCarve(env.sql, parent, size);
    if (found === null) {
      throw new AllotError("block-unavailable", `pool ${parent.name} has no free aligned /${length} left; ask for a longer prefix or free some space`);
    }
    first = found;
  }
  const size = 1n << BigInt(bits - length);
  const last = first + size - 1n;
  const cidr = `${fmt(parent.family, first)}/${length}`;
  const { prefixLength: _pl, cidr: _c, ...rest } = input;
  // the parent's gateway inside the block is still the router's address: the child never hands it out
  const routers = parent.allocateReserved
    ? []
    : [...new Set([...parent.ranges.map((r) => r.gateway), parent.gateway].filter((g): g is string => g !== null))].filter((g) => {
        const v = parseAddress(g).value;
        return parseAddress(g).family === parent.family && v >= first && v <= last;
      });
  const childInput: PoolInput = {
    ...rest,
    ...(routers.length > 0 ? { exclusions: [...(input.exclusions ?? []), ...routers] } : {}),
    strategy: input.strategy ?? parent.strategy,
    dns: input.dns ?? parent.dns,
    ranges: [{ cidr, ...(input.gateway !== undefined ? { gateway: input.gateway } : {}) }],
  };
  delete childInput.gateway;
  const plan = planPool(childInput);
  await assertNameFree(env, parent.spaceId, parent.space, input.name);
  const taken = await takeCarve(env.sql, parent, { first, last });
  const child = await insertPool(env, { ...childInput, prefixLength: length }, plan, { id: parent.spaceId, name: parent.space }, parent.id);
  const row: AllocationRow = {
    id: env.newId(), pool_id: parent.id, space_id: parent.spaceId, family: parent.family, first: key(first), last: key(last),
    size: size.toString(), child_pool_id: child.id, owner: null, mac: null, hostname: null, labels: "{}", expires_at: null,
    created_at: iso(env.now), updated_at: iso(env.now),
  };
  await insertAllocation(env.sql, row);
  parent.carved += taken;
  await saveCounters(env, parent, iso(env.now));
  // the parent's own record of the block leaving it, as "uncarve" records its return
  await record(env.sql, env.ctx, iso(env.now), { action: "carve", entity: "allocation", entityId: row.id, spaceId: parent.spaceId, poolId: parent.id, after: toAllocation(parent, row) });
  return toPool(await loadPoolById(env.sql, child.id));
}

/** Deletes a pool; with `force`, its allocations and child pools (recursively) go with it. */
export async function deletePool(env: TxEnv, pool: PoolState, force: boolean): Promise<Pool> {
  const children = await listPoolStates(env.sql, { parentId: pool.id });
  if (!force && (pool.allocated > 0n || children.length > 0)) {
    throw new AllotError(
      "pool-in-use",
      `pool ${pool.name} still holds ${plural(pool.allocated, "allocated address", "allocated addresses")} and ${plural(children.length, "child pool", "child pools")}; release them first or delete with force`,
      { allocated: pool.allocated.toString(), children: children.map((c) => c.name) },
    );
  }
  for (const c of children) await deletePool(env, await loadPoolById(env.sql, c.id, true), true);
  const before = toPool(pool);
  const rows = await env.sql.all<AllocationRow>("SELECT * FROM allocations WHERE pool_id = ?", [pool.id]);
  for (const r of rows) {
    if (r.child_pool_id) continue; // the child's own deletion above recorded it
    await record(env.sql, env.ctx, iso(env.now), { action: "release", entity: "allocation", entityId: r.id, spaceId: pool.spaceId, poolId: pool.id, before: toAllocation(pool, r), held: r });
  }
  await env.sql.run("DELETE FROM allocations WHERE pool_id = ?", [pool.id]);
  if (pool.parentId) {
    const parent = await loadPoolById(env.sql, pool.parentId, true);
    const carve = await env.sql.get<AllocationRow>("SELECT * FROM allocations WHERE child_pool_id = ?", [pool.id]);
    if (carve) await releaseRow(env, parent, carve, "uncarve");
  }
  await env.sql.run("DELETE FROM free_runs WHERE pool_id = ?", [pool.id]);
  await env.sql.run("DELETE FROM pool_ranges WHERE pool_id = ?", [pool.id]);
  await env.sql.run("DELETE FROM exclusions WHERE pool_id = ?", [pool.id]);
  await env.sql.run("DELETE FROM pools WHERE id = ?", [pool.id]);
  await record(env.sql, env.ctx, iso(env.now), { action: "delete", entity: "pool", entityId: pool.id, spaceId: pool.spaceId, poolId: pool.id, before });
  return before;
}

export async function updatePool(env: TxEnv, pool: PoolState, patch: PoolPatch): Promise<Pool> {
  const before = toPool(pool);
  if (patch.name !== undefined && patch.name !== pool.name) {
    checkName("pool", patch.name);
    await assertNameFree(env, pool.spaceId, pool.space, patch.name);
  }
  checkDnsTemplate(patch.attributes, pool.family);
  const next = {
    name: patch.name ?? pool.name,
    description: patch.description ?? pool.description,
    attributes: patch.attributes ?? pool.attributes,
    strategy: patch.strategy === undefined ? pool.strategy : checkStrategy(patch.strategy),
    thresholds: patch.thresholds === undefined ? pool.thresholds : checkThresholds(patch.thresholds),
    secrets: patch.secrets === undefined ? pool.secrets : sealSecrets(env, pool.secrets, patch.secrets),
  };
  await env.sql.run(
    "UPDATE pools SET name = ?, description = ?, attributes = ?, strategy = ?, thresholds = ?, secrets = ?, updated_at = ? WHERE id = ?",
    [next.name, next.description, JSON.stringify(next.attributes), next.strategy, JSON.stringify(next.thresholds), JSON.stringify(next.secrets), iso(env.now), pool.id],
  );
  const after = toPool(await loadPoolById(env.sql, pool.id));
  await record(env.sql, env.ctx, iso(env.now), { action: "update", entity: "pool", entityId: pool.id, spaceId: pool.spaceId, poolId: pool.id, before, after });
  return after;
}
