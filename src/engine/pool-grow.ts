/**
 * Growing a pool: ranges added to a top-level pool, as Neutron's subnet pools grow by prefixes. A pool
 * never shrinks (its allocations and child pools live in its ranges), and a child pool's one range is
 * the block carved for it, so only a top-level pool grows. The new ranges are checked as at creation
 * (alone, then beside the existing ones and the space's other pools), and their free runs join the index.
 */
import type { TxEnv } from "./allocations.js";
import { AllotError } from "./errors.js";
import { insertRun } from "./free-space.js";
import { record } from "./history.js";
import { planPool } from "./pool-plan.js";
import { type PoolState, key, loadPoolById, toPool } from "./pool-repo.js";
import { assertNoOverlap } from "./pools.js";
import type { Pool, RangeInput } from "./types.js";

export async function growPool(env: TxEnv, pool: PoolState, add: RangeInput[]): Promise<Pool> {
  if (pool.parentId !== null) throw new AllotError("invalid-request", `pool ${pool.name} is a child pool: its range is the block carved for it; carve another child pool instead`);
  if (pool.provider) throw new AllotError("invalid-request", `pool ${pool.name} holds a block from a provider; make another pool from the provider instead`);
  if (add.length === 0 || add.length > 64) throw new AllotError("invalid-request", "ranges: give 1 to 64 ranges to add");
  const before = toPool(pool);
  const defaults = { prefixLength: pool.prefixLength ?? undefined, dns: pool.dns, allocateReserved: pool.allocateReserved };
  // the pool's own gateway goes with an added range only where it lies inside that range's prefix
  const withGateway = add.map((r) => {
    if (r.gateway !== undefined || pool.gateway === null) return r;
    try {
      planPool({ name: pool.name, ranges: [{ ...r, gateway: pool.gateway }], ...defaults });
      return { ...r, gateway: pool.gateway };
    } catch {
      return r;
    }
  });
  // the added ranges on their own first, so a fault is named by its place in the request
  const added = planPool({ name: pool.name, ranges: withGateway, ...defaults });
  if (added.family !== pool.family) throw new AllotError("invalid-range", `ranges: pool ${pool.name} is IPv${pool.family}; the ranges added are IPv${added.family}`);
  // then beside the ranges the pool has: disjoint from them
  planPool({ name: pool.name, ranges: [...before.ranges.map((r) => ({ start: r.start, end: r.end, prefixLength: r.prefixLength })), ...withGateway], ...defaults });
  if (added.total === 0n) throw new AllotError("invalid-range", "ranges: the ranges added hold no address that can be allocated (only network, broadcast or gateway addresses)");
  const space = { id: pool.spaceId, name: pool.space };
  const seq0 = Math.max(...pool.ranges.map((r) => r.seq)) + 1;
  for (const r of added.ranges) {
    await assertNoOverlap(env, space, added, r);
    await env.sql.run(
      `INSERT INTO pool_ranges (pool_id, seq, space_id, family, top_level, first, last, prefix_length, gateway, dns)
       VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?)`,
      [pool.id, seq0 + r.seq, pool.spaceId, pool.family, key(r.first), key(r.last), r.prefixLength, r.gateway, r.dns === null ? null : JSON.stringify(r.dns)],
    );
  }
  for (const run of added.free) await insertRun(env.sql, pool.id, run);
  const at = new Date(env.now).toISOString();
  // the pool's total is also what its cached shape is known by (pool-repo): it rises with every growth
  await env.sql.run("UPDATE pools SET total = ?, updated_at = ? WHERE id = ?", [(pool.total + added.total).toString(), at, pool.id]);
  const after = toPool(await loadPoolById(env.sql, pool.id));
  // not an "update": what a pool holds changed, so kept maps of it are recomputed
  await record(env.sql, env.ctx, at, { action: "grow", entity: "pool", entityId: pool.id, spaceId: pool.spaceId, poolId: pool.id, before, after });
  return after;
}
