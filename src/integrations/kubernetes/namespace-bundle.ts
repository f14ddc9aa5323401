/**
 * One namespace's Metal3 / Cluster API state as a single document, for moving it to another Allot
 * (what a Metal3 pivot, clusterctl move, needs): every object as stored (uid, status, finalizers
 * included) and the Allot pools behind its IPPools with every allocation, address for address.
 * An import refuses anything that would clash with what the target holds, and otherwise lands
 * whole: the pools it made are removed again if a later step fails.
 */
import { type Caller, SERVER, checkSpace } from "../../engine/access.js";
import { AllotError } from "../../engine/errors.js";
import type { ChangeContext, Pool } from "../../engine/types.js";
import type { Engine } from "../../engine/engine.js";
import type { Token } from "../../engine/tokens.js";
import { admit, asAllotError, checkBody, ensureNamespace } from "./admission.js";
import { ADDRESSES, CAPI_ADDRESSES, InvalidObject, OWNER_ATTRIBUTE, POOLS, addressRefs, reconcile } from "./metal3.js";
import { currentRv, getObject, listObjects, putObject } from "./objects.js";
import { type KubeObject, RESOURCES, resourceOfKind } from "./resources.js";

export const BUNDLE_FORMAT = "allot-namespace";
export const BUNDLE_VERSION = 1;

export interface BundlePool {
  name: string;
  strategy: Pool["strategy"];
  allocateReserved: boolean;
  description: string;
  attributes: Record<string, unknown>;
  thresholds?: number[];
  ranges: { start: string; end: string; prefixLength: number | null }[];
  allocations: { address: string; size?: number; owner: string | null; mac: string | null; hostname: string | null; labels: Record<string, string>; expiresAt: string | null }[];
}

export interface Bundle {
  format: typeof BUNDLE_FORMAT;
  version: number;
  namespace: string;
  exportedAt: string;
  objects: KubeObject[];
  pools: BundlePool[];
}

export async function exportNamespace(engine: Engine, namespace: string, caller: Caller): Promise<Bundle> {
  try {
    await engine.getSpace(namespace, caller);
  } catch (err) {
    if (err instanceof AllotError && err.code === "space-not-found") throw new AllotError("space-not-found", `namespace ${namespace} does not exist here (namespaces are Allot spaces)`);
    throw err;
  }
  // objects and allocations are read apart: read again until no Kubernetes write came in between
  for (let attempt = 0; ; attempt++) {
    const { objects, rv } = await engine.store.read(async (sql) => ({
      objects: (await Promise.all(RESOURCES.map((t) => listObjects(sql, t, namespace)))).flat().map((s) => s.object),
      rv: await currentRv(sql),
    }));
    const pools = await poolsOf(engine, namespace, new Set(objects.filter((o) => o.kind === "IPPool").map((o) => o.metadata.uid)));
    if ((await engine.store.read(currentRv)) === rv || attempt === 4) {
      return { format: BUNDLE_FORMAT, version: BUNDLE_VERSION, namespace, exportedAt: new Date().toISOString(), objects, pools };
    }
  }
}

/** The Allot pools IPPools made (others in the space are not the namespace's Kubernetes state), with every allocation. */
async function poolsOf(engine: Engine, namespace: string, uids: Set<string | undefined>): Promise<BundlePool[]> {
  const pools: BundlePool[] = [];
  for (const pool of await engine.listPools({ space: namespace }, SERVER)) {
    if (!uids.has(pool.attributes[OWNER_ATTRIBUTE] as string)) continue;
    if (pool.usage.inChildPools !== "0") throw new AllotError("conflict", `pool ${pool.name} has child pools carved from it through /v1; a namespace export carries Metal3 state only: remove them first`);
    pools.push({
      name: pool.name,
      strategy: pool.strategy,
      allocateReserved: pool.allocateReserved,
      description: pool.description,
      attributes: pool.attributes,
      thresholds: pool.thresholds,
      ranges: pool.ranges.map((r) => ({ start: r.start, end: r.end, prefixLength: r.prefixLength })),
      allocations: (await engine.allAllocations({ pool: pool.id }, SERVER)).map((a) => ({ address: a.address, size: a.size, owner: a.owner, mac: a.mac, hostname: a.hostname, labels: a.labels, expiresAt: a.expiresAt })),
    });
  }
  return pools;
}

const bad = (message: string) => new AllotError("invalid-request", `import refused, nothing was changed: ${message}`);
/** After changes began: what was made has been taken away again (history keeps a record of both). */
const rolledBack = (message: string, code: ConstructorParameters<typeof AllotError>[0] = "conflict") => new AllotError(code, `import refused and rolled back: ${message}`);

/** The bundle's parts, each checked as a fresh write would be; throws naming the first bad part. */
function checkBundle(body: unknown, namespace: string): { bundle: Bundle; typed: { t: (typeof RESOURCES)[number]; o: KubeObject }[] } {
  const b = body as Partial<Bundle> | null;
  if (!b || typeof b !== "object" || b.format !== BUNDLE_FORMAT) throw bad(`this is not a namespace export (format ${BUNDLE_FORMAT}); whole-database exports load with allot import --data-dir`);
  if (b.version !== BUNDLE_VERSION) throw bad(`export version ${String(b.version)} is not one this server reads (${BUNDLE_VERSION})`);
  if (b.namespace !== namespace) throw bad(`the export holds namespace ${String(b.namespace)}, not ${namespace}`);
  if (!Array.isArray(b.objects) || !Array.isArray(b.pools)) throw bad("objects and pools must be lists");
  const typed = b.objects.map((o, i) => {
    const t = o && typeof o === "object" ? resourceOfKind(String(o.apiVersion), String(o.kind)) : undefined;
    if (!t) throw bad(`object ${i + 1} is not a kind Allot serves`);
    const [g, v] = String(o.apiVersion).split("/") as [string, string];
    try {
      const checked = checkBody(t, { g, v, ns: namespace }, o);
      admit(t, checked, null);
      return { t, o: { ...checked, ...(o.status ? { status: o.status } : {}) } };
    } catch (err) {
      throw bad(`${o.kind} "${String(o.metadata?.name)}": ${err instanceof InvalidObject ? err.message : (err as Error).message}`);
    }
  });
  const uids = new Set(typed.filter((x) => x.t === POOLS).map((x) => x.o.metadata.uid));
  const held = new Set<string>();
  for (const p of b.pools) {
    if (!p || typeof p !== "object" || typeof p.name !== "string" || !Array.isArray(p.ranges) || !Array.isArray(p.allocations)) throw bad("a pool needs name, ranges and allocations");
    if (!uids.has(p.attributes?.[OWNER_ATTRIBUTE] as string)) throw bad(`pool ${p.name} belongs to no IPPool in the export`);
    for (const a of p.allocations) held.add(`${p.name} ${String(a?.owner)} ${String(a?.address)}`);
  }
  // an address object whose allocation is missing would let the target hand that address out again
  for (const { t, o } of typed) {
    if (t !== ADDRESSES && t !== CAPI_ADDRESSES) continue;
    const { pool, claim, address } = addressRefs(t, o);
    if (!held.has(`${String(pool)} ${String(claim)} ${String(address)}`)) throw bad(`IPAddress ${o.metadata.name} (${String(address)} for claim ${String(claim)}) has no allocation in pool ${String(pool)} in the export; export again`);
  }
  return { bundle: b as Bundle, typed };
}

export async function importNamespace(engine: Engine, token: Token, namespace: string, body: unknown, ctx: ChangeContext): Promise<{ objects: number; pools: number; allocations: number }> {
  checkSpace(ctx, namespace);
  const { bundle, typed } = checkBundle(body, namespace);
  // nothing of the same name may be here already: an import adds a namespace's state, it never merges
  const clashes = await engine.store.read(async (sql) => {
    const found: string[] = [];
    for (const { t, o } of typed) if (await getObject(sql, t, namespace, o.metadata.name)) found.push(`${t.kind} ${o.metadata.name}`);
    return found;
  });
  for (const p of bundle.pools) {
    try {
      await engine.getPool({ pool: p.name, space: namespace }, SERVER);
      clashes.push(`Allot pool ${p.name}`);
    } catch (err) {
      if (!(err instanceof AllotError && (err.code === "pool-not-found" || err.code === "space-not-found"))) throw err;
    }
  }
  if (clashes.length > 0) throw new AllotError("conflict", `import refused, nothing was changed: namespace ${namespace} already has ${clashes.slice(0, 5).join(", ")}${clashes.length > 5 ? ", …" : ""}`);

  let madeSpace: boolean;
  try {
    madeSpace = await ensureNamespace(engine, token, namespace, ctx);
  } catch (err) {
    throw asAllotError(`import refused, nothing was changed: namespace ${namespace}`, err);
  }
  const made: string[] = [];
  let allocations = 0;
  try {
    for (const p of bundle.pools) {
      const pool = await engine.createPool(
        {
          name: p.name,
          space: namespace,
          ranges: p.ranges.map((r) => ({ start: r.start, end: r.end, ...(r.prefixLength !== null ? { prefixLength: r.prefixLength } : {}) })),
          strategy: p.strategy,
          allocateReserved: p.allocateReserved,
          description: p.description,
          attributes: p.attributes,
          ...(p.thresholds ? { thresholds: p.thresholds } : {}),
        },
        ctx,
      );
      made.push(pool.id);
      for (const a of p.allocations) {
        // one that ran out while moving runs out at once here too
        const ttl = a.expiresAt ? Math.max(1, Math.ceil((Date.parse(a.expiresAt) - Date.now()) / 1000)) : undefined;
        await engine.allocate(
          { pool: pool.id },
          {
            address: a.address,
            ...(a.size && a.size > 1 ? { size: a.size } : {}),
            ...(a.owner !== null ? { owner: a.owner } : {}),
            ...(a.mac !== null ? { mac: a.mac } : {}),
            ...(a.hostname !== null ? { hostname: a.hostname } : {}),
            labels: a.labels,
            ...(ttl ? { ttl } : {}),
          },
          ctx,
        );
        allocations++;
      }
    }
    await engine.store.transaction(async (sql) => {
      for (const { t, o } of typed) {
        if (await getObject(sql, t, namespace, o.metadata.name)) throw new AllotError("conflict", `${t.kind} ${o.metadata.name} appeared in namespace ${namespace} during the import`);
        await putObject(sql, t, o);
      }
    });
  } catch (err) {
    const failures: string[] = [];
    for (const id of made.reverse()) await engine.deletePool({ pool: id }, { force: true }, ctx).catch((e: unknown) => failures.push(`pool ${id}: ${(e as Error).message}`));
    if (madeSpace) await engine.deleteSpace(namespace, ctx).catch((e: unknown) => failures.push(`space ${namespace}: ${(e as Error).message}`));
    const why = err instanceof AllotError ? err.message : "an unexpected error (see the server log)";
    if (failures.length > 0) throw new AllotError("conflict", `import failed (${why}) and could not be fully rolled back: ${failures.join("; ")}`);
    if (err instanceof AllotError) throw rolledBack(why, err.code);
    throw err;
  }
  await reconcile({ engine, store: engine.store, ctx }, namespace);
  return { objects: typed.length, pools: bundle.pools.length, allocations };
}
