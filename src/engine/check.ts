import { fromKey } from "../addr/index.js";
import type { Sql } from "../store/store.js";
import { carvePieces, piecesSize } from "./carve.js";
import { type Interval, intervalSize, normalize } from "./intervals.js";
import { fmtSpan, planPool } from "./pool-plan.js";
import { type PoolState, listPoolStates, rangeOf } from "./pool-repo.js";

/** One inconsistency found by {@link checkPools}. */
export interface Problem {
  pool: string;
  message: string;
}

/**
 * Verifies every pool offline: allocations and free runs never overlap, together they cover exactly
 * the pool's allocatable addresses (ranges minus exclusions and reserved ones), free runs are maximal
 * and inside one range, and the usage counters equal what the rows add up to.
 */
export async function checkPools(sql: Sql): Promise<Problem[]> {
  const problems: Problem[] = [];
  for (const pool of await listPoolStates(sql, {})) problems.push(...(await checkPool(sql, pool)));
  problems.push(...(await checkOrphans(sql)));
  return problems;
}

/** Rows that point at nothing, and child pools without the carve in their parent that holds their block. */
async function checkOrphans(sql: Sql): Promise<Problem[]> {
  const out: Problem[] = [];
  const orphaned: [string, string][] = [
    ["allocations", "SELECT COUNT(*) AS n FROM allocations a WHERE NOT EXISTS (SELECT 1 FROM pools p WHERE p.id = a.pool_id)"],
    ["free runs", "SELECT COUNT(*) AS n FROM free_runs f WHERE NOT EXISTS (SELECT 1 FROM pools p WHERE p.id = f.pool_id)"],
    ["ranges", "SELECT COUNT(*) AS n FROM pool_ranges r WHERE NOT EXISTS (SELECT 1 FROM pools p WHERE p.id = r.pool_id)"],
    ["exclusions", "SELECT COUNT(*) AS n FROM exclusions e WHERE NOT EXISTS (SELECT 1 FROM pools p WHERE p.id = e.pool_id)"],
    ["pools", "SELECT COUNT(*) AS n FROM pools p WHERE NOT EXISTS (SELECT 1 FROM spaces s WHERE s.id = p.space_id)"],
    ["child-pool carves", "SELECT COUNT(*) AS n FROM allocations a WHERE a.child_pool_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pools p WHERE p.id = a.child_pool_id)"],
  ];
  for (const [what, q] of orphaned) {
    const n = Number((await sql.get<{ n: number | string }>(q))?.n ?? 0);
    if (n > 0) out.push({ pool: "-", message: `${n} ${what} belong to nothing that exists` });
  }
  const children = await sql.all<{ id: string; name: string; parent_id: string; first: Buffer; last: Buffer }>(
    `SELECT p.id, p.name, p.parent_id, r.first, r.last FROM pools p JOIN pool_ranges r ON r.pool_id = p.id WHERE p.parent_id IS NOT NULL`,
  );
  for (const c of children) {
    const carve = await sql.get<{ first: Buffer; last: Buffer }>("SELECT first, last FROM allocations WHERE pool_id = ? AND child_pool_id = ?", [c.parent_id, c.id]);
    if (!carve || !carve.first.equals(c.first) || !carve.last.equals(c.last)) {
      out.push({ pool: c.name, message: "this child pool's block is not held for it in its parent" });
    }
  }
  const empty = await sql.all<{ name: string }>("SELECT p.name FROM pools p WHERE NOT EXISTS (SELECT 1 FROM pool_ranges r WHERE r.pool_id = p.id)");
  for (const e of empty) out.push({ pool: e.name, message: "the pool has no ranges" });
  return out;
}

async function checkPool(sql: Sql, pool: PoolState): Promise<Problem[]> {
  const out: Problem[] = [];
  const say = (message: string) => out.push({ pool: `${pool.space}/${pool.name}`, message });
  const span = (i: Interval) => fmtSpan(pool.family, i);
  const plan = planPool({
    name: pool.name,
    ranges: pool.ranges.map((r) => ({ start: span({ first: r.first, last: r.first }), end: span({ first: r.last, last: r.last }), prefixLength: r.prefixLength, ...(r.gateway ? { gateway: r.gateway } : {}) })),
    exclusions: pool.exclusions.map((e) => ({ start: span({ first: e.first, last: e.first }), end: span({ first: e.last, last: e.last }) })),
    allocateReserved: pool.allocateReserved,
  });
  const allocs = await sql.all<{ first: Buffer; last: Buffer; size: string; child_pool_id: string | null }>(
    "SELECT first, last, size, child_pool_id FROM allocations WHERE pool_id = ? ORDER BY first",
    [pool.id],
  );
  const runs = (await sql.all<{ first: Buffer; last: Buffer }>("SELECT first, last FROM free_runs WHERE pool_id = ? ORDER BY first", [pool.id])).map(
    (r) => ({ first: fromKey(r.first), last: fromKey(r.last) }),
  );
  let allocated = 0n;
  let carved = 0n;
  const held: Interval[] = [];
  for (const a of allocs) {
    const iv = { first: fromKey(a.first), last: fromKey(a.last) };
    if (intervalSize(iv) !== BigInt(a.size)) say(`allocation ${span(iv)} says size ${a.size}`);
    if (a.child_pool_id) {
      // a carve may cover the parent's reserved addresses; only its other addresses left the index
      const pieces = carvePieces(pool, iv);
      carved += piecesSize(pieces);
      held.push(...pieces);
    } else {
      allocated += intervalSize(iv);
      held.push(iv);
    }
  }
  const all = [...held.map((i) => ({ ...i, kind: "held" })), ...runs.map((i) => ({ ...i, kind: "free" }))].sort((a, b) =>
    a.first < b.first ? -1 : a.first > b.first ? 1 : 0,
  );
  for (let i = 1; i < all.length; i++) {
    if (all[i]!.first <= all[i - 1]!.last) say(`${all[i - 1]!.kind} ${span(all[i - 1]!)} overlaps ${all[i]!.kind} ${span(all[i]!)}`);
  }
  for (let i = 1; i < runs.length; i++) {
    const a = runs[i - 1]!;
    const b = runs[i]!;
    if (a.last + 1n === b.first && rangeOf(pool, a.last) === rangeOf(pool, b.first)) say(`free runs ${span(a)} and ${span(b)} touch but were not merged`);
  }
  for (const r of runs) {
    const range = rangeOf(pool, r.first);
    if (!range || r.last > range.last) say(`free run ${span(r)} is not inside one range`);
  }
  const covered = normalize(all);
  const wanted = normalize(plan.free);
  const eq = covered.length === wanted.length && covered.every((c, i) => c.first === wanted[i]!.first && c.last === wanted[i]!.last);
  if (!eq) say(`allocations and free runs cover ${covered.map(span).join(", ") || "nothing"} but the allocatable addresses are ${wanted.map(span).join(", ")}`);
  if (plan.total !== pool.total) say(`total is recorded as ${pool.total} but the ranges hold ${plan.total} allocatable addresses`);
  if (allocated !== pool.allocated) say(`allocated is recorded as ${pool.allocated} but allocations add up to ${allocated}`);
  if (carved !== pool.carved) say(`inChildPools is recorded as ${pool.carved} but child pools add up to ${carved}`);
  return out;
}
