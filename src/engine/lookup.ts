import { formatAddress, fromKey, type Address } from "../addr/index.js";
import type { Sql } from "../store/store.js";
import { allocationHolding, toAllocation } from "./allocation-repo.js";
import { runContaining } from "./free-space.js";
import { type PoolState, key, loadPoolById, rangeOf } from "./pool-repo.js";
import type { Allocation } from "./types.js";

export type AddressState = "allocated" | "free" | "excluded" | "reserved";

export interface LookupResult {
  address: string;
  space: string;
  /** The innermost pool whose ranges hold the address. */
  pool: string;
  poolId: string;
  state: AddressState;
  allocation: Allocation | null;
}

/** Who holds `a` in a space: the innermost pool that contains it, and the allocation holding it, if any. */
export async function lookupIn(sql: Sql, spaceId: string, a: Address): Promise<LookupResult | null> {
  const top = await sql.get<{ pool_id: string; last: Buffer }>(
    `SELECT pool_id, last FROM pool_ranges WHERE space_id = ? AND family = ? AND top_level = 1 AND first <= ?
     ORDER BY first DESC LIMIT 1`,
    [spaceId, a.family, key(a.value)],
  );
  if (!top || fromKey(top.last) < a.value) return null;
  let pool: PoolState = await loadPoolById(sql, top.pool_id);
  for (;;) {
    const held = await allocationHolding(sql, pool.id, a.value);
    if (held?.child_pool_id) {
      pool = await loadPoolById(sql, held.child_pool_id);
      continue;
    }
    const base = { address: formatAddress(a), space: pool.space, pool: pool.name, poolId: pool.id };
    if (held) return { ...base, state: "allocated", allocation: toAllocation(pool, held) };
    if (!rangeOf(pool, a.value)) return null;
    if (await runContaining(sql, pool.id, a.value)) return { ...base, state: "free", allocation: null };
    const excluded = pool.exclusions.some((e) => a.value >= e.first && a.value <= e.last);
    return { ...base, state: excluded ? "excluded" : "reserved", allocation: null };
  }
}
