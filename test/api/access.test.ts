import assert from "node:assert/strict";
import { SERVER } from "../../src/engine/access.js";
import { after, before, test } from "node:test";
import type { InjectOptions } from "fastify";
import { createServer } from "node:http";
import type { Scope } from "../../src/engine/tokens.js";
import { ctx, tempApp } from "../helpers.js";
import { recordAgent } from "../../src/dhcp/agents.js";
import { createNetwork } from "../../src/dhcp/networks.js";

/**
 * The whole matrix: every /v1 route (taken from the OpenAPI document, so a new route cannot be left
 * out) × token scope (read, write, admin) × token spaces (every space, or only "alpha") × target space
 * (alpha, beta). A scope below the route's is refused with 403; a token limited to alpha gets 403 or
 * 404 for anything in beta (and 403 for making or removing spaces) and changes nothing; everything
 * else gets past access control.
 */

type Env = Awaited<ReturnType<typeof tempApp>>;
let env: Env;
const secrets = new Map<string, string>();
let counter = 0;
const uniq = (p: string) => `${p}-${++counter}`;

/** Every row of every table: a refused request must leave all of it as it was. */
async function snapshot(): Promise<string> {
  return env.store.read(async (sql) => {
    const out: unknown[] = [];
    for (const t of ["spaces", "pools", "pool_ranges", "allocations", "free_runs", "history", "tokens", "webhooks", "kube_objects", "dhcp_networks", "dhcp_agents", "dhcp_assignments", "dns_zones", "dns_records"]) out.push(await sql.all(`SELECT * FROM ${t} ORDER BY 1`));
    return JSON.stringify(out, (_k, v) => (v?.type === "Buffer" ? Buffer.from(v.data).toString("hex") : typeof v === "bigint" ? String(v) : v));
  });
}

before(async () => {
  env = await tempApp();
  for (const s of ["alpha", "beta"]) {
    await env.engine.createSpace({ name: s }, ctx);
    await env.engine.createPool({ name: `p-${s}`, space: s, cidr: "10.1.0.0/24" }, ctx);
    await env.engine.allocate({ pool: `p-${s}`, space: s }, { owner: "fixture" }, ctx);
    await createNetwork(env.engine, { name: `net-${s}`, space: s, pools: [], servers: 1, options: { leaseSeconds: 3600 } }, SERVER);
  }
  for (const scope of ["read", "write", "admin"] as const) {
    for (const limited of [false, true]) {
      const t = await env.engine.createToken({ name: `${scope}-${limited ? "alpha" : "all"}`, scope, ...(limited ? { spaces: ["alpha"] } : {}) }, ctx);
      secrets.set(t.name, t.token);
    }
  }
});
after(async () => env.cleanup());

/** A fresh allocation in space `s`, for routes that change or remove one. */
async function freshAllocation(s: string): Promise<string> {
  return (await env.engine.allocate({ pool: `p-${s}`, space: s }, {}, ctx)).allocation.id;
}
async function poolId(s: string): Promise<string> {
  return (await env.engine.getPool({ pool: `p-${s}`, space: s }, SERVER)).id;
}

/** A stand-in for PowerDNS's API (an empty zone that takes any PATCH), so DNS checks get past access control and succeed. */
let fakePdns: Promise<string> | null = null;
function pdnsUrl(): Promise<string> {
  fakePdns ??= new Promise((resolve) => {
    const server = createServer((req, res) => {
      req.resume();
      if (req.method === "GET") res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ rrsets: [] }));
      else res.writeHead(204).end();
    });
    server.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${(server.address() as { port: number }).port}`));
    server.unref();
  });
  return fakePdns;
}

/** The DNS zone of space `s` (made on first use), or a fresh one to delete. */
async function zoneIn(s: string, fresh = false): Promise<string> {
  const name = fresh ? `${uniq("gone")}.${s}.test` : `z.${s}.test`;
  if (fresh || !(await env.engine.listDnsZones(SERVER)).some((z) => z.name === name)) {
    await env.engine.createDnsZone({ name, space: s, backend: { type: "powerdns", url: await pdnsUrl(), apiKey: "fake-api-key" } }, ctx);
  }
  return name;
}

/** One request per route, aimed at space `s`. */
const ROUTES: Record<string, (s: string) => Promise<InjectOptions>> = {
  "GET /v1/spaces/{space}": async (s) => ({ method: "GET", url: `/v1/spaces/${s}` }),
  "DELETE /v1/spaces/{space}": async (s) => ({ method: "DELETE", url: `/v1/spaces/${s}` }), // 409 when allowed: it holds a pool
  "GET /v1/pools": async (s) => ({ method: "GET", url: `/v1/pools?space=${s}` }),
  "POST /v1/pools": async (s) => ({ method: "POST", url: "/v1/pools", payload: { name: uniq("np"), space: s, cidr: `10.${100 + (counter % 100)}.0.0/24` } }),
  "GET /v1/pools/{pool}": async (s) => ({ method: "GET", url: `/v1/pools/${await poolId(s)}` }),
  "PATCH /v1/pools/{pool}": async (s) => ({ method: "PATCH", url: `/v1/pools/p-${s}?space=${s}`, payload: { description: uniq("d") } }),
  "POST /v1/pools/{pool}/ranges": async (s) => ({ method: "POST", url: `/v1/pools/p-${s}/ranges?space=${s}`, payload: { ranges: [{ cidr: `172.16.${++counter % 250}.0/24` }] } }),
  "DELETE /v1/pools/{pool}": async (s) => ({ method: "DELETE", url: `/v1/pools/p-${s}?space=${s}` }), // 409 when allowed: it holds allocations
  "GET /v1/pools/{pool}/children": async (s) => ({ method: "GET", url: `/v1/pools/p-${s}/children?space=${s}` }),
  "POST /v1/pools/{pool}/children": async (s) => ({ method: "POST", url: `/v1/pools/p-${s}/children?space=${s}`, payload: { name: uniq("c"), prefixLength: 31 } }),
  "GET /v1/pools/{pool}/map": async (s) => ({ method: "GET", url: `/v1/pools/p-${s}/map?space=${s}&cells=16` }),
  "GET /v1/pools/{pool}/usage": async (s) => ({ method: "GET", url: `/v1/pools/${await poolId(s)}/usage` }),
  "GET /v1/pools/{pool}/forecast": async (s) => ({ method: "GET", url: `/v1/pools/p-${s}/forecast?space=${s}` }),
  "GET /v1/pools/{pool}/allocations": async (s) => ({ method: "GET", url: `/v1/pools/p-${s}/allocations?space=${s}` }),
  "POST /v1/pools/{pool}/allocations": async (s) => ({ method: "POST", url: `/v1/pools/p-${s}/allocations?space=${s}`, payload: {} }),
  "DELETE /v1/pools/{pool}/allocations": async (s) => ({ method: "DELETE", url: `/v1/pools/p-${s}/allocations?space=${s}&owner=fixture` }),
  "POST /v1/pools/{pool}/allocations/bulk": async (s) => ({ method: "POST", url: `/v1/pools/${await poolId(s)}/allocations/bulk`, payload: { count: 1 } }),
  "GET /v1/allocations/{id}": async (s) => ({ method: "GET", url: `/v1/allocations/${await freshAllocation(s)}` }),
  "PATCH /v1/allocations/{id}": async (s) => ({ method: "PATCH", url: `/v1/allocations/${await freshAllocation(s)}`, payload: { hostname: "h" } }),
  "DELETE /v1/allocations/{id}": async (s) => ({ method: "DELETE", url: `/v1/allocations/${await freshAllocation(s)}` }),
  "GET /v1/lookup": async (s) => ({ method: "GET", url: `/v1/lookup?address=10.1.0.1&space=${s}` }),
  "GET /v1/history": async (s) => ({ method: "GET", url: `/v1/history?space=${s}` }),
  "GET /v1/history/holder": async (s) => ({ method: "GET", url: `/v1/history/holder?address=10.1.0.1&at=${new Date().toISOString()}&space=${s}` }),
  "GET /v1/pools/{pool}/history": async (s) => ({ method: "GET", url: `/v1/pools/${await poolId(s)}/history` }),
  "POST /v1/tokens": async (s) => ({ method: "POST", url: "/v1/tokens", payload: { name: uniq("t"), scope: "read", spaces: [s] } }),
  "DELETE /v1/tokens/{token}": async (s) => {
    const t = await env.engine.createToken({ name: uniq("victim"), scope: "read", spaces: [s] }, ctx);
    return { method: "DELETE", url: `/v1/tokens/${t.name}` };
  },
  "POST /v1/kubernetes/apply": async (s) => ({
    method: "POST",
    url: "/v1/kubernetes/apply",
    payload: { namespace: s, objects: [{ apiVersion: "ipam.metal3.io/v1alpha1", kind: "IPClaim", metadata: { name: uniq("claim") }, spec: { pool: { name: "none" } } }] },
  }),
  "GET /v1/kubernetes/namespaces/{namespace}/export": async (s) => ({ method: "GET", url: `/v1/kubernetes/namespaces/${s}/export` }),
  "POST /v1/kubernetes/namespaces/{namespace}/import": async (s) => ({
    method: "POST",
    url: `/v1/kubernetes/namespaces/${s}/import`,
    payload: { format: "allot-namespace", version: 1, namespace: s, exportedAt: new Date().toISOString(), objects: [], pools: [] },
  }),
  "POST /v1/dhcp/networks": async (s) => ({ method: "POST", url: "/v1/dhcp/networks", payload: { name: uniq("dn"), space: s } }),
  "GET /v1/dhcp/networks/{network}": async (s) => ({ method: "GET", url: `/v1/dhcp/networks/net-${s}` }),
  "PATCH /v1/dhcp/networks/{network}": async (s) => ({ method: "PATCH", url: `/v1/dhcp/networks/net-${s}`, payload: { servers: 1 + (counter++ % 3) } }),
  "DELETE /v1/dhcp/networks/{network}": async (s) => {
    const n = uniq("gone");
    await createNetwork(env.engine, { name: n, space: s, pools: [], servers: 1, options: { leaseSeconds: 3600 } }, SERVER);
    return { method: "DELETE", url: `/v1/dhcp/networks/${n}` };
  },
  "GET /v1/dhcp/networks/{network}/config": async (s) => ({ method: "GET", url: `/v1/dhcp/networks/net-${s}/config?format=kea` }),
  "DELETE /v1/dhcp/agents/{name}": async (s) => {
    const name = uniq(`agent-${s}`);
    await recordAgent(env.engine, name, { networks: [{ network: `net-${s}`, interface: "eth0" }], server: "dnsmasq", health: {} });
    return { method: "DELETE", url: `/v1/dhcp/agents/${name}` };
  },
  "POST /v1/dns/zones": async (s) => ({ method: "POST", url: "/v1/dns/zones", payload: { name: `${uniq("nz")}.test`, space: s, backend: { type: "powerdns", url: await pdnsUrl(), apiKey: "k" } } }),
  "GET /v1/dns/zones/{zone}": async (s) => ({ method: "GET", url: `/v1/dns/zones/${await zoneIn(s)}` }),
  "PATCH /v1/dns/zones/{zone}": async (s) => ({ method: "PATCH", url: `/v1/dns/zones/${await zoneIn(s)}`, payload: { ttl: 60 + counter++ } }),
  "DELETE /v1/dns/zones/{zone}": async (s) => ({ method: "DELETE", url: `/v1/dns/zones/${await zoneIn(s, true)}` }),
  "GET /v1/dns/zones/{zone}/conflicts": async (s) => ({ method: "GET", url: `/v1/dns/zones/${await zoneIn(s)}/conflicts` }),
  "GET /v1/dns/zones/{zone}/check": async (s) => ({ method: "GET", url: `/v1/dns/zones/${await zoneIn(s)}/check` }),
  "POST /v1/dns/zones/{zone}/check": async (s) => ({ method: "POST", url: `/v1/dns/zones/${await zoneIn(s)}/check?fix=true` }),
  "POST /v1/webhooks": async (s) => ({ method: "POST", url: "/v1/webhooks", payload: { name: uniq("w"), url: "http://127.0.0.1:9/", spaces: [s] } }),
  "DELETE /v1/webhooks/{webhook}": async (s) => {
    const w = await env.engine.createWebhook({ name: uniq("wv"), url: "http://127.0.0.1:9/", spaces: [s] }, ctx);
    return { method: "DELETE", url: `/v1/webhooks/${w.name}` };
  },
};
/** Routes that name no space: checked separately below. */
const SPACELESS = ["GET /v1/spaces", "POST /v1/spaces", "GET /v1/tokens", "GET /v1/webhooks", "GET /v1/dhcp/networks", "GET /v1/dhcp/agents", "POST /v1/dhcp/agents/{name}/sync", "GET /v1/search", "GET /v1/whoami", "GET /v1/dns/zones"];
const ADMIN_ROUTES = new Set(["DELETE /v1/dhcp/agents/{name}", "POST /v1/spaces", "DELETE /v1/spaces/{space}", "GET /v1/tokens", "POST /v1/tokens", "DELETE /v1/tokens/{token}", "GET /v1/webhooks", "POST /v1/webhooks", "DELETE /v1/webhooks/{webhook}",
  "POST /v1/dns/zones", "GET /v1/dns/zones/{zone}", "PATCH /v1/dns/zones/{zone}", "DELETE /v1/dns/zones/{zone}", "GET /v1/dns/zones/{zone}/conflicts", "GET /v1/dns/zones/{zone}/check", "POST /v1/dns/zones/{zone}/check"]);
/** Making and removing spaces takes an admin for every space: a space-limited token is refused even in its own. */
const EVERY_SPACE = new Set(["POST /v1/spaces", "DELETE /v1/spaces/{space}", "DELETE /v1/dhcp/agents/{name}"]);
const RANK: Record<Scope, number> = { read: 0, write: 1, admin: 2 };
const needed = (route: string): Scope => (ADMIN_ROUTES.has(route) ? "admin" : route.startsWith("GET ") ? "read" : "write");

test("the matrix covers every /v1 route in the OpenAPI document", async () => {
  const doc = (await env.inject({ method: "GET", url: "/openapi.json" })).json() as { paths: Record<string, Record<string, unknown>> };
  const routes = Object.entries(doc.paths)
    .filter(([p]) => p.startsWith("/v1/"))
    .flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`));
  assert.ok(routes.length > 20);
  for (const r of routes) assert.ok(r in ROUTES || SPACELESS.includes(r), `no matrix entry for ${r}`);
});

test("without a token, or with a wrong one, every /v1 route answers 401; health, readiness and metrics need none", async () => {
  for (const [route, build] of Object.entries(ROUTES)) {
    const req = await build("alpha");
    const before = await snapshot();
    for (const authorization of [undefined, "Bearer allot_not-a-real-token-at-all-000000", "Basic dXNlcjpwYXNz"]) {
      const res = await env.inject({ ...req, headers: { authorization } });
      assert.equal(res.statusCode, 401, `${route} with ${authorization ?? "no token"}: ${res.body}`);
      assert.equal(res.json().code, "unauthorized");
    }
    assert.equal(await snapshot(), before, `${route} without a valid token changed the database`);
  }
  for (const url of ["/healthz", "/readyz", "/metrics"]) assert.equal((await env.inject({ method: "GET", url, headers: { authorization: undefined } })).statusCode, 200, url);
});

test("scope × spaces × route: refused where it must be, changing nothing; let through where allowed", async () => {
  for (const [route, build] of Object.entries(ROUTES)) {
    for (const scope of ["read", "write", "admin"] as const) {
      for (const limited of [false, true]) {
        const name = `${scope}-${limited ? "alpha" : "all"}`;
        for (const space of ["alpha", "beta"]) {
          const req = await build(space);
          const before = await snapshot();
          const res = await env.inject({ ...req, headers: { authorization: `Bearer ${secrets.get(name)}` } });
          const what = `${route} in ${space} with token ${name}: ${res.statusCode} ${res.body.slice(0, 300)}`;
          assert.notEqual(res.statusCode, 401, what);
          assert.ok(res.statusCode < 500, what);
          const tooLow = RANK[scope] < RANK[needed(route)];
          const outside = limited && (space === "beta" || EVERY_SPACE.has(route));
          if (tooLow || outside) {
            assert.ok(tooLow ? res.statusCode === 403 : [403, 404].includes(res.statusCode), what);
            assert.equal(await snapshot(), before, `refused, yet changed the database: ${what}`);
          } else {
            assert.ok(res.statusCode !== 403, `allowed, yet refused: ${what}`);
          }
        }
      }
    }
  }
});

test("space-less routes: lists show only the token's spaces; only an all-spaces admin makes spaces", async () => {
  const as = (name: string, opts: InjectOptions) => env.inject({ ...opts, headers: { authorization: `Bearer ${secrets.get(name)}` } });
  const spaces = (await as("read-alpha", { method: "GET", url: "/v1/spaces" })).json().items.map((s: { name: string }) => s.name);
  assert.deepEqual(spaces, ["alpha"]);
  assert.ok((await as("read-all", { method: "GET", url: "/v1/spaces" })).json().items.length >= 3);
  // pools, lookups across spaces and history: nothing from beta
  const pools = (await as("read-alpha", { method: "GET", url: "/v1/pools" })).json().items;
  assert.ok(pools.length > 0 && pools.every((p: { space: string }) => p.space === "alpha"));
  const found = (await as("read-alpha", { method: "GET", url: "/v1/lookup?address=10.1.0.1" })).json().items;
  assert.deepEqual(found.map((r: { space: string }) => r.space), ["alpha"]);
  const alphaId = (await env.engine.getSpace("alpha", SERVER)).id;
  const history = (await as("read-alpha", { method: "GET", url: "/v1/history?limit=1000" })).json().items;
  assert.ok(history.length > 0 && history.every((h: { spaceId: string }) => h.spaceId === alphaId));
  // a pool of beta by id answers exactly as a pool that does not exist
  const beta = await poolId("beta");
  const hidden = await as("read-alpha", { method: "GET", url: `/v1/pools/${beta}` });
  assert.equal(hidden.statusCode, 404);
  assert.equal(hidden.json().detail, `no pool has id ${beta}`);

  for (const name of ["admin-alpha", "write-all"]) assert.equal((await as(name, { method: "POST", url: "/v1/spaces", payload: { name: uniq("s") } })).statusCode, 403);
  assert.equal((await as("admin-all", { method: "POST", url: "/v1/spaces", payload: { name: uniq("s") } })).statusCode, 201);
  // a space-limited admin sees and makes only tokens within its spaces
  const listed = (await as("admin-alpha", { method: "GET", url: "/v1/tokens" })).json().items;
  assert.ok(listed.every((t: { spaces: string[] | null }) => t.spaces !== null && t.spaces.every((s) => s === "alpha")));
  assert.equal((await as("admin-alpha", { method: "POST", url: "/v1/tokens", payload: { name: uniq("t"), scope: "admin" } })).statusCode, 403);
  for (const name of ["read-all", "write-all"]) assert.equal((await as(name, { method: "GET", url: "/v1/tokens" })).statusCode, 403);
  // token secrets are never listed
  assert.ok(!(await as("admin-all", { method: "GET", url: "/v1/tokens" })).body.includes(secrets.get("read-all")!));
});

test("a revoked token stops working at once, an expired one on its expiry", async () => {
  const t = await env.engine.createToken({ name: uniq("short"), scope: "read" }, ctx);
  const get = () => env.inject({ method: "GET", url: "/v1/spaces", headers: { authorization: `Bearer ${t.token}` } });
  assert.equal((await get()).statusCode, 200);
  assert.equal((await env.inject({ method: "DELETE", url: `/v1/tokens/${t.name}` })).statusCode, 200);
  assert.equal((await get()).statusCode, 401);
  const soon = await env.engine.createToken({ name: uniq("soon"), scope: "read", expiresAt: new Date(Date.now() + 1500).toISOString() }, ctx);
  assert.equal((await env.inject({ method: "GET", url: "/v1/spaces", headers: { authorization: `Bearer ${soon.token}` } })).statusCode, 200);
  await new Promise((r) => setTimeout(r, 1700));
  assert.equal((await env.inject({ method: "GET", url: "/v1/spaces", headers: { authorization: `Bearer ${soon.token}` } })).statusCode, 401);
});

test("changes are recorded with the token's name as actor and the request id", async () => {
  const res = await env.inject({
    method: "POST",
    url: "/v1/pools/p-alpha/allocations?space=alpha",
    payload: { owner: "audit-me" },
    headers: { authorization: `Bearer ${secrets.get("write-alpha")}`, "x-request-id": "req-audit-1" },
  });
  assert.equal(res.statusCode, 201);
  const [entry] = await env.engine.history({ owner: "audit-me", limit: 1 }, SERVER);
  assert.equal(entry?.actor, "token:write-alpha");
  assert.equal(entry?.requestId, "req-audit-1");
});
