/**
 * OpenAPI v3 for the Kubernetes-style resources, laid out as kube-apiserver publishes CRDs (what
 * `kubectl explain` reads): an index at /openapi/v3 naming one document per group/version by a URL
 * carrying its hash, and in each document the kinds' schemas (Metal3's and Cluster API's CRD schemas,
 * as far as Allot serves them; ObjectMeta by $ref) and the paths kubectl finds a resource's kind by.
 */
import { createHash } from "node:crypto";
import { CAPI, METAL3, RESOURCES, type ResourceType } from "./resources.js";

type Schema = Record<string, unknown>;

const META = "io.k8s.apimachinery.pkg.apis.meta.v1";
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

const str = (description: string, extra: Schema = {}): Schema => ({ description, type: "string", ...extra });
const int = (description: string, extra: Schema = {}): Schema => ({ description, type: "integer", ...extra });
const time = (description: string): Schema => str(description, { format: "date-time" });
const list = (description: string, items: Schema): Schema => ({ description, type: "array", items });
const map = (description: string, values: Schema = { type: "string" }): Schema => ({ description, type: "object", additionalProperties: values });
const obj = (description: string, properties: Record<string, Schema>, required: string[] = []): Schema => ({
  description,
  type: "object",
  properties,
  ...(required.length > 0 ? { required } : {}),
});
const atomic = (s: Schema): Schema => ({ ...s, "x-kubernetes-map-type": "atomic" });

const ip = (description: string) => str(description);
const prefix = (description: string) => int(description, { minimum: 0, maximum: 128 });
const dnsServers = (description: string) => list(description, str("IPAddress is used for validation of an IP address."));

// ---- apimachinery types, shared by every document

const OBJECT_META = obj(
  "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.",
  {
    name: str("Name must be unique within a namespace. A DNS subdomain: lower case letters, digits, '-' and '.'. Cannot be updated."),
    namespace: str("Namespace defines the space within which each name must be unique. In Allot a namespace is an Allot space. Cannot be updated."),
    uid: str("UID is the unique in time and space value for this object. It is set by the server on successful creation of a resource and is not allowed to change on PUT operations. Read-only."),
    resourceVersion: str(
      "An opaque value that represents the internal version of this object that can be used by clients to determine when objects have changed. May be used for optimistic concurrency, change detection, and the watch operation on a resource or set of resources. Read-only.",
    ),
    generation: int("A sequence number representing a specific generation of the desired state (it grows when spec changes). Populated by the system. Read-only.", { format: "int64" }),
    creationTimestamp: time("CreationTimestamp is a timestamp representing the server time when this object was created. Read-only."),
    deletionTimestamp: time(
      "DeletionTimestamp is the time at which deletion of this object was requested. It is set, instead of the object being removed, while the object has finalizers; the object goes when the last one is removed. Read-only.",
    ),
    labels: map("Map of string keys and values that can be used to organize and categorize (scope and select) objects. May match selectors of replication controllers and services."),
    annotations: map("Annotations is an unstructured key value map stored with a resource that may be set by external tools to store and retrieve arbitrary metadata. They are not queryable."),
    finalizers: {
      ...list("Must be empty before the object is deleted from the registry. Each entry is an identifier for the responsible component that will remove the entry from the list.", { type: "string" }),
      "x-kubernetes-list-type": "set",
    },
    ownerReferences: {
      ...list("List of objects depended by this object. Allot sets them on the IPAddress objects it makes (the pool and the claim).", ref(`${META}.OwnerReference`)),
      "x-kubernetes-list-map-keys": ["uid"],
      "x-kubernetes-list-type": "map",
    },
  },
);

const OWNER_REFERENCE = atomic(
  obj(
    "OwnerReference contains enough information to let you identify an owning object. An owning object must be in the same namespace as the dependent, or be cluster-scoped, so there is no namespace field.",
    {
      apiVersion: str("API version of the referent."),
      kind: str("Kind of the referent."),
      name: str("Name of the referent."),
      uid: str("UID of the referent."),
      controller: { description: "If true, this reference points to the managing controller.", type: "boolean" },
      blockOwnerDeletion: { description: "If true, AND if the owner has the \"foregroundDeletion\" finalizer, then the owner cannot be deleted from the key-value store until this reference is removed.", type: "boolean" },
    },
    ["apiVersion", "kind", "name", "uid"],
  ),
);

const LIST_META = obj("ListMeta describes metadata that synthetic resources must have, including lists and various status objects.", {
  resourceVersion: str("String that identifies the server's internal version of this object that can be used by clients to determine when objects have changed; a watch from it sees every change after the list. Read-only."),
});

const API_VERSION = str(
  "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
);
const KIND = str(
  "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
);
const METADATA = {
  allOf: [ref(`${META}.ObjectMeta`)],
  default: {},
  description: "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
};

/** corev1.ObjectReference, inlined as controller-gen does. */
const objectReference = (description: string, required: string[] = []): Schema =>
  atomic(
    obj(
      description,
      {
        apiVersion: str("API version of the referent."),
        fieldPath: str("If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]."),
        kind: str("Kind of the referent. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"),
        name: str("Name of the referent. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#names"),
        namespace: str("Namespace of the referent. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/"),
        resourceVersion: str("Specific resourceVersion to which this reference is made, if any."),
        uid: str("UID of the referent. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#uids"),
      },
      required,
    ),
  );

// ---- Metal3: ipam.metal3.io/v1alpha1

const IPPOOL = {
  description: "IPPool is the Schema for the ippools API. Allot serves it as an Allot pool of the same name in the namespace's space.",
  spec: obj(
    "IPPoolSpec defines the desired state of IPPool.",
    {
      clusterName: str("ClusterName is the name of the Cluster this object belongs to. Allot does not look the Cluster up; it labels the pool cluster.x-k8s.io/cluster-name with it."),
      namePrefix: str("namePrefix is the prefix used to generate the IPAddress object names (namePrefix-address, with '.' and ':' as '-'). Cannot be changed.", { minLength: 1 }),
      allocationStrategy: str(
        "AllocationStrategy defines how IP addresses are allocated from the pools. \"sequential\" (default) allocates the first available IP. \"random\" allocates a random available IP. In both strategies, multiple pools are consumed in declaration order: a pool is fully exhausted before the next one is used, and the strategy only changes how an address is selected within a single pool. Cannot be changed.",
        { default: "sequential", enum: ["sequential", "random"] },
      ),
      pools: list(
        "Pools contains the list of IP addresses pools. Entries may not overlap nor mix IPv4 and IPv6; a change must keep every address handed out inside them.",
        obj(
          "MetaDataIPAddress contains the info to render the ip address. It is IP-version agnostic. Give start and end, start and subnet, start alone (to the end of the address space) or subnet alone.",
          {
            start: ip("Start is the first ip address that can be rendered"),
            end: ip("End is the last IP address that can be rendered. It is used as a validation that the rendered IP is in bound."),
            subnet: str("Subnet is used to validate that the rendered IP is in bounds. In case the Start value is not given, it is derived from the subnet ip incremented by 1 (`192.168.0.1` for `192.168.0.0/24`)"),
            prefix: prefix("Prefix is the mask of the network as integer (max 128). Overrides the pool's prefix."),
            gateway: ip("Gateway is the gateway ip address. Overrides the pool's gateway."),
            dnsServers: dnsServers("DNSServers is the list of dns servers. Overrides the pool's dnsServers."),
          },
        ),
      ),
      prefix: prefix("Prefix is the mask of the network as integer (max 128)"),
      gateway: ip("Gateway is the gateway ip address"),
      dnsServers: dnsServers("DNSServers is the list of dns servers"),
      preAllocations: map(
        "PreAllocations contains the preallocated IP addresses: the address (in an entry of pools) a claim of that name gets. No address may be given to two claims.",
        str("IPAddress is used for validation of an IP address."),
      ),
    },
    ["namePrefix"],
  ),
  status: obj("IPPoolStatus defines the observed state of IPPool.", {
    indexes: map("Allocations contains the map of objects and IP addresses they have (claim name to address).", str("IPAddress is used for validation of an IP address.")),
    lastUpdated: time("LastUpdated identifies when this status was last observed."),
    errorMessage: str("Why Allot cannot serve this pool (its Allot pool's name is taken, say); absent when it can. Not in Metal3."),
  }),
};

const IPCLAIM = {
  description: "IPClaim is the Schema for the ipclaims API. An ipAddress annotation asks for that address.",
  spec: obj(
    "IPClaimSpec defines the desired state of IPClaim.",
    { pool: objectReference("Pool is the IPPool this was generated from. Allot looks it up by name in the claim's namespace. Cannot be changed.", ["name"]) },
    ["pool"],
  ),
  status: obj("IPClaimStatus defines the observed state of IPClaim.", {
    address: objectReference("Address is the IPAddress that was generated for this claim."),
    errorMessage: str("ErrorMessage contains the error message (Exhausted IP Pools, Requested IP not available, Pre-allocated IP out of bounds, ...)."),
  }),
};

const IPADDRESS = {
  description: "IPAddress is the Schema for the ipaddresses API. Allot makes one for each IPClaim it binds.",
  spec: obj(
    "IPAddressSpec defines the desired state of IPAddress.",
    {
      address: ip("Address contains the IP address"),
      claim: objectReference("Claim points to the object the IPClaim was created for."),
      pool: objectReference("Pool is the IPPool this was generated from."),
      prefix: prefix("Prefix is the mask of the network as integer (max 128)"),
      gateway: ip("Gateway is the gateway ip address"),
      dnsServers: dnsServers("DNSServers is the list of dns servers"),
    },
    ["address", "claim", "pool"],
  ),
};

// ---- Cluster API: ipam.cluster.x-k8s.io/v1beta2 and v1beta1

const poolReference = (description: string, required: string[]) =>
  atomic(
    obj(
      description,
      {
        apiGroup: str("APIGroup is the group for the resource being referenced (ipam.metal3.io for an IPPool)."),
        kind: str("Kind is the type of resource being referenced (IPPool)."),
        name: str("Name is the name of resource being referenced"),
      },
      required,
    ),
  );
const localReference = (description: string) => atomic(obj(description, { name: str("Name of the referent.") }));

const CONDITION = obj(
  "Condition defines an observation of a Cluster API resource operational state.",
  {
    type: str("type of condition in CamelCase or in foo.example.com/CamelCase."),
    status: str("status of the condition, one of True, False, Unknown.", { enum: ["True", "False", "Unknown"] }),
    reason: str("reason is the reason for the condition's last transition in CamelCase."),
    message: str("message is a human readable message indicating details about the transition. This field may be empty."),
    severity: str("severity provides an explicit classification of Reason code, so the users or machines can immediately understand the current situation and act accordingly. The Severity field MUST be set only when Status=False."),
    lastTransitionTime: time("lastTransitionTime is the last time the condition transitioned from one status to another."),
  },
  ["lastTransitionTime", "status", "type"],
);

const IPADDRESSCLAIM = {
  description: "IPAddressClaim is the Schema for the ipaddressclaim API.",
  spec: obj(
    "spec is the desired state of IPAddressClaim.",
    {
      clusterName: str("clusterName is the name of the Cluster this object belongs to.", { maxLength: 63, minLength: 1 }),
      poolRef: poolReference("poolRef is a reference to the pool from which an IP address should be created. Allot looks the IPPool up by name in the claim's namespace. Cannot be changed.", ["name"]),
    },
    ["poolRef"],
  ),
  status: obj("status is the observed state of IPAddressClaim.", {
    addressRef: localReference("addressRef is a reference to the address that was created for this claim."),
    conditions: {
      ...list(
        "conditions summarises the current state of the IPAddressClaim. Allot sets Ready: True (AddressAllocated) once an address is bound, or False (PoolExhausted, AllocationFailed) with the reason in message.",
        CONDITION,
      ),
      "x-kubernetes-list-map-keys": ["type"],
      "x-kubernetes-list-type": "map",
    },
  }),
};

const CAPI_IPADDRESS = {
  description: "IPAddress is the Schema for the ipaddress API. Allot makes one for each IPAddressClaim it binds.",
  spec: obj(
    "spec is the desired state of IPAddress.",
    {
      address: str("address is the IP address."),
      claimRef: localReference("claimRef is a reference to the claim this IPAddress was created for."),
      poolRef: poolReference("poolRef is a reference to the pool that this IPAddress was created from.", ["kind", "name"]),
      prefix: int("prefix is the prefix of the address."),
      gateway: str("gateway is the network gateway of the network the address is from."),
    },
    ["address", "claimRef", "poolRef", "prefix"],
  ),
};

const KINDS = new Map<ResourceType, { description: string; spec: Schema; status?: Schema }>(
  RESOURCES.map((t) => {
    const kind = t.group === METAL3 ? { ippools: IPPOOL, ipclaims: IPCLAIM, ipaddresses: IPADDRESS }[t.resource] : t.group === CAPI ? { ipaddressclaims: IPADDRESSCLAIM, ipaddresses: CAPI_IPADDRESS }[t.resource] : undefined;
    if (!kind) throw new Error(`no OpenAPI schema for ${t.resource}.${t.group}`);
    return [t, kind];
  }),
);

// ---- documents

/** kube-apiserver's name for a type: the group reversed, then version and kind (io.metal3.ipam.v1alpha1.IPPool). */
const schemaName = (group: string, version: string, kind: string) => `${group.split(".").reverse().join(".")}.${version}.${kind}`;
const camel = (s: string) => s.split(/[^A-Za-z0-9]/).filter(Boolean).map((w) => w[0]!.toUpperCase() + w.slice(1)).join("");

function operations(t: ResourceType, group: string, version: string): Record<string, Schema> {
  const gvk = { group, version, kind: t.kind };
  const base = `/apis/${group}/${version}`;
  const id = (verb: string, namespaced: boolean, suffix = "") => `${verb}${camel(group)}${camel(version)}${namespaced ? "Namespaced" : ""}${t.kind}${suffix}${verb === "list" && !namespaced ? "ForAllNamespaces" : ""}`;
  const json = (name: string) => ({ content: { "application/json": { schema: ref(name) } } });
  const one = schemaName(group, version, t.kind);
  const many = schemaName(group, version, `${t.kind}List`);
  const op = (action: string, operationId: string, responses: Record<string, unknown>, extra: Schema = {}) => ({
    tags: [`${camel(group).replace(/^./, (c) => c.toLowerCase())}_${version}`],
    operationId,
    ...extra,
    responses: { ...responses, "401": { description: "Unauthorized" } },
    "x-kubernetes-action": action,
    "x-kubernetes-group-version-kind": gvk,
  });
  const query = (name: string, description: string, type = "string") => ({ name, in: "query", description, schema: { type } });
  const path = (name: string, description: string) => ({ name, in: "path", description, required: true, schema: { type: "string" } });
  const listParams = [
    query("labelSelector", "A selector to restrict the list of returned objects by their labels (=, ==, != and existence)."),
    query("fieldSelector", "A selector to restrict the list of returned objects by their fields (metadata.name, metadata.namespace)."),
    query("watch", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.", "boolean"),
    query("allowWatchBookmarks", "requests watch events with type \"BOOKMARK\".", "boolean"),
    query("resourceVersion", "With watch: the version to stream changes from."),
    query("timeoutSeconds", "Timeout for the watch call.", "integer"),
  ];
  const dryRun = query("dryRun", "When present (All), indicates that modifications should not be persisted.");
  const namespace = path("namespace", "object name and auth scope, such as for teams and projects");
  const name = path("name", `name of the ${t.kind}`);
  const body = (types: string[]) => ({ requestBody: { required: true, content: Object.fromEntries(types.map((c) => [c, { schema: ref(one) }])) } });
  // the patch types kube-apiserver lists for a custom resource (strategic merge is not among them)
  const patchBody = { requestBody: { required: true, content: Object.fromEntries(["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"].map((c) => [c, { schema: { type: "object" } }])) } };
  const patchParams = [dryRun, query("fieldManager", "A name associated with the actor or entity that is making these changes.")];
  // the object, and its status subresource (no delete there)
  const item = (suffix: string): Schema => ({
    get: op("get", id("read", true, suffix), { "200": { description: "OK", ...json(one) } }),
    put: op("put", id("replace", true, suffix), { "200": { description: "OK", ...json(one) } }, { parameters: [dryRun], ...body(["application/json"]) }),
    // (201: a server-side apply that created the object)
    patch: op("patch", id("patch", true, suffix), { "200": { description: "OK", ...json(one) }, "201": { description: "Created", ...json(one) } }, { parameters: patchParams, ...patchBody }),
    ...(suffix === "" ? { delete: op("delete", id("delete", true, suffix), { "200": { description: "OK", ...json(one) } }, { parameters: [dryRun] }) } : {}),
    parameters: [name, namespace],
  });
  return {
    [`${base}/${t.resource}`]: { get: op("list", id("list", false), { "200": { description: "OK", ...json(many) } }), parameters: listParams },
    [`${base}/namespaces/{namespace}/${t.resource}`]: {
      get: op("list", id("list", true), { "200": { description: "OK", ...json(many) } }, { parameters: listParams }),
      post: op("post", id("create", true), { "201": { description: "Created", ...json(one) } }, { parameters: [dryRun], ...body(["application/json"]) }),
      parameters: [namespace],
    },
    [`${base}/namespaces/{namespace}/${t.resource}/{name}`]: item(""),
    [`${base}/namespaces/{namespace}/${t.resource}/{name}/status`]: item("Status"),
  };
}

function kindSchemas(t: ResourceType, group: string, version: string): Record<string, Schema> {
  const k = KINDS.get(t)!;
  const one = schemaName(group, version, t.kind);
  return {
    [one]: {
      description: k.description,
      type: "object",
      properties: { apiVersion: API_VERSION, kind: KIND, metadata: METADATA, spec: k.spec, ...(k.status ? { status: k.status } : {}) },
      "x-kubernetes-group-version-kind": [{ group, kind: t.kind, version }],
    },
    [schemaName(group, version, `${t.kind}List`)]: {
      description: `${t.kind}List is a list of ${t.kind}`,
      type: "object",
      required: ["items"],
      properties: {
        apiVersion: API_VERSION,
        items: list(`List of ${t.resource}.`, ref(one)),
        kind: KIND,
        metadata: { allOf: [ref(`${META}.ListMeta`)], default: {}, description: "Standard list metadata." },
      },
      "x-kubernetes-group-version-kind": [{ group, kind: `${t.kind}List`, version }],
    },
  };
}

export interface OpenApiDocument {
  /** The document as served, and kube-apiserver's hash of it (upper-case hex SHA-512). */
  json: string;
  hash: string;
  /** Where the index points for it. */
  url: string;
}

const DOCUMENTS = new Map<string, OpenApiDocument>();
for (const group of [...new Set(RESOURCES.map((r) => r.group))]) {
  for (const version of RESOURCES.find((r) => r.group === group)!.versions) {
    const types = RESOURCES.filter((r) => r.group === group && r.versions.includes(version));
    const doc = {
      openapi: "3.0.0",
      info: { title: "Allot", version: `${group}/${version}` },
      paths: Object.assign({}, ...types.map((t) => operations(t, group, version))),
      components: {
        schemas: {
          ...Object.assign({}, ...types.map((t) => kindSchemas(t, group, version))),
          [`${META}.ObjectMeta`]: OBJECT_META,
          [`${META}.OwnerReference`]: OWNER_REFERENCE,
          [`${META}.ListMeta`]: LIST_META,
        },
      },
    };
    const json = JSON.stringify(doc);
    const hash = createHash("sha512").update(json).digest("hex").toUpperCase();
    DOCUMENTS.set(`apis/${group}/${version}`, { json, hash, url: `/openapi/v3/apis/${group}/${version}?hash=${hash}` });
  }
}

/** GET /openapi/v3: where each group/version's document is. */
export function openApiV3Index(): { paths: Record<string, { serverRelativeURL: string }> } {
  return { paths: Object.fromEntries([...DOCUMENTS].map(([path, d]) => [path, { serverRelativeURL: d.url }])) };
}

export function openApiV3Document(group: string, version: string): OpenApiDocument | undefined {
  return DOCUMENTS.get(`apis/${group}/${version}`);
}

/** Whether an Accept header takes JSON (kube-apiserver's other choice is protobuf, which Allot does not write). */
export function acceptsJson(accept: string | undefined): boolean {
  if (!accept) return true;
  return accept.split(",").some((clause) => {
    const [range, ...params] = clause.split(";").map((s) => s.trim().toLowerCase());
    if (params.some((p) => /^q=0(\.0*)?$/.test(p))) return false;
    return range === "*/*" || range === "application/*" || range === "application/json";
  });
}
