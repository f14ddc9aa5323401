import { randomBytes } from "node:crypto";
import { v7 as timeOrderedId } from "uuid";
import { ConstraintError, type Sql, type Store } from "../store/store.js";
import { type AllocationRow, type ListFilter, allocationById, allocationByOwner, allocationHolding, listAllocationRows, toAllocation } from "./allocation-repo.js";
import { type AllocateResult, type TxEnv, allocate, expirePool, releaseRow, updateAllocation } from "./allocations.js";
import { type BulkRequest, allocateMany } from "./bulk.js";
import { allRuns } from "./free-space.js";
import { type Problem, checkPools } from "./check.js";
import { AllotError } from "./errors.js";
import { type HistoryEntry, listHistory } from "./history.js";
import { type LookupResult, lookupIn } from "./lookup.js";
import { address } from "./pool-plan.js";
import { type PoolState, listPoolStates, loadPool, loadPoolById, toPool, usageOf } from "./pool-repo.js";
import { carveChild, createPool, deletePool, updatePool } from "./pools.js";
import { DEFAULT_SPACE, createSpace, deleteSpace, findSpace, listSpaces } from "./spaces.js";
import type { AllocateRequest, Allocation, AllocationPatch, ChangeContext, ChildPoolInput, Pool, PoolInput, PoolPatch, PoolRef, Space, Usage } from "./types.js";

export interface EngineOptions {
  /** Milliseconds since the epoch (default Date.now); tests move it to expire allocations. */
  clock?: () => number;
  /** Uniform random bigint in [0, n) (default: from crypto). */
  randomBelow?: (n: bigint) => bigint;
}

export const SYSTEM: ChangeContext = { actor: "system" };

/** Past its time-to-live an allocation is gone for every caller, even before a write sweeps its row out. */
const expired = (row: AllocationRow, now: number): boolean => row.expires_at !== null && row.expires_at <= now;

function cryptoRandomBelow(n: bigint): bigint {
  // 64 extra bits make the modulo bias negligible for any n up to 2^128
  return BigInt(`0x${randomBytes(24).toString("hex")}`) % n;
}

/** How a release names its target. */
export type ReleaseTarget = { id: string } | { pool: PoolRef; address: string } | { pool: PoolRef; owner: string };

/**
 * The allocation engine. Every method that changes something runs in one store transaction together
 * with its history record; errors are {@link AllotError}s from the catalogue in errors.ts.
 */
export class Engine {
  private readonly clock: () => number;
  private readonly randomBelow: (n: bigint) => bigint;

  private constructor(
    readonly store: Store,
    options: EngineOptions,
  ) {
    this.clock = options.clock ?? Date.now;
    this.randomBelow = options.randomBelow ?? cryptoRandomBelow;
  }

  /** Opens an engine on a store, creating the `default` space if it is missing. */
  static async open(store: Store, options: EngineOptions = {}): Promise<Engine> {
    const engine = new Engine(store, options);
    await engine.write(SYSTEM, (env) => createSpace(env, { name: DEFAULT_SPACE, description: "The default address space" }, true));
    return engine;
  }

  /**
   * Runs a change in a transaction. A constraint the database raised means another writer got there
   * first (the checks inside saw an older state), so the whole change is retried a few times.
   */
  private async write<T>(ctx: ChangeContext, fn: (env: TxEnv) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.store.transaction((sql) => fn(this.env(sql, ctx)));
      } catch (err) {
        // unique, overlap and retry mean another writer got there first; anything else would fail again
        if (!(err instanceof ConstraintError) || err.constraint === "foreign-key" || err.constraint === "check") throw err;
        if (attempt >= 5) throw new AllotError("conflict", `the change conflicted with concurrent changes ${attempt} times; retry it (${err.message})`);
        await new Promise((r) => setTimeout(r, Math.random() * 5 * attempt));
      }
    }
  }

  /** Ids are time-ordered (UUIDv7) so new rows append to the id indexes instead of landing at random pages. */
  private env(sql: Sql, ctx: ChangeContext): TxEnv {
    return { sql, ctx, now: this.clock(), randomBelow: this.randomBelow, newId: timeOrderedId };
  }

  private read<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    return this.store.read(fn);
  }

  // ---- spaces

  listSpaces(): Promise<Space[]> {
    return this.read(listSpaces);
  }

  getSpace(name: string): Promise<Space> {
    return this.read((sql) => findSpace(sql, name));
  }

  createSpace(input: { name: string; description?: string }, ctx: ChangeContext): Promise<Space> {
    return this.write(ctx, (env) => createSpace(env, input));
  }

  deleteSpace(name: string, ctx: ChangeContext): Promise<Space> {
    return this.write(ctx, (env) => deleteSpace(env, name));
  }

  // ---- pools

  /** Creates a pool. Errors: invalid-request, invalid-address, invalid-range, space-not-found, pool-exists, pool-overlap. */
  createPool(input: PoolInput, ctx: ChangeContext): Promise<Pool> {
    return this.write(ctx, async (env) => createPool(env, input, await findSpace(env.sql, input.space ?? DEFAULT_SPACE, true)));
  }

  /** Errors: space-not-found, pool-not-found. */
  getPool(ref: PoolRef): Promise<Pool> {
    return this.read(async (sql) => toPool(await loadPool(sql, ref)));
  }

  listPools(filter: { space?: string; parent?: PoolRef } = {}): Promise<Pool[]> {
    return this.read(async (sql) => {
      const spaceId = filter.space ? (await findSpace(sql, filter.space)).id : undefined;
      const parentId = filter.parent ? (await loadPool(sql, filter.parent)).id : undefined;
      return (await listPoolStates(sql, { ...(spaceId ? { spaceId } : {}), ...(parentId ? { parentId } : {}) })).map(toPool);
    });
  }

  updatePool(ref: PoolRef, patch: PoolPatch, ctx: ChangeContext): Promise<Pool> {
    return this.write(ctx, async (env) => updatePool(env, await loadPool(env.sql, ref, true), patch));
  }

  /** Errors: pool-not-found, pool-in-use (unless force). */
  deletePool(ref: PoolRef, options: { force?: boolean }, ctx: ChangeContext): Promise<Pool> {
    return this.write(ctx, async (env) => {
      // Locks go parent before child everywhere (a forced delete goes on down to the children), so a
      // child's ancestors are locked from the top before the child itself, or two deletes could deadlock.
      const seen = await loadPool(env.sql, ref);
      const ancestors: string[] = [];
      for (let p = seen.parentId; p !== null; p = (await loadPoolById(env.sql, p)).parentId) ancestors.unshift(p);
      for (const id of ancestors) await loadPoolById(env.sql, id, true);
      const pool = await loadPoolById(env.sql, seen.id, true);
      if (pool.parentId !== seen.parentId) throw new ConstraintError("the pool moved while it was being deleted", "retry");
      return deletePool(env, pool, options.force ?? false);
    });
  }

  /** Carves a child pool. Errors: invalid-request, invalid-address, block-unavailable, address-outside-pool, pool-exists. */
  createChildPool(parent: PoolRef, input: ChildPoolInput, ctx: ChangeContext): Promise<Pool> {
    return this.write(ctx, async (env) => carveChild(env, await loadPool(env.sql, parent, true), input));
  }

  /** Exact counts, as decimal strings. Allocations past their time-to-live are not counted. */
  usage(ref: PoolRef): Promise<Usage> {
    return this.write(SYSTEM, async (env) => {
      const pool = await loadPool(env.sql, ref, true);
      await expirePool(env, pool);
      return usageOf(pool);
    });
  }

  // ---- allocations

  /**
   * Allocates the next free address, a specific one, or a block. With an owner it is idempotent.
   * Errors: invalid-request, invalid-address, pool-exhausted, block-unavailable, address-unavailable,
   * address-outside-pool, owner-conflict.
   */
  allocate(ref: PoolRef, req: AllocateRequest, ctx: ChangeContext): Promise<AllocateResult> {
    return this.write(ctx, async (env) => allocate(env, await loadPool(env.sql, ref, true), req));
  }

  /**
   * Allocates `count` separate addresses in one request, all or none (no owner: each gets its own id).
   * Errors: invalid-request, pool-exhausted.
   */
  allocateMany(ref: PoolRef, req: BulkRequest, ctx: ChangeContext): Promise<Allocation[]> {
    return this.write(ctx, async (env) => allocateMany(env, await loadPool(env.sql, ref, true), req));
  }

  /** Releases by id, by address (any address of the run) or by owner. Errors: pool-not-found, allocation-not-found. */
  release(target: ReleaseTarget, ctx: ChangeContext): Promise<Allocation> {
    return this.write(ctx, async (env) => {
      let pool: PoolState;
      let row: AllocationRow | undefined;
      if ("id" in target) {
        const seen = await allocationById(env.sql, target.id);
        if (seen) {
          pool = await loadPoolById(env.sql, seen.pool_id, true);
          row = await allocationById(env.sql, target.id); // again, under the pool's lock
        }
        if (!row || row.child_pool_id || expired(row, env.now)) throw new AllotError("allocation-not-found", `no allocation has id ${target.id}`);
        pool = pool!;
      } else if ("address" in target) {
        pool = await loadPool(env.sql, target.pool, true);
        const a = address(target.address, "address");
        row = a.family === pool.family ? await allocationHolding(env.sql, pool.id, a.value) : undefined;
        if (!row || row.child_pool_id || expired(row, env.now)) throw new AllotError("allocation-not-found", `${target.address} is not allocated in pool ${pool.name}`);
      } else {
        pool = await loadPool(env.sql, target.pool, true);
        row = await allocationByOwner(env.sql, pool.id, target.owner);
        if (!row || expired(row, env.now)) throw new AllotError("allocation-not-found", `owner ${target.owner} holds nothing in pool ${pool.name}`);
      }
      return releaseRow(env, pool, row);
    });
  }

  /** Changes MAC, hostname, labels or time-to-live (a renewal). Errors: allocation-not-found, invalid-request, invalid-address. */
  updateAllocation(id: string, patch: AllocationPatch, ctx: ChangeContext): Promise<Allocation> {
    return this.write(ctx, async (env) => {
      const seen = await allocationById(env.sql, id);
      const pool = seen ? await loadPoolById(env.sql, seen.pool_id, true) : undefined;
      const row = pool ? await allocationById(env.sql, id) : undefined; // again, under the pool's lock
      if (!pool || !row || row.child_pool_id || expired(row, env.now)) {
        throw new AllotError("allocation-not-found", `no allocation has id ${id}`);
      }
      return updateAllocation(env, pool, row, patch);
    });
  }

  getAllocation(id: string): Promise<Allocation> {
    return this.read(async (sql) => {
      const row = await allocationById(sql, id);
      if (!row || row.child_pool_id || expired(row, this.clock())) throw new AllotError("allocation-not-found", `no allocation has id ${id}`);
      return toAllocation(await loadPoolById(sql, row.pool_id), row);
    });
  }

  /**
   * A page of a pool's allocations in address order. `next` is the cursor for the following page
   * (pass it as `after`), or null on the last page.
   */
  listAllocations(ref: PoolRef, filter: Omit<ListFilter, "after"> & { after?: string }): Promise<{ items: Allocation[]; next: string | null }> {
    return this.read(async (sql) => {
      const pool = await loadPool(sql, ref);
      const after = filter.after === undefined ? undefined : address(filter.after, "after").value;
      const rows = await listAllocationRows(sql, pool.id, { ...filter, after });
      const now = this.clock();
      const last = rows[rows.length - 1];
      // rows past their expiry are released by the next write to the pool; until then they are not shown
      const items = rows.filter((r) => r.expires_at === null || r.expires_at > now).map((r) => toAllocation(pool, r));
      return { items, next: rows.length === filter.limit && last ? toAllocation(pool, last).address : null };
    });
  }

  /** Who holds an address, in one space or in every space. */
  lookup(addressText: string, space?: string): Promise<LookupResult[]> {
    return this.read(async (sql) => {
      const a = address(addressText, "address");
      const spaces = space ? [await findSpace(sql, space)] : await listSpaces(sql);
      const out: LookupResult[] = [];
      for (const s of spaces) {
        const r = await lookupIn(sql, s.id, a);
        if (!r) continue;
        if (r.allocation?.expiresAt && Date.parse(r.allocation.expiresAt) <= this.clock()) {
          out.push({ ...r, state: "free", allocation: null });
        } else out.push(r);
      }
      return out;
    });
  }

  history(filter: { pool?: PoolRef; limit?: number }): Promise<HistoryEntry[]> {
    return this.read(async (sql) => {
      const poolId = filter.pool ? (await loadPool(sql, filter.pool)).id : undefined;
      return listHistory(sql, { ...(poolId ? { poolId } : {}), limit: filter.limit ?? 100 });
    });
  }

  /** Releases every allocation whose time-to-live has run out; returns how many. */
  async expire(): Promise<number> {
    let n = 0;
    for (;;) {
      // the earliest-due rows, by the expiry index: the cost follows what is due, not how many have a ttl
      const due = await this.read((sql) =>
        sql.all<{ pool_id: string }>(
          "SELECT pool_id FROM allocations WHERE expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at LIMIT 1000",
          [this.clock()],
        ),
      );
      if (due.length === 0) return n;
      let progressed = false;
      for (const poolId of new Set(due.map((d) => d.pool_id))) {
        try {
          const released = await this.write({ actor: "system:expiry" }, async (env) => expirePool(env, await loadPoolById(env.sql, poolId, true)));
          n += released;
          progressed ||= released > 0;
        } catch (err) {
          // a pool deleted meanwhile has nothing left to expire; the others still get swept
          if (!(err instanceof AllotError && err.code === "pool-not-found")) throw err;
        }
      }
      if (!progressed) return n;
    }
  }

  /** Free runs of a pool, for consistency checks. */
  freeRuns(ref: PoolRef): Promise<{ first: bigint; last: bigint }[]> {
    return this.read(async (sql) => {
      return allRuns(sql, (await loadPool(sql, ref)).id);
    });
  }

  /** Verifies every pool's allocations, free-space index and counters; an empty list means consistent. */
  check(): Promise<Problem[]> {
    return this.read(checkPools);
  }

  close(): Promise<void> {
    return this.store.close();
  }
}
