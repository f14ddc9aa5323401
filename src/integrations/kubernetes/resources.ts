/**
 * The Kubernetes-style resources Allot serves: Metal3's IPAM group and Cluster API's IPAM contract.
 * Each version of a group maps onto one stored kind; Table columns are what `kubectl get` prints.
 */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    creationTimestamp?: string;
    deletionTimestamp?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    finalizers?: string[];
    ownerReferences?: unknown[];
    [k: string]: unknown;
  };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

export interface Column {
  name: string;
  type: "string" | "integer" | "date";
  cell: (o: KubeObject) => string | number;
  priority?: number;
}

export interface ResourceType {
  group: string;
  versions: string[];
  resource: string;
  singular: string;
  kind: string;
  shortNames: string[];
  columns: Column[];
}

const get = (o: unknown, path: string): unknown => path.split(".").reduce<unknown>((v, k) => (v && typeof v === "object" ? (v as Record<string, unknown>)[k] : undefined), o);
const str = (v: unknown) => (v === undefined || v === null ? "" : String(v));

export const METAL3 = "ipam.metal3.io";
export const CAPI = "ipam.cluster.x-k8s.io";

export const RESOURCES: ResourceType[] = [
  {
    group: METAL3, versions: ["v1alpha1"], resource: "ippools", singular: "ippool", kind: "IPPool", shortNames: ["ipp"],
    columns: [
      { name: "Cluster", type: "string", cell: (o) => str(get(o, "spec.clusterName")) },
      { name: "Allocations", type: "integer", cell: (o) => Object.keys((get(o, "status.indexes") as object | undefined) ?? {}).length },
      { name: "Strategy", type: "string", cell: (o) => str(get(o, "spec.allocationStrategy") ?? "sequential"), priority: 1 },
      { name: "Error", type: "string", cell: (o) => str(get(o, "status.errorMessage")) },
    ],
  },
  {
    group: METAL3, versions: ["v1alpha1"], resource: "ipclaims", singular: "ipclaim", kind: "IPClaim", shortNames: ["ipc"],
    columns: [
      { name: "Pool", type: "string", cell: (o) => str(get(o, "spec.pool.name")) },
      { name: "Address", type: "string", cell: (o) => str(get(o, "status.address.name")) },
      { name: "Error", type: "string", cell: (o) => str(get(o, "status.errorMessage")) },
    ],
  },
  {
    group: METAL3, versions: ["v1alpha1"], resource: "ipaddresses", singular: "ipaddress", kind: "IPAddress", shortNames: ["ipa"],
    columns: [
      { name: "Address", type: "string", cell: (o) => str(get(o, "spec.address")) },
      { name: "Prefix", type: "integer", cell: (o) => Number(get(o, "spec.prefix") ?? 0) },
      { name: "Gateway", type: "string", cell: (o) => str(get(o, "spec.gateway")) },
      { name: "Pool", type: "string", cell: (o) => str(get(o, "spec.pool.name")) },
      { name: "Claim", type: "string", cell: (o) => str(get(o, "spec.claim.name")) },
    ],
  },
  {
    group: CAPI, versions: ["v1beta2", "v1beta1"], resource: "ipaddressclaims", singular: "ipaddressclaim", kind: "IPAddressClaim", shortNames: [],
    columns: [
      { name: "Pool", type: "string", cell: (o) => str(get(o, "spec.poolRef.name")) },
      { name: "Address", type: "string", cell: (o) => str(get(o, "status.addressRef.name")) },
      { name: "Ready", type: "string", cell: (o) => str(((get(o, "status.conditions") as { type: string; status: string }[] | undefined) ?? []).find((c) => c.type === "Ready")?.status) },
    ],
  },
  {
    group: CAPI, versions: ["v1beta2", "v1beta1"], resource: "ipaddresses", singular: "ipaddress", kind: "IPAddress", shortNames: [],
    columns: [
      { name: "Address", type: "string", cell: (o) => str(get(o, "spec.address")) },
      { name: "Prefix", type: "integer", cell: (o) => Number(get(o, "spec.prefix") ?? 0) },
      { name: "Pool", type: "string", cell: (o) => str(get(o, "spec.poolRef.name")) },
      { name: "Claim", type: "string", cell: (o) => str(get(o, "spec.claimRef.name")) },
    ],
  },
];

export function findResource(group: string, version: string, resource: string): ResourceType | undefined {
  return RESOURCES.find((r) => r.group === group && r.versions.includes(version) && r.resource === resource);
}

export function resourceOfKind(apiVersion: string, kind: string): ResourceType | undefined {
  const [group, version] = apiVersion.split("/");
  return RESOURCES.find((r) => r.group === group && r.versions.includes(version ?? "") && r.kind === kind);
}

/** "5s", "3m", "2h", "4d": kubectl prints Table cells verbatim. */
export function age(iso: string | undefined, now = Date.now()): string {
  if (!iso) return "";
  const s = Math.max(0, Math.floor((now - Date.parse(iso)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}
