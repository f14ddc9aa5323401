import type { Sql } from "../../store/store.js";
import type { Interval } from "../intervals.js";
import type { Strategy } from "../types.js";

/** What a strategy may look at when it proposes where a new allocation starts. */
export interface AllocatorInput {
  sql: Sql;
  poolId: string;
  /** Contiguous addresses wanted. */
  size: bigint;
  /** The pool's ranges, in address order. */
  ranges: readonly Interval[];
  /** Largest size class a run of this pool can have. */
  maxClass: number;
  /** Uniform random bigint in [0, n). */
  randomBelow: (n: bigint) => bigint;
  /** The pool's lowest free run, when it was read already (with the pool's lock). */
  lowest?: Interval | null;
}

/** Where a new allocation starts, with the free run holding it when the strategy already read it (saves a seek). */
export interface Proposal {
  first: bigint;
  run?: Interval;
}

/**
 * A strategy proposes the first address of a free run of `size` addresses, or null when none exists.
 * It only reads the free-space index; the engine takes the run, so every strategy gets the same
 * checks and the same database constraints behind them.
 */
export interface Allocator {
  readonly name: Strategy;
  propose(input: AllocatorInput): Promise<Proposal | null>;
}
