import { findFit, lowestRun, runAtOrAfter, runContaining } from "../free-space.js";
import { intervalSize } from "../intervals.js";
import type { Allocator } from "./allocator.js";

/**
 * A random free address: a point drawn uniformly over the pool's ranges, taken if free, otherwise the
 * start of the next free run (wrapping round). Two seeks whatever the pool's size, so it suits an IPv6
 * /64 as well as a /24; addresses just after long held stretches are somewhat likelier.
 * Blocks (size > 1) fall back to first fit, since a random fit would need a scan of the runs.
 */
export const random: Allocator = {
  name: "random",
  async propose({ sql, poolId, size, ranges, maxClass, randomBelow }) {
    if (size > 1n) {
      const first = await findFit(sql, poolId, size, false, maxClass);
      return first === null ? null : { first };
    }
    const span = ranges.reduce((n, r) => n + intervalSize(r), 0n);
    let offset = randomBelow(span);
    let point = 0n;
    for (const r of ranges) {
      const n = intervalSize(r);
      if (offset < n) {
        point = r.first + offset;
        break;
      }
      offset -= n;
    }
    const holding = await runContaining(sql, poolId, point);
    if (holding) return { first: point, run: holding };
    const next = (await runAtOrAfter(sql, poolId, point)) ?? (await lowestRun(sql, poolId));
    return next ? { first: next.first, run: next } : null;
  },
};
