/**
 * When a pool will run out, from its own history. Method: the pool's used addresses (allocated plus
 * carved into child pools) are rebuilt backwards from now over the last 30 days of its history,
 * sampled at 60 evenly spaced moments from its first change in that window to now, and a least-squares
 * line is fitted through the samples; its slope is the growth per day, and free addresses divided by it
 * the days left. Sampling a step function evenly weighs each stretch of time alike, so a one-off burst
 * moves the line by its share of the window rather than by how many entries it made. It suits steady
 * growth; it says "no forecast" with less than a day or fewer than 5 changes of history, and "not
 * growing" when the line is flat or falling.
 */
import { fromKey } from "../addr/index.js";
import type { Sql } from "../store/store.js";
import type { PoolState } from "./pool-repo.js";

export const WINDOW_DAYS = 30;
const SAMPLES = 60;
const MIN_CHANGES = 5;
const DAY = 86_400_000;
/** A pool busier than this in the window is judged on its latest changes only (a shorter window). */
const MAX_ROWS = 200_000;

export const METHOD = `least-squares line through the pool's used addresses, sampled evenly over its last ${WINDOW_DAYS} days of history`;

export interface Forecast {
  method: string;
  /** Days of history the line was fitted over (0 when there is none). */
  days: number;
  /** Addresses a day by the fitted line; null when there is too little history. */
  growthPerDay: number | null;
  /** Days until no address is free at that rate; null when there is no forecast or usage is not growing. */
  daysLeft: number | null;
  /** When that is, as an ISO 8601 time. */
  exhaustedAt: string | null;
  /** Why there is no date: "too little history" or "not growing"; null when there is one. */
  note: string | null;
}

/** A change to the number of used addresses at a moment. */
export interface UsageChange {
  at: number;
  delta: number;
}

/** The forecast from a pool's changes in the window (oldest first), its used and free counts now. */
export function forecastFrom(changes: UsageChange[], usedNow: number, free: number, now: number): Forecast {
  const base = { method: METHOD };
  const first = changes[0]?.at;
  if (first === undefined || changes.length < MIN_CHANGES || now - first < DAY) {
    return { ...base, days: first === undefined ? 0 : round((now - first) / DAY), growthPerDay: null, daysLeft: null, exhaustedAt: null, note: "too little history" };
  }
  // used at each sample moment: now's count less every change made after that moment
  const xs: number[] = [];
  const ys: number[] = [];
  let used = usedNow;
  let j = changes.length - 1;
  for (let i = SAMPLES - 1; i >= 0; i--) {
    const t = first + ((now - first) * i) / (SAMPLES - 1);
    while (j >= 0 && changes[j]!.at > t) used -= changes[j--]!.delta;
    xs.push((t - first) / DAY);
    ys.push(used);
  }
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i]! - mx) * (ys[i]! - my);
    sxx += (xs[i]! - mx) ** 2;
  }
  const slope = sxy / sxx;
  const days = round((now - first) / DAY);
  if (!(slope > 0)) return { ...base, days, growthPerDay: round(slope), daysLeft: null, exhaustedAt: null, note: "not growing" };
  const left = free / slope;
  return { ...base, days, growthPerDay: round(slope), daysLeft: round(left), exhaustedAt: new Date(now + left * DAY).toISOString(), note: null };
}

const round = (x: number) => Math.round(x * 100) / 100;

/** Sizes of the runs an entry took or gave back: +n for allocate and carve, -n for release, expiry, uncarve. */
const SIGN: Record<string, number> = { allocate: 1, carve: 1, release: -1, expire: -1, uncarve: -1 };

/** The pool's usage changes in the window, read from history, oldest first. */
export async function usageChanges(sql: Sql, pool: PoolState, now: number): Promise<UsageChange[]> {
  const since = new Date(now - WINDOW_DAYS * DAY).toISOString();
  // the window as a range of entry numbers (by the time index), so the pool's index stops at its start
  // rather than walking the pool's whole history
  const low = await sql.get<{ s: number | string | null }>("SELECT MIN(seq) AS s FROM history WHERE at >= ?", [since]);
  if (low?.s == null) return [];
  const rows = await sql.all<{ at: string; action: string; first: Buffer | null; last: Buffer | null; after: string | null; before: string | null }>(
    `SELECT at, action, first, last, CASE WHEN first IS NULL THEN after END AS after, CASE WHEN first IS NULL THEN before END AS before
       FROM history WHERE pool_id = ? AND seq >= ? AND entity = 'allocation' AND at >= ? ORDER BY seq DESC LIMIT ?`,
    [pool.id, Number(low.s), since, MAX_ROWS],
  );
  const out: UsageChange[] = [];
  for (let i = rows.length - 1; i >= 0; i--) {
    const r = rows[i]!;
    const sign = SIGN[r.action];
    if (!sign) continue;
    let size: number;
    if (r.first && r.last) size = Number(fromKey(r.last) - fromKey(r.first) + 1n);
    else {
      // a carve's entry holds the block in its JSON only
      const a = JSON.parse((sign > 0 ? r.after : r.before) ?? "null") as { size?: number } | null;
      if (typeof a?.size !== "number") continue;
      size = a.size;
    }
    out.push({ at: Date.parse(r.at), delta: sign * size });
  }
  return out;
}
