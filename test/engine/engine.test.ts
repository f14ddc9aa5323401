import assert from "node:assert/strict";
import { SERVER } from "../../src/engine/access.js";
import { describe, test } from "node:test";
import { formatAddress } from "../../src/addr/index.js";
import type { Engine } from "../../src/engine/engine.js";
import { AllotError, type ErrorCode } from "../../src/engine/errors.js";
import type { PoolRef } from "../../src/engine/types.js";
import { ctx, manualClock, tempEngine } from "../helpers.js";

/** Runs `fn` against a fresh engine (optionally on a manual clock) and cleans up after. */
async function withEngine(fn: (engine: Engine, clock: ReturnType<typeof manualClock>) => Promise<void>): Promise<void> {
  const clock = manualClock();
  const env = await tempEngine({ clock: clock.now });
  try {
    await fn(env.engine, clock);
  } finally {
    await env.cleanup();
  }
}

/** Asserts that `p` rejects with an AllotError of `code` (and a message matching `mentions`); returns the error. */
async function rejectsWith(p: Promise<unknown>, code: ErrorCode, mentions?: RegExp): Promise<AllotError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof AllotError, `expected an AllotError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (mentions) assert.match(err.message, mentions);
    return err;
  }
  assert.fail(`expected ${code}, but the call succeeded`);
}

const runs = async (engine: Engine, ref: PoolRef) =>
  (await engine.freeRuns(ref)).map((r) => {
    const family = r.first > 0xffffffffn ? 6 : 4;
    const f = (v: bigint) => formatAddress({ family, value: v });
    return r.first === r.last ? f(r.first) : `${f(r.first)}-${f(r.last)}`;
  });

async function addresses(engine: Engine, ref: PoolRef): Promise<string[]> {
  const out: string[] = [];
  for (let after: string | undefined; ; ) {
    const page = await engine.listAllocations(ref, { limit: 100, ...(after ? { after } : {}) }, SERVER);
    out.push(...page.items.map((a) => (a.size === 1 ? a.address : `${a.address}-${a.lastAddress}`)));
    if (page.next === null) return out;
    after = page.next;
  }
}

const next = async (engine: Engine, pool: string, req: Parameters<Engine["allocate"]>[1] = {}) =>
  (await engine.allocate({ pool }, req, ctx)).allocation;

describe("pools", () => {
  test("a CIDR pool keeps back network, broadcast and gateway unless allocateReserved is set", () =>
    withEngine(async (engine) => {
      const kept = await engine.createPool({ name: "kept", cidr: "10.10.0.0/29", gateway: "10.10.0.1" }, ctx);
      assert.equal(kept.allocateReserved, false);
      assert.equal(kept.usage.total, "5"); // 8 - network - broadcast - gateway
      assert.deepEqual(await runs(engine, { pool: "kept" }), ["10.10.0.2-10.10.0.6"]);
      assert.equal((await next(engine, "kept")).address, "10.10.0.2");
      for (const a of ["10.10.0.0", "10.10.0.1", "10.10.0.7"]) {
        await rejectsWith(engine.allocate({ pool: "kept" }, { address: a }, ctx), "address-unavailable", /network, broadcast or gateway/);
      }

      const all = await engine.createPool({ name: "all", cidr: "10.10.1.0/29", gateway: "10.10.1.1", allocateReserved: true }, ctx);
      assert.equal(all.usage.total, "8");
      assert.equal((await next(engine, "all")).address, "10.10.1.0");
      assert.equal((await next(engine, "all", { address: "10.10.1.1" })).address, "10.10.1.1");
      assert.equal((await next(engine, "all", { address: "10.10.1.7" })).address, "10.10.1.7");

      // IPv6 has no broadcast address; a /127 point-to-point link keeps nothing back (RFC 6164)
      const v6 = await engine.createPool({ name: "v6", cidr: "2001:db8:1::/125" }, ctx);
      assert.equal(v6.usage.total, "7");
      const p2p = await engine.createPool({ name: "p2p", cidr: "2001:db8:2::/127" }, ctx);
      assert.equal(p2p.usage.total, "2");
    }));

  test("start..end ranges with their own prefixLength, gateway and DNS show those settings on their allocations", () =>
    withEngine(async (engine) => {
      const pool = await engine.createPool(
        {
          name: "lab",
          prefixLength: 24,
          gateway: "192.168.1.1",
          dns: ["192.168.1.53", "2001:DB8::53"],
          ranges: [
            { start: "192.168.1.10", end: "192.168.1.19" },
            { start: "192.168.2.10", end: "192.168.2.19", prefixLength: 23, gateway: "192.168.2.1", dns: ["9.9.9.9"] },
          ],
        },
        ctx,
      );
      assert.equal(pool.usage.total, "20"); // neither range holds its network, broadcast or gateway
      assert.deepEqual(
        pool.ranges.map((r) => ({ start: r.start, end: r.end, prefixLength: r.prefixLength, gateway: r.gateway, dns: r.dns })),
        [
          { start: "192.168.1.10", end: "192.168.1.19", prefixLength: 24, gateway: "192.168.1.1", dns: ["192.168.1.53", "2001:db8::53"] },
          { start: "192.168.2.10", end: "192.168.2.19", prefixLength: 23, gateway: "192.168.2.1", dns: ["9.9.9.9"] },
        ],
      );
      const a = await next(engine, "lab");
      assert.deepEqual({ address: a.address, prefixLength: a.prefixLength, gateway: a.gateway, dns: a.dns }, {
        address: "192.168.1.10",
        prefixLength: 24,
        gateway: "192.168.1.1",
        dns: ["192.168.1.53", "2001:db8::53"],
      });
      const b = await next(engine, "lab", { address: "192.168.2.15" });
      assert.deepEqual({ address: b.address, prefixLength: b.prefixLength, gateway: b.gateway, dns: b.dns }, {
        address: "192.168.2.15",
        prefixLength: 23,
        gateway: "192.168.2.1",
        dns: ["9.9.9.9"],
      });
      // the same settings come back when the allocation is read again
      assert.deepEqual(await engine.getAllocation(b.id, SERVER), b);
      // a block never straddles two ranges, even when they are adjacent in the free order
      await rejectsWith(engine.allocate({ pool: "lab" }, { address: "192.168.1.18", size: 4 }, ctx), "address-outside-pool");
    }));

  test("exclusions may be an address, a first-last span, a CIDR or a {start, end}; none is ever handed out", () =>
    withEngine(async (engine) => {
      const pool = await engine.createPool(
        {
          name: "ex",
          cidr: "10.20.0.0/24",
          exclusions: ["10.20.0.5", "10.20.0.10-10.20.0.19", "10.20.0.64/26", { start: "10.20.0.200", end: "10.20.0.201" }],
        },
        ctx,
      );
      assert.equal(pool.usage.total, String(256 - 2 - 1 - 10 - 64 - 2));
      assert.deepEqual(pool.exclusions, [
        { start: "10.20.0.5", end: "10.20.0.5" },
        { start: "10.20.0.10", end: "10.20.0.19" },
        { start: "10.20.0.64", end: "10.20.0.127" },
        { start: "10.20.0.200", end: "10.20.0.201" },
      ]);
      assert.deepEqual(await runs(engine, { pool: "ex" }), [
        "10.20.0.1-10.20.0.4",
        "10.20.0.6-10.20.0.9",
        "10.20.0.20-10.20.0.63",
        "10.20.0.128-10.20.0.199",
        "10.20.0.202-10.20.0.254",
      ]);
      for (const a of ["10.20.0.5", "10.20.0.12", "10.20.0.100", "10.20.0.201"]) {
        await rejectsWith(engine.allocate({ pool: "ex" }, { address: a }, ctx), "address-unavailable", /excluded/);
      }
      // next-free steps over them: 1-4, then 6-9, then 20
      const got: string[] = [];
      for (let i = 0; i < 9; i++) got.push((await next(engine, "ex")).address);
      assert.deepEqual(got, ["10.20.0.1", "10.20.0.2", "10.20.0.3", "10.20.0.4", "10.20.0.6", "10.20.0.7", "10.20.0.8", "10.20.0.9", "10.20.0.20"]);
      // an exclusion outside the pool is a mistake, not something to ignore
      await rejectsWith(engine.createPool({ name: "bad", cidr: "10.21.0.0/24", exclusions: ["10.22.0.1"] }, ctx), "invalid-range");
    }));

  test("attributes come back exactly as given, nested JSON included", () =>
    withEngine(async (engine) => {
      const attributes = {
        site: "ams-1",
        vlan: 120,
        ratio: 0.25,
        enabled: true,
        none: null,
        tags: ["a", "b", { deep: [1, [2, [3]]] }],
        nested: { rack: { row: 4, unit: [1, 2] }, "key with spaces": "ünïcödé ✓", empty: {} },
      };
      const created = await engine.createPool({ name: "attrs", cidr: "10.30.0.0/24", attributes }, ctx);
      assert.deepEqual(created.attributes, attributes);
      assert.deepEqual((await engine.getPool({ pool: "attrs" }, SERVER)).attributes, attributes);
      assert.deepEqual((await engine.listPools({}, SERVER)).find((p) => p.name === "attrs")?.attributes, attributes);
      assert.deepEqual((await engine.getPool({ pool: created.id }, SERVER)).attributes, attributes);
      const replaced = { only: ["this"] };
      assert.deepEqual((await engine.updatePool({ pool: "attrs" }, { attributes: replaced }, ctx)).attributes, replaced);
      assert.deepEqual((await engine.getPool({ pool: "attrs" }, SERVER)).attributes, replaced);
    }));

  test("strategy random hands out distinct addresses, all inside the pool and never a kept-back one", () =>
    withEngine(async (engine) => {
      await engine.createPool({ name: "rnd", cidr: "10.40.0.0/24", gateway: "10.40.0.1", strategy: "random", exclusions: ["10.40.0.128/25"] }, ctx);
      const allowed = new Set<string>();
      for (let i = 2; i < 128; i++) allowed.add(`10.40.0.${i}`);
      const got: string[] = [];
      for (let i = 0; i < 40; i++) got.push((await next(engine, "rnd")).address);
      assert.equal(new Set(got).size, got.length, "no address twice");
      for (const a of got) assert.ok(allowed.has(a), `${a} is not allocatable`);
      const lowest = [...allowed].slice(0, 40);
      assert.notDeepEqual(got, lowest, "random did not just count up from the bottom");
      // it still fills the pool completely, then says so
      for (let i = 40; i < allowed.size; i++) got.push((await next(engine, "rnd")).address);
      assert.deepEqual(new Set(got), allowed);
      await rejectsWith(engine.allocate({ pool: "rnd" }, {}, ctx), "pool-exhausted");
      assert.deepEqual(await engine.check(), []);
    }));

  test("pools in one space may not overlap; another space may hold the same addresses", () =>
    withEngine(async (engine) => {
      await engine.createPool({ name: "a", cidr: "10.50.0.0/24" }, ctx);
      const err = await rejectsWith(engine.createPool({ name: "b", cidr: "10.50.0.128/25" }, ctx), "pool-overlap", /pool a/);
      assert.equal(err.details.pool, "a");
      await rejectsWith(engine.createPool({ name: "c", cidr: "10.50.0.0/16" }, ctx), "pool-overlap");
      await rejectsWith(engine.createPool({ name: "d", ranges: [{ start: "10.49.255.250", end: "10.50.0.0", prefixLength: 14 }] }, ctx), "pool-overlap");
      await rejectsWith(
        engine.createPool({ name: "e", ranges: [{ cidr: "10.60.0.0/24" }, { start: "10.50.0.255", end: "10.50.0.255", prefixLength: 24 }] }, ctx),
        "pool-overlap",
      );
      assert.deepEqual((await engine.listPools({}, SERVER)).map((p) => p.name), ["a"], "nothing of the refused pools was kept");
      // touching is not overlapping
      await engine.createPool({ name: "below", cidr: "10.49.255.0/24" }, ctx);
      await engine.createPool({ name: "above", cidr: "10.50.1.0/24" }, ctx);

      await engine.createSpace({ name: "tenant-2" }, ctx);
      const twin = await engine.createPool({ name: "a", space: "tenant-2", cidr: "10.50.0.0/24" }, ctx);
      assert.equal(twin.space, "tenant-2");
      const x = await next(engine, "a");
      const y = (await engine.allocate({ pool: "a", space: "tenant-2" }, {}, ctx)).allocation;
      assert.equal(x.address, "10.50.0.1");
      assert.equal(y.address, "10.50.0.1", "the same address is held once in each space");
      await engine.createPool({ name: "big", space: "tenant-2", cidr: "10.0.0.0/8", allocateReserved: true }, ctx).then(
        () => assert.fail("overlap inside tenant-2 must be refused"),
        (e: unknown) => assert.equal((e as AllotError).code, "pool-overlap"),
      );
    }));

  test("a pool name is unique within its space", () =>
    withEngine(async (engine) => {
      await engine.createPool({ name: "net", cidr: "10.70.0.0/24" }, ctx);
      await rejectsWith(engine.createPool({ name: "net", cidr: "10.71.0.0/24" }, ctx), "pool-exists", /net/);
      await rejectsWith(engine.createPool({ name: "net", cidr: "2001:db8:71::/64" }, ctx), "pool-exists");
      await engine.createPool({ name: "other", cidr: "10.72.0.0/24" }, ctx);
      await rejectsWith(engine.updatePool({ pool: "other" }, { name: "net" }, ctx), "pool-exists");
      await rejectsWith(engine.createChildPool({ pool: "net" }, { name: "other", prefixLength: 28 }, ctx), "pool-exists");
      await engine.createSpace({ name: "s2" }, ctx);
      await engine.createPool({ name: "net", space: "s2", cidr: "10.71.0.0/24" }, ctx);
      assert.deepEqual((await engine.listPools({}, SERVER)).map((p) => `${p.space}/${p.name}`), ["default/net", "default/other", "s2/net"]);
    }));
});

describe("child pools", () => {
  test("by prefixLength the child is the first free aligned block; by cidr exactly that block", () =>
    withEngine(async (engine) => {
      await engine.createPool({ name: "super", cidr: "10.80.0.0/16", allocateReserved: true }, ctx);
      // one address taken at the bottom: the first /24 is no longer wholly free
      assert.equal((await next(engine, "super")).address, "10.80.0.0");
      const c1 = await engine.createChildPool({ pool: "super" }, { name: "c1", prefixLength: 24 }, ctx);
      assert.deepEqual(c1.ranges.map((r) => r.cidr), ["10.80.1.0/24"]);
      assert.equal(c1.parent, "super");
      // a /25 still fits, aligned, in the upper half of the first /24
      const c2 = await engine.createChildPool({ pool: "super" }, { name: "c2", prefixLength: 25 }, ctx);
      assert.deepEqual(c2.ranges.map((r) => r.cidr), ["10.80.0.128/25"]);
      const c3 = await engine.createChildPool({ pool: "super" }, { name: "c3", prefixLength: 23 }, ctx);
      assert.deepEqual(c3.ranges.map((r) => r.cidr), ["10.80.2.0/23"]);
      const c4 = await engine.createChildPool({ pool: "super" }, { name: "c4", cidr: "10.80.200.0/22" }, ctx);
      assert.deepEqual(c4.ranges.map((r) => r.cidr), ["10.80.200.0/22"]);

      const u = (await engine.getPool({ pool: "super" }, SERVER)).usage;
      assert.deepEqual(
        { total: u.total, allocated: u.allocated, inChildPools: u.inChildPools, free: u.free },
        { total: "65536", allocated: "1", inChildPools: String(256 + 128 + 512 + 1024), free: String(65536 - 1 - 256 - 128 - 512 - 1024) },
      );
      assert.deepEqual(await engine.usage({ pool: "super" }, SERVER), u);
      // a parent's carved blocks are not its allocations, and it never hands them out
      assert.deepEqual(await addresses(engine, { pool: "super" }), ["10.80.0.0"]);
      await rejectsWith(engine.allocate({ pool: "super" }, { address: "10.80.1.7" }, ctx), "address-unavailable", /child pool/);
      assert.equal((await next(engine, "super")).address, "10.80.0.1");

      // a child is a pool of its own: it keeps back its network and broadcast unless told otherwise
      assert.equal(c1.usage.total, "254");
      assert.equal((await next(engine, "c1")).address, "10.80.1.1");
      assert.deepEqual(await engine.check(), []);
    }));

  test("a child is refused when its block is not free or not inside the parent", () =>
    withEngine(async (engine) => {
      await engine.createPool({ name: "p", cidr: "10.90.0.0/16", allocateReserved: true }, ctx);
      await next(engine, "p", { address: "10.90.5.5" });
      await engine.createChildPool({ pool: "p" }, { name: "c", cidr: "10.90.8.0/22" }, ctx);
      await rejectsWith(engine.createChildPool({ pool: "p" }, { name: "x", cidr: "10.90.5.0/24" }, ctx), "block-unavailable");
      await rejectsWith(engine.createChildPool({ pool: "p" }, { name: "x", cidr: "10.90.9.0/24" }, ctx), "block-unavailable");
      await rejectsWith(engine.createChildPool({ pool: "p" }, { name: "x", cidr: "10.90.0.0/16" }, ctx), "block-unavailable");
      await rejectsWith(engine.createChildPool({ pool: "p" }, { name: "x", cidr: "10.91.0.0/24" }, ctx), "address-outside-pool");
      await rejectsWith(engine.createChildPool({ pool: "p" }, { name: "x", cidr: "10.0.0.0/8" }, ctx), "address-outside-pool");
      await rejectsWith(engine.createChildPool({ pool: "p" }, { name: "x", cidr: "2001:db8::/64" }, ctx), "invalid-address");
      await rejectsWith(engine.createChildPool({ pool: "p" }, { name: "x", prefixLength: 15 }, ctx), "block-unavailable");
      await rejectsWith(engine.createChildPool({ pool: "p" }, { name: "x", prefixLength: 33 }, ctx), "invalid-request");
      await rejectsWith(engine.createChildPool({ pool: "p" }, { name: "x" }, ctx), "invalid-request");
      await rejectsWith(engine.createChildPool({ pool: "p" }, { name: "x", prefixLength: 24, cidr: "10.90.1.0/24" }, ctx), "invalid-request");
      assert.deepEqual((await engine.listPools({ parent: { pool: "p" } }, SERVER)).map((c) => c.name), ["c"]);
      assert.deepEqual(await engine.check(), []);
    }));

  test("an IPv6 /48 carved from a /32, with exact counts", () =>
    withEngine(async (engine) => {
      await engine.createPool({ name: "rir", cidr: "2001:db8::/32", allocateReserved: true }, ctx);
      const a = await engine.createChildPool({ pool: "rir" }, { name: "site-a", prefixLength: 48 }, ctx);
      // a site that hands out /64s keeps nothing back: its first /64 is usable too
      const b = await engine.createChildPool({ pool: "rir" }, { name: "site-b", prefixLength: 48, allocateReserved: true }, ctx);
      const z = await engine.createChildPool({ pool: "rir" }, { name: "site-z", cidr: "2001:db8:ffff::/48" }, ctx);
      assert.deepEqual([a, b, z].map((c) => c.ranges[0]!.cidr), ["2001:db8::/48", "2001:db8:1::/48", "2001:db8:ffff::/48"]);
      const u = await engine.usage({ pool: "rir" }, SERVER);
      assert.equal(u.total, String(2n ** 96n));
      assert.equal(u.inChildPools, String(3n * 2n ** 80n));
      assert.equal(u.free, String(2n ** 96n - 3n * 2n ** 80n));
      assert.equal(u.allocated, "0");
      // and a /64 from the /48, and an address from the /64
      const lan = await engine.createChildPool({ pool: "site-b" }, { name: "lan", prefixLength: 64, gateway: "2001:db8:1::1" }, ctx);
      assert.equal(lan.ranges[0]!.cidr, "2001:db8:1::/64");
      assert.equal(lan.usage.total, String(2n ** 64n - 2n)); // subnet-router anycast and gateway kept back
      const host = await next(engine, "lan");
      assert.deepEqual({ address: host.address, prefixLength: host.prefixLength, gateway: host.gateway }, {
        address: "2001:db8:1::2",
        prefixLength: 64,
        gateway: "2001:db8:1::1",
      });
      const [found] = await engine.lookup("2001:db8:1::2", undefined, SERVER);
      assert.equal(found?.pool, "lan");
      assert.equal(found?.state, "allocated");
    }));

  test("a child may cover the parent's network, broadcast and gateway addresses, which stay kept back when it goes", () =>
    withEngine(async (engine) => {
      await engine.createPool({ name: "region", cidr: "10.0.0.0/16", gateway: "10.0.0.1" }, ctx);
      const before = await runs(engine, { pool: "region" });
      const first = await engine.createChildPool({ pool: "region" }, { name: "net-a", prefixLength: 24, gateway: "10.0.0.1" }, ctx);
      assert.equal(first.ranges[0]!.cidr, "10.0.0.0/24", "the first /24, though it holds the parent's network and gateway");
      const last = await engine.createChildPool({ pool: "region" }, { name: "net-z", cidr: "10.0.255.0/24" }, ctx);
      assert.equal(last.ranges[0]!.cidr, "10.0.255.0/24", "the last /24, though it holds the parent's broadcast");
      const region = await engine.getPool({ pool: "region" }, SERVER);
      // 65536 - network - broadcast - gateway allocatable; the two /24s take 254 and 255 of them
      assert.equal(region.usage.total, "65533");
      assert.equal(region.usage.inChildPools, String(254 + 255));
      assert.equal(region.usage.free, String(65533 - 509));
      assert.equal((await engine.lookup("10.0.0.1", "default", SERVER))[0]!.pool, "net-a");
      assert.equal((await next(engine, "net-a")).address, "10.0.0.2", "the child keeps its own network and gateway back");
      assert.deepEqual(await engine.check(), []);

      await engine.deletePool({ pool: "net-a" }, { force: true }, ctx);
      await engine.deletePool({ pool: "net-z" }, {}, ctx);
      assert.deepEqual(await runs(engine, { pool: "region" }), before, "reserved addresses did not become free");
      assert.equal((await engine.getPool({ pool: "region" }, SERVER)).usage.free, "65533");
      assert.deepEqual(await engine.check(), []);
    }));

  test("deleting a parent that has children is refused unless forced; deleting a child gives its block back", () =>
    withEngine(async (engine) => {
      await engine.createPool({ name: "parent", cidr: "10.100.0.0/22", allocateReserved: true }, ctx);
      const before = await runs(engine, { pool: "parent" });
      await engine.createChildPool({ pool: "parent" }, { name: "kid", prefixLength: 24 }, ctx);
      await engine.createChildPool({ pool: "kid" }, { name: "grandkid", prefixLength: 26 }, ctx);
      await next(engine, "grandkid");

      const err = await rejectsWith(engine.deletePool({ pool: "parent" }, {}, ctx), "pool-in-use");
      assert.deepEqual(err.details.children, ["kid"]);
      await rejectsWith(engine.deletePool({ pool: "kid" }, {}, ctx), "pool-in-use");

      // deleting the grandchild returns its /26 to the child, which is whole again
      await rejectsWith(engine.deletePool({ pool: "grandkid" }, {}, ctx), "pool-in-use"); // it holds an allocation
      await engine.deletePool({ pool: "grandkid" }, { force: true }, ctx);
      const kid = await engine.getPool({ pool: "kid" }, SERVER);
      assert.equal(kid.usage.inChildPools, "0");
      assert.deepEqual(await runs(engine, { pool: "kid" }), ["10.100.0.1-10.100.0.254"]);

      // the child goes back into the parent: same free runs as before, and the same block can be carved again
      await engine.deletePool({ pool: "kid" }, {}, ctx);
      assert.deepEqual(await runs(engine, { pool: "parent" }), before);
      assert.equal((await engine.getPool({ pool: "parent" }, SERVER)).usage.inChildPools, "0");
      await engine.createChildPool({ pool: "parent" }, { name: "kid2", cidr: "10.100.0.0/24" }, ctx);

      // force takes the children (and theirs) along
      await engine.createChildPool({ pool: "kid2" }, { name: "kid2a", prefixLength: 28 }, ctx);
      await engine.deletePool({ pool: "parent" }, { force: true }, ctx);
      assert.deepEqual(await engine.listPools({}, SERVER), []);
      for (const name of ["parent", "kid2", "kid2a"]) await rejectsWith(engine.getPool({ pool: name }, SERVER), "pool-not-found");
      assert.deepEqual(await engine.lookup("10.100.0.5", undefined, SERVER), []);
      assert.deepEqual(await engine.check(), []);
    }));
});

describe("allocations", () => {
  test("a specific address, then the same one again: the second is refused and names the holder", () =>
    withEngine(async (engine) => {
      await engine.createPool({ name: "n", cidr: "10.110.0.0/24" }, ctx);
      const a = await next(engine, "n", { address: "10.110.0.77", owner: "vm-1", mac: "AA-BB-CC-00-11-22", hostname: "vm1", labels: { role: "db" } });
      assert.deepEqual({ address: a.address, owner: a.owner, mac: a.mac, hostname: a.hostname, labels: a.labels, size: a.size }, {
        address: "10.110.0.77",
        owner: "vm-1",
        mac: "aa:bb:cc:00:11:22",
        hostname: "vm1",
        labels: { role: "db" },
        size: 1,
      });
      const err = await rejectsWith(engine.allocate({ pool: "n" }, { address: "10.110.0.77" }, ctx), "address-unavailable", /vm-1/);
      assert.equal((err.details.holder as { id: string }).id, a.id);
      await rejectsWith(engine.allocate({ pool: "n" }, { address: "10.111.0.1" }, ctx), "address-outside-pool");
      await rejectsWith(engine.allocate({ pool: "n" }, { address: "2001:db8::1" }, ctx), "invalid-address");
      // next-free is unaffected by a specific allocation higher up
      assert.equal((await next(engine, "n")).address, "10.110.0.1");
    }));

  test("a bulk request with the random strategy takes distinct free addresses until the pool is full", () =>
    withEngine(async (engine) => {
      await engine.createPool({ name: "r", cidr: "10.9.0.0/26", strategy: "random", exclusions: ["10.9.0.10-10.9.0.19"] }, ctx);
      await next(engine, "r", { address: "10.9.0.33" });
      const got = await engine.allocateMany({ pool: "r" }, { count: 51 }, ctx);
      const addrs = [...got.items()].map((a) => a.address);
      assert.equal(new Set(addrs).size, 51);
      assert.ok(!addrs.includes("10.9.0.33") && !addrs.includes("10.9.0.15") && !addrs.includes("10.9.0.0") && !addrs.includes("10.9.0.63"));
      assert.equal((await engine.usage({ pool: "r" }, SERVER)).free, "0");
      await rejectsWith(engine.allocateMany({ pool: "r" }, { count: 1 }, ctx), "pool-exhausted");
      assert.deepEqual(await engine.check(), []);
    }));

  test("a block is the lowest run that fits, and any address of it releases all of it", () =>
    withEngine(async (engine) => {
      await engine.createPool({ name: "b", cidr: "10.120.0.0/24", exclusions: ["10.120.0.4"] }, ctx);
      // 1-3 is too short for 4; 5-8 is the first fit
      const block = await next(engine, "b", { size: 4 });
      assert.deepEqual([block.address, block.lastAddress, block.size], ["10.120.0.5", "10.120.0.8", 4]);
      const small = await next(engine, "b", { size: 3 });
      assert.deepEqual([small.address, small.lastAddress], ["10.120.0.1", "10.120.0.3"]);
      const specific = await next(engine, "b", { address: "10.120.0.100", size: 16 });
      assert.equal(specific.lastAddress, "10.120.0.115");
      await rejectsWith(engine.allocate({ pool: "b" }, { address: "10.120.0.98", size: 4 }, ctx), "address-unavailable");
      await rejectsWith(engine.allocate({ pool: "b" }, { size: 200 }, ctx), "block-unavailable", /smaller block/);

      const released = await engine.release({ pool: { pool: "b" }, address: "10.120.0.7" }, ctx);
      assert.equal(released.id, block.id);
      assert.deepEqual(await addresses(engine, { pool: "b" }), ["10.120.0.1-10.120.0.3", "10.120.0.100-10.120.0.115"]);
      assert.deepEqual(await runs(engine, { pool: "b" }), ["10.120.0.5-10.120.0.99", "10.120.0.116-10.120.0.254"]);
      await rejectsWith(engine.release({ pool: { pool: "b" }, address: "10.120.0.7" }, ctx), "allocation-not-found");
    }));

  test("the same owner asking again gets the same allocation; a different address, size, MAC or host name is a conflict", () =>
    withEngine(async (engine) => {
      await engine.createPool({ name: "o", cidr: "10.130.0.0/24" }, ctx);
      const first = await engine.allocate({ pool: "o" }, { owner: "claim-1" }, ctx);
      assert.equal(first.created, true);
      const historyBefore = (await engine.history({ limit: 1000 }, SERVER)).length;
      for (const req of [{ owner: "claim-1" }, { owner: "claim-1", address: first.allocation.address }, { owner: "claim-1", size: 1 }]) {
        const again = await engine.allocate({ pool: "o" }, req, ctx);
        assert.equal(again.created, false);
        assert.deepEqual(again.allocation, first.allocation);
      }
      assert.equal((await engine.history({ limit: 1000 }, SERVER)).length, historyBefore, "a retry records nothing");
      assert.deepEqual(await addresses(engine, { pool: "o" }), ["10.130.0.1"]);

      const c1 = await rejectsWith(engine.allocate({ pool: "o" }, { owner: "claim-1", address: "10.130.0.9" }, ctx), "owner-conflict", /claim-1/);
      assert.equal((c1.details.allocation as { id: string }).id, first.allocation.id);
      await rejectsWith(engine.allocate({ pool: "o" }, { owner: "claim-1", size: 2 }, ctx), "owner-conflict");
      // a MAC or host name the held allocation lacks (or has another of) is another request, not a retry
      const c2 = await rejectsWith(
        engine.allocate({ pool: "o" }, { owner: "claim-1", mac: "AA-BB-CC-00-00-01", hostname: "web-1" }, ctx),
        "owner-conflict",
        /different mac \(holds none, asked aa:bb:cc:00:00:01\), hostname \(holds none, asked web-1\)/,
      );
      assert.deepEqual(c2.details.fields, ["mac", "hostname"]);
      await engine.updateAllocation(first.allocation.id, { mac: "aa:bb:cc:00:00:01", hostname: "web-1" }, ctx);
      // once held with them, the same request (any MAC spelling) is a retry again; labels never count
      const retry = await engine.allocate({ pool: "o" }, { owner: "claim-1", mac: "AA:BB:CC:00:00:01", hostname: "web-1", labels: { x: "y" } }, ctx);
      assert.equal(retry.created, false);
      await rejectsWith(engine.allocate({ pool: "o" }, { owner: "claim-1", hostname: "web-2" }, ctx), "owner-conflict", /hostname \(holds web-1, asked web-2\)/);
      assert.equal((await engine.history({ limit: 1000 }, SERVER)).length, historyBefore + 1, "refusals record nothing");

      // owners are per pool: the same owner in another pool is someone else's business
      await engine.createPool({ name: "o2", cidr: "10.131.0.0/24" }, ctx);
      assert.equal((await engine.allocate({ pool: "o2" }, { owner: "claim-1" }, ctx)).created, true);

      const released = await engine.release({ pool: { pool: "o" }, owner: "claim-1" }, ctx);
      assert.equal(released.id, first.allocation.id);
      await rejectsWith(engine.release({ pool: { pool: "o" }, owner: "claim-1" }, ctx), "allocation-not-found");
      const fresh = await engine.allocate({ pool: "o" }, { owner: "claim-1", address: "10.130.0.9" }, ctx);
      assert.equal(fresh.created, true);
      assert.notEqual(fresh.allocation.id, first.allocation.id);
    }));

  test("release by id, by address and by owner; each only once", () =>
    withEngine(async (engine) => {
      await engine.createPool({ name: "r", cidr: "10.140.0.0/24" }, ctx);
      const a = await next(engine, "r");
      const b = await next(engine, "r", { size: 2 });
      const c = await next(engine, "r", { owner: "nic-7" });
      assert.equal((await engine.release({ id: a.id }, ctx)).address, a.address);
      assert.equal((await engine.release({ pool: { pool: "r" }, address: b.lastAddress }, ctx)).id, b.id);
      assert.equal((await engine.release({ pool: { pool: "r" }, owner: "nic-7" }, ctx)).id, c.id);
      await rejectsWith(engine.release({ id: a.id }, ctx), "allocation-not-found");
      await rejectsWith(engine.getAllocation(a.id, SERVER), "allocation-not-found");
      await rejectsWith(engine.release({ pool: { pool: "r" }, address: b.address }, ctx), "allocation-not-found");
      await rejectsWith(engine.release({ pool: { pool: "r" }, owner: "nic-7" }, ctx), "allocation-not-found");
      await rejectsWith(engine.release({ pool: { pool: "nope" }, owner: "nic-7" }, ctx), "pool-not-found");
      assert.deepEqual(await addresses(engine, { pool: "r" }), []);
      assert.equal((await engine.usage({ pool: "r" }, SERVER)).allocated, "0");
      const actions = (await engine.history({ pool: { pool: "r" } }, SERVER)).map((h) => h.action);
      assert.deepEqual(actions.slice(0, 3), ["release", "release", "release"]);
    }));

  test("an allocation with a ttl is gone once its time is up, and expire() records that", () =>
    withEngine(async (engine, clock) => {
      await engine.createPool({ name: "t", cidr: "10.150.0.0/24" }, ctx);
      const lease = await next(engine, "t", { ttl: 60, owner: "dhcp-1" });
      assert.equal(lease.expiresAt, new Date(clock.now() + 60_000).toISOString());
      const keep = await next(engine, "t");

      clock.advance(59_999);
      assert.deepEqual(await addresses(engine, { pool: "t" }), ["10.150.0.1", "10.150.0.2"]);
      assert.equal(await engine.expire(), 0);
      assert.equal((await engine.getAllocation(lease.id, SERVER)).id, lease.id);

      clock.advance(1);
      // already gone for readers, before anything sweeps it out
      assert.deepEqual(await addresses(engine, { pool: "t" }), ["10.150.0.2"]);
      assert.equal((await engine.lookup("10.150.0.1", undefined, SERVER))[0]?.state, "free");
      await rejectsWith(engine.getAllocation(lease.id, SERVER), "allocation-not-found");
      await rejectsWith(engine.release({ id: lease.id }, ctx), "allocation-not-found");
      await rejectsWith(engine.release({ pool: { pool: "t" }, owner: "dhcp-1" }, ctx), "allocation-not-found");
      await rejectsWith(engine.release({ pool: { pool: "t" }, address: "10.150.0.1" }, ctx), "allocation-not-found");

      assert.equal(await engine.expire(), 1);
      assert.equal(await engine.expire(), 0);
      const [last] = await engine.history({ pool: { pool: "t" }, limit: 1 }, SERVER);
      assert.deepEqual([last?.action, last?.actor, last?.entityId], ["expire", "system:expiry", lease.id]);
      const u = await engine.usage({ pool: "t" }, SERVER);
      assert.equal(u.allocated, "1");
      assert.deepEqual(await engine.getAllocation(keep.id, SERVER), keep);
      // the address is free again, and the owner may ask anew
      const again = await engine.allocate({ pool: "t" }, { owner: "dhcp-1" }, ctx);
      assert.equal(again.created, true);
      assert.equal(again.allocation.address, "10.150.0.1");
      assert.deepEqual(await engine.check(), []);
    }));

  test("an expired allocation frees its address for the next request even without expire()", () =>
    withEngine(async (engine, clock) => {
      await engine.createPool({ name: "tiny", cidr: "10.160.0.0/30" }, ctx); // two usable addresses
      await next(engine, "tiny", { ttl: 5 });
      await next(engine, "tiny");
      await rejectsWith(engine.allocate({ pool: "tiny" }, {}, ctx), "pool-exhausted");
      clock.advance(5_000);
      assert.equal((await next(engine, "tiny")).address, "10.160.0.1");
      assert.equal((await engine.usage({ pool: "tiny" }, SERVER)).free, "0");
    }));

  test("lookup says allocated, free, excluded or reserved, and follows an address into child pools", () =>
    withEngine(async (engine) => {
      await engine.createPool({ name: "l", cidr: "10.170.0.0/16", gateway: "10.170.0.1", exclusions: ["10.170.0.10-10.170.0.20"] }, ctx);
      const held = await next(engine, "l", { owner: "web-1" });
      await engine.createChildPool({ pool: "l" }, { name: "l-kid", cidr: "10.170.4.0/24" }, ctx);
      const inKid = await next(engine, "l-kid", { owner: "kid-host" });
      const state = async (a: string) => {
        const [r] = await engine.lookup(a, undefined, SERVER);
        return r ? `${r.pool}:${r.state}${r.allocation ? `:${r.allocation.owner}` : ""}` : "none";
      };
      assert.equal(await state(held.address), "l:allocated:web-1");
      assert.equal(await state("10.170.0.3"), "l:free");
      assert.equal(await state("10.170.0.15"), "l:excluded");
      assert.equal(await state("10.170.0.0"), "l:reserved");
      assert.equal(await state("10.170.0.1"), "l:reserved");
      assert.equal(await state("10.170.255.255"), "l:reserved");
      assert.equal(await state(inKid.address), "l-kid:allocated:kid-host");
      assert.equal(inKid.address, "10.170.4.1");
      assert.equal(await state("10.170.4.9"), "l-kid:free");
      assert.equal(await state("10.170.4.0"), "l-kid:reserved");
      assert.equal(await state("10.171.0.1"), "none");
      const [r] = await engine.lookup(held.address, undefined, SERVER);
      assert.equal(r?.allocation?.id, held.id);
      // every space answers for itself
      await engine.createSpace({ name: "lab" }, ctx);
      await engine.createPool({ name: "l", space: "lab", cidr: "10.170.0.0/24" }, ctx);
      assert.deepEqual((await engine.lookup("10.170.0.3", undefined, SERVER)).map((x) => `${x.space}/${x.pool}:${x.state}`).sort(), ["default/l:free", "lab/l:free"]);
      assert.deepEqual((await engine.lookup("10.170.0.3", "lab", SERVER)).map((x) => x.space), ["lab"]);
      await rejectsWith(engine.lookup("10.170.0.300", undefined, SERVER), "invalid-address");
    }));

  test("usage of an IPv6 /32 is exact, as decimal strings", () =>
    withEngine(async (engine) => {
      const pool = await engine.createPool({ name: "big", cidr: "2001:db8::/32", gateway: "2001:db8::1" }, ctx);
      const total = 2n ** 96n - 2n; // the subnet-router anycast address and the gateway are kept back
      assert.equal(pool.usage.total, total.toString());
      assert.equal(pool.usage.total, "79228162514264337593543950334");
      await next(engine, "big", { size: 16 });
      await next(engine, "big", { address: "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff" });
      await engine.createChildPool({ pool: "big" }, { name: "big-kid", prefixLength: 48 }, ctx);
      const u = await engine.usage({ pool: "big" }, SERVER);
      assert.deepEqual(u, {
        total: total.toString(),
        allocated: "17",
        inChildPools: (2n ** 80n).toString(),
        free: (total - 17n - 2n ** 80n).toString(),
        utilization: 0,
      });
      assert.equal((await engine.getPool({ pool: "big" }, SERVER)).usage.free, u.free);
    }));
});

describe("bad input changes nothing", () => {
  /** Everything a change could touch: history, pools with usage, allocations and free runs. */
  async function snapshot(engine: Engine) {
    const pools = await engine.listPools({}, SERVER);
    const perPool = [];
    for (const p of pools) {
      perPool.push({ name: p.name, usage: await engine.usage({ pool: p.id }, SERVER), runs: await runs(engine, { pool: p.id }), held: await addresses(engine, { pool: p.id }) });
    }
    return { history: (await engine.history({ limit: 100_000 }, SERVER)).length, pools, perPool, spaces: await engine.listSpaces(SERVER) };
  }

  test("each bad request is refused with its code and leaves history, usage and free runs as they were", () =>
    withEngine(async (engine) => {
      await engine.createPool({ name: "main", cidr: "10.180.0.0/24", gateway: "10.180.0.1" }, ctx);
      await engine.createPool({ name: "full", cidr: "10.181.0.0/30" }, ctx);
      await next(engine, "full");
      await next(engine, "full");
      await engine.createPool({ name: "holey", cidr: "10.182.0.0/28", allocateReserved: true }, ctx);
      // free runs of 3, 3, 3 and 4 addresses
      for (const a of ["10.182.0.3", "10.182.0.7", "10.182.0.11"]) await next(engine, "holey", { address: a });
      await next(engine, "main", { owner: "vm-1" });
      await engine.createPool({ name: "parent", cidr: "10.183.0.0/16", allocateReserved: true }, ctx);
      await engine.createChildPool({ pool: "parent" }, { name: "kid", cidr: "10.183.1.0/24" }, ctx);
      await engine.createPool({ name: "v6", cidr: "2001:db8:180::/48" }, ctx);

      const cases: [string, ErrorCode, () => Promise<unknown>][] = [
        ["invalid address in a pool", "invalid-address", () => engine.createPool({ name: "x", cidr: "10.184.0.300/24" }, ctx)],
        ["prefix with host bits", "invalid-address", () => engine.createPool({ name: "x", cidr: "10.184.0.1/24" }, ctx)],
        ["range outside its prefix", "invalid-range", () => engine.createPool({ name: "x", ranges: [{ start: "10.184.0.250", end: "10.184.1.5", prefixLength: 24 }] }, ctx)],
        ["range ending before it starts", "invalid-range", () => engine.createPool({ name: "x", ranges: [{ start: "10.184.0.9", end: "10.184.0.1", prefixLength: 24 }] }, ctx)],
        ["gateway outside the prefix", "invalid-range", () => engine.createPool({ name: "x", cidr: "10.184.0.0/24", gateway: "10.185.0.1" }, ctx)],
        ["mixed families", "invalid-range", () => engine.createPool({ name: "x", ranges: [{ cidr: "10.184.0.0/24" }, { cidr: "2001:db8:184::/64" }] }, ctx)],
        ["overlapping pool", "pool-overlap", () => engine.createPool({ name: "x", cidr: "10.180.0.128/25" }, ctx)],
        ["overlapping IPv6 pool", "pool-overlap", () => engine.createPool({ name: "x", cidr: "2001:db8::/32" }, ctx)],
        ["duplicate name", "pool-exists", () => engine.createPool({ name: "main", cidr: "10.184.0.0/24" }, ctx)],
        ["bad pool name", "invalid-request", () => engine.createPool({ name: "no spaces", cidr: "10.184.0.0/24" }, ctx)],
        ["unknown strategy", "invalid-request", () => engine.createPool({ name: "x", cidr: "10.184.0.0/24", strategy: "best" as never }, ctx)],
        ["unknown space", "space-not-found", () => engine.createPool({ name: "x", space: "nope", cidr: "10.184.0.0/24" }, ctx)],
        ["unknown pool", "pool-not-found", () => engine.allocate({ pool: "nope" }, {}, ctx)],
        ["unknown pool id", "pool-not-found", () => engine.allocate({ pool: "00000000-0000-4000-8000-000000000000" }, {}, ctx)],
        ["exhausted pool", "pool-exhausted", () => engine.allocate({ pool: "full" }, {}, ctx)],
        ["exhausted pool, with an owner", "pool-exhausted", () => engine.allocate({ pool: "full" }, { owner: "late" }, ctx)],
        ["block bigger than any free run", "block-unavailable", () => engine.allocate({ pool: "holey" }, { size: 5 }, ctx)],
        ["ttl 0", "invalid-request", () => engine.allocate({ pool: "main" }, { ttl: 0 }, ctx)],
        ["negative ttl", "invalid-request", () => engine.allocate({ pool: "main" }, { ttl: -5 }, ctx)],
        ["fractional ttl", "invalid-request", () => engine.allocate({ pool: "main" }, { ttl: 1.5 }, ctx)],
        ["size 0", "invalid-request", () => engine.allocate({ pool: "main" }, { size: 0 }, ctx)],
        ["negative size", "invalid-request", () => engine.allocate({ pool: "main" }, { size: -1 }, ctx)],
        ["invalid address to allocate", "invalid-address", () => engine.allocate({ pool: "main" }, { address: "10.180.0.x" }, ctx)],
        ["address of the other family", "invalid-address", () => engine.allocate({ pool: "main" }, { address: "2001:db8::1" }, ctx)],
        ["address outside the pool", "address-outside-pool", () => engine.allocate({ pool: "main" }, { address: "10.181.0.1" }, ctx)],
        ["address already held", "address-unavailable", () => engine.allocate({ pool: "main" }, { address: "10.180.0.2" }, ctx)],
        ["the gateway", "address-unavailable", () => engine.allocate({ pool: "main" }, { address: "10.180.0.1" }, ctx)],
        ["invalid MAC", "invalid-address", () => engine.allocate({ pool: "main" }, { mac: "not-a-mac" }, ctx)],
        ["owner asking for another address", "owner-conflict", () => engine.allocate({ pool: "main" }, { owner: "vm-1", address: "10.180.0.50" }, ctx)],
        ["release of nothing", "allocation-not-found", () => engine.release({ pool: { pool: "main" }, address: "10.180.0.99" }, ctx)],
        ["release of an unknown id", "allocation-not-found", () => engine.release({ id: "00000000-0000-4000-8000-000000000000" }, ctx)],
        ["release of a child's carve by address", "allocation-not-found", () => engine.release({ pool: { pool: "parent" }, address: "10.183.1.1" }, ctx)],
        ["child block not free", "block-unavailable", () => engine.createChildPool({ pool: "parent" }, { name: "x", cidr: "10.183.0.0/23" }, ctx)],
        ["child outside its parent", "address-outside-pool", () => engine.createChildPool({ pool: "parent" }, { name: "x", cidr: "10.184.0.0/24" }, ctx)],
        ["child bigger than the parent", "block-unavailable", () => engine.createChildPool({ pool: "parent" }, { name: "x", prefixLength: 8 }, ctx)],
        ["delete a parent with children", "pool-in-use", () => engine.deletePool({ pool: "parent" }, {}, ctx)],
        ["delete a pool with allocations", "pool-in-use", () => engine.deletePool({ pool: "full" }, {}, ctx)],
        ["delete the default space", "invalid-request", () => engine.deleteSpace("default", ctx)],
      ];
      for (const [what, code, attempt] of cases) {
        const before = await snapshot(engine);
        const err = await attempt().then(
          () => assert.fail(`${what}: expected ${code}, but it succeeded`),
          (e: unknown) => e,
        );
        assert.ok(err instanceof AllotError, `${what}: ${String(err)}`);
        assert.equal(err.code, code, `${what}: ${err.message}`);
        assert.ok(err.message.length > 20, `${what}: the message says what was wrong`);
        assert.deepEqual(await snapshot(engine), before, `${what}: nothing changed`);
      }
      assert.deepEqual(await engine.check(), []);
    }));
});

test("a child pool carved over its parent's gateway never hands that address out", () =>
  withEngine(async (engine) => {
    await engine.createPool({ name: "routed", cidr: "10.60.0.0/24", gateway: "10.60.0.1" }, ctx);
    const child = await engine.createChildPool({ pool: "routed" }, { name: "routed-a", prefixLength: 28 }, ctx);
    assert.equal(child.ranges[0]!.cidr, "10.60.0.0/28");
    assert.deepEqual(child.exclusions, [{ start: "10.60.0.1", end: "10.60.0.1" }]);
    assert.equal(child.usage.total, "13"); // 16 less network, broadcast and the parent's router
    assert.equal((await engine.allocate({ pool: "routed-a" }, {}, ctx)).allocation.address, "10.60.0.2");
    assert.deepEqual(await engine.check(), []);
  }));
