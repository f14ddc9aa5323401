import { formatAddress, fromKey } from "../addr/index.js";
import type { Sql, SqlValue } from "../store/store.js";
import { type PoolState, key, rangeOf } from "./pool-repo.js";
import type { Allocation, AllocationSort } from "./types.js";

export interface AllocationRow {
  id: string;
  pool_id: string;
  space_id: string;
  family: number;
  first: Buffer;
  last: Buffer;
  size: string;
  child_pool_id: string | null;
  owner: string | null;
  mac: string | null;
  hostname: string | null;
  labels: string;
  expires_at: number | null;
  created_at: string;
  updated_at: string;
}

export function toAllocation(pool: PoolState, row: AllocationRow, childName?: string): Allocation {
  const first = fromKey(row.first);
  const range = rangeOf(pool, first);
  const f = (v: bigint) => formatAddress({ family: pool.family, value: v });
  return {
    id: row.id,
    pool: pool.name,
    poolId: pool.id,
    space: pool.space,
    address: f(first),
    lastAddress: f(fromKey(row.last)),
    size: Number(row.size),
    prefixLength: range?.prefixLength ?? pool.prefixLength ?? (pool.family === 4 ? 32 : 128),
    gateway: range?.gateway ?? pool.gateway,
    dns: range?.dns ?? pool.dns,
    owner: row.owner,
    mac: row.mac,
    hostname: row.hostname,
    labels: JSON.parse(row.labels) as Record<string, string>,
    expiresAt: row.expires_at === null ? null : new Date(row.expires_at).toISOString(),
    createdAt: row.created_at,
    ...(row.child_pool_id ? { childPool: childName ?? row.child_pool_id } : {}),
  };
}

export async function allocationById(sql: Sql, id: string): Promise<AllocationRow | undefined> {
  return sql.get<AllocationRow>("SELECT * FROM allocations WHERE id = ?", [id]);
}

export async function allocationByOwner(sql: Sql, poolId: string, owner: string): Promise<AllocationRow | undefined> {
  return sql.get<AllocationRow>("SELECT * FROM allocations WHERE pool_id = ? AND owner = ?", [poolId, owner]);
}

/** The allocation (or carve) whose run holds address `a` in a pool. */
export async function allocationHolding(sql: Sql, poolId: string, a: bigint): Promise<AllocationRow | undefined> {
  const row = await sql.get<AllocationRow>(
    "SELECT * FROM allocations WHERE pool_id = ? AND first <= ? ORDER BY first DESC LIMIT 1",
    [poolId, key(a)],
  );
  return row && fromKey(row.last) >= a ? row : undefined;
}

export interface ListFilter {
  owner?: string;
  mac?: string;
  hostname?: string;
  sort?: AllocationSort;
  /** Only allocations past this one in the sort order (keyset pagination): its address key, or its creation time and id. */
  after?: Buffer | { createdAt: string; id: string };
  limit: number;
}

/** Allocations in the asked order, a page at a time (keyset, so page 1,000 costs what page 1 does). */
export async function listAllocationRows(sql: Sql, poolId: string, f: ListFilter): Promise<AllocationRow[]> {
  const sort = f.sort ?? "address";
  // by creation: the time, then the id for allocations made in the same millisecond
  const columns = sort.endsWith("address") ? ["first"] : ["created_at", "id"];
  const descending = sort.startsWith("-");
  const where = ["pool_id = ?", "child_pool_id IS NULL"];
  const params: SqlValue[] = [poolId];
  if (f.owner !== undefined) {
    where.push("owner = ?");
    params.push(f.owner);
  }
  if (f.mac !== undefined) {
    where.push("mac = ?");
    params.push(f.mac);
  }
  if (f.hostname !== undefined) {
    where.push("hostname = ?");
    params.push(f.hostname);
  }
  if (f.after !== undefined) {
    where.push(`(${columns.join(", ")}) ${descending ? "<" : ">"} (${columns.map(() => "?").join(", ")})`);
    params.push(...(Buffer.isBuffer(f.after) ? [f.after] : [f.after.createdAt, f.after.id]));
  }
  params.push(f.limit);
  const order = columns.map((c) => `${c}${descending ? " DESC" : ""}`).join(", ");
  return sql.all<AllocationRow>(`SELECT * FROM allocations WHERE ${where.join(" AND ")} ORDER BY ${order} LIMIT ?`, params);
}
