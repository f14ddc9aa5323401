import type { ProviderRecord } from "../providers/provider.js";
import type { Family } from "../addr/index.js";
import type { Caller } from "./access.js";

/** Who made a change and under which request (recorded in history with every change), and the spaces the caller may act in. */
export interface ChangeContext extends Caller {
  actor: string;
  requestId?: string;
}

export type Strategy = "lowest-free" | "random";
export const STRATEGIES: readonly Strategy[] = ["lowest-free", "random"];

export interface Space {
  id: string;
  name: string;
  description: string;
  createdAt: string;
}

export interface PoolRange {
  /** Set when the range is exactly one CIDR. */
  cidr?: string;
  start: string;
  end: string;
  /** Prefix length given to addresses from this range. */
  prefixLength: number;
  gateway: string | null;
  dns: string[];
}

export interface AddressSpan {
  start: string;
  end: string;
}

/** Exact counts as decimal strings (an IPv6 pool can hold 2^128 addresses); utilization in percent. */
export interface Usage {
  total: string;
  allocated: string;
  /** Addresses carved out into child pools. */
  inChildPools: string;
  free: string;
  utilization: number;
}

export interface Pool {
  id: string;
  name: string;
  space: string;
  family: Family;
  parent: string | null;
  strategy: Strategy;
  /** Whether network, broadcast and gateway addresses may be handed out. */
  allocateReserved: boolean;
  prefixLength: number | null;
  gateway: string | null;
  dns: string[];
  ranges: PoolRange[];
  exclusions: AddressSpan[];
  description: string;
  attributes: Record<string, unknown>;
  /** Secret attributes: name to a hint (the last four characters); the values are never returned. */
  secrets: Record<string, string>;
  /** Utilisation percentages whose crossing is recorded in history and exported as a metric. */
  thresholds: number[];
  /** The upstream block this pool's addresses came from, if a provider supplied them. */
  provider: ProviderRecord | null;
  usage: Usage;
  createdAt: string;
  updatedAt: string;
}

export interface Allocation {
  id: string;
  pool: string;
  poolId: string;
  space: string;
  /** First address of the run. */
  address: string;
  /** Last address of the run (equal to address when size is 1). */
  lastAddress: string;
  size: number;
  prefixLength: number;
  gateway: string | null;
  dns: string[];
  owner: string | null;
  mac: string | null;
  hostname: string | null;
  labels: Record<string, string>;
  expiresAt: string | null;
  createdAt: string;
  /** Set when this run was carved out as a child pool. */
  childPool?: string;
}

export interface RangeInput {
  cidr?: string;
  start?: string;
  end?: string;
  prefixLength?: number;
  gateway?: string;
  dns?: string[];
}

export interface PoolInput {
  name: string;
  space?: string;
  /** Shorthand for one range. */
  cidr?: string;
  ranges?: RangeInput[];
  exclusions?: (string | { start: string; end?: string })[];
  prefixLength?: number;
  gateway?: string;
  dns?: string[];
  strategy?: Strategy;
  allocateReserved?: boolean;
  description?: string;
  attributes?: Record<string, unknown>;
  /** Attributes stored encrypted and never returned (a provider API token, say). */
  secrets?: Record<string, string>;
  thresholds?: number[];
  /** Set by the provider orchestration, not by callers: where the pool's one range came from. */
  provider?: ProviderRecord;
}

export interface ChildPoolInput extends Omit<PoolInput, "ranges" | "cidr" | "space"> {
  /** Carve the first free aligned block of this length... */
  prefixLength?: number;
  /** ...or exactly this CIDR. */
  cidr?: string;
}

export interface PoolPatch {
  name?: string;
  description?: string;
  attributes?: Record<string, unknown>;
  strategy?: Strategy;
  /** Sets each named secret; null removes it. Secrets not named are kept. */
  secrets?: Record<string, string | null>;
  thresholds?: number[];
}

export interface AllocateRequest {
  /** A specific address; otherwise the pool's strategy picks. */
  address?: string;
  /** Contiguous addresses wanted (default 1). */
  size?: number;
  owner?: string;
  mac?: string;
  hostname?: string;
  labels?: Record<string, string>;
  /** Seconds until the allocation is released automatically. */
  ttl?: number;
  /**
   * Only an address from start to end (inclusive), picked by the pool's strategy within that stretch:
   * for callers that walk their own ordered list of ranges, as Metal3 does.
   */
  within?: { start: string; end: string };
}

/** Changes to an allocation that keep its addresses. */
export interface AllocationPatch {
  mac?: string | null;
  hostname?: string | null;
  labels?: Record<string, string>;
  /** Seconds from now until release (renews a lease); null removes the time-to-live. */
  ttl?: number | null;
}

export interface PoolRef {
  /** Pool id, or name within `space`. */
  pool: string;
  space?: string;
}

/** Orders of a pool's allocations list: by address, or by when they were made ("-" for descending). */
export const ALLOCATION_SORTS = ["address", "-address", "created", "-created"] as const;
export type AllocationSort = (typeof ALLOCATION_SORTS)[number];
