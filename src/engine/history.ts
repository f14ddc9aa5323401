import { type Sql, insertRows } from "../store/store.js";
import type { ChangeContext } from "./types.js";

export type HistoryEntity = "space" | "pool" | "allocation";

export interface HistoryRecord {
  action: string;
  entity: HistoryEntity;
  entityId: string;
  spaceId?: string | null;
  poolId?: string | null;
  before?: unknown;
  after?: unknown;
}

/** Records a change inside the transaction that makes it, so a change and its record stand or fall together. */
export async function record(sql: Sql, ctx: ChangeContext, at: string, r: HistoryRecord): Promise<void> {
  await recordMany(sql, ctx, at, [r]);
}

const HISTORY_COLUMNS = ["at", "actor", "request_id", "action", "entity", "entity_id", "space_id", "pool_id", "before", "after"];

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
  before: string | null;
  after: string | null;
}

export async function listHistory(sql: Sql, filter: { poolId?: string; limit: number }): Promise<HistoryEntry[]> {
  const rows = filter.poolId
    ? await sql.all<HistoryRow>("SELECT * FROM history WHERE pool_id = ? ORDER BY seq DESC LIMIT ?", [filter.poolId, filter.limit])
    : await sql.all<HistoryRow>("SELECT * FROM history ORDER BY seq DESC LIMIT ?", [filter.limit]);
  return rows.map((r) => ({
    seq: r.seq,
    at: r.at,
    actor: r.actor,
    requestId: r.request_id,
    action: r.action,
    entity: r.entity,
    entityId: r.entity_id,
    before: r.before === null ? null : JSON.parse(r.before),
    after: r.after === null ? null : JSON.parse(r.after),
  }));
}
