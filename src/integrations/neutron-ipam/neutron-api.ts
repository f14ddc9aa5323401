/**
 * Reading a real Neutron through its API, for the migration and the reconcile of the Neutron IPAM
 * driver: an endpoint and a token given outright, or found through Keystone v3 with a user's
 * password (the OS_* variables the openstack CLI uses).
 */
import { UsageError } from "../../cli/context.js";

export interface NeutronSubnet {
  id: string;
  network_id: string;
  tenant_id?: string;
  project_id?: string;
  cidr: string;
  ip_version: number;
  gateway_ip: string | null;
  allocation_pools: { start: string; end: string }[];
  subnetpool_id: string | null;
}
export interface NeutronSubnetPool {
  id: string;
  name: string;
  prefixes: string[];
  shared: boolean;
}
export interface NeutronPort {
  id: string;
  network_id: string;
  mac_address: string;
  device_id: string;
  device_owner: string;
  fixed_ips: { subnet_id: string; ip_address: string }[];
}

export interface NeutronOptions {
  /** Neutron's endpoint, e.g. http://controller:9696; else from Keystone's catalog. */
  neutronUrl?: string;
  /** A token for it (X-Auth-Token); else one from Keystone, or none for a noauth Neutron. */
  osToken?: string;
}

export class NeutronApi {
  constructor(
    readonly url: string,
    private readonly token: string | undefined,
  ) {}

  private async fetch(path: string): Promise<Response> {
    const url = /^https?:/.test(path) ? path : `${this.url.replace(/\/$/, "")}/v2.0/${path}`;
    try {
      return await fetch(url, { headers: this.token ? { "x-auth-token": this.token } : {}, signal: AbortSignal.timeout(60_000) });
    } catch (err) {
      throw new UsageError(`cannot reach Neutron at ${this.url} (${(err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message}); give --neutron-url or OS_AUTH_URL`);
    }
  }

  /** Every item of a list, following Neutron's pages (pagination_max_limit caps an unpaged list). */
  private async list<T>(path: string, key: string): Promise<T[]> {
    const out: T[] = [];
    for (let next: string | undefined = path; next; ) {
      const res = await this.fetch(next);
      if (!res.ok) throw new UsageError(`Neutron at ${this.url} answered ${res.status} to GET ${path}: ${(await res.text()).slice(0, 300)}`);
      const page = (await res.json()) as Record<string, unknown>;
      out.push(...((page[key] as T[] | undefined) ?? []));
      next = ((page[`${key}_links`] as { rel: string; href: string }[] | undefined) ?? []).find((l) => l.rel === "next")?.href;
    }
    return out;
  }

  subnetPools = () => this.list<NeutronSubnetPool>("subnetpools", "subnetpools");
  subnets = () => this.list<NeutronSubnet>("subnets", "subnets");
  ports = () => this.list<NeutronPort>("ports", "ports");

  /** Whether Neutron has this subnet (asked directly, not from a list). */
  async hasSubnet(id: string): Promise<boolean> {
    const res = await this.fetch(`subnets/${encodeURIComponent(id)}`);
    if (res.status === 404) return false;
    if (!res.ok) throw new UsageError(`Neutron at ${this.url} answered ${res.status} to GET subnets/${id}`);
    return true;
  }

  /** Whether a port of Neutron's holds this address in this subnet (asked directly). */
  async hasAddress(subnet: string, address: string): Promise<boolean> {
    const q = `ports?fixed_ips=${encodeURIComponent(`ip_address=${address}`)}&fixed_ips=${encodeURIComponent(`subnet_id=${subnet}`)}&fields=id`;
    return (await this.list<unknown>(q, "ports")).length > 0;
  }

  /** Whether Neutron has this subnet pool. */
  async hasSubnetPool(id: string): Promise<boolean> {
    const res = await this.fetch(`subnetpools/${encodeURIComponent(id)}`);
    if (res.status === 404) return false;
    if (!res.ok) throw new UsageError(`Neutron at ${this.url} answered ${res.status} to GET subnetpools/${id}`);
    return true;
  }
}

/** Connects as told: --neutron-url (with --os-token, or none for noauth), else Keystone from the OS_* environment. */
export async function connectNeutron(o: NeutronOptions, env: NodeJS.ProcessEnv = process.env): Promise<NeutronApi> {
  const token = o.osToken ?? env.OS_TOKEN;
  if (o.neutronUrl) return new NeutronApi(o.neutronUrl, token || undefined);
  const auth = env.OS_AUTH_URL;
  if (!auth) throw new UsageError("say where Neutron is: --neutron-url URL (and --os-token), or the OS_AUTH_URL, OS_USERNAME, OS_PASSWORD and OS_PROJECT_NAME of an admin");
  const base = auth.replace(/\/$/, "").replace(/\/v3$/, "");
  const body = {
    auth: {
      identity: {
        methods: ["password"],
        password: { user: { name: env.OS_USERNAME, password: env.OS_PASSWORD, domain: { name: env.OS_USER_DOMAIN_NAME ?? "Default" } } },
      },
      scope: { project: { name: env.OS_PROJECT_NAME, domain: { name: env.OS_PROJECT_DOMAIN_NAME ?? "Default" } } },
    },
  };
  let res: Response;
  try {
    res = await fetch(`${base}/v3/auth/tokens`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal: AbortSignal.timeout(60_000) });
  } catch (err) {
    throw new UsageError(`cannot reach Keystone at ${base} (${(err as Error).message})`);
  }
  if (!res.ok) throw new UsageError(`Keystone at ${base} refused ${env.OS_USERNAME ?? "(no OS_USERNAME)"}: ${res.status} ${(await res.text()).slice(0, 300)}`);
  const subject = res.headers.get("x-subject-token") ?? undefined;
  const issued = ((await res.json()) as { token: { roles?: { name: string }[]; catalog?: { type: string; endpoints: { interface: string; url: string }[] }[] } }).token;
  // a project member sees its own ports and every shared subnet: it would take others' addresses for leaks
  if (!(issued.roles ?? []).some((r) => r.name === "admin")) {
    throw new UsageError(`${env.OS_USERNAME ?? "this user"} is not an admin in ${env.OS_PROJECT_NAME ?? "this project"}: Neutron shows it only part of the ports; use an admin's credentials`);
  }
  const catalog = issued.catalog ?? [];
  const wanted = env.OS_INTERFACE ?? "public";
  const endpoint = catalog.find((s) => s.type === "network")?.endpoints.find((e) => e.interface === wanted)?.url;
  if (!endpoint) throw new UsageError(`Keystone's catalog has no ${wanted} network endpoint; give --neutron-url`);
  return new NeutronApi(endpoint, subject);
}
