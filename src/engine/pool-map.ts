/**
 * A pool's occupancy as a map of cells: each cell a stretch of addresses with how many of them are in
 * the pool, free, allocated, carved into child pools, excluded or kept back (network, broadcast,
 * gateway), read from the free-space index and the pool's shape so a cell costs the same at any pool
 * size. Maps are kept per view and brought up to date from the pool's history, so looking at a pool of
 * a million allocations after an allocate costs one short read rather than a walk over every free run.
 */
import { type Family, formatAddress, fromKey } from "../addr/index.js";
import type { Sql } from "../store/store.js";
import { carvePieces, reservedOf } from "./carve.js";
import { AllotError } from "./errors.js";
import { type Interval, subtract } from "./intervals.js";
import { key, type PoolState } from "./pool-repo.js";

export interface MapCell {
  /** First and last address of the cell. */
  first: string;
  last: string;
  total: string;
  free: string;
  /** The rest of `total` by what holds it; together with `free` they add up to `total`. */
  allocated: string;
  inChildPools: string;
  excluded: string;
  /** Network, broadcast and gateway addresses the pool keeps back. */
  reserved: string;
}

export interface PoolMap {
  first: string;
  last: string;
  /** Addresses per cell (the last cell may be shorter). */
  cellSize: string;
  cells: MapCell[];
}

/** A computed map with what is needed to bring it up to date: the newest history entry it reflects. */
export interface MapSnapshot {
  seq: number;
  lo: bigint;
  hi: bigint;
  size: bigint;
  map: PoolMap;
}

export const MAX_CELLS = 4096;
/** Past this many changes since a snapshot, recomputing the whole map is cheaper than replaying them. */
const MAX_CHANGES = 2000;
/** Pool history entries that leave its free space as it was. */
const SPACE_NEUTRAL = new Set(["update", "threshold-crossed", "threshold-cleared"]);

const text = (family: Family, value: bigint) => formatAddress({ family, value });

/**
 * The stretch [from, to] of a pool (else all of it) cut into at most `cells` equal cells, answered from
 * `cache` when the pool has not changed since, and brought up to date when it has changed a little.
 */
export async function cachedPoolMap(
  sql: Sql,
  cache: Map<string, MapSnapshot>,
  pool: PoolState,
  cells: number,
  from?: bigint,
  to?: bigint,
): Promise<PoolMap> {
  const view = `${pool.id}|${from ?? ""}|${to ?? ""}|${cells}`;
  const kept = cache.get(view);
  const snap = (kept && (await refresh(sql, pool, kept))) ?? (await fullMap(sql, pool, cells, from, to));
  // most recently used last, so the first key is the one to drop
  cache.delete(view);
  if (cache.size >= 64) cache.delete(cache.keys().next().value!);
  cache.set(view, snap);
  return snap.map;
}

/** The newest history entry of a pool: every change to its free space is one. */
async function newestSeq(sql: Sql, poolId: string): Promise<number> {
  const row = await sql.get<{ s: number | string | null }>("SELECT MAX(seq) AS s FROM history WHERE pool_id = ?", [poolId]);
  return Number(row?.s ?? 0);
}

/**
 * The snapshot brought up to date from the pool's changes since: an allocation takes its addresses
 * from the free count of each cell it meets, a release or expiry gives them back. Null (recompute)
 * when the changes are many, or not plain address changes (a child carved or returned), or when the
 * snapshot's own entry has been pruned from history, so later ones may have gone with it.
 */
async function refresh(sql: Sql, pool: PoolState, snap: MapSnapshot): Promise<MapSnapshot | null> {
  const rows = await sql.all<{ seq: number | string; entity: string; action: string; first: Buffer | null; last: Buffer | null }>(
    "SELECT seq, entity, action, first, last FROM history WHERE pool_id = ? AND seq >= ? ORDER BY seq LIMIT ?",
    [pool.id, snap.seq, MAX_CHANGES + 2],
  );
  if (rows.length === 0 && snap.seq === 0) return snap;
  if (Number(rows[0]?.seq) !== snap.seq) return null;
  const changes = rows.slice(1);
  if (changes.length === 0) return snap;
  if (changes.length > MAX_CHANGES) return null;
  const free = snap.map.cells.map((c) => BigInt(c.free));
  for (const c of changes) {
    if (c.entity === "pool" && SPACE_NEUTRAL.has(c.action)) continue;
    if (c.entity === "allocation" && c.action === "update") continue; // an allocation's addresses never change
    const sign = c.action === "allocate" ? -1n : c.action === "release" || c.action === "expire" ? 1n : 0n;
    if (c.entity !== "allocation" || sign === 0n || !c.first || !c.last) return null;
    const a = fromKey(c.first);
    const b = fromKey(c.last);
    if (b < snap.lo || a > snap.hi) continue;
    const s = a > snap.lo ? a : snap.lo;
    const e = b < snap.hi ? b : snap.hi;
    for (let i = Number((s - snap.lo) / snap.size); i < free.length; i++) {
      const cf = snap.lo + BigInt(i) * snap.size;
      if (cf > e) break;
      const cl = cf + snap.size - 1n;
      free[i]! += sign * ((e < cl ? e : cl) - (s > cf ? s : cf) + 1n);
    }
  }
  // a count out of bounds would mean the history did not say everything: start again from the runs
  if (free.some((f, i) => f < 0n || f - BigInt(snap.map.cells[i]!.free) > BigInt(snap.map.cells[i]!.allocated))) return null;
  // only allocations moved: what left free is allocated, and the other way round
  const cells = snap.map.cells.map((c, i) => {
    const delta = free[i]! - BigInt(c.free);
    return delta === 0n ? c : { ...c, free: free[i]!.toString(), allocated: (BigInt(c.allocated) - delta).toString() };
  });
  return { ...snap, seq: Number(changes[changes.length - 1]!.seq), map: { ...snap.map, cells } };
}

/** The pool's free runs that meet [lo, hi], in address order (the one starting before lo included). */
async function runsMeeting(sql: Sql, poolId: string, lo: bigint, hi: bigint): Promise<{ first: Buffer; last: Buffer }[]> {
  const start = await sql.get<{ first: Buffer }>("SELECT first FROM free_runs WHERE pool_id = ? AND first <= ? ORDER BY first DESC LIMIT 1", [poolId, key(lo)]);
  return sql.all<{ first: Buffer; last: Buffer }>("SELECT first, last FROM free_runs WHERE pool_id = ? AND first >= ? AND first <= ? ORDER BY first", [
    poolId,
    start?.first ?? key(lo),
    key(hi),
  ]);
}

/** The map computed from every free run in the stretch. */
async function fullMap(sql: Sql, pool: PoolState, cells: number, from?: bigint, to?: bigint): Promise<MapSnapshot> {
  const lo = from ?? pool.ranges[0]!.first;
  const hi = to ?? pool.ranges[pool.ranges.length - 1]!.last;
  if (hi < lo) throw new AllotError("invalid-request", "the map's end is before its start");
  const span = hi - lo + 1n;
  const n = BigInt(Math.max(1, Math.min(cells, MAX_CELLS)));
  const size = (span + n - 1n) / n;
  const count = Number((span + size - 1n) / size);
  // read before the runs, so the map is at least as new as the entry it is marked with
  const seq = await newestSeq(sql, pool.id);
  const runs = await runsMeeting(sql, pool.id, lo, hi);
  const carves = await sql.all<{ first: Buffer; last: Buffer }>(
    "SELECT a.first, a.last FROM pools c JOIN allocations a ON a.child_pool_id = c.id AND a.pool_id = c.parent_id WHERE c.parent_id = ? AND a.first <= ? AND a.last >= ?",
    [pool.id, key(hi), key(lo)],
  );
  // each address counted once: excluded first, then kept back, then carved (a carve may cover kept-back ones)
  const reserved = reservedOf(pool).flatMap((r) => subtract(r, pool.exclusions));
  const children = carves.flatMap((c) => carvePieces(pool, { first: fromKey(c.first), last: fromKey(c.last) }));
  const [total, free, excluded, kept, carved] =
    pool.family === 4
      ? // IPv4 fits in a double: a pool of a million allocations has ~100,000 free runs to spread,
        // which takes milliseconds with numbers and far longer with bigints
        countV4(
          [pool.ranges.map(v4Span), runs.map((r) => [r.first.readUInt32BE(12), r.last.readUInt32BE(12)]), pool.exclusions.map(v4Span), reserved.map(v4Span), children.map(v4Span)],
          Number(lo),
          Number(hi),
          Number(size),
          count,
        )
      : countBig([pool.ranges, runs.map((r) => ({ first: fromKey(r.first), last: fromKey(r.last) })), pool.exclusions, reserved, children], lo, hi, size, count);
  return {
    seq,
    lo,
    hi,
    size,
    map: {
      first: text(pool.family, lo),
      last: text(pool.family, hi),
      cellSize: size.toString(),
      cells: total!.map((t, i) => {
        const cf = lo + BigInt(i) * size;
        const cl = cf + size - 1n < hi ? cf + size - 1n : hi;
        // whatever is in the pool and none of the others is held by an allocation
        const allocated = BigInt(t) - BigInt(free![i]!) - BigInt(excluded![i]!) - BigInt(kept![i]!) - BigInt(carved![i]!);
        return {
          first: text(pool.family, cf),
          last: text(pool.family, cl),
          total: t,
          free: free![i]!,
          allocated: allocated.toString(),
          inChildPools: carved![i]!,
          excluded: excluded![i]!,
          reserved: kept![i]!,
        };
      }),
    },
  };
}

const v4Span = (i: Interval): [number, number] => [Number(i.first), Number(i.last)];

/** Per cell, how many addresses of each list of intervals fall in it, as decimal text. */
function countBig(lists: Interval[][], lo: bigint, hi: bigint, size: bigint, count: number): string[][] {
  return lists.map((list) => {
    const into = new Array<bigint>(count).fill(0n);
    for (const { first: a, last: b } of list) {
      const s = a > lo ? a : lo;
      const e = b < hi ? b : hi;
      if (e < s) continue;
      for (let i = Number((s - lo) / size); i < count; i++) {
        const cf = lo + BigInt(i) * size;
        const cl = cf + size - 1n;
        if (cf > e) break;
        const os = s > cf ? s : cf;
        const oe = e < cl ? e : cl;
        if (oe >= os) into[i] = into[i]! + (oe - os + 1n);
      }
    }
    return into.map(String);
  });
}

function countV4(lists: [number, number][][], lo: number, hi: number, size: number, count: number): string[][] {
  return lists.map((list) => {
    const into = new Float64Array(count);
    for (const [a, b] of list) {
      const s = Math.max(a, lo);
      const e = Math.min(b, hi);
      for (let i = Math.floor((s - lo) / size); i < count && e >= s; i++) {
        const cf = lo + i * size;
        if (cf > e) break;
        const overlap = Math.min(e, cf + size - 1) - Math.max(s, cf) + 1;
        if (overlap > 0) into[i]! += overlap;
      }
    }
    return Array.from(into, String);
  });
}
