import type { Sql } from "../store/store.js";
import { findFit, give, runContaining, take } from "./free-space.js";
import { type Interval, intervalSize, normalize, sizeClass, subtract, within } from "./intervals.js";
import { reservedIn } from "./pool-plan.js";
import { type PoolState, rangeOf } from "./pool-repo.js";

/**
 * Carving child prefixes out of a pool. A pool keeps its network, broadcast and gateway addresses back
 * from hosts, but a child prefix may cover them (the first /24 of a 10.0.0.0/16 is 10.0.0.0/24, as
 * Neutron subnet pools and cloud IPAMs hand out). So a block is carvable when all of it but the
 * parent's reserved addresses is free, and only those free pieces move between index and carve.
 */

/** The parent's reserved addresses (none when it allows them to be allocated). */
export function reservedOf(pool: PoolState): Interval[] {
  return pool.allocateReserved ? [] : normalize(pool.ranges.flatMap((r) => reservedIn(pool.family, r)));
}

/** The parts of `block` that the free-space index holds for the parent: the block minus reserved addresses. */
export function carvePieces(pool: PoolState, block: Interval): Interval[] {
  return subtract(block, reservedOf(pool));
}

export const piecesSize = (pieces: readonly Interval[]): bigint => pieces.reduce((n, p) => n + intervalSize(p), 0n);

/** Whether `block` lies in one range of the pool and everything in it but reserved addresses is free. */
export async function isCarvable(sql: Sql, pool: PoolState, block: Interval): Promise<boolean> {
  const range = rangeOf(pool, block.first);
  if (!range || !within(block, range)) return false;
  for (const piece of carvePieces(pool, block)) {
    const run = await runContaining(sql, pool.id, piece.first);
    if (!run || run.last < piece.last) return false;
  }
  return true;
}

/**
 * The lowest-addressed aligned block of `size` that can be carved: the first fit among free runs, or
 * a block whose only non-free addresses are reserved ones (at most a few per range, so few to try).
 */
export async function findCarve(sql: Sql, pool: PoolState, size: bigint): Promise<bigint | null> {
  let best = await findFit(sql, pool.id, size, true, sizeClass(pool.total > 0n ? pool.total : 1n));
  for (const r of reservedOf(pool)) {
    const start = (r.first / size) * size;
    if (best !== null && start >= best) continue;
    if (await isCarvable(sql, pool, { first: start, last: start + size - 1n })) best = start;
  }
  return best;
}

/** Moves the free pieces of `block` out of the parent's free-space index. */
export async function takeCarve(sql: Sql, pool: PoolState, block: Interval): Promise<bigint> {
  const pieces = carvePieces(pool, block);
  for (const piece of pieces) {
    const run = (await runContaining(sql, pool.id, piece.first))!;
    await take(sql, pool.id, run, piece.first, piece.last);
  }
  return piecesSize(pieces);
}

/** Returns a carved block to the parent: its pieces become free again; reserved addresses stay back. */
export async function giveCarve(sql: Sql, pool: PoolState, block: Interval): Promise<bigint> {
  const pieces = carvePieces(pool, block);
  const range = rangeOf(pool, block.first)!;
  for (const piece of pieces) await give(sql, pool.id, piece, range);
  return piecesSize(pieces);
}
