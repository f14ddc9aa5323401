import { type Family, formatAddress, fromKey, toKey } from "../addr/index.js";
import type { Sql } from "../store/store.js";
import { AllotError } from "./errors.js";
import type { Interval } from "./intervals.js";
import { type HistoryRecord, recordMany } from "./history.js";
import type { ProviderRecord } from "../providers/provider.js";
import type { SealedSecret } from "./secrets.js";
import type { ChangeContext, Pool, PoolRange, PoolRef, Strategy, Usage } from "./types.js";

/** A pool as the engine works with it: the stored row with its ranges as intervals. */
export interface PoolState {
  id: string;
  spaceId: string;
  space: string;
  name: string;
  family: Family;
  parentId: string | null;
  parent: string | null;
  strategy: Strategy;
  allocateReserved: boolean;
  prefixLength: number | null;
  gateway: string | null;
  dns: string[];
  description: string;
  attributes: Record<string, unknown>;
  total: bigint;
  allocated: bigint;
  carved: bigint;
  createdAt: string;
  updatedAt: string;
  ranges: RangeState[];
  exclusions: Interval[];
  /** Utilisation percentages whose crossing is recorded in history. */
  thresholds: number[];
  secrets: Record<string, SealedSecret>;
  provider: ProviderRecord | null;
  /** allocated + carved as last read or saved: what a threshold crossing is measured from. */
  usedAtLoad: bigint;
  /**
   * Read with the pool's lock, before any change in this transaction: what the next allocation would
   * otherwise ask for in round trips of its own. Taken (and cleared) by the first change that uses it.
   */
  atLock?: AtLock;
}

export interface AtLock {
  /** The lowest free run. */
  lowest: Interval | null;
  /** When the soonest time-to-live runs out (ms), if any allocation has one. */
  nextExpiry: number | null;
}

export interface RangeState extends Interval {
  seq: number;
  prefixLength: number;
  gateway: string | null;
  dns: string[] | null;
}

interface PoolRow {
  id: string;
  space_id: string;
  space_name: string;
  name: string;
  family: number;
  parent_id: string | null;
  parent_name: string | null;
  strategy: string;
  allocate_reserved: number;
  prefix_length: number | null;
  gateway: string | null;
  dns: string;
  description: string;
  attributes: string;
  total: string;
  allocated: string;
  carved: string;
  created_at: string;
  updated_at: string;
  thresholds: string;
  secrets: string;
  provider: string | null;
  /** Only when read with the lock. */
  lowest_first?: Buffer | null;
  lowest_last?: Buffer | null;
  next_expiry?: number | null;
}

const POOL_SELECT = `SELECT p.*, s.name AS space_name, pp.name AS parent_name
  FROM pools p JOIN spaces s ON s.id = p.space_id LEFT JOIN pools pp ON pp.id = p.parent_id`;

/** What a change to the pool needs next, read in the same statement as the pool (its lock already held). */
const AT_LOCK = `,
  (SELECT r.first FROM free_runs r WHERE r.pool_id = p.id ORDER BY r.first LIMIT 1) AS lowest_first,
  (SELECT r.last FROM free_runs r WHERE r.pool_id = p.id ORDER BY r.first LIMIT 1) AS lowest_last,
  (SELECT MIN(a.expires_at) FROM allocations a WHERE a.pool_id = p.id AND a.expires_at IS NOT NULL) AS next_expiry`;

const POOL_SELECT_TO_ALLOCATE = POOL_SELECT.replace(" FROM pools p", `${AT_LOCK}\n  FROM pools p`);

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

type RangeRow = { seq: number; first: Buffer; last: Buffer; prefix_length: number; gateway: string | null; dns: string | null };
type ExclusionRow = { first: Buffer; last: Buffer };

/**
 * A pool's exclusions are written once, when it is created, and its ranges only ever grow, each growth
 * raising its total; pool ids are never reused. So each process reads a pool's shape once per (id,
 * total) rather than on every change (two round trips fewer per allocation on PostgreSQL). Bounded,
 * oldest first out. While this process grows a pool, its shape is not kept: the growth may yet be
 * rolled back, and another growth could later reach the same total with other ranges.
 */
const shapes = new Map<string, { ranges: RangeRow[]; exclusions: ExclusionRow[] }>();
const SHAPES_KEPT = 10_000;
const growing = new Map<string, number>();

/** Marks a pool's shape as changing until the returned function is called (after commit or rollback). */
export function shapeChanging(poolId: string): () => void {
  growing.set(poolId, (growing.get(poolId) ?? 0) + 1);
  return () => {
    const n = growing.get(poolId)! - 1;
    if (n === 0) growing.delete(poolId);
    else growing.set(poolId, n);
  };
}

async function shapeOf(sql: Sql, row: PoolRow): Promise<{ ranges: RangeRow[]; exclusions: ExclusionRow[] }> {
  const poolId = row.id;
  const cacheKey = `${poolId}:${row.total}`;
  let shape = shapes.get(cacheKey);
  if (!shape) {
    const ranges = await sql.all<RangeRow>("SELECT seq, first, last, prefix_length, gateway, dns FROM pool_ranges WHERE pool_id = ? ORDER BY seq", [poolId]);
    const exclusions = await sql.all<ExclusionRow>("SELECT first, last FROM exclusions WHERE pool_id = ? ORDER BY first", [poolId]);
    // a pool being created has no ranges yet in this transaction's view: never remember that
    if (ranges.length === 0 || growing.has(poolId)) return { ranges, exclusions };
    shape = { ranges, exclusions };
    if (shapes.size >= SHAPES_KEPT) shapes.delete(shapes.keys().next().value!);
    shapes.set(cacheKey, shape);
  }
  return shape;
}

async function hydrate(sql: Sql, row: PoolRow): Promise<PoolState> {
  const { ranges, exclusions } = await shapeOf(sql, row);
  return {
    id: row.id,
    spaceId: row.space_id,
    space: row.space_name,
    name: row.name,
    family: row.family as Family,
    parentId: row.parent_id,
    parent: row.parent_name,
    strategy: row.strategy as Strategy,
    allocateReserved: row.allocate_reserved === 1,
    prefixLength: row.prefix_length,
    gateway: row.gateway,
    dns: JSON.parse(row.dns) as string[],
    description: row.description,
    attributes: JSON.parse(row.attributes) as Record<string, unknown>,
    total: BigInt(row.total),
    allocated: BigInt(row.allocated),
    carved: BigInt(row.carved),
    thresholds: JSON.parse(row.thresholds) as number[],
    secrets: JSON.parse(row.secrets) as Record<string, SealedSecret>,
    provider: row.provider === null ? null : (JSON.parse(row.provider) as ProviderRecord),
    usedAtLoad: BigInt(row.allocated) + BigInt(row.carved),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    ranges: ranges.map((r) => ({
      seq: r.seq,
      first: fromKey(r.first),
      last: fromKey(r.last),
      prefixLength: r.prefix_length,
      gateway: r.gateway,
      dns: r.dns === null ? null : (JSON.parse(r.dns) as string[]),
    })),
    exclusions: exclusions.map((e) => ({ first: fromKey(e.first), last: fromKey(e.last) })),
    ...(row.lowest_first === undefined
      ? {}
      : {
          atLock: {
            lowest: row.lowest_first && row.lowest_last ? { first: fromKey(row.lowest_first), last: fromKey(row.lowest_last) } : null,
            nextExpiry: row.next_expiry ?? null,
          },
        }),
  };
}

/**
 * Finds a pool by id, or by name within a space (the `default` space unless one is named). With
 * `lock`, the pool row stays locked until commit: every change to a pool's allocations, free runs and
 * counters holds it, so changes to one pool queue while other pools proceed. "to-allocate" locks it
 * and reads, with the pool, what an allocation would ask next (see AtLock).
 */
export async function loadPool(sql: Sql, ref: PoolRef, lock: boolean | "to-allocate" = false): Promise<PoolState> {
  const space = ref.space ?? "default";
  const [where, params] = UUID.test(ref.pool) ? ["p.id = ?", [ref.pool.toLowerCase()]] : ["s.name = ? AND p.name = ?", [space, ref.pool]];
  const row = lock
    ? (
        await sql.lockAndRead<PoolRow>(
          `SELECT p.id FROM pools p JOIN spaces s ON s.id = p.space_id WHERE ${where}${sql.lock("p")}`,
          params,
          `${lock === "to-allocate" ? POOL_SELECT_TO_ALLOCATE : POOL_SELECT} WHERE ${where}`,
          params,
        )
      )[0]
    : await sql.get<PoolRow>(`${POOL_SELECT} WHERE ${where}`, params);
  if (!row) {
    if (!UUID.test(ref.pool) && !(await sql.get("SELECT 1 AS x FROM spaces WHERE name = ?", [space]))) {
      throw new AllotError("space-not-found", `space ${space} does not exist`);
    }
    throw new AllotError(
      "pool-not-found",
      UUID.test(ref.pool) ? `no pool has id ${ref.pool}` : `pool ${ref.pool} does not exist in space ${space}`,
    );
  }
  return hydrate(sql, row);
}

export async function loadPoolById(sql: Sql, id: string, lock = false): Promise<PoolState> {
  return loadPool(sql, { pool: id }, lock);
}

export async function listPoolStates(sql: Sql, filter: { spaceId?: string; parentId?: string }): Promise<PoolState[]> {
  const where: string[] = [];
  const params: string[] = [];
  if (filter.spaceId) {
    where.push("p.space_id = ?");
    params.push(filter.spaceId);
  }
  if (filter.parentId) {
    where.push("p.parent_id = ?");
    params.push(filter.parentId);
  }
  const rows = await sql.all<PoolRow>(
    `${POOL_SELECT}${where.length ? ` WHERE ${where.join(" AND ")}` : ""} ORDER BY s.name, p.name`,
    params,
  );
  const out: PoolState[] = [];
  for (const r of rows) out.push(await hydrate(sql, r));
  return out;
}

/** The range that holds `a`; every allocated address lies in one. */
export function rangeOf(pool: PoolState, a: bigint): RangeState | undefined {
  return pool.ranges.find((r) => a >= r.first && a <= r.last);
}

export function usageOf(p: PoolState): Usage {
  const used = p.allocated + p.carved;
  const free = p.total - used;
  // percent with two decimals, computed in bigint so an IPv6 pool neither overflows nor rounds to 0 early
  const utilization = p.total === 0n ? 0 : Number((used * 10000n) / p.total) / 100;
  return {
    total: p.total.toString(),
    allocated: p.allocated.toString(),
    inChildPools: p.carved.toString(),
    free: free.toString(),
    utilization,
  };
}

export function toPool(p: PoolState): Pool {
  const f = (v: bigint) => formatAddress({ family: p.family, value: v });
  const ranges: PoolRange[] = p.ranges.map((r) => {
    const size = r.last - r.first + 1n;
    const isCidr = (size & (size - 1n)) === 0n && r.first % size === 0n;
    const bits = p.family === 4 ? 32 : 128;
    const cidrLen = bits - (size.toString(2).length - 1);
    return {
      ...(isCidr ? { cidr: `${f(r.first)}/${cidrLen}` } : {}),
      start: f(r.first),
      end: f(r.last),
      prefixLength: r.prefixLength,
      gateway: r.gateway,
      dns: r.dns ?? p.dns,
    };
  });
  return {
    id: p.id,
    name: p.name,
    space: p.space,
    family: p.family,
    parent: p.parent,
    strategy: p.strategy,
    allocateReserved: p.allocateReserved,
    prefixLength: p.prefixLength,
    gateway: p.gateway,
    dns: p.dns,
    ranges,
    exclusions: p.exclusions.map((e) => ({ start: f(e.first), end: f(e.last) })),
    description: p.description,
    attributes: p.attributes,
    secrets: Object.fromEntries(Object.entries(p.secrets).map(([k, v]) => [k, v.hint])),
    thresholds: p.thresholds,
    provider: p.provider,
    usage: usageOf(p),
    createdAt: p.createdAt,
    updatedAt: p.updatedAt,
  };
}

/**
 * Writes a pool's counters, and records in the same transaction every utilisation threshold the
 * change crossed, upwards ("threshold-crossed") or back down ("threshold-cleared").
 */
export async function saveCounters(env: { sql: Sql; ctx: ChangeContext }, p: PoolState, at: string): Promise<void> {
  await env.sql.queue("UPDATE pools SET allocated = ?, carved = ?, updated_at = ? WHERE id = ?", [
    p.allocated.toString(),
    p.carved.toString(),
    at,
    p.id,
  ]);
  p.updatedAt = at;
  // the pool's runs or allocations changed: what was read with the lock no longer holds
  p.atLock = undefined;
  const used = p.allocated + p.carved;
  const records: HistoryRecord[] = [];
  for (const t of p.thresholds) {
    const was = reached(p.usedAtLoad, p.total, t);
    const is = reached(used, p.total, t);
    if (was === is) continue;
    records.push({
      action: is ? "threshold-crossed" : "threshold-cleared",
      entity: "pool",
      entityId: p.id,
      spaceId: p.spaceId,
      poolId: p.id,
      after: { pool: p.name, space: p.space, threshold: t, used: used.toString(), total: p.total.toString(), utilization: usageOf(p).utilization },
    });
  }
  if (records.length) await recordMany(env.sql, env.ctx, at, records);
  p.usedAtLoad = used;
}

/** Whether `used` of `total` is at or above `percent` (which may have decimals), in exact arithmetic. */
export function reached(used: bigint, total: bigint, percent: number): boolean {
  if (total === 0n) return false;
  return used * 1_000_000n >= total * BigInt(Math.round(percent * 10_000));
}

export const key = toKey;
