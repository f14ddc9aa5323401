import { findFit, lowestRun } from "../free-space.js";
import type { Allocator } from "./allocator.js";

/** The lowest free address, or the lowest-addressed free run that holds a block (first fit). */
export const lowestFree: Allocator = {
  name: "lowest-free",
  async propose({ sql, poolId, size, maxClass, lowest }) {
    if (size === 1n) {
      const run = lowest !== undefined ? lowest : await lowestRun(sql, poolId);
      return run ? { first: run.first, run } : null;
    }
    const first = await findFit(sql, poolId, size, false, maxClass);
    return first === null ? null : { first };
  },
};
