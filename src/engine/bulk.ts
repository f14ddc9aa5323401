import type { AllocationRow } from "./allocation-repo.js";
import { toAllocation } from "./allocation-repo.js";
import { type TxEnv, blockUnavailable, checkTtl, expirePool, explainUnavailable, insertAllocations } from "./allocations.js";
import { allocators } from "./allocators/index.js";
import { AllotError } from "./errors.js";
import { findFit, lowestRun, runContaining, take } from "./free-space.js";
import { address } from "./pool-plan.js";
import { type HistoryRecord, recordMany } from "./history.js";
import { sizeClass } from "./intervals.js";
import { type PoolState, key, saveCounters } from "./pool-repo.js";
import type { Allocation } from "./types.js";

/** The most separate addresses one request may take. */
export const MAX_COUNT = 1_000_000;

export interface BulkRequest {
  /** How many separate single addresses. */
  count: number;
  labels?: Record<string, string>;
  ttl?: number;
  /**
   * The addresses must form one run (first fit, lowest first), each still its own allocation that can
   * be released alone: a lease of n neighbouring addresses, as OpenNebula reserves them.
   */
  contiguous?: boolean;
  /** With contiguous: the run starts exactly here. */
  address?: string;
}

/**
 * What a bulk request took. Its allocations share everything but their id and address, so only those
 * are kept, and each allocation is made when it is read: 100,000 answered allocations are a few MiB,
 * not 100,000 objects held until the answer is written.
 */
export interface BulkAllocation {
  count: number;
  items(): Generator<Allocation>;
}

const iso = (ms: number) => new Date(ms).toISOString();
/** Rows per INSERT statement: 500 rows of 15 columns stays under both stores' parameter limits. */
const BATCH = 500;

/**
 * Takes `count` separate addresses in one transaction: all of them or none. With lowest-free each
 * free run is split once however many addresses it gives, so the cost is per address inserted, not
 * per index seek; other strategies pick one address at a time.
 */
export async function allocateMany(env: TxEnv, pool: PoolState, req: BulkRequest): Promise<BulkAllocation> {
  const { count } = req;
  if (!Number.isInteger(count) || count < 1 || count > MAX_COUNT) {
    throw new AllotError("invalid-request", `count must be a whole number from 1 to ${MAX_COUNT}, not ${count}`);
  }
  checkTtl(req.ttl);
  await expirePool(env, pool);
  const free = pool.total - pool.allocated - pool.carved;
  if (BigInt(count) > free) {
    throw new AllotError("pool-exhausted", `pool ${pool.name} has ${free} free addresses, fewer than the ${count} asked for`, {
      pool: pool.name,
      free: free.toString(),
    });
  }
  const labels = JSON.stringify(req.labels ?? {});
  const expires = req.ttl === undefined ? null : env.now + req.ttl * 1000;
  const at = iso(env.now);
  const ids: string[] = [];
  const addresses: bigint[] = [];
  const template: AllocationRow = {
    id: "", pool_id: pool.id, space_id: pool.spaceId, family: pool.family, first: key(0n), last: key(0n), size: "1",
    child_pool_id: null, owner: null, mac: null, hostname: null, labels, expires_at: expires, created_at: at, updated_at: at,
  };
  // rows go in as multi-row INSERTs: per-statement overhead, not the rows, dominates a bulk request
  let rows: AllocationRow[] = [];
  let records: HistoryRecord[] = [];
  const flush = async () => {
    await insertAllocations(env.sql, rows);
    await recordMany(env.sql, env.ctx, at, records);
    rows = [];
    records = [];
  };
  const hold = async (a: bigint) => {
    const row: AllocationRow = { ...template, id: env.newId(), first: key(a), last: key(a) };
    rows.push(row);
    records.push({ action: "allocate", entity: "allocation", entityId: row.id, spaceId: pool.spaceId, poolId: pool.id, after: toAllocation(pool, row), held: row });
    ids.push(row.id);
    addresses.push(a);
    if (rows.length === BATCH) {
      await flush();
      // let the event loop through between batches: a bulk of 100,000 otherwise holds every other
      // request (even /healthz) for its whole run; other writes still wait for this transaction
      await new Promise((resolve) => setImmediate(resolve));
    }
  };
  if (req.address !== undefined && !req.contiguous) throw new AllotError("invalid-request", "address needs contiguous: true (a run of count addresses starting there)");
  if (req.contiguous) {
    const n = BigInt(count);
    let first: bigint;
    let run;
    if (req.address !== undefined) {
      const a = address(req.address, "address");
      if (a.family !== pool.family) throw new AllotError("invalid-address", `address ${req.address} is IPv${a.family} but pool ${pool.name} is IPv${pool.family}`);
      first = a.value;
      run = await runContaining(env.sql, pool.id, first);
      if (!run || run.last < first + n - 1n) await explainUnavailable(env.sql, pool, first, n);
    } else {
      const fit = await findFit(env.sql, pool.id, n, false, sizeClass(pool.total));
      if (fit === null) throw blockUnavailable(pool, n);
      first = fit;
      run = await runContaining(env.sql, pool.id, first);
    }
    await take(env.sql, pool.id, run!, first, first + n - 1n);
    for (let a = first; a < first + n; a++) await hold(a);
  }
  while (ids.length < count) {
    if (pool.strategy === "lowest-free") {
      const run = (await lowestRun(env.sql, pool.id))!;
      const runSize = run.last - run.first + 1n;
      const wanted = BigInt(count - ids.length);
      const k = runSize < wanted ? runSize : wanted;
      await take(env.sql, pool.id, run, run.first, run.first + k - 1n);
      for (let a = run.first; a < run.first + k; a++) await hold(a);
    } else {
      const p = (await allocators[pool.strategy].propose({
        sql: env.sql, poolId: pool.id, size: 1n, ranges: pool.ranges, maxClass: sizeClass(pool.total), randomBelow: env.randomBelow,
      }))!;
      await take(env.sql, pool.id, p.run ?? (await runContaining(env.sql, pool.id, p.first))!, p.first, p.first);
      await hold(p.first);
    }
  }
  await flush();
  pool.allocated += BigInt(count);
  await saveCounters(env, pool, at);
  const state = { ...pool };
  return {
    count,
    *items() {
      for (let i = 0; i < ids.length; i++) {
        const a = key(addresses[i]!);
        yield toAllocation(state, { ...template, id: ids[i]!, first: a, last: a });
      }
    },
  };
}
