import { formatAddress, fromKey } from "../addr/index.js";
import { type Sql, insertRows } from "../store/store.js";
import { type AllocationRow, allocationByOwner, allocationHolding, toAllocation } from "./allocation-repo.js";
import { allocators } from "./allocators/index.js";
import { giveCarve } from "./carve.js";
import { AllotError } from "./errors.js";
import { give, runAtOrAfter, runContaining, take } from "./free-space.js";
import { record } from "./history.js";
import { fmtSpan, address } from "./pool-plan.js";
import { type PoolState, key, rangeOf, saveCounters } from "./pool-repo.js";
import type { Allocation, AllocateRequest, AllocationPatch, ChangeContext } from "./types.js";
import { normalizeMac } from "./mac.js";
import { checkMacFree } from "./mac-rule.js";
import type { SecretBox } from "./secrets.js";
import { type Interval, sizeClass, within } from "./intervals.js";

/** Everything an operation inside a transaction needs. */
export interface TxEnv {
  sql: Sql;
  ctx: ChangeContext;
  /** Milliseconds since the epoch; injected so tests can move time. */
  now: number;
  randomBelow: (n: bigint) => bigint;
  newId: () => string;
  /** Seals secret attributes; null when the engine has no key (secrets are then refused). */
  secrets: SecretBox | null;
}

const iso = (ms: number) => new Date(ms).toISOString();
export const MAX_BLOCK = 2 ** 32;
/** A century: longer is a mistake, and it keeps expiry times inside what dates can represent. */
export const MAX_TTL = 100 * 365 * 24 * 3600;

export function checkTtl(ttl: number | null | undefined): void {
  if (ttl === undefined || ttl === null) return;
  if (!Number.isInteger(ttl) || ttl <= 0 || ttl > MAX_TTL) {
    throw new AllotError("invalid-request", `ttl must be a whole number of seconds from 1 to ${MAX_TTL} (a century), not ${ttl}`);
  }
}

export interface AllocateResult {
  allocation: Allocation;
  /** False when the owner already held it and the existing allocation was returned. */
  created: boolean;
}

function checkRequest(req: AllocateRequest): { size: number } {
  const size = req.size ?? 1;
  if (!Number.isInteger(size) || size < 1 || size > MAX_BLOCK) {
    throw new AllotError("invalid-request", `size must be a whole number from 1 to ${MAX_BLOCK}, not ${req.size}`);
  }
  checkTtl(req.ttl);
  return { size };
}

/** Next free, a specific address, or a block of `size`; idempotent by owner. */
export async function allocate(env: TxEnv, pool: PoolState, req: AllocateRequest): Promise<AllocateResult> {
  const { size } = checkRequest(req);
  const mac = req.mac === undefined ? null : normalizeMac(req.mac);
  const specific = req.address === undefined ? null : address(req.address, "address");
  if (specific && specific.family !== pool.family) {
    throw new AllotError("invalid-address", `address ${req.address} is IPv${specific.family} but pool ${pool.name} is IPv${pool.family}`);
  }
  // what the pool's lock was taken with holds until this transaction's first change to the pool
  const atLock = pool.atLock;
  pool.atLock = undefined;
  const expiring = !atLock || (atLock.nextExpiry !== null && atLock.nextExpiry <= env.now);
  if (expiring) await expirePool(env, pool);

  if (req.owner !== undefined) {
    const held = await allocationByOwner(env.sql, pool.id, req.owner);
    if (held) {
      // a retry gets what the owner holds; a request for something else is refused, naming what differs
      // (labels and ttl are not compared: a retry may carry newer ones, and PATCH changes them)
      const have = toAllocation(pool, held);
      const differs: string[] = [];
      if (specific && specific.value !== fromKey(held.first)) differs.push(`address (holds ${have.address}, asked ${req.address})`);
      if (req.size !== undefined && held.size !== String(size)) differs.push(`size (holds ${held.size}, asked ${size})`);
      if (mac !== null && mac !== held.mac) differs.push(`mac (holds ${held.mac ?? "none"}, asked ${mac})`);
      if (req.hostname !== undefined && req.hostname !== held.hostname) differs.push(`hostname (holds ${held.hostname ?? "none"}, asked ${req.hostname})`);
      if (differs.length > 0) {
        throw new AllotError(
          "owner-conflict",
          `owner ${req.owner} already holds ${have.address}${held.size !== "1" ? ` (${held.size} addresses)` : ""} in pool ${pool.name} with a different ${differs.join(", ")}; repeat the request as first made, change the allocation (PATCH /v1/allocations/{id}, allot allocation update), or release it first`,
          { allocation: have, fields: differs.map((d) => d.split(" ")[0]!) },
        );
      }
      return { allocation: have, created: false };
    }
  }

  if (mac !== null) await checkMacFree(env.sql, pool, mac, env.now);

  const n = BigInt(size);
  let first: bigint;
  let run;
  if (specific) {
    first = specific.value;
    run = await runContaining(env.sql, pool.id, first);
    if (!run || run.last < first + n - 1n) await explainUnavailable(env.sql, pool, first, n);
  } else if (req.within) {
    if (n !== 1n) throw new AllotError("invalid-request", "within picks one address; leave out size");
    const lo = address(req.within.start, "within.start");
    const hi = address(req.within.end, "within.end");
    if (lo.family !== pool.family || hi.family !== pool.family || hi.value < lo.value) {
      throw new AllotError("invalid-request", `within must be two IPv${pool.family} addresses, start before end`);
    }
    const found = await freeWithin(env, pool, lo.value, hi.value);
    if (!found) {
      throw new AllotError("pool-exhausted", `pool ${pool.name} has no free address from ${req.within.start} to ${req.within.end}`, { pool: pool.name });
    }
    ({ first, run } = found);
  } else {
    const maxClass = sizeClass(pool.total > 0n ? pool.total : 1n);
    const proposed = await allocators[pool.strategy].propose({
      sql: env.sql,
      poolId: pool.id,
      size: n,
      ranges: pool.ranges,
      maxClass,
      randomBelow: env.randomBelow,
      ...(atLock && !expiring ? { lowest: atLock.lowest } : {}),
    });
    if (proposed === null) throw exhausted(pool, n);
    first = proposed.first;
    run = proposed.run ?? (await runContaining(env.sql, pool.id, first));
    if (!run || run.last < first + n - 1n) throw new Error(`strategy ${pool.strategy} proposed a run that is not free`);
  }
  const last = first + n - 1n;
  await take(env.sql, pool.id, run!, first, last);
  const row: AllocationRow = {
    id: env.newId(),
    pool_id: pool.id,
    space_id: pool.spaceId,
    family: pool.family,
    first: key(first),
    last: key(last),
    size: String(size),
    child_pool_id: null,
    owner: req.owner ?? null,
    mac,
    hostname: req.hostname ?? null,
    labels: JSON.stringify(req.labels ?? {}),
    expires_at: req.ttl === undefined ? null : env.now + req.ttl * 1000,
    created_at: iso(env.now),
    updated_at: iso(env.now),
  };
  await insertAllocation(env.sql, row);
  pool.allocated += n;
  await saveCounters(env, pool, iso(env.now));
  const allocation = toAllocation(pool, row);
  await record(env.sql, env.ctx, iso(env.now), {
    action: "allocate",
    entity: "allocation",
    entityId: row.id,
    spaceId: pool.spaceId,
    poolId: pool.id,
    after: allocation,
    held: row,
  });
  return { allocation, created: true };
}

/** The strategy's pick between lo and hi: the lowest free address, or (random) a uniform point, else the next free after it, wrapping. */
async function freeWithin(env: TxEnv, pool: PoolState, lo: bigint, hi: bigint): Promise<{ first: bigint; run: Interval } | null> {
  const fromPoint = async (point: bigint, upTo: bigint) => {
    const holding = await runContaining(env.sql, pool.id, point);
    if (holding) return { first: point, run: holding };
    const next = await runAtOrAfter(env.sql, pool.id, point);
    return next && next.first <= upTo ? { first: next.first, run: next } : null;
  };
  if (pool.strategy === "random") {
    const point = lo + env.randomBelow(hi - lo + 1n);
    return (await fromPoint(point, hi)) ?? (await fromPoint(lo, point));
  }
  return fromPoint(lo, hi);
}

export async function insertAllocation(sql: Sql, row: AllocationRow): Promise<void> {
  await insertAllocations(sql, [row]);
}

/** Inserts rows in one statement (the overlap triggers still check each row). */
export async function insertAllocations(sql: Sql, rows: readonly AllocationRow[]): Promise<void> {
  await insertRows(sql, "allocations", ALLOCATION_COLUMNS, rows.map((row) => ALLOCATION_COLUMNS.map((c) => row[c])));
}

const ALLOCATION_COLUMNS = [
  "id", "pool_id", "space_id", "family", "first", "last", "size", "child_pool_id", "owner",
  "mac", "hostname", "labels", "expires_at", "created_at", "updated_at",
] as const satisfies readonly (keyof AllocationRow)[];

function exhausted(pool: PoolState, n: bigint): AllotError {
  const used = pool.allocated + pool.carved;
  if (n === 1n || used === pool.total) {
    return new AllotError(
      "pool-exhausted",
      `pool ${pool.name} is exhausted: ${used} of ${pool.total} addresses allocated`,
      { pool: pool.name, total: pool.total.toString(), allocated: used.toString() },
    );
  }
  return blockUnavailable(pool, n);
}

export function blockUnavailable(pool: PoolState, n: bigint): AllotError {
  const used = pool.allocated + pool.carved;
  return new AllotError(
    "block-unavailable",
    `pool ${pool.name} has no run of ${n} free contiguous addresses (${pool.total - used} free in all); ask for a smaller block`,
    { pool: pool.name, size: Number(n), free: (pool.total - used).toString() },
  );
}

/** Says why a specific address (or block) cannot be had: outside the pool, excluded, reserved, or held by whom. */
export async function explainUnavailable(sql: Sql, pool: PoolState, first: bigint, n: bigint): Promise<never> {
  const last = first + n - 1n;
  const span = fmtSpan(pool.family, { first, last });
  const range = rangeOf(pool, first);
  if (!range || !within({ first, last }, range)) {
    throw new AllotError(
      "address-outside-pool",
      `${span} is not inside one range of pool ${pool.name} (${pool.ranges.map((r) => fmtSpan(pool.family, r)).join(", ")})`,
    );
  }
  for (let a = first; a <= last && a - first < 4096n; a++) {
    const held = await allocationHolding(sql, pool.id, a);
    if (held) {
      const who = held.child_pool_id ? `child pool ${held.child_pool_id}` : held.owner ? `owner ${held.owner}` : `allocation ${held.id}`;
      throw new AllotError("address-unavailable", `${formatAddress({ family: pool.family, value: a })} in pool ${pool.name} is already held by ${who}`, {
        holder: toAllocation(pool, held),
      });
    }
    if (pool.exclusions.some((e) => a >= e.first && a <= e.last)) {
      throw new AllotError("address-unavailable", `${formatAddress({ family: pool.family, value: a })} is excluded from pool ${pool.name}`);
    }
    if (!(await runContaining(sql, pool.id, a))) {
      throw new AllotError(
        "address-unavailable",
        `${formatAddress({ family: pool.family, value: a })} is a network, broadcast or gateway address, which pool ${pool.name} keeps back (set allocateReserved to hand them out)`,
      );
    }
  }
  throw new AllotError("block-unavailable", `${span} is not wholly free in pool ${pool.name}`);
}

/** Releases one allocation row (not a carve) and returns what it was. */
export async function releaseRow(env: TxEnv, pool: PoolState, row: AllocationRow, action = "release"): Promise<Allocation> {
  const before = toAllocation(pool, row);
  const first = fromKey(row.first);
  const last = fromKey(row.last);
  await env.sql.queue("DELETE FROM allocations WHERE id = ?", [row.id]);
  if (row.child_pool_id) {
    pool.carved -= await giveCarve(env.sql, pool, { first, last });
  } else {
    await give(env.sql, pool.id, { first, last }, rangeOf(pool, first)!);
    pool.allocated -= BigInt(row.size);
  }
  await saveCounters(env, pool, iso(env.now));
  await record(env.sql, env.ctx, iso(env.now), {
    action,
    entity: "allocation",
    entityId: row.id,
    spaceId: pool.spaceId,
    poolId: pool.id,
    before,
    ...(row.child_pool_id ? {} : { held: row }),
  });
  return before;
}

/** Releases this pool's allocations whose time-to-live has run out, so they are free before the next pick. */
export async function expirePool(env: TxEnv, pool: PoolState): Promise<number> {
  let n = 0;
  for (;;) {
    const rows = await env.sql.all<AllocationRow>(
      "SELECT * FROM allocations WHERE expires_at IS NOT NULL AND expires_at <= ? AND pool_id = ? LIMIT 1000",
      [env.now, pool.id],
    );
    for (const r of rows) await releaseRow({ ...env, ctx: { actor: "system:expiry" } }, pool, r, "expire");
    n += rows.length;
    if (rows.length < 1000) return n;
  }
}

/** Updates an allocation's MAC, hostname, labels or time-to-live; its addresses never change. */
export async function updateAllocation(env: TxEnv, pool: PoolState, row: AllocationRow, patch: AllocationPatch): Promise<Allocation> {
  checkTtl(patch.ttl);
  if (patch.mac) await checkMacFree(env.sql, pool, normalizeMac(patch.mac), env.now, row.id);
  const before = toAllocation(pool, row);
  const next: AllocationRow = {
    ...row,
    mac: patch.mac === undefined ? row.mac : patch.mac === null ? null : normalizeMac(patch.mac),
    hostname: patch.hostname === undefined ? row.hostname : patch.hostname,
    labels: patch.labels === undefined ? row.labels : JSON.stringify(patch.labels),
    expires_at: patch.ttl === undefined ? row.expires_at : patch.ttl === null ? null : env.now + patch.ttl * 1000,
    updated_at: iso(env.now),
  };
  await env.sql.queue("UPDATE allocations SET mac = ?, hostname = ?, labels = ?, expires_at = ?, updated_at = ? WHERE id = ?", [
    next.mac, next.hostname, next.labels, next.expires_at, next.updated_at, row.id,
  ]);
  const after = toAllocation(pool, next);
  await record(env.sql, env.ctx, iso(env.now), { action: "update", entity: "allocation", entityId: row.id, spaceId: pool.spaceId, poolId: pool.id, before, after, held: next });
  return after;
}
