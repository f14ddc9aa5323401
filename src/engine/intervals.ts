/** Closed intervals of addresses [first, last], as bigints. */
export interface Interval {
  first: bigint;
  last: bigint;
}

export const intervalSize = (i: Interval): bigint => i.last - i.first + 1n;

/** Sorts and merges touching or overlapping intervals. */
export function normalize(list: readonly Interval[]): Interval[] {
  const sorted = [...list].sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
  const out: Interval[] = [];
  for (const i of sorted) {
    const prev = out[out.length - 1];
    if (prev && i.first <= prev.last + 1n) {
      if (i.last > prev.last) prev.last = i.last;
    } else {
      out.push({ first: i.first, last: i.last });
    }
  }
  return out;
}

/** `from` minus every interval in `remove` (which need not be sorted). */
export function subtract(from: Interval, remove: readonly Interval[]): Interval[] {
  const out: Interval[] = [];
  let cursor = from.first;
  for (const r of normalize(remove)) {
    if (r.last < cursor || r.first > from.last) continue;
    if (r.first > cursor) out.push({ first: cursor, last: r.first - 1n });
    cursor = r.last + 1n;
    if (cursor > from.last) return out;
  }
  if (cursor <= from.last) out.push({ first: cursor, last: from.last });
  return out;
}

export const overlaps = (a: Interval, b: Interval): boolean => a.first <= b.last && b.first <= a.last;

export const within = (inner: Interval, outer: Interval): boolean =>
  inner.first >= outer.first && inner.last <= outer.last;

/** floor(log2(n)) for n >= 1: the free-space index's size class. */
export function sizeClass(n: bigint): number {
  return n.toString(2).length - 1;
}
