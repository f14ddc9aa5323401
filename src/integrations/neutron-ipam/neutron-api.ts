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

  private async get<T>(path: string, key: string): Promise<T[]> {
    const url = `${this.url.replace(/\/$/, "")}/v2.0/${path}`;
    let res: Response;
    try {
      res = await fetch(url, { headers: this.token ? { "x-auth-token": this.token } : {}, signal: AbortSignal.timeout(60_000) });
    } catch (err) {
      throw new UsageError(`cannot reach Neutron at ${this.url} (${(err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message}); give --neutron-url or OS_AUTH_URL`);
    }
    if (!res.ok) throw new UsageError(`Neutron at ${this.url} answered ${res.status} to GET ${path}: ${(await res.text()).slice(0, 300)}`);
    return ((await res.json()) as Record<string, T[]>)[key] ?? [];
  }

  subnetPools = () => this.get<NeutronSubnetPool>("subnetpools", "subnetpools");
  subnets = () => this.get<NeutronSubnet>("subnets", "subnets");
  ports = () => this.get<NeutronPort>("ports", "ports");
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
  const catalog = ((await res.json()) as { token: { catalog?: { type: string; endpoints: { interface: string; url: string }[] }[] } }).token.catalog ?? [];
  const wanted = env.OS_INTERFACE ?? "public";
  const endpoint = catalog.find((s) => s.type === "network")?.endpoints.find((e) => e.interface === wanted)?.url;
  if (!endpoint) throw new UsageError(`Keystone's catalog has no ${wanted} network endpoint; give --neutron-url`);
  return new NeutronApi(endpoint, subject);
}
