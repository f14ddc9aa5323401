import { formatAddress, fromKey } from "../addr/index.js";
import type { Sql } from "../store/store.js";
import { AllotError } from "./errors.js";
import type { PoolState } from "./pool-repo.js";

/**
 * One MAC, one address per DHCP network: a DHCP server answers a MAC with one address, so an
 * allocation may not carry a MAC that another allocation already carries on a DHCP network serving
 * its pool. Checked inside the transaction that writes, for every caller (API, integrations), after
 * locking the rows of the networks concerned: two concurrent allocations of one MAC, through any
 * servers, take turns there, and the second sees the first.
 *
 * A network serves the IPv4 pools of its space it names (every top-level one when it names none),
 * with their child pools.
 */
export async function checkMacFree(sql: Sql, pool: PoolState, mac: string, now: number, except?: string): Promise<void> {
  if (pool.family !== 4) return;
  const networks = (await sql.all<{ name: string; body: string }>("SELECT name, body FROM dhcp_networks ORDER BY name"))
    .map((r) => ({ name: r.name, ...(JSON.parse(r.body) as { space: string; pools: string[] }) }))
    .filter((n) => n.space === pool.space);
  if (networks.length === 0) return;
  const lineage = await lineageOf(sql, pool.id);
  const mine = networks.filter((n) => serves(n.pools, lineage));
  if (mine.length === 0) return;
  const names = mine.map((n) => n.name);
  const holders = await sql.lockAndRead<{ id: string; first: Buffer; pool_id: string; pool_name: string }>(
    `SELECT n.name FROM dhcp_networks n WHERE n.name IN (${names.map(() => "?").join(", ")}) ORDER BY n.name${sql.lock("n")}`,
    names,
    `SELECT a.id, a.first, p.id AS pool_id, p.name AS pool_name FROM allocations a JOIN pools p ON p.id = a.pool_id
      WHERE a.mac = ? AND a.space_id = ? AND a.family = 4 AND a.child_pool_id IS NULL AND (a.expires_at IS NULL OR a.expires_at > ?)`,
    [mac, pool.spaceId, now],
  );
  for (const h of holders) {
    if (h.id === except) continue;
    const theirs = h.pool_id === pool.id ? lineage : await lineageOf(sql, h.pool_id);
    const shared = mine.find((n) => serves(n.pools, theirs));
    if (!shared) continue;
    const at = formatAddress({ family: 4, value: fromKey(h.first) });
    throw new AllotError(
      "conflict",
      `MAC ${mac} is already reserved on DHCP network ${shared.name} (${at} in pool ${h.pool_name}); one MAC gets one address per network: release that one first`,
    );
  }
}

/** The names of a pool and its ancestors. */
async function lineageOf(sql: Sql, poolId: string): Promise<string[]> {
  const rows = await sql.all<{ name: string }>(
    `WITH RECURSIVE up(id, name, parent_id) AS (
       SELECT id, name, parent_id FROM pools WHERE id = ?
       UNION ALL SELECT p.id, p.name, p.parent_id FROM pools p JOIN up ON p.id = up.parent_id)
     SELECT name FROM up`,
    [poolId],
  );
  return rows.map((r) => r.name);
}

/** Whether a network naming `pools` (none: every top-level pool) serves a pool with this lineage. */
function serves(pools: string[], lineage: string[]): boolean {
  return pools.length === 0 || lineage.some((name) => pools.includes(name));
}
