import assert from "node:assert/strict";
import { SERVER } from "../../src/engine/access.js";
import { after, before, test } from "node:test";
import { Engine } from "../../src/engine/engine.js";
import { ctx, tempApp } from "../helpers.js";

/** What the web UI reads: a pool's occupancy map, search across pools, and the token's own view. */

type Env = Awaited<ReturnType<typeof tempApp>>;
let env: Env;
before(async () => {
  env = await tempApp();
  await env.engine.createSpace({ name: "lab" }, ctx);
  await env.engine.createSpace({ name: "other" }, ctx);
  await env.engine.createPool({ name: "net", space: "lab", cidr: "10.0.0.0/24", allocateReserved: true }, ctx);
  await env.engine.allocateMany({ pool: "net", space: "lab" }, { count: 64 }, ctx); // .0 - .63
  await env.engine.allocate({ pool: "net", space: "lab" }, { address: "10.0.0.200", mac: "aa:bb:cc:dd:ee:01", owner: "vm-web", hostname: "web-1" }, ctx);
  await env.engine.createPool({ name: "big", space: "lab", cidr: "2001:db8::/48" }, ctx);
  await env.engine.allocate({ pool: "big", space: "lab" }, { size: 65536, owner: "block" }, ctx);
  await env.engine.createPool({ name: "theirs", space: "other", cidr: "10.9.0.0/24" }, ctx);
  await env.engine.allocate({ pool: "theirs", space: "other" }, { hostname: "web-2", owner: "vm-other" }, ctx);
});
after(async () => env.cleanup());

test("a pool's map counts free addresses per cell, at any size, and zooms into a stretch", async () => {
  const map = (await env.inject({ method: "GET", url: "/v1/pools/net/map?space=lab&cells=4" })).json();
  assert.equal(map.cellSize, "64");
  assert.deepEqual(map.cells.map((c: { free: string; total: string }) => [c.total, c.free]), [["64", "0"], ["64", "64"], ["64", "64"], ["64", "63"]]);
  const zoom = (await env.inject({ method: "GET", url: "/v1/pools/net/map?space=lab&cells=256&start=10.0.0.192&end=10.0.0.207" })).json();
  assert.equal(zoom.cellSize, "1");
  assert.deepEqual(zoom.cells.map((c: { free: string }) => c.free).join(""), "1111111101111111");
  // an IPv6 /48 in 256 cells: each a /56, the first full
  const big = (await env.inject({ method: "GET", url: "/v1/pools/big/map?space=lab&cells=256" })).json();
  assert.equal(big.cells.length, 256);
  assert.equal(big.cellSize, (2n ** 72n).toString());
  // (less the block, and the network address, which a pool keeps back unless told otherwise)
  assert.equal(big.cells[0].free, (2n ** 72n - 65536n - 1n).toString());
  const bad = await env.inject({ method: "GET", url: "/v1/pools/net/map?space=lab&start=2001:db8::1" });
  assert.equal(bad.statusCode, 400);
  assert.match(bad.json().detail, /not an IPv4 address/);
});

test("a map kept from before answers what a fresh read would, after allocations, releases, expiry, blocks, child pools and pruning", async () => {
  await env.engine.createPool({ name: "kept", space: "lab", cidr: "10.1.0.0/16" }, ctx);
  const ref = { pool: "kept", space: "lab" };
  const views = [{ cells: 256 }, { cells: 16, start: "10.1.3.0", end: "10.1.4.255" }];
  const same = async (after: string) => {
    const fresh = await Engine.open(env.engine.store); // a new engine keeps no maps
    for (const v of views) assert.deepEqual(await env.engine.poolMap(ref, v, SERVER), await fresh.poolMap(ref, v, SERVER), `${after}, view ${JSON.stringify(v)}`);
  };
  await same("a new pool"); // both views now kept
  await env.engine.allocateMany(ref, { count: 700 }, ctx); // into 10.1.0.0 - 10.1.2.188 in order
  await same("700 allocations at once");
  const one = (await env.engine.allocate(ref, { address: "10.1.4.7" }, ctx)).allocation;
  const block = (await env.engine.allocate(ref, { size: 1024 }, ctx)).allocation;
  await same("an address and a block");
  await env.engine.release({ id: one.id }, ctx);
  await env.engine.release({ id: block.id }, ctx);
  await same("their release");
  await env.engine.createChildPool(ref, { name: "kept-child", cidr: "10.1.4.0/24" }, ctx);
  await same("a child pool carved out");
  await env.engine.deletePool({ pool: "kept-child", space: "lab" }, {}, ctx);
  await same("the child pool deleted");
  await env.engine.allocate(ref, { address: "10.1.6.1", ttl: 60 }, ctx);
  await same("an allocation with a time-to-live");
  // an hour on, the next write to the pool expires it
  const later = await Engine.open(env.engine.store, { clock: () => Date.now() + 3_600_000 });
  await later.allocate(ref, { address: "10.1.6.2" }, ctx);
  assert.ok((await env.engine.history({ pool: ref, limit: 5 }, SERVER)).some((h) => h.action === "expire"));
  await same("its expiry");
  await env.engine.allocate(ref, { address: "10.1.7.0" }, ctx); // its history entry is pruned before anyone looks
  await env.engine.pruneHistory(new Date(Date.now() + 1000).toISOString());
  await env.engine.allocate(ref, { address: "10.1.7.1" }, ctx);
  await same("history pruned, and a change after");
  for (let i = 0; i < 2100; i++) await env.engine.allocate(ref, { address: `10.1.${8 + (i >> 8)}.${i & 255}` }, ctx);
  await same("more changes than are worth replaying");
  const view = await env.engine.poolMap(ref, views[0]!, SERVER);
  assert.equal(view.cells.reduce((n, c) => n + Number(c.total) - Number(c.free), 0), 700 + 3 + 2100 + 2); // (10.1.6.2, 10.1.7.0, 10.1.7.1, and the network and broadcast addresses)
});

test("search finds by MAC, owner and host name (its beginning too), within the token's spaces; an address gives its holder", async () => {
  const q = async (text: string, headers: Record<string, string> = {}) => (await env.inject({ method: "GET", url: `/v1/search?q=${encodeURIComponent(text)}`, headers })).json();
  assert.deepEqual((await q("AA-BB-CC-DD-EE-01")).allocations.map((a: { address: string }) => a.address), ["10.0.0.200"]);
  assert.deepEqual((await q("vm-web")).allocations.map((a: { address: string }) => a.address), ["10.0.0.200"]);
  assert.deepEqual((await q("web-")).allocations.map((a: { hostname: string }) => a.hostname).sort(), ["web-1", "web-2"]);
  const byAddress = await q("10.0.0.200");
  assert.equal(byAddress.addresses[0].allocation.owner, "vm-web");
  const t = await env.engine.createToken({ name: "lab-reader", scope: "read", spaces: ["lab"] }, ctx);
  const limited = await q("web-", { authorization: `Bearer ${t.token}` });
  assert.deepEqual(limited.allocations.map((a: { hostname: string }) => a.hostname), ["web-1"]);
  const me = (await env.inject({ method: "GET", url: "/v1/whoami", headers: { authorization: `Bearer ${t.token}` } })).json();
  assert.deepEqual([me.name, me.scope, me.spaces], ["lab-reader", "read", ["lab"]]);
});
