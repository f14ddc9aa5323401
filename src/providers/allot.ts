/**
 * Another Allot as the upstream: a block of `size` addresses allocated from a pool there (a regional
 * instance carving from a global plan). The block is one allocation upstream, its owner naming the
 * local pool and a fresh id; deleting the local pool releases it.
 */
import { randomUUID } from "node:crypto";
import { type ObtainedBlock, type Provider, ProviderError, call, failure, requireString } from "./provider.js";

interface UpstreamAllocation {
  id: string;
  address: string;
  lastAddress: string;
  prefixLength: number;
  gateway: string | null;
}

export const upstreamAllot: Provider = {
  type: "allot",
  validate(params, secrets) {
    const url = requireString(params, "url", "allot");
    if (!/^https?:\/\//.test(url)) throw new ProviderError(`provider allot: url ${url} is not an http(s) URL`, true);
    const pool = requireString(params, "pool", "allot");
    if (!secrets.token) throw new ProviderError("provider allot needs a token of the upstream Allot as the secret 'token'", true);
    return { url: url.replace(/\/+$/, ""), pool, ...(typeof params.space === "string" ? { space: params.space } : {}) };
  },
  async obtain(params, secrets, size, note): Promise<ObtainedBlock> {
    const q = params.space ? `?space=${encodeURIComponent(String(params.space))}` : "";
    const res = await call("the upstream Allot", `${params.url}/v1/pools/${encodeURIComponent(String(params.pool))}/allocations${q}`, {
      method: "POST",
      headers: { authorization: `Bearer ${secrets.token}`, "content-type": "application/json" },
      // a fresh owner: never someone else's block, even for a pool of the same name elsewhere
      body: JSON.stringify({ size, owner: `${note} ${randomUUID()}` }),
    });
    if (res.status !== 201) throw await failure("the upstream Allot", res);
    const a = (await res.json().catch(() => null)) as UpstreamAllocation | null;
    if (!a || typeof a.id !== "string" || typeof a.address !== "string") throw new ProviderError("the upstream Allot answered 201 without an allocation");
    return { blockId: a.id, start: a.address, end: a.lastAddress, prefixLength: a.prefixLength, ...(a.gateway ? { gateway: a.gateway } : {}) };
  },
  async release(record, secrets) {
    const res = await call("the upstream Allot", `${record.params.url}/v1/allocations/${encodeURIComponent(record.blockId)}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${secrets.token ?? ""}` },
    });
    if (res.status !== 200 && res.status !== 404) throw await failure("the upstream Allot", res);
  },
  describe: (r) => `allocation ${r.blockId} of pool ${r.params.pool} at ${r.params.url}`,
};

