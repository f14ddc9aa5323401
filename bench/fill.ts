/**
 * Fast set-up for the benchmark: fills a pool and fragments it by calling the engine's own inner
 * operations (the allocate steps, releaseRow, carveChild, deletePool) many times inside a few big transactions,
 * instead of one transaction (and one fsync) per operation. The rows written are exactly the ones the
 * public Engine methods write (allocations, free runs, counters, history); only the commit grouping
 * differs. The timed measurements afterwards always go through the public Engine methods.
 */
import { randomUUID } from "node:crypto";
import { type AllocationRow, allocationHolding, toAllocation } from "../src/engine/allocation-repo.js";
import { type TxEnv, insertAllocation, releaseRow } from "../src/engine/allocations.js";
import { lowestRun, take } from "../src/engine/free-space.js";
import { record } from "../src/engine/history.js";
import { key, loadPool, saveCounters } from "../src/engine/pool-repo.js";
import { carveChild, deletePool } from "../src/engine/pools.js";
import type { PoolRef } from "../src/engine/types.js";
import type { Sql, Store } from "../src/store/store.js";

const SETUP_CTX = { actor: "bench:setup" };

function setupEnv(sql: Sql): TxEnv {
  return {
    sql,
    ctx: SETUP_CTX,
    now: Date.now(),
    randomBelow: (n: bigint) => BigInt(Math.floor(Math.random() * Number(n))) % n,
    newId: randomUUID,
    secrets: null,
  };
}

/** Runs `each(env, i)` for i in [from, to) in transactions of at most `batch` calls, reloading the pool per transaction. */
async function batched(
  store: Store,
  from: number,
  to: number,
  batch: number,
  each: (env: TxEnv, i: number) => Promise<void>,
): Promise<void> {
  for (let start = from; start < to; start += batch) {
    const end = Math.min(to, start + batch);
    await store.transaction(async (sql) => {
      const env = setupEnv(sql);
      for (let i = start; i < end; i++) await each(env, i);
    });
  }
}

/**
 * Allocates `count` lowest-free single addresses in a fresh pool and returns the first one handed out;
 * the pool being fresh they are `first`, `first + 1`, ... (checked on the last one).
 *
 * Each step is the engine's `allocate(env, pool, {})` for a lowest-free pool, made of the same exported
 * pieces and writing the same rows (free-run update, allocation row, counters, history record), except
 * that it skips `expirePool`, the sweep for allocations past their time-to-live that `allocate` runs
 * first. No allocation made here has a time-to-live, so the sweep would find nothing; it is skipped
 * because its query costs time proportional to the pool's allocations (see the report), which would
 * make a 1,000,000 fill take hours. The timed measurements use the real `Engine.allocate`, sweep included.
 */
export async function fillPool(store: Store, ref: PoolRef, count: number, batch = 20_000): Promise<bigint> {
  const seen: { first: bigint | null; last: bigint | null } = { first: null, last: null };
  for (let start = 0; start < count; start += batch) {
    const end = Math.min(count, start + batch);
    await store.transaction(async (sql) => {
      const env = setupEnv(sql);
      const pool = await loadPool(sql, ref);
      if (pool.strategy !== "lowest-free") throw new Error(`fillPool needs a lowest-free pool, not ${pool.strategy}`);
      const at = new Date(env.now).toISOString();
      for (let i = start; i < end; i++) {
        const run = await lowestRun(sql, pool.id);
        if (run === null) throw new Error(`pool ${pool.name} ran out after ${i} allocations`);
        const a = run.first;
        await take(sql, pool.id, run, a, a);
        const row: AllocationRow = {
          id: env.newId(), pool_id: pool.id, space_id: pool.spaceId, family: pool.family, first: key(a), last: key(a),
          size: "1", child_pool_id: null, owner: null, mac: null, hostname: null, labels: "{}", expires_at: null,
          created_at: at, updated_at: at,
        };
        await insertAllocation(sql, row);
        pool.allocated += 1n;
        await saveCounters(env, pool, at);
        const allocation = toAllocation(pool, row);
        await record(sql, env.ctx, at, { action: "allocate", entity: "allocation", entityId: row.id, spaceId: pool.spaceId, poolId: pool.id, after: allocation, held: row });
        seen.first ??= a;
        seen.last = a;
      }
    });
  }
  const { first, last } = seen;
  if (first === null || last === null) throw new Error("nothing was allocated");
  if (last - first !== BigInt(count - 1)) {
    throw new Error(`fill of ${count} was not one contiguous run (${first}..${last}); the fragmentation step assumes it is`);
  }
  return first;
}

/**
 * Releases every `every`-th address of a contiguous fill (offsets every-1, 2*every-1, ...), leaving
 * count/every single-address holes: many small free runs, each one free-space index entry.
 */
export async function fragment(store: Store, ref: PoolRef, first: bigint, count: number, every = 10, batch = 20_000): Promise<number> {
  let released = 0;
  for (let start = 0; start < count; start += batch) {
    const end = Math.min(count, start + batch);
    await store.transaction(async (sql) => {
      const env = setupEnv(sql);
      const pool = await loadPool(sql, ref);
      for (let i = start; i < end; i++) {
        if (i % every !== every - 1) continue;
        const row = await allocationHolding(sql, pool.id, first + BigInt(i));
        if (!row) throw new Error(`offset ${i} of the fill is not allocated`);
        await releaseRow(env, pool, row);
        released++;
      }
    });
  }
  return released;
}

/** Carves `count` child pools of /`length` out of `parent` (named `${prefix}<i>`), in big transactions. */
export async function carveChildren(store: Store, parent: PoolRef, count: number, length: number, prefix: string, batch = 2_000): Promise<void> {
  await batched(store, 0, count, batch, async (env, i) => {
    await carveChild(env, await loadPool(env.sql, parent), { name: `${prefix}${i}`, prefixLength: length });
  });
}

/** Deletes every `every`-th of the children carved by {@link carveChildren}, leaving aligned holes in the parent. */
export async function deleteEveryNthChild(store: Store, count: number, every: number, prefix: string, space = "default", batch = 2_000): Promise<number> {
  let deleted = 0;
  await batched(store, 0, count, batch, async (env, i) => {
    if (i % every !== every - 1) return;
    await deletePool(env, await loadPool(env.sql, { pool: `${prefix}${i}`, space }), false);
    deleted++;
  });
  return deleted;
}
