import { randomBytes } from "node:crypto";
import { v7 as timeOrderedId } from "uuid";
import { toKey } from "../addr/index.js";
import { ConstraintError, type Sql, type Store } from "../store/store.js";
import { type AllocationRow, type ListFilter, allocationById, allocationByOwner, allocationHolding, listAllocationRows, toAllocation } from "./allocation-repo.js";
import { type AllocateResult, type TxEnv, allocate, expirePool, releaseRow, updateAllocation } from "./allocations.js";
import { ChangeFeed } from "./change-feed.js";
import { type Forecast, forecastFrom, usageChanges } from "./forecast.js";
import { type BulkAllocation, type BulkRequest, allocateMany } from "./bulk.js";
import { allRuns } from "./free-space.js";
import { type Problem, checkPools } from "./check.js";
import { type Caller, checkAllocationSeen, checkEverySpace, checkPoolRef, checkPoolSeen, checkSpace, checkWithin, mayUse, visibleSpaces, within } from "./access.js";
import { AllotError } from "./errors.js";
import { type HistoryEntity, type HistoryEntry, type HistoryFilter, type Holding, holderAt, listHistory } from "./history.js";
import { type NewToken, type Token, type TokenInput, countTokens, createToken, findToken, listTokens, revokeToken, tokenBySecret } from "./tokens.js";
import { type LookupResult, lookupIn } from "./lookup.js";
import type { SealedSecret, SecretBox } from "./secrets.js";
import { type DueDelivery, type NewWebhook, type Webhook, type WebhookInput, createWebhook, deleteWebhook, leaseDue, listWebhooks, settleDelivery } from "./webhooks.js";
import { address } from "./pool-plan.js";
import * as dns from "./dns.js";
import { normalizeMac } from "./mac.js";
import { type MapSnapshot, type PoolMap, cachedPoolMap } from "./pool-map.js";
import { searchAllocations } from "./search.js";
import { type PoolState, listPoolStates, loadPool, loadPoolById, shapeChanging, toPool, usageOf } from "./pool-repo.js";
import { growPool } from "./pool-grow.js";
import { carveChild, createPool, deletePool, updatePool } from "./pools.js";
import { DEFAULT_SPACE, createSpace, deleteSpace, findSpace, listSpaces } from "./spaces.js";
import type { AllocateRequest, Allocation, AllocationPatch, ChangeContext, ChildPoolInput, Pool, PoolInput, PoolPatch, PoolRef, RangeInput, Space, Usage } from "./types.js";

export interface EngineOptions {
  /** Milliseconds since the epoch (default Date.now); tests move it to expire allocations. */
  clock?: () => number;
  /** Uniform random bigint in [0, n) (default: from crypto). */
  randomBelow?: (n: bigint) => bigint;
  /** Seals secret attributes; without it, secrets are refused (secrets-unavailable). */
  secrets?: SecretBox;
}

export const SYSTEM: ChangeContext = { actor: "system" };

/** Past its time-to-live an allocation is gone for every caller, even before a write sweeps its row out. */
const expired = (row: AllocationRow, now: number): boolean => row.expires_at !== null && row.expires_at <= now;

function cryptoRandomBelow(n: bigint): bigint {
  // 64 extra bits make the modulo bias negligible for any n up to 2^128
  return BigInt(`0x${randomBytes(24).toString("hex")}`) % n;
}

export interface HistoryQuery {
  space?: string;
  pool?: PoolRef;
  address?: string;
  owner?: string;
  actor?: string;
  entity?: HistoryEntity;
  from?: string;
  to?: string;
  /** Entries numbered below this seq (paging). */
  before?: number;
  limit?: number;
}

/** An ISO 8601 time in the fixed form history stores, so comparing the text compares the times. */
function isoTime(text: string, field: string): string {
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) throw new AllotError("invalid-request", `${field} ${JSON.stringify(text)} is not an ISO 8601 time such as 2026-11-01T12:00:00Z`);
  return new Date(ms).toISOString();
}

async function spaceIds(sql: Sql, names: readonly string[]): Promise<string[]> {
  const all = await listSpaces(sql);
  return all.filter((s) => names.includes(s.name)).map((s) => s.id);
}

/**
 * Secrets sealed under one key cannot be opened with another, so the first key a database sees is
 * remembered (as a fingerprint) and a server started with a different one refuses to start.
 */
async function checkSecretKey(sql: Sql, box: SecretBox, where: string): Promise<void> {
  const stored = await sql.get<{ value: string }>("SELECT value FROM settings WHERE key = 'secret_key_fingerprint'");
  if (!stored) {
    await sql.run("INSERT INTO settings (key, value) VALUES ('secret_key_fingerprint', ?)", [box.fingerprint()]);
  } else if (stored.value !== box.fingerprint()) {
    throw new Error(
      `the secret key (ALLOT_SECRET_KEY, or secret.key in the data directory) differs from the one the secrets in ${where} were sealed with; start every server with the same key`,
    );
  }
}

/**
 * A pool as the caller may see it, resolved in the read or transaction that acts on it: a name in a
 * space the caller may not use is refused before the load, a pool by id in such a space is "not found".
 */
async function visiblePool(sql: Sql, caller: Caller, ref: PoolRef, lock: boolean | "to-allocate" = false): Promise<PoolState> {
  checkPoolRef(caller, ref);
  const pool = await loadPool(sql, ref, lock);
  checkPoolSeen(caller, ref, pool);
  return pool;
}

/** How a release names its target. */
export type ReleaseTarget = { id: string } | { pool: PoolRef; address: string } | { pool: PoolRef; owner: string };

/**
 * The allocation engine. Every method that changes something runs in one store transaction together
 * with its history record; errors are {@link AllotError}s from the catalogue in errors.ts.
 */
export class Engine {
  private readonly clock: () => number;
  /** Recent pool maps, by pool and the view asked for. */
  private readonly maps = new Map<string, MapSnapshot>();
  private readonly randomBelow: (n: bigint) => bigint;
  private readonly secrets: SecretBox | null;
  /** Committed changes, by this server or any other on the store: what followers wait on. */
  readonly changes: ChangeFeed;

  private constructor(
    readonly store: Store,
    options: EngineOptions,
  ) {
    this.clock = options.clock ?? Date.now;
    this.changes = new ChangeFeed(store);
    this.randomBelow = options.randomBelow ?? cryptoRandomBelow;
    this.secrets = options.secrets ?? null;
  }

  /** Opens an engine on a store, creating the `default` space if it is missing. */
  static async open(store: Store, options: EngineOptions = {}): Promise<Engine> {
    const engine = new Engine(store, options);
    await engine.write(SYSTEM, async (env) => {
      await createSpace(env, { name: DEFAULT_SPACE, description: "The default address space" }, true);
      if (engine.secrets) await checkSecretKey(env.sql, engine.secrets, store.location);
    });
    return engine;
  }

  /**
   * Runs a change in a transaction. A constraint the database raised means another writer got there
   * first (the checks inside saw an older state), so the whole change is retried a few times.
   */
  private async write<T>(ctx: ChangeContext, fn: (env: TxEnv) => Promise<T>, pool?: PoolRef): Promise<T> {
    // changes to one pool may share a transaction (one lock, one commit) where the store batches
    const key = pool && `${pool.space ?? "default"}\u0000${pool.pool}`;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.store.transaction((sql) => fn(this.env(sql, ctx)), key);
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
    return { sql, ctx, now: this.clock(), randomBelow: this.randomBelow, newId: timeOrderedId, secrets: this.secrets };
  }

  private read<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    return this.store.read(fn);
  }

  // ---- spaces

  listSpaces(caller: Caller): Promise<Space[]> {
    return this.read(async (sql) => (await listSpaces(sql)).filter((s) => mayUse(caller, s.name)));
  }

  getSpace(name: string, caller: Caller): Promise<Space> {
    checkSpace(caller, name);
    return this.read((sql) => findSpace(sql, name));
  }

  createSpace(input: { name: string; description?: string }, ctx: ChangeContext): Promise<Space> {
    checkEverySpace(ctx, "creating a space");
    return this.write(ctx, (env) => createSpace(env, input));
  }

  /** Makes a space unless it exists (a read, then); says whether it was made. */
  async ensureSpace(input: { name: string; description?: string }, ctx: ChangeContext): Promise<boolean> {
    const exists = (sql: Sql) => sql.get("SELECT 1 AS x FROM spaces WHERE name = ?", [input.name]);
    if (await this.read(exists)) return false;
    return this.write(ctx, async (env) => {
      if (await exists(env.sql)) return false;
      await createSpace(env, input);
      return true;
    });
  }

  deleteSpace(name: string, ctx: ChangeContext): Promise<Space> {
    checkEverySpace(ctx, "deleting a space");
    return this.write(ctx, (env) => deleteSpace(env, name));
  }

  // ---- pools

  /** Creates a pool. Errors: invalid-request, invalid-address, invalid-range, space-not-found, pool-exists, pool-overlap. */
  createPool(input: PoolInput, ctx: ChangeContext): Promise<Pool> {
    checkSpace(ctx, input.space ?? DEFAULT_SPACE);
    return this.write(ctx, async (env) => createPool(env, input, await findSpace(env.sql, input.space ?? DEFAULT_SPACE, true)));
  }

  /** Errors: space-not-found, pool-not-found. */
  getPool(ref: PoolRef, caller: Caller): Promise<Pool> {
    return this.read(async (sql) => toPool(await visiblePool(sql, caller, ref)));
  }

  listPools(filter: { space?: string; parent?: PoolRef }, caller: Caller): Promise<Pool[]> {
    if (filter.space !== undefined) checkSpace(caller, filter.space);
    return this.read(async (sql) => {
      const spaceId = filter.space ? (await findSpace(sql, filter.space)).id : undefined;
      const parentId = filter.parent ? (await visiblePool(sql, caller, filter.parent)).id : undefined;
      const pools = await listPoolStates(sql, { ...(spaceId ? { spaceId } : {}), ...(parentId ? { parentId } : {}) });
      return pools.filter((p) => mayUse(caller, p.space)).map(toPool);
    });
  }

  updatePool(ref: PoolRef, patch: PoolPatch, ctx: ChangeContext): Promise<Pool> {
    return this.write(ctx, async (env) => updatePool(env, await visiblePool(env.sql, ctx, ref, true), patch));
  }

  /** Adds ranges to a top-level pool (pools grow, never shrink). Errors: invalid-request, invalid-range, invalid-address, pool-overlap. */
  async addRanges(ref: PoolRef, ranges: RangeInput[], ctx: ChangeContext): Promise<Pool> {
    let done: (() => void) | undefined;
    try {
      return await this.write(ctx, async (env) => {
        const pool = await visiblePool(env.sql, ctx, ref, true);
        done ??= shapeChanging(pool.id);
        return growPool(env, pool, ranges);
      });
    } finally {
      done?.();
    }
  }

  /** Errors: pool-not-found, pool-in-use (unless force). */
  deletePool(ref: PoolRef, options: { force?: boolean }, ctx: ChangeContext): Promise<Pool> {
    return this.write(ctx, async (env) => {
      // Locks go parent before child everywhere (a forced delete goes on down to the children), so a
      // child's ancestors are locked from the top before the child itself, or two deletes could deadlock.
      const seen = await visiblePool(env.sql, ctx, ref);
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
    return this.write(ctx, async (env) => carveChild(env, await visiblePool(env.sql, ctx, parent, true), input));
  }

  /** Exact counts, as decimal strings. Allocations past their time-to-live are not counted. */
  usage(ref: PoolRef, caller: Caller): Promise<Usage> {
    return this.write(SYSTEM, async (env) => {
      const pool = await visiblePool(env.sql, caller, ref, true);
      await expirePool(env, pool);
      return usageOf(pool);
    });
  }

  /** When the pool will run out at the pace of its recent history (see forecast.ts for the method). */
  forecast(ref: PoolRef, caller: Caller): Promise<Forecast> {
    return this.read(async (sql) => {
      const pool = await visiblePool(sql, caller, ref);
      const now = this.clock();
      const used = pool.allocated + pool.carved;
      return forecastFrom(await usageChanges(sql, pool, now), Number(used), Number(pool.total - used), now);
    });
  }

  // ---- allocations

  /**
   * Allocates the next free address, a specific one, or a block. With an owner it is idempotent.
   * Errors: invalid-request, invalid-address, pool-exhausted, block-unavailable, address-unavailable,
   * address-outside-pool, owner-conflict.
   */
  allocate(ref: PoolRef, req: AllocateRequest, ctx: ChangeContext): Promise<AllocateResult> {
    return this.write(ctx, async (env) => allocate(env, await visiblePool(env.sql, ctx, ref, "to-allocate"), req), ref);
  }

  /**
   * Allocates `count` separate addresses in one request, all or none (no owner: each gets its own id).
   * Errors: invalid-request, pool-exhausted.
   */
  allocateMany(ref: PoolRef, req: BulkRequest, ctx: ChangeContext): Promise<BulkAllocation> {
    return this.write(ctx, async (env) => allocateMany(env, await visiblePool(env.sql, ctx, ref, true), req));
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
          checkAllocationSeen(ctx, target.id, pool.space);
          row = await allocationById(env.sql, target.id); // again, under the pool's lock
        }
        if (!row || row.child_pool_id || expired(row, env.now)) throw new AllotError("allocation-not-found", `no allocation has id ${target.id}`);
        pool = pool!;
      } else if ("address" in target) {
        pool = await visiblePool(env.sql, ctx, target.pool, true);
        const a = address(target.address, "address");
        row = a.family === pool.family ? await allocationHolding(env.sql, pool.id, a.value) : undefined;
        if (!row || row.child_pool_id || expired(row, env.now)) throw new AllotError("allocation-not-found", `${target.address} is not allocated in pool ${pool.name}`);
      } else {
        pool = await visiblePool(env.sql, ctx, target.pool, true);
        row = await allocationByOwner(env.sql, pool.id, target.owner);
        if (!row || expired(row, env.now)) throw new AllotError("allocation-not-found", `owner ${target.owner} holds nothing in pool ${pool.name}`);
      }
      return releaseRow(env, pool, row);
    }, "pool" in target ? target.pool : undefined);
  }

  /** Changes MAC, hostname, labels or time-to-live (a renewal). Errors: allocation-not-found, invalid-request, invalid-address. */
  updateAllocation(id: string, patch: AllocationPatch, ctx: ChangeContext): Promise<Allocation> {
    return this.write(ctx, async (env) => {
      const seen = await allocationById(env.sql, id);
      const pool = seen ? await loadPoolById(env.sql, seen.pool_id, true) : undefined;
      if (pool) checkAllocationSeen(ctx, id, pool.space);
      const row = pool ? await allocationById(env.sql, id) : undefined; // again, under the pool's lock
      if (!pool || !row || row.child_pool_id || expired(row, env.now)) {
        throw new AllotError("allocation-not-found", `no allocation has id ${id}`);
      }
      return updateAllocation(env, pool, row, patch);
    });
  }

  getAllocation(id: string, caller: Caller): Promise<Allocation> {
    return this.read(async (sql) => {
      const row = await allocationById(sql, id);
      if (!row || row.child_pool_id || expired(row, this.clock())) throw new AllotError("allocation-not-found", `no allocation has id ${id}`);
      const pool = await loadPoolById(sql, row.pool_id);
      checkAllocationSeen(caller, id, pool.space);
      return toAllocation(pool, row);
    });
  }

  /**
   * A page of a pool's allocations in address order. `next` is the cursor for the following page
   * (pass it as `after`), or null on the last page.
   */
  listAllocations(ref: PoolRef, filter: Omit<ListFilter, "after"> & { after?: string }, caller: Caller): Promise<{ items: Allocation[]; next: string | null }> {
    return this.read(async (sql) => {
      const pool = await visiblePool(sql, caller, ref);
      const byAddress = (filter.sort ?? "address").endsWith("address");
      // the cursor is the last row's address in address order, its creation time and id in order of creation
      const after = filter.after === undefined ? undefined : byAddress ? toKey(address(filter.after, "after").value) : createdCursor(filter.after);
      const rows = await listAllocationRows(sql, pool.id, { ...filter, after });
      const now = this.clock();
      const last = rows[rows.length - 1];
      // rows past their expiry are released by the next write to the pool; until then they are not shown
      const items = rows.filter((r) => r.expires_at === null || r.expires_at > now).map((r) => toAllocation(pool, r));
      return { items, next: rows.length === filter.limit && last ? (byAddress ? toAllocation(pool, last).address : `${last.created_at},${last.id}`) : null };
    });
  }

  /** Every allocation of a pool (carves excluded), a page at a time. */
  async allAllocations(ref: PoolRef, caller: Caller): Promise<Allocation[]> {
    const out: Allocation[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.listAllocations(ref, { limit: 1000, ...(after ? { after } : {}) }, caller);
      out.push(...page.items);
      if (!page.next) return out;
      after = page.next;
    }
  }

  /** Who holds an address, in one space or in every space. */
  lookup(addressText: string, space: string | undefined, caller: Caller): Promise<LookupResult[]> {
    if (space !== undefined) checkSpace(caller, space);
    return this.read(async (sql) => {
      const a = address(addressText, "address");
      const spaces = space ? [await findSpace(sql, space)] : (await listSpaces(sql)).filter((s) => mayUse(caller, s.name));
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

  /**
   * History, newest first, filtered by any of space, pool, address (in a space), owner, actor, entity
   * and time range; a space-limited caller sees only its spaces' entries.
   */
  history(query: HistoryQuery, caller: Caller): Promise<HistoryEntry[]> {
    if (query.space !== undefined || query.address !== undefined) checkSpace(caller, query.space ?? DEFAULT_SPACE);
    return this.read(async (sql) => {
      const f: HistoryFilter = { limit: query.limit ?? 100 };
      const visible = visibleSpaces(caller);
      if (visible) f.visibleSpaceIds = await spaceIds(sql, visible);
      if (query.space !== undefined || query.address !== undefined) f.spaceId = (await findSpace(sql, query.space ?? DEFAULT_SPACE)).id;
      if (query.pool) f.poolId = (await visiblePool(sql, caller, query.pool)).id;
      if (query.address !== undefined) {
        const a = address(query.address, "address");
        f.address = { family: a.family, key: toKey(a.value) };
      }
      if (query.from !== undefined) f.from = isoTime(query.from, "from");
      if (query.to !== undefined) f.to = isoTime(query.to, "to");
      if (query.owner !== undefined) f.owner = query.owner;
      if (query.actor !== undefined) f.actor = query.actor;
      if (query.entity !== undefined) f.entity = query.entity;
      if (query.before !== undefined) f.beforeSeq = query.before;
      return listHistory(sql, f);
    });
  }

  /**
   * Deletes history older than `before` (ISO 8601) from the oldest entry on, stopping at the first
   * entry made at or after it, a batch per transaction; returns how many. The log loses only a
   * prefix, never entries from its middle (servers' clocks differ a little, so times are not quite in
   * seq order): kept pool maps rely on "my entry is still there" meaning "every entry after it is too".
   */
  async pruneHistory(before: string): Promise<number> {
    const cutoff = isoTime(before, "before");
    const newer = await this.read((sql) => sql.get<{ s: number | string | null }>("SELECT MIN(seq) AS s FROM history WHERE at >= ?", [cutoff]));
    const below = newer?.s == null ? Number.MAX_SAFE_INTEGER : Number(newer.s);
    let removed = 0;
    for (;;) {
      const n = await this.write(SYSTEM, async (env) =>
        {
          const n = (await env.sql.run("DELETE FROM history WHERE seq IN (SELECT seq FROM history WHERE seq < ? AND at < ? ORDER BY seq LIMIT 10000)", [below, cutoff])).changes;
          // entries a webhook never managed to deliver go with them
          await env.sql.run("DELETE FROM webhook_outbox WHERE seq < (SELECT COALESCE(MIN(seq), 0) FROM history)");
          await env.sql.run("DELETE FROM dns_outbox WHERE seq < (SELECT COALESCE(MIN(seq), 0) FROM history)");
          return n;
        },
      );
      removed += n;
      if (n < 10000) return removed;
    }
  }

  /** Who held an address in a space at a moment: the allocation live then, or null. */
  holderAt(addressText: string, at: string, space: string, caller: Caller): Promise<Holding | null> {
    checkSpace(caller, space);
    return this.read(async (sql) => {
      const a = address(addressText, "address");
      const s = await findSpace(sql, space);
      return holderAt(sql, s.id, a.family, toKey(a.value), isoTime(at, "at"));
    });
  }

  /** A pool's occupancy, cut into at most `cells` cells (from `start` to `end`, else the whole pool). */
  poolMap(ref: PoolRef, o: { cells: number; start?: string; end?: string }, caller: Caller): Promise<PoolMap> {
    return this.read(async (sql) => {
      const pool = await visiblePool(sql, caller, ref);
      const at = (text: string | undefined, field: string) => {
        if (text === undefined) return undefined;
        const a = address(text, field);
        if (a.family !== pool.family) throw new AllotError("invalid-address", `${field}: ${text} is not an IPv${pool.family} address (pool ${pool.name} is IPv${pool.family})`);
        return a.value;
      };
      const from = at(o.start, "start");
      const to = at(o.end, "end");
      return cachedPoolMap(sql, this.maps, pool, o.cells, from, to);
    });
  }

  /** Allocations by MAC, owner or host name (a prefix of it), in the caller's spaces. */
  search(text: string, caller: Caller, limit = 50): Promise<Allocation[]> {
    const spaces = visibleSpaces(caller);
    return this.read(async (sql) => {
      let mac: string | null = null;
      try {
        mac = normalizeMac(text);
      } catch {
        // not a MAC: owner and host name only
      }
      return searchAllocations(sql, text, mac, spaces === null ? null : await spaceIds(sql, spaces), limit);
    });
  }

  /** Signs data with the server's secret key (every server sharing the key can verify it). */
  sign(purpose: string, data: string): string {
    if (!this.secrets) throw new AllotError("secrets-unavailable", "this server has no secret key to sign with (ALLOT_SECRET_KEY or secret.key in the data directory)");
    return this.secrets.sign(purpose, data);
  }

  /** All of a pool's secrets in clear, for the server's own use (releasing a provider's block). */
  poolSecrets(ref: PoolRef, caller: Caller): Promise<Record<string, string>> {
    return this.read(async (sql) => {
      const pool = await visiblePool(sql, caller, ref);
      const names = Object.keys(pool.secrets);
      if (names.length === 0) return {};
      if (!this.secrets) throw new AllotError("secrets-unavailable", "this server has no key to decrypt secrets with; set ALLOT_SECRET_KEY");
      return Object.fromEntries(names.map((n) => [n, this.secrets!.open(pool.secrets[n]!)]));
    });
  }

  /** A pool's secret in clear, for the server's own use (a provider driver); never for an API answer. */
  poolSecret(ref: PoolRef, name: string): Promise<string | null> {
    return this.read(async (sql) => {
      const pool = await loadPool(sql, ref);
      const sealed = pool.secrets[name];
      if (!sealed) return null;
      if (!this.secrets) throw new AllotError("secrets-unavailable", "this server has no key to decrypt secrets with; set ALLOT_SECRET_KEY");
      return this.secrets.open(sealed);
    });
  }

  // ---- webhooks

  createWebhook(input: WebhookInput, ctx: ChangeContext): Promise<NewWebhook> {
    checkWithin(ctx, input, "its webhooks must be limited to some of them");
    return this.write(ctx, (env) => createWebhook(env, input));
  }

  listWebhooks(caller: Caller): Promise<Webhook[]> {
    return this.read(async (sql) => (await listWebhooks(sql)).filter((w) => within(caller, w)));
  }

  deleteWebhook(idOrName: string, ctx: ChangeContext): Promise<Webhook> {
    return this.write(ctx, (env) => deleteWebhook(env, idOrName));
  }

  /** Leases one webhook with events waiting (for the delivery loop), with its signing secret in clear. */
  async leaseWebhookDelivery(batch = 100): Promise<(DueDelivery & { secretText: string }) | null> {
    const d = await this.write(SYSTEM, (env) => leaseDue(env, batch));
    if (!d) return null;
    if (!this.secrets) throw new AllotError("secrets-unavailable", "this server has no key to open webhook secrets with; set ALLOT_SECRET_KEY");
    return { ...d, secretText: this.secrets.open(d.secret) };
  }

  settleWebhookDelivery(d: DueDelivery, outcome: { ok: true } | { ok: false; error: string }): Promise<void> {
    return this.write(SYSTEM, (env) => settleDelivery(env.sql, d, this.clock(), outcome));
  }

  // ---- DNS zones (src/engine/dns.ts; the publisher is src/dns/publisher.ts)

  /** Errors: invalid-request, invalid-address, space-not-found, dns-zone-exists, secrets-unavailable. */
  createDnsZone(input: dns.DnsZoneInput, ctx: ChangeContext): Promise<dns.DnsZone> {
    checkSpace(ctx, input.space ?? DEFAULT_SPACE);
    return this.write(ctx, (env) => dns.createZone(env, input));
  }

  listDnsZones(caller: Caller): Promise<dns.DnsZone[]> {
    return this.read((sql) => dns.listZones(sql, caller));
  }

  getDnsZone(name: string, caller: Caller): Promise<dns.DnsZone> {
    return this.read((sql) => dns.getZone(sql, caller, name));
  }

  updateDnsZone(name: string, patch: dns.DnsZonePatch, ctx: ChangeContext): Promise<dns.DnsZone> {
    return this.write(ctx, (env) => dns.updateZone(env, name, patch));
  }

  deleteDnsZone(name: string, ctx: ChangeContext): Promise<dns.DnsZone> {
    return this.write(ctx, (env) => dns.deleteZone(env, name));
  }

  dnsConflicts(name: string, caller: Caller): Promise<dns.DnsConflict[]> {
    return this.read((sql) => dns.listConflicts(sql, caller, name));
  }

  dnsFigures(): ReturnType<typeof dns.zoneFigures> {
    return this.read((sql) => dns.zoneFigures(sql));
  }

  private openSecret(s: SealedSecret): string {
    if (!this.secrets) throw new AllotError("secrets-unavailable", "this server has no key to open DNS credentials with; set ALLOT_SECRET_KEY");
    return this.secrets.open(s);
  }

  /** Leases one zone with history entries to publish, with its credential in clear. */
  async leaseDnsWork(batch = 500): Promise<(dns.DnsWork & { secretText: string }) | null> {
    // a read first: with nothing due (no zones, say), a change costs followers no write transaction
    const now = this.clock();
    const due = await this.read((sql) => sql.get("SELECT 1 AS x FROM dns_zones z WHERE next_attempt_at <= ? AND EXISTS (SELECT 1 FROM dns_outbox o WHERE o.zone_id = z.id)", [now]));
    if (!due) return null;
    const w = await this.write(SYSTEM, (env) => dns.leaseZone(env, batch));
    return w && { ...w, secretText: this.openSecret(w.secret) };
  }

  /** Records a batch's outcome; false if the lease was lost meanwhile (another server redoes it). */
  settleDnsWork(w: dns.DnsWork, outcome: { ok: true; result: dns.DnsOutcome } | { ok: false; error: string }): Promise<boolean> {
    return this.write(SYSTEM, (env) => dns.settleZone(env, w, outcome));
  }

  /** A zone with every record it should hold and every record Allot wrote there, for a check. */
  async dnsZoneState(name: string, caller: Caller): Promise<dns.DnsZoneState & { secretText: string }> {
    const s = await this.read((sql) => dns.zoneState(sql, caller, name, this.clock()));
    return { ...s, secretText: this.openSecret(s.secret) };
  }

  recordDnsRepair(name: string, result: dns.DnsOutcome, ctx: ChangeContext): Promise<void> {
    return this.write(ctx, (env) => dns.recordRepair(env, name, result));
  }

  // ---- tokens

  createToken(input: TokenInput, ctx: ChangeContext): Promise<NewToken> {
    checkWithin(ctx, input, "it can only create tokens limited to some of them");
    return this.write(ctx, (env) => createToken(env, input));
  }

  listTokens(caller: Caller): Promise<Token[]> {
    return this.read(async (sql) => (await listTokens(sql)).filter((t) => within(caller, t)));
  }

  /** A token by id or name, for the server's own use (Keystone's token validation). */
  getToken(idOrName: string): Promise<Token> {
    return this.read((sql) => findToken(sql, idOrName));
  }

  revokeToken(idOrName: string, ctx: ChangeContext): Promise<Token> {
    return this.write(ctx, (env) => revokeToken(env, idOrName));
  }

  /** The live token with this secret, or null. */
  authenticate(secret: string): Promise<Token | null> {
    return this.read((sql) => tokenBySecret(sql, secret, this.clock()));
  }

  /**
   * On a database with no tokens at all, creates the admin token (from `secret`, or random) and returns
   * it; otherwise null. Several servers starting at once on one database make exactly one.
   */
  ensureAdminToken(secret?: string): Promise<NewToken | null> {
    return this.write(SYSTEM, async (env) => {
      if ((await countTokens(env.sql)) > 0) return null;
      try {
        return await createToken(env, { name: "admin", scope: "admin", ...(secret ? { token: secret } : {}) });
      } catch (err) {
        // servers starting together on a new PostgreSQL database: another one made the admin token since
        // the count above (each statement sees the latest commits), as if this one had started after it
        if (err instanceof AllotError && err.code === "token-exists") return null;
        throw err;
      }
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
    return this.read(async (sql) => allRuns(sql, (await loadPool(sql, ref)).id));
  }

  /** Verifies every pool's allocations, free-space index and counters; an empty list means consistent. */
  check(): Promise<Problem[]> {
    return this.read(checkPools);
  }

  async close(): Promise<void> {
    await this.changes.stop();
    await this.store.close();
  }
}

/** A `next` of the list in order of creation: "<created time>,<id>". */
function createdCursor(text: string): { createdAt: string; id: string } {
  const [createdAt, id, ...rest] = text.split(",");
  if (!createdAt || !id || rest.length) throw new AllotError("invalid-request", `after: ${text} is not a cursor of this order; pass the previous page's next as it was`);
  return { createdAt, id };
}
