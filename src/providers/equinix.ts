/**
 * Equinix Metal (formerly Packet) public IP reservations. The API: POST /projects/{project}/ips with
 * {type, quantity, metro | facility, fail_on_approval_required} answers 201 with the reservation
 * (id, network, cidr, gateway…); DELETE /ips/{id} answers 204. Authenticated by X-Auth-Token. The legacy
 * Packet API (https://api.packet.net) has the same paths and shapes, with facilities instead of metros.
 */
import { type ObtainedBlock, type Provider, ProviderError, call, failure, requireString } from "./provider.js";

export const EQUINIX_API = "https://api.equinix.com/metal/v1";
const IP_TYPES = ["public_ipv4", "global_ipv4"];

interface Reservation {
  id: string;
  network: string;
  cidr: number;
  gateway?: string;
  address_family?: number;
  quantity?: number;
}

export const equinix: Provider = {
  type: "equinix",
  validate(params, secrets) {
    const project = requireString(params, "project", "equinix");
    if (!secrets.token) throw new ProviderError("provider equinix needs its API token as the secret 'token'", true);
    const ipType = (params.ipType as string | undefined) ?? "public_ipv4";
    if (!IP_TYPES.includes(ipType)) throw new ProviderError(`provider equinix: ipType must be ${IP_TYPES.join(" or ")}, not ${ipType}`, true);
    const metro = params.metro as string | undefined;
    const facility = params.facility as string | undefined;
    if (ipType === "public_ipv4" && !metro && !facility) throw new ProviderError("provider equinix: public_ipv4 needs a metro (or, on the Packet API, a facility)", true);
    const url = (params.url as string | undefined) ?? EQUINIX_API;
    if (!/^https?:\/\//.test(url)) throw new ProviderError(`provider equinix: url ${url} is not an http(s) URL`, true);
    return { project, ipType, url, ...(metro ? { metro } : {}), ...(facility ? { facility } : {}) };
  },
  async obtain(params, secrets, size, note): Promise<ObtainedBlock> {
    if (!Number.isInteger(Math.log2(size))) throw new ProviderError(`provider equinix reserves blocks of 1, 2, 4, 8 … addresses, not ${size}`, true);
    const body = {
      type: params.ipType,
      quantity: size,
      ...(params.metro ? { metro: params.metro } : {}),
      ...(params.facility ? { facility: params.facility } : {}),
      fail_on_approval_required: true,
      comments: note,
    };
    const res = await call("Equinix Metal", `${params.url}/projects/${encodeURIComponent(String(params.project))}/ips`, {
      method: "POST",
      headers: { "x-auth-token": secrets.token!, "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify(body),
    });
    if (res.status !== 201) throw await failure("Equinix Metal", res);
    const r = (await res.json().catch(() => ({}))) as Reservation;
    if (typeof r.id !== "string" || typeof r.network !== "string" || typeof r.cidr !== "number") {
      throw new ProviderError("Equinix Metal answered 201 without a reservation id, network and cidr");
    }
    const count = 2 ** (32 - r.cidr);
    const first = r.network.split(".").reduce((n, o) => n * 256 + Number(o), 0);
    const last = first + count - 1;
    const dotted = (n: number) => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");
    return { blockId: r.id, start: r.network, end: dotted(last), prefixLength: r.cidr, ...(r.gateway ? { gateway: r.gateway } : {}) };
  },
  async release(record, secrets) {
    const res = await call("Equinix Metal", `${record.params.url}/ips/${encodeURIComponent(record.blockId)}`, {
      method: "DELETE",
      headers: { "x-auth-token": secrets.token ?? "", accept: "application/json" },
    });
    // already gone is what we wanted
    if (res.status !== 204 && res.status !== 404) throw await failure("Equinix Metal", res);
  },
  describe: (r) => `Equinix Metal reservation ${r.blockId} in project ${r.params.project}`,
};
