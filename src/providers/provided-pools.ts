/**
 * Pools whose one range comes from an upstream provider: obtain the block, then create the pool; delete
 * the pool, then release the block. Network calls never run inside a database transaction, and a pool
 * that cannot be created gives its block back.
 */
import { AllotError } from "../engine/errors.js";
import type { Engine } from "../engine/engine.js";
import type { ChangeContext, Pool, PoolInput, PoolRef } from "../engine/types.js";
import { providers } from "./index.js";
import { ProviderError } from "./provider.js";

/** What a caller writes in a pool's `provider`: the type, how many addresses, and the provider's own parameters. */
export interface ProviderRequest {
  type: string;
  size: number;
  [param: string]: unknown;
}

/** The engine calls this needs; each passes the context's access, so the caller's spaces are checked. */
export type PoolEngine = Pick<Engine, "createPool" | "getPool" | "deletePool" | "poolSecrets">;

/** A provider's failure as the API answers it: 400 when the request was wrong, 502 when the provider failed. */
export function asAllotError(err: unknown): unknown {
  if (!(err instanceof ProviderError)) return err;
  return new AllotError(err.badRequest ? "invalid-request" : "provider-failed", err.message);
}

const MAX_PROVIDED = 2 ** 24;

export async function createProvidedPool(engine: PoolEngine, input: PoolInput, request: ProviderRequest, ctx: ChangeContext): Promise<Pool> {
  const provider = providers[request.type];
  if (!provider) throw new AllotError("invalid-request", `provider type must be one of ${Object.keys(providers).join(", ")}, not ${JSON.stringify(request.type)}`);
  if (input.cidr !== undefined || input.ranges !== undefined) throw new AllotError("invalid-request", "a pool from a provider gets its range from the provider: leave out cidr and ranges");
  const { type: _type, size, ...rest } = request;
  if (!Number.isInteger(size) || size < 1 || size > MAX_PROVIDED) throw new AllotError("invalid-request", `provider size must be a whole number from 1 to ${MAX_PROVIDED}, not ${size}`);
  const secrets = input.secrets ?? {};
  // access and a free name first: nothing is reserved upstream for a request that will be refused
  try {
    await engine.getPool({ pool: input.name, space: input.space ?? "default" }, ctx);
    throw new AllotError("pool-exists", `pool ${input.name} already exists in space ${input.space ?? "default"}`);
  } catch (err) {
    if (!(err instanceof AllotError && err.code === "pool-not-found")) throw err;
  }
  let params;
  let block;
  try {
    params = provider.validate(rest, secrets);
    block = await provider.obtain(params, secrets, size, `allot pool ${input.space ?? "default"}/${input.name}`);
  } catch (err) {
    throw asAllotError(err);
  }
  const record = { type: provider.type, blockId: block.blockId, params };
  try {
    return await engine.createPool(
      {
        ...input,
        ranges: [{ start: block.start, end: block.end, prefixLength: block.prefixLength, ...(block.gateway ? { gateway: block.gateway } : {}) }],
        // every address of a bought block is the tenant's to lease
        allocateReserved: input.allocateReserved ?? true,
        provider: record,
      },
      ctx,
    );
  } catch (err) {
    await provider.release(record, secrets).catch(() => {}); // give the block back; the pool error is the one to report
    throw err;
  }
}

/** Deletes a pool and, if a provider supplied it, releases its block there. */
export async function deletePool(engine: PoolEngine, ref: PoolRef, options: { force?: boolean }, ctx: ChangeContext): Promise<Pool> {
  const before = await engine.getPool(ref, ctx);
  const secrets = before.provider ? await engine.poolSecrets(ref, ctx) : {};
  const deleted = await engine.deletePool(ref, options, ctx);
  const record = deleted.provider;
  if (record) {
    const provider = providers[record.type];
    try {
      await provider!.release(record, secrets);
    } catch (err) {
      throw new AllotError(
        "provider-failed",
        `pool ${deleted.name} was deleted, but ${provider!.describe(record)} could not be released (${(err as Error).message}); release it at the provider by hand`,
      );
    }
  }
  return deleted;
}
