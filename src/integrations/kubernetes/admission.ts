/**
 * What every write of a Kubernetes-style object passes through, whichever door it came in by (the
 * kube API, `allot apply`, a namespace import): the body's shape, Metal3's admission rules, and the
 * namespace (an Allot space) it lands in.
 */
import { SERVER } from "../../engine/access.js";
import type { Engine } from "../../engine/engine.js";
import { AllotError } from "../../engine/errors.js";
import type { Token } from "../../engine/tokens.js";
import type { ChangeContext } from "../../engine/types.js";
import { parseAddress } from "../../addr/index.js";
import { CAPI_CLAIMS, CLAIMS, InvalidObject, POOLS, entriesOf, inEntry, validateClaim, validatePool } from "./metal3.js";
import type { KubeObject, ResourceType } from "./resources.js";

/** A Kubernetes Status error: its HTTP code, its reason word and a message. */
export class KubeError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** The object a body describes, for the group/version/namespace it is written to (and the name, when the URL has one). */
export function checkBody(t: ResourceType, p: { g: string; v: string; ns: string }, body: unknown, name?: string): KubeObject {
  if (!body || typeof body !== "object" || Array.isArray(body)) throw new KubeError(400, "BadRequest", "the body must be a JSON object");
  const o = structuredClone(body) as KubeObject;
  if (o.apiVersion !== `${p.g}/${p.v}` || o.kind !== t.kind) {
    throw new KubeError(400, "BadRequest", `the object is ${o.apiVersion ?? "?"}/${o.kind ?? "?"}, but this path serves ${p.g}/${p.v} ${t.kind}`);
  }
  if (o.metadata !== undefined && (o.metadata === null || typeof o.metadata !== "object" || Array.isArray(o.metadata))) throw new InvalidObject("metadata: must be an object", "metadata");
  o.metadata = { ...(o.metadata ?? {}) } as KubeObject["metadata"];
  if (typeof o.metadata.name !== "string" || !NAME.test(o.metadata.name)) {
    throw new InvalidObject(`metadata.name: "${String(o.metadata.name ?? "")}" must be a DNS subdomain (lower case letters, digits, '-' and '.')`, "metadata.name");
  }
  if (name !== undefined && o.metadata.name !== name) throw new KubeError(400, "BadRequest", `the name in the body (${o.metadata.name}) is not the name in the URL (${name})`);
  if (o.metadata.namespace !== undefined && o.metadata.namespace !== p.ns) throw new KubeError(400, "BadRequest", `the namespace in the body (${o.metadata.namespace}) is not the one in the URL (${p.ns})`);
  for (const field of ["labels", "annotations"] as const) {
    const m = o.metadata[field];
    if (m !== undefined && (m === null || typeof m !== "object" || Array.isArray(m) || Object.values(m).some((v) => typeof v !== "string"))) {
      throw new InvalidObject(`metadata.${field}: must map names to strings`, `metadata.${field}`);
    }
  }
  if (o.spec !== undefined && (o.spec === null || typeof o.spec !== "object" || Array.isArray(o.spec))) throw new InvalidObject("spec: must be an object", "spec");
  o.metadata.namespace = p.ns;
  return o;
}

/**
 * The CRD's defaults (Metal3's `allocationStrategy: sequential`), filled in on `o`, which is returned.
 * kube-apiserver fills them in on every write and every read, so an object stored before a default
 * existed shows it too: admit() does it on writes, the kube API on reads.
 */
export function applyDefaults(t: ResourceType, o: KubeObject): KubeObject {
  // (Metal3's defaulting webhook also turns an empty strategy into the default)
  if (t === POOLS && o.spec && (o.spec.allocationStrategy === undefined || o.spec.allocationStrategy === null || o.spec.allocationStrategy === "")) {
    o.spec = { ...o.spec, allocationStrategy: "sequential" };
  }
  return o;
}

/** Metal3's admission for a new object (before = null) or a change to one: `o` gets its defaults, then is checked. */
export function admit(t: ResourceType, o: KubeObject, before: KubeObject | null): void {
  applyDefaults(t, o);
  if (t === POOLS) {
    validatePool(o);
    if (before) {
      const a = (before.spec ?? {}) as Record<string, unknown>;
      const b = (o.spec ?? {}) as Record<string, unknown>;
      if (a.namePrefix !== b.namePrefix) throw new InvalidObject("spec.namePrefix: is immutable", "spec.namePrefix");
      if ((a.allocationStrategy ?? "sequential") !== (b.allocationStrategy ?? "sequential")) throw new InvalidObject("spec.allocationStrategy: is immutable", "spec.allocationStrategy");
      // Metal3's webhook: what is handed out must stay inside the new entries
      const entries = entriesOf(b);
      for (const [claim, ip] of Object.entries(((before.status ?? {}).indexes ?? {}) as Record<string, string>)) {
        let a;
        try {
          a = parseAddress(ip);
        } catch {
          continue;
        }
        if (!entries.some((e) => inEntry(e, a))) throw new InvalidObject(`spec.pools: ${ip} is in use (by claim ${claim}) but out of bounds`, "spec.pools");
      }
    }
  }
  if (t === CLAIMS || t === CAPI_CLAIMS) {
    validateClaim(o, t);
    const ref = t === CLAIMS ? "pool" : "poolRef";
    if (before && JSON.stringify((before.spec ?? {})[ref]) !== JSON.stringify((o.spec ?? {})[ref])) throw new InvalidObject(`spec.${ref}: is immutable`, `spec.${ref}`);
  }
}

/** For the /v1 doors (apply, import): a Kubernetes-style refusal as an Allot error, prefixed with where it happened. */
export function asAllotError(where: string, err: unknown): unknown {
  const at = where ? `${where}: ` : "";
  if (err instanceof InvalidObject) return new AllotError("invalid-request", `${at}${err.message}`, { field: err.field });
  if (err instanceof KubeError) return new AllotError(err.code === 403 ? "forbidden" : err.code === 404 ? "space-not-found" : err.code === 409 ? "conflict" : "invalid-request", `${at}${err.message}`);
  return err;
}

/**
 * A namespace is a space: an all-spaces admin's first write makes it; other tokens need it to exist
 * (as on /v1). With `dryRun`, only says whether that would work. Answers whether it made the space.
 */
export async function ensureNamespace(engine: Engine, token: Token, ns: string, ctx: ChangeContext, dryRun = false): Promise<boolean> {
  if (!NAMESPACE.test(ns)) throw new KubeError(400, "BadRequest", `namespace "${ns}" is not a DNS label (lower case letters, digits and '-', at most 63)`);
  if (token.scope !== "admin" || token.spaces !== null || dryRun) {
    try {
      await engine.getSpace(ns, SERVER);
      return false;
    } catch {
      if (dryRun && token.scope === "admin" && token.spaces === null) return false; // it would be made
      throw new KubeError(404, "NotFound", `namespaces "${ns}" not found: an admin creates it (allot space create ${ns})`, { name: ns, kind: "namespaces" });
    }
  }
  return engine.ensureSpace({ name: ns, description: `Kubernetes namespace ${ns}` }, ctx);
}
