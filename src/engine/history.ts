import { type Sql, type SqlValue, insertRows } from "../store/store.js";
import type { ChangeContext } from "./types.js";

export type HistoryEntity = "space" | "pool" | "allocation" | "token" | "webhook" | "dns-zone";

export interface HistoryRecord {
  action: string;
  entity: HistoryEntity;
  entityId: string;
  spaceId?: string | null;
  poolId?: string | null;
  before?: unknown;
  after?: unknown;
  /** For allocation changes: the run and owner, indexed so history can be searched by address and owner. */
  held?: { family: number; first: Buffer; last: Buffer; owner: string | null };
}

/** Records a change inside the transaction that makes it, so a change and its record stand or fall together. */
export async function record(sql: Sql, ctx: ChangeContext, at: string, r: HistoryRecord): Promise<void> {
  await recordMany(sql, ctx, at, [r]);
}

const HISTORY_COLUMNS = ["at", "actor", "request_id", "action", "entity", "entity_id", "space_id", "pool_id", "before", "after", "family", "first", "last", "owner"];

/** Records several changes, in order. */
export async function recordMany(sql: Sql, ctx: ChangeContext, at: string, list: readonly HistoryRecord[]): Promise<void> {
  await insertRows(
    sql,
    "history",
    HISTORY_COLUMNS,
    list.map((r) => [
      at,
      ctx.actor,
      ctx.requestId ?? null,
      r.action,
      r.entity,
      r.entityId,
      r.spaceId ?? null,
      r.poolId ?? null,
      r.before === undefined ? null : JSON.stringify(r.before),
      r.after === undefined ? null : JSON.stringify(r.after),
      r.held?.family ?? null,
      r.held?.first ?? null,
      r.held?.last ?? null,
      r.held?.owner ?? null,
    ]),
  );
}

export interface HistoryEntry {
  seq: number;
  at: string;
  actor: string;
  requestId: string | null;
  action: string;
  entity: HistoryEntity;
  entityId: string;
  spaceId: string | null;
  poolId: string | null;
  before: unknown;
  after: unknown;
}

interface HistoryRow {
  seq: number;
  at: string;
  actor: string;
  request_id: string | null;
  action: string;
  entity: HistoryEntity;
  entity_id: string;
  space_id: string | null;
  pool_id: string | null;
  before: string | null;
  after: string | null;
}

export interface HistoryFilter {
  /** Only entries in these spaces (a space-limited token's view); undefined for every entry. */
  visibleSpaceIds?: string[];
  spaceId?: string;
  poolId?: string;
  /** Entries about allocations whose run held this address (needs spaceId). */
  address?: { family: number; key: Buffer };
  owner?: string;
  actor?: string;
  entity?: HistoryEntity;
  entityId?: string;
  action?: string;
  /** ISO 8601 bounds on the entry's time, inclusive. */
  from?: string;
  to?: string;
  /** Only entries numbered below this (the previous page's last seq). */
  beforeSeq?: number;
  /** Only entries numbered this or above. */
  fromSeq?: number;
  limit: number;
}

const toEntry = (r: HistoryRow): HistoryEntry => ({
  seq: r.seq,
  at: r.at,
  actor: r.actor,
  requestId: r.request_id,
  action: r.action,
  entity: r.entity,
  entityId: r.entity_id,
  spaceId: r.space_id,
  poolId: r.pool_id,
  before: r.before === null ? null : JSON.parse(r.before),
  after: r.after === null ? null : JSON.parse(r.after),
});

const COLUMNS = "seq, at, actor, request_id, action, entity, entity_id, space_id, pool_id, before, after";

/** Newest first. Every filter is an index seek or a bounded walk from one. */
export async function listHistory(sql: Sql, f: HistoryFilter): Promise<HistoryEntry[]> {
  const where: string[] = [];
  const params: SqlValue[] = [];
  const add = (clause: string, ...values: SqlValue[]) => {
    where.push(clause);
    params.push(...values);
  };
  if (f.visibleSpaceIds) add(f.visibleSpaceIds.length ? `space_id IN (${f.visibleSpaceIds.map(() => "?").join(", ")})` : "1 = 0", ...f.visibleSpaceIds);
  if (f.spaceId) add("space_id = ?", f.spaceId);
  if (f.poolId) add("pool_id = ?", f.poolId);
  if (f.owner) add("owner = ?", f.owner);
  if (f.actor) add("actor = ?", f.actor);
  if (f.entity) add("entity = ?", f.entity);
  if (f.entityId) add("entity_id = ?", f.entityId);
  if (f.action) add("action = ?", f.action);
  if (f.from) add("at >= ?", f.from);
  if (f.to) add("at <= ?", f.to);
  if (f.beforeSeq !== undefined) add("seq < ?", f.beforeSeq);
  if (f.fromSeq !== undefined) add("seq >= ?", f.fromSeq);
  const query = (extra: string[], extraParams: SqlValue[]) =>
    sql.all<HistoryRow>(
      `SELECT ${COLUMNS} FROM history ${[...where, ...extra].length ? `WHERE ${[...where, ...extra].join(" AND ")}` : ""} ORDER BY seq DESC LIMIT ?`,
      [...params, ...extraParams, f.limit],
    );
  if (!f.address) return (await query([], [])).map(toEntry);
  // runs starting at the address (one seek), plus blocks that start below it and reach it (the
  // partial index of blocks only): never a walk over every single address below
  const { family, key } = f.address;
  const exact = await query(["space_id = ?", "family = ?", "first = ?"], [f.spaceId ?? null, family, key]);
  const blocks = await query(["space_id = ?", "family = ?", "first < ?", "last >= ?", "first <> last"], [f.spaceId ?? null, family, key, key]);
  return [...exact, ...blocks].sort((a, b) => b.seq - a.seq).slice(0, f.limit).map(toEntry);
}

export interface Holding {
  /** The allocation as it was made (its later updates are in its history). */
  allocation: unknown;
  allocatedAt: string;
  /** When it was released or expired, if it has been. */
  releasedAt: string | null;
}

/**
 * Who held `key` in a space at time `at`: the latest allocation of a run covering it made at or before
 * `at`, if it was not released by then. Runs in a space never overlap while held, so no other
 * allocation can have held the address at that moment.
 */
export async function holderAt(sql: Sql, spaceId: string, family: number, key: Buffer, at: string): Promise<Holding | null> {
  const [allocated] = await listHistory(sql, { spaceId, address: { family, key }, entity: "allocation", action: "allocate", to: at, limit: 1 });
  if (!allocated) return null;
  const ended = await sql.get<{ at: string }>(
    "SELECT at FROM history WHERE entity = 'allocation' AND entity_id = ? AND action IN ('release', 'expire') ORDER BY seq LIMIT 1",
    [allocated.entityId],
  );
  if (ended && ended.at <= at) return null;
  return { allocation: allocated.after, allocatedAt: allocated.at, releasedAt: ended?.at ?? null };
}
