/** Finding allocations by what people remember about them: a MAC, an owner, a host name. */
import type { Sql } from "../store/store.js";
import { type AllocationRow, toAllocation } from "./allocation-repo.js";
import { loadPoolById, type PoolState } from "./pool-repo.js";
import type { Allocation } from "./types.js";

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
