/**
 * Reads for looking at the address space rather than changing it: a pool's occupancy as a map of
 * cells (each cell a stretch of addresses with its free count, from the free-space index, so a cell
 * costs the same at any pool size), and a search for allocations by MAC, owner or host name.
 */
import { type Family, formatAddress, fromKey } from "../addr/index.js";
import type { Sql } from "../store/store.js";
import { type AllocationRow, toAllocation } from "./allocation-repo.js";
import { AllotError } from "./errors.js";
import { key, loadPoolById, type PoolState } from "./pool-repo.js";
import type { Allocation } from "./types.js";

export interface MapCell {
  /** First and last address of the cell. */
  first: string;
  last: string;
  total: string;
  free: string;
}

const text = (family: Family, value: bigint) => formatAddress({ family, value });

export interface PoolMap {
  first: string;
  last: string;
  /** Addresses per cell (the last cell may be shorter). */
  cellSize: string;
  cells: MapCell[];
}

/**
 * The stretch [first, last] of a pool cut into at most `cells` equal cells, each with how many of its
 * addresses are in the pool (its ranges) and how many of those are free. Reads only the free runs and
 * ranges that meet the stretch.
 */
export async function poolMap(sql: Sql, pool: PoolState, cells: number, from?: bigint, to?: bigint): Promise<PoolMap> {
  const lo = from ?? pool.ranges[0]!.first;
  const hi = to ?? pool.ranges[pool.ranges.length - 1]!.last;
  if (hi < lo) throw new AllotError("invalid-request", "the map's end is before its start");
  // IPv4 fits in a double: a pool of a million allocations has ~100,000 free runs to spread, which
  // takes milliseconds with numbers and far longer with bigints
  if (pool.family === 4) return poolMapV4(sql, pool, cells, Number(lo), Number(hi));
  const span = hi - lo + 1n;
  const n = BigInt(Math.max(1, Math.min(cells, 4096)));
  const size = (span + n - 1n) / n;
  const count = Number((span + size - 1n) / size);
  const total = new Array<bigint>(count).fill(0n);
  const free = new Array<bigint>(count).fill(0n);
  /** Adds the overlap of [a, b] with each cell it meets to `into`. */
  const spread = (a: bigint, b: bigint, into: bigint[]) => {
    const s = a > lo ? a : lo;
    const e = b < hi ? b : hi;
    if (e < s) return;
    for (let i = Number((s - lo) / size); i < count; i++) {
      const cf = lo + BigInt(i) * size;
      const cl = cf + size - 1n;
      if (cf > e) break;
      const os = s > cf ? s : cf;
      const oe = e < cl ? e : cl;
      if (oe >= os) into[i] = into[i]! + (oe - os + 1n);
    }
  };
  for (const r of pool.ranges) spread(r.first, r.last, total);
  // the run that starts before the stretch may reach into it: start from the last run at or below lo
  const start = await sql.get<{ first: Buffer }>("SELECT first FROM free_runs WHERE pool_id = ? AND first <= ? ORDER BY first DESC LIMIT 1", [pool.id, key(lo)]);
  const runs = await sql.all<{ first: Buffer; last: Buffer }>("SELECT first, last FROM free_runs WHERE pool_id = ? AND first >= ? AND first <= ? ORDER BY first", [
    pool.id,
    start?.first ?? key(lo),
    key(hi),
  ]);
  for (const r of runs) spread(fromKey(r.first), fromKey(r.last), free);
  return {
    first: text(pool.family, lo),
    last: text(pool.family, hi),
    cellSize: size.toString(),
    cells: total.map((t, i) => {
      const cf = lo + BigInt(i) * size;
      const cl = cf + size - 1n < hi ? cf + size - 1n : hi;
      return { first: text(pool.family, cf), last: text(pool.family, cl), total: t.toString(), free: free[i]!.toString() };
    }),
  };
}

/** Allocations whose MAC, owner or host name is the text (host names also by prefix), in the given spaces. */
export async function searchAllocations(sql: Sql, text: string, mac: string | null, spaceIds: string[] | null, limit: number): Promise<Allocation[]> {
  const within = spaceIds === null ? "" : ` AND space_id IN (${spaceIds.map(() => "?").join(", ") || "NULL"})`;
  const params = spaceIds ?? [];
  const rows: AllocationRow[] = [];
  const add = (found: AllocationRow[]) => {
    for (const r of found) if (!rows.some((x) => x.id === r.id) && rows.length < limit) rows.push(r);
  };
  if (mac) add(await sql.all<AllocationRow>(`SELECT * FROM allocations WHERE mac = ?${within} LIMIT ?`, [mac, ...params, limit]));
  add(await sql.all<AllocationRow>(`SELECT * FROM allocations WHERE owner = ?${within} LIMIT ?`, [text, ...params, limit]));
  add(await sql.all<AllocationRow>(`SELECT * FROM allocations WHERE hostname >= ? AND hostname < ?${within} ORDER BY hostname LIMIT ?`, [text, `${text}\uffff`, ...params, limit]));
  const pools = new Map<string, PoolState>();
  const out: Allocation[] = [];
  for (const r of rows) {
    if (!pools.has(r.pool_id)) pools.set(r.pool_id, await loadPoolById(sql, r.pool_id));
    out.push(toAllocation(pools.get(r.pool_id)!, r));
  }
  return out;
}

async function poolMapV4(sql: Sql, pool: PoolState, cells: number, lo: number, hi: number): Promise<PoolMap> {
  const span = hi - lo + 1;
  const n = Math.max(1, Math.min(cells, 4096));
  const size = Math.ceil(span / n);
  const count = Math.ceil(span / size);
  const total = new Float64Array(count);
  const free = new Float64Array(count);
  const spread = (a: number, b: number, into: Float64Array) => {
    const s = Math.max(a, lo);
    const e = Math.min(b, hi);
    for (let i = Math.floor((s - lo) / size); i < count && e >= s; i++) {
      const cf = lo + i * size;
      if (cf > e) break;
      const overlap = Math.min(e, cf + size - 1) - Math.max(s, cf) + 1;
      if (overlap > 0) into[i]! += overlap;
    }
  };
  for (const r of pool.ranges) spread(Number(r.first), Number(r.last), total);
  const v4 = (k: Buffer) => k.readUInt32BE(12);
  const start = await sql.get<{ first: Buffer }>("SELECT first FROM free_runs WHERE pool_id = ? AND first <= ? ORDER BY first DESC LIMIT 1", [pool.id, key(BigInt(lo))]);
  const runs = await sql.all<{ first: Buffer; last: Buffer }>("SELECT first, last FROM free_runs WHERE pool_id = ? AND first >= ? AND first <= ? ORDER BY first", [
    pool.id,
    start?.first ?? key(BigInt(lo)),
    key(BigInt(hi)),
  ]);
  for (const r of runs) spread(v4(r.first), v4(r.last), free);
  return {
    first: text(4, BigInt(lo)),
    last: text(4, BigInt(hi)),
    cellSize: String(size),
    cells: Array.from(total, (t, i) => {
      const cf = lo + i * size;
      return { first: text(4, BigInt(cf)), last: text(4, BigInt(Math.min(cf + size - 1, hi))), total: String(t), free: String(free[i]) };
    }),
  };
}
