/**
 * `allot apply`: a whole manifest (pools, claims, addresses, in any number of namespaces) checked
 * object by object before anything is written, then written in one transaction, so a bad document
 * leaves every other one of the same apply unapplied. Each object becomes what the file says (its
 * labels, annotations and spec); its status, finalizers and identity are kept.
 */
import type { Engine } from "../../engine/engine.js";
import type { Token } from "../../engine/tokens.js";
import type { ChangeContext } from "../../engine/types.js";
import type { Sql } from "../../store/store.js";
import { KubeError, admit, asAllotError, checkBody, ensureNamespace } from "./admission.js";
import { reconcile } from "./metal3.js";
import { getObject, putObject } from "./objects.js";
import { type KubeObject, RESOURCES, type ResourceType, resourceOfKind } from "./resources.js";

export interface Applied {
  apiVersion: string;
  kind: string;
  namespace: string;
  name: string;
  action: "created" | "configured" | "unchanged";
}

interface Planned {
  t: ResourceType;
  object: KubeObject;
  where: string;
}

/** Labels Allot itself puts on IPPools (from clusterName), as Metal3 does. */
const MANAGED_LABELS = ["cluster.x-k8s.io/cluster-name", "cluster.x-k8s.io/provider"];

const KINDS = [...new Set(RESOURCES.map((r) => `${r.kind} (${r.versions.map((v) => `${r.group}/${v}`).join(", ")})`))].join(", ");

/** A refused document: which one, what it is, and what is wrong with it. */
function refuse(where: string, err: unknown): never {
  throw asAllotError(where, err);
}

/**
 * Reads every document as an object of a served kind and resolves its namespace; nothing is read or
 * written. Whether its spec is acceptable is judged once against what is stored (see decide).
 */
function plan(docs: unknown[], defaultNamespace: string, token: Token): Planned[] {
  const seen = new Set<string>();
  return docs.map((doc, i) => {
    let where = `document ${i + 1}`;
    if (!doc || typeof doc !== "object" || Array.isArray(doc)) refuse(where, new KubeError(400, "BadRequest", "is not an object (apiVersion, kind, metadata, spec)"));
    const d = doc as Partial<KubeObject>;
    where = `document ${i + 1} (${String(d.kind ?? "no kind")} "${String(d.metadata?.name ?? "")}")`;
    if (typeof d.apiVersion !== "string" || typeof d.kind !== "string") refuse(where, new KubeError(400, "BadRequest", "needs apiVersion and kind"));
    const t = resourceOfKind(d.apiVersion, d.kind);
    if (!t) refuse(where, new KubeError(400, "BadRequest", `${d.kind} in ${d.apiVersion} is not a kind Allot serves; it serves ${KINDS}`));
    const ns = typeof d.metadata?.namespace === "string" ? d.metadata.namespace : defaultNamespace;
    if (token.spaces !== null && !token.spaces.includes(ns)) {
      refuse(where, new KubeError(403, "Forbidden", `token ${token.name} is limited to namespaces ${token.spaces.join(", ")}; it cannot write to namespace ${ns}`));
    }
    const [g, v] = d.apiVersion.split("/") as [string, string];
    where = `${where.slice(0, -1)} in namespace ${ns})`;
    let object: KubeObject;
    try {
      object = checkBody(t, { g, v, ns }, { ...d, metadata: { ...(d.metadata ?? {}), namespace: ns } });
    } catch (err) {
      refuse(where, err);
    }
    const key = `${t.group}/${t.resource}/${ns}/${object.metadata.name}`;
    if (seen.has(key)) refuse(where, new KubeError(400, "BadRequest", "appears twice in the manifest"));
    seen.add(key);
    return { t, object, where };
  });
}

/** The stored object after applying `desired` to `live`: labels, annotations and spec as written; the rest kept. */
function merge(live: KubeObject | null, desired: KubeObject): KubeObject {
  const { status: _ignored, ...wanted } = desired;
  if (!live) return { ...wanted, metadata: { name: wanted.metadata.name, namespace: wanted.metadata.namespace, labels: wanted.metadata.labels, annotations: wanted.metadata.annotations } };
  const metadata = { ...live.metadata };
  for (const k of ["labels", "annotations"] as const) {
    // what others keep there stays: the labels Allot puts on IPPools, kubectl's last-applied record
    const kept = Object.fromEntries(Object.entries(live.metadata[k] ?? {}).filter(([key]) => (k === "labels" ? MANAGED_LABELS.includes(key) : key.startsWith("kubectl.kubernetes.io/"))));
    const next = { ...kept, ...(wanted.metadata[k] ?? {}) };
    if (Object.keys(next).length === 0) delete metadata[k];
    else metadata[k] = next;
  }
  return { ...live, apiVersion: wanted.apiVersion, metadata, spec: wanted.spec ?? {} };
}

const sameContent = (a: KubeObject, b: KubeObject) =>
  JSON.stringify([a.spec ?? {}, a.metadata.labels ?? {}, a.metadata.annotations ?? {}]) === JSON.stringify([b.spec ?? {}, b.metadata.labels ?? {}, b.metadata.annotations ?? {}]);

/** Each document checked against what is stored (immutable fields); the outcome of writing it. */
async function decide(sql: Sql, planned: Planned[]) {
  const out: { p: Planned; next: KubeObject; action: Applied["action"] }[] = [];
  for (const p of planned) {
    const live = (await getObject(sql, p.t, p.object.metadata.namespace, p.object.metadata.name))?.object ?? null;
    const next = merge(live, p.object);
    try {
      admit(p.t, next, live);
    } catch (err) {
      refuse(p.where, err);
    }
    out.push({ p, next, action: !live ? "created" : sameContent(live, next) ? "unchanged" : "configured" });
  }
  return out;
}

export interface ApplyDeps {
  engine: Engine;
  token: Token;
  ctx: ChangeContext;
  log?: (err: unknown) => void;
}

/** Applies a manifest's objects (all of them or, on any error, none); with dryRun only says what would happen. */
export async function applyManifest(deps: ApplyDeps, docs: unknown[], options: { namespace: string; dryRun: boolean }): Promise<Applied[]> {
  const store = deps.engine.store;
  const planned = plan(docs, options.namespace, deps.token);
  const namespaces = [...new Set(planned.map((p) => p.object.metadata.namespace))];
  // where a namespace would be made (or nothing written), the documents are judged first, outside any
  // write, so a refused manifest makes no namespace either; otherwise once, in the write
  const missing = await store.read(async (sql) => {
    for (const ns of namespaces) if (!(await sql.get("SELECT 1 AS x FROM spaces WHERE name = ?", [ns]))) return true;
    return false;
  });
  const preview = missing || options.dryRun ? await store.read((sql) => decide(sql, planned)) : null;
  for (const ns of namespaces) {
    try {
      await ensureNamespace(deps.engine, deps.token, ns, deps.ctx, options.dryRun);
    } catch (err) {
      refuse(`namespace ${ns}`, err);
    }
  }
  const decided = options.dryRun
    ? preview!
    : await store.transaction(async (sql) => {
        // judged inside the write: another writer may have changed an object since any look
        const d = await decide(sql, planned);
        for (const { p, next, action } of d) if (action !== "unchanged") await putObject(sql, p.t, next);
        return d;
      });
  if (!options.dryRun) {
    for (const ns of namespaces) await reconcile({ engine: deps.engine, store, ctx: deps.ctx, log: deps.log }, ns);
  }
  return decided.map(({ p, action }) => ({ apiVersion: p.object.apiVersion, kind: p.t.kind, namespace: p.object.metadata.namespace, name: p.object.metadata.name, action }));
}
