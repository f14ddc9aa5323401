/**
 * Which spaces a caller may act in. The engine checks it where it resolves a space, a pool or an
 * allocation, inside the same read or transaction that then acts, so a capability is written once and
 * its check cannot be left out or raced. A caller without `access` is the server itself (every space).
 */
import { AllotError } from "./errors.js";
import { DEFAULT_SPACE } from "./spaces.js";
import type { PoolRef } from "./types.js";

export interface Access {
  /** Named in refusals ("token ops is limited to …"). */
  readonly name: string;
  /** The spaces allowed; null for every space. */
  readonly spaces: readonly string[] | null;
}

/** Who asks: reads take this; a ChangeContext carries it too. */
export interface Caller {
  readonly access?: Access;
}

/** The server's own work (integrations acting for a protocol that checked its caller, sweeps, tests). */
export const SERVER: Caller = {};

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function mayUse(caller: Caller, space: string): boolean {
  const spaces = caller.access?.spaces;
  return spaces == null || spaces.includes(space);
}

/** The spaces a list is cut down to, or null for all. */
export function visibleSpaces(caller: Caller): readonly string[] | null {
  return caller.access?.spaces ?? null;
}

function limited(access: Access): string {
  return `token ${access.name} is limited to spaces ${access.spaces!.join(", ")}`;
}

/** A space the caller named: 403 saying which spaces it has. */
export function checkSpace(caller: Caller, space: string): void {
  if (!mayUse(caller, space)) throw new AllotError("forbidden", `${limited(caller.access!)}; it cannot act in space ${space}`);
}

/** For what only an every-space caller may do (making or removing spaces, forgetting an agent). */
export function checkEverySpace(caller: Caller, what: string): void {
  if (caller.access?.spaces != null) throw new AllotError("forbidden", `${limited(caller.access)}; ${what} needs a token for every space`);
}

/**
 * Before a pool is loaded: a pool named in a space the caller may not use is refused as such (403),
 * whether or not it exists. A pool by id can only be judged once loaded: see {@link checkPoolSeen}.
 */
export function checkPoolRef(caller: Caller, ref: PoolRef): void {
  if (!UUID.test(ref.pool)) checkSpace(caller, ref.space ?? DEFAULT_SPACE);
}

/** After a pool was loaded: one in another space answers exactly like a missing one. */
export function checkPoolSeen(caller: Caller, ref: PoolRef, pool: { space: string }): void {
  if (mayUse(caller, pool.space)) return;
  throw new AllotError("pool-not-found", UUID.test(ref.pool) ? `no pool has id ${ref.pool}` : `pool ${ref.pool} does not exist in space ${ref.space ?? DEFAULT_SPACE}`);
}

/** An allocation in another space answers exactly like a missing one. */
export function checkAllocationSeen(caller: Caller, id: string, space: string): void {
  if (!mayUse(caller, space)) throw new AllotError("allocation-not-found", `no allocation has id ${id}`);
}

/** Tokens and webhooks a space-limited admin may see and manage: those limited to some of its spaces. */
export function within(caller: Caller, thing: { spaces?: readonly string[] | null }): boolean {
  const mine = caller.access?.spaces;
  return mine == null || (!!thing.spaces && thing.spaces.length > 0 && thing.spaces.every((s) => mine.includes(s)));
}

/** Refuses making a token or webhook reaching beyond the caller's spaces. */
export function checkWithin(caller: Caller, thing: { spaces?: readonly string[] | null }, what: string): void {
  if (!within(caller, thing)) throw new AllotError("forbidden", `${limited(caller.access!)}; ${what} (give spaces)`);
}
