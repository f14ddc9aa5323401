import { fromKey, toKey } from "../addr/index.js";
import type { Sql } from "../store/store.js";
import { type Interval, intervalSize, sizeClass } from "./intervals.js";

/**
 * The persisted free-space index: each pool's maximal runs of allocatable addresses, keyed by first
 * address. Every operation here is a bounded number of index seeks, so its cost does not depend on
 * how many allocations a pool holds or how large its address space is.
 */
interface RunRow {
  first: Buffer;
  last: Buffer;
}

const toInterval = (r: RunRow): Interval => ({ first: fromKey(r.first), last: fromKey(r.last) });

export async function insertRun(sql: Sql, poolId: string, run: Interval): Promise<void> {
  await sql.queue("INSERT INTO free_runs (pool_id, first, last, size_class) VALUES (?, ?, ?, ?)", [
    poolId,
    toKey(run.first),
    toKey(run.last),
    sizeClass(intervalSize(run)),
  ]);
}

async function deleteRun(sql: Sql, poolId: string, first: bigint): Promise<void> {
  await sql.queue("DELETE FROM free_runs WHERE pool_id = ? AND first = ?", [poolId, toKey(first)]);
}

/** The lowest free run. */
export async function lowestRun(sql: Sql, poolId: string): Promise<Interval | null> {
  const r = await sql.get<RunRow>("SELECT first, last FROM free_runs WHERE pool_id = ? ORDER BY first LIMIT 1", [poolId]);
  return r ? toInterval(r) : null;
}

/** The free run that holds `a`, if `a` is free. */
export async function runContaining(sql: Sql, poolId: string, a: bigint): Promise<Interval | null> {
  const r = await sql.get<RunRow>(
    "SELECT first, last FROM free_runs WHERE pool_id = ? AND first <= ? ORDER BY first DESC LIMIT 1",
    [poolId, toKey(a)],
  );
  if (!r) return null;
  const run = toInterval(r);
  return run.last >= a ? run : null;
}

/** The first free run that starts at or after `a`. */
export async function runAtOrAfter(sql: Sql, poolId: string, a: bigint): Promise<Interval | null> {
  const r = await sql.get<RunRow>(
    "SELECT first, last FROM free_runs WHERE pool_id = ? AND first >= ? ORDER BY first LIMIT 1",
    [poolId, toKey(a)],
  );
  return r ? toInterval(r) : null;
}

/**
 * The lowest-addressed place for `size` contiguous addresses, aligned to `size` when `aligned`
 * (child prefixes). Runs in a size class above the request always fit, so one seek per class finds
 * the best of those; only runs of the request's own class need checking one by one.
 */
export async function findFit(sql: Sql, poolId: string, size: bigint, aligned: boolean, maxClass: number): Promise<bigint | null> {
  const fitIn = (run: Interval): bigint | null => {
    const start = aligned ? ((run.first + size - 1n) / size) * size : run.first;
    return start + size - 1n <= run.last ? start : null;
  };
  const cls = sizeClass(size);
  let best: bigint | null = null;
  for (let c = cls + 1; c <= maxClass; c++) {
    const r = await sql.get<RunRow>(
      "SELECT first, last FROM free_runs WHERE pool_id = ? AND size_class = ? ORDER BY first LIMIT 1",
      [poolId, c],
    );
    if (!r) continue;
    const start = fitIn(toInterval(r));
    if (start !== null && (best === null || start < best)) best = start;
  }
  // Runs of the same class may or may not fit: walk them in address order, below the best so far.
  let after: Buffer | null = null;
  for (;;) {
    const rows: RunRow[] = await sql.all<RunRow>(
      after === null
        ? "SELECT first, last FROM free_runs WHERE pool_id = ? AND size_class = ? ORDER BY first LIMIT 256"
        : "SELECT first, last FROM free_runs WHERE pool_id = ? AND size_class = ? AND first > ? ORDER BY first LIMIT 256",
      after === null ? [poolId, cls] : [poolId, cls, after],
    );
    for (const r of rows) {
      const run = toInterval(r);
      if (best !== null && run.first >= best) return best;
      const start = fitIn(run);
      if (start !== null) return best === null || start < best ? start : best;
    }
    if (rows.length < 256) return best;
    after = rows[rows.length - 1]!.first;
  }
}

/** Removes [first, last] from the free run `run` that holds it, keeping what is left on either side. */
export async function take(sql: Sql, poolId: string, run: Interval, first: bigint, last: bigint): Promise<void> {
  // the run's row is reshaped in place where possible: one statement instead of a delete and an insert
  if (run.first < first) {
    await reshapeRun(sql, poolId, run.first, { first: run.first, last: first - 1n });
    if (last < run.last) await insertRun(sql, poolId, { first: last + 1n, last: run.last });
  } else if (last < run.last) {
    await reshapeRun(sql, poolId, run.first, { first: last + 1n, last: run.last });
  } else {
    await deleteRun(sql, poolId, run.first);
  }
}

async function reshapeRun(sql: Sql, poolId: string, oldFirst: bigint, run: Interval): Promise<void> {
  await sql.queue("UPDATE free_runs SET first = ?, last = ?, size_class = ? WHERE pool_id = ? AND first = ?", [
    toKey(run.first),
    toKey(run.last),
    sizeClass(intervalSize(run)),
    poolId,
    toKey(oldFirst),
  ]);
}

/**
 * Returns [first, last] to the index, merged with free neighbours inside `bounds` (the pool range it
 * came from), so runs stay maximal and never straddle two ranges with different settings.
 */
export async function give(sql: Sql, poolId: string, iv: Interval, bounds: Interval): Promise<void> {
  let { first, last } = iv;
  if (first > bounds.first) {
    const before = await runContaining(sql, poolId, first - 1n);
    if (before) {
      await deleteRun(sql, poolId, before.first);
      first = before.first;
    }
  }
  if (last < bounds.last) {
    const after = await sql.get<RunRow>("SELECT first, last FROM free_runs WHERE pool_id = ? AND first = ?", [
      poolId,
      toKey(last + 1n),
    ]);
    if (after) {
      await deleteRun(sql, poolId, last + 1n);
      last = fromKey(after.last);
    }
  }
  await insertRun(sql, poolId, { first, last });
}

/** Every free run of a pool, in order (for checks and tests; not used on the allocation path). */
export async function allRuns(sql: Sql, poolId: string): Promise<Interval[]> {
  const rows = await sql.all<RunRow>("SELECT first, last FROM free_runs WHERE pool_id = ? ORDER BY first", [poolId]);
  return rows.map(toInterval);
}
