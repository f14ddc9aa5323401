import assert from "node:assert/strict";
import { SERVER } from "../../src/engine/access.js";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import { parseAddress, toKey } from "../../src/addr/index.js";
import type { Engine } from "../../src/engine/engine.js";
import { ConstraintError, type Sql, type SqlValue, type Store } from "../../src/store/store.js";
import { ctx, tempEngine } from "../helpers.js";

/**
 * The promise that an address is never held twice is kept by the database, not only by the engine's
 * checks: rows written straight into the store, past the engine, are refused the same way.
 */

const key = (a: string) => toKey(parseAddress(a).value);

/** Every row of every table, so a refused write can be shown to have changed nothing. */
async function everything(store: Store) {
  return store.read(async (sql) => {
    const out: Record<string, unknown[]> = {};
    const keys: Record<string, string> = {
      spaces: "id",
      pools: "id",
      pool_ranges: "pool_id, seq",
      exclusions: "pool_id, first",
      allocations: "id",
      free_runs: "pool_id, first",
      history: "seq",
    };
    for (const [table, order] of Object.entries(keys)) out[table] = await sql.all(`SELECT * FROM ${table} ORDER BY ${order}`);
    return out;
  });
}

interface RawAllocation {
  pool: { id: string; spaceId: string };
  first: string;
  last: string;
  owner?: string;
}

function insertAllocation(sql: Sql, a: RawAllocation) {
  const at = new Date().toISOString();
  const size = parseAddress(a.last).value - parseAddress(a.first).value + 1n;
  const params: SqlValue[] = [
    randomUUID(), a.pool.id, a.pool.spaceId, 4, key(a.first), key(a.last), size.toString(), null, a.owner ?? null, null, null, "{}", null, at, at,
  ];
  return sql.run(
    `INSERT INTO allocations (id, pool_id, space_id, family, first, last, size, child_pool_id, owner, mac, hostname,
       labels, expires_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    params,
  );
}

/** The store refuses `write` with a ConstraintError, and every table is as it was. */
async function refused(store: Store, what: string, write: (sql: Sql) => Promise<unknown>, constraint?: ConstraintError["constraint"]) {
  const before = await everything(store);
  await assert.rejects(
    store.transaction(write),
    (err: unknown) => {
      assert.ok(err instanceof ConstraintError, `${what}: expected a ConstraintError, got ${String(err)}`);
      if (constraint) assert.equal(err.constraint, constraint, `${what}: ${err.message}`);
      return true;
    },
    what,
  );
  assert.deepEqual(await everything(store), before, `${what}: nothing changed`);
}

async function setup() {
  const env = await tempEngine();
  const { engine } = env;
  const spaceId = (await engine.getSpace("default", SERVER)).id;
  const a = await engine.createPool({ name: "a", cidr: "10.0.0.0/24" }, ctx);
  const b = await engine.createPool({ name: "b", cidr: "10.0.1.0/24" }, ctx);
  const single = (await engine.allocate({ pool: "a" }, { address: "10.0.0.5", owner: "vm-1" }, ctx)).allocation;
  const block = (await engine.allocate({ pool: "a" }, { address: "10.0.0.16", size: 8 }, ctx)).allocation;
  assert.equal(block.lastAddress, "10.0.0.23");
  return { ...env, pa: { id: a.id, spaceId }, pb: { id: b.id, spaceId }, single, block };
}

async function assertIntact(engine: Engine) {
  assert.deepEqual(await engine.check(), [], "the engine's consistency check still passes");
  const page = await engine.listAllocations({ pool: "a" }, { limit: 100 }, SERVER);
  assert.deepEqual(
    page.items.map((x) => `${x.address}-${x.lastAddress}`),
    ["10.0.0.5-10.0.0.5", "10.0.0.16-10.0.0.23"],
  );
}

test("the database refuses a second allocation with the same first address", async () => {
  const { store, engine, pa, pb, cleanup } = await setup();
  try {
    await refused(store, "same address, same pool", (sql) => insertAllocation(sql, { pool: pa, first: "10.0.0.5", last: "10.0.0.5" }));
    await refused(store, "same first address as a block", (sql) => insertAllocation(sql, { pool: pa, first: "10.0.0.16", last: "10.0.0.16" }));
    await refused(store, "same first address, longer run", (sql) => insertAllocation(sql, { pool: pa, first: "10.0.0.16", last: "10.0.0.31" }));
    // another pool of the same space is no way round it
    await refused(store, "same address through another pool of the space", (sql) => insertAllocation(sql, { pool: pb, first: "10.0.0.5", last: "10.0.0.5" }), "overlap");
    await refused(store, "a run through another pool overlapping a block's middle", (sql) => insertAllocation(sql, { pool: pb, first: "10.0.0.20", last: "10.0.0.21" }), "overlap");
    await assertIntact(engine);
  } finally {
    await cleanup();
  }
});

test("the database refuses a run that overlaps another's middle, from either side or inside", async () => {
  const { store, engine, pa, cleanup } = await setup();
  try {
    // the block holds 10.0.0.16-10.0.0.23
    await refused(store, "inside the block", (sql) => insertAllocation(sql, { pool: pa, first: "10.0.0.19", last: "10.0.0.20" }), "overlap");
    await refused(store, "one address in the middle", (sql) => insertAllocation(sql, { pool: pa, first: "10.0.0.20", last: "10.0.0.20" }), "overlap");
    await refused(store, "reaching into it from below", (sql) => insertAllocation(sql, { pool: pa, first: "10.0.0.10", last: "10.0.0.17" }), "overlap");
    await refused(store, "starting inside it", (sql) => insertAllocation(sql, { pool: pa, first: "10.0.0.23", last: "10.0.0.30" }), "overlap");
    await refused(store, "covering it and more", (sql) => insertAllocation(sql, { pool: pa, first: "10.0.0.1", last: "10.0.0.100" }), "overlap");
    await refused(store, "covering the single address", (sql) => insertAllocation(sql, { pool: pa, first: "10.0.0.4", last: "10.0.0.6" }), "overlap");
    // a whole transaction goes: a good row written before the bad one is not kept either
    await refused(
      store,
      "a good row, then an overlapping one",
      async (sql) => {
        await insertAllocation(sql, { pool: pa, first: "10.0.0.40", last: "10.0.0.40" });
        await insertAllocation(sql, { pool: pa, first: "10.0.0.22", last: "10.0.0.24" });
      },
      "overlap",
    );
    // nor may a run be moved onto another: addresses of an allocation never change
    await refused(store, "moving a run", (sql) => sql.run("UPDATE allocations SET first = ?, last = ? WHERE first = ?", [key("10.0.0.18"), key("10.0.0.18"), key("10.0.0.5")]), "overlap");
    // the same owner twice in one pool breaks retries, so that is refused too
    await refused(store, "a second allocation for one owner", (sql) => insertAllocation(sql, { pool: pa, first: "10.0.0.60", last: "10.0.0.60", owner: "vm-1" }), "unique");
    await assertIntact(engine);

    // the same write at free addresses is accepted, so it was the overlap that was refused
    await store.transaction((sql) => insertAllocation(sql, { pool: pa, first: "10.0.0.24", last: "10.0.0.24" }));
    await store.transaction((sql) => insertAllocation(sql, { pool: pa, first: "10.0.0.15", last: "10.0.0.15" }));
  } finally {
    await cleanup();
  }
});

test("the database refuses a pool range that overlaps another top-level pool in the same space", async () => {
  const { store, engine, pa, cleanup } = await setup();
  try {
    const newPool = async (sql: Sql, spaceId: string, first: string, last: string) => {
      const id = randomUUID();
      const at = new Date().toISOString();
      await sql.run(
        `INSERT INTO pools (id, space_id, name, family, parent_id, strategy, allocate_reserved, prefix_length, gateway, dns,
           description, attributes, total, created_at, updated_at) VALUES (?, ?, ?, 4, NULL, 'lowest-free', 0, NULL, NULL, '[]', '', '{}', '0', ?, ?)`,
        [id, spaceId, `raw-${id.slice(0, 8)}`, at, at],
      );
      await sql.run(
        `INSERT INTO pool_ranges (pool_id, seq, space_id, family, top_level, first, last, prefix_length, gateway, dns)
         VALUES (?, 0, ?, 4, 1, ?, ?, 24, NULL, NULL)`,
        [id, spaceId, key(first), key(last)],
      );
    };
    const space = pa.spaceId;
    await refused(store, "the same range", (sql) => newPool(sql, space, "10.0.0.0", "10.0.0.255"), "overlap");
    await refused(store, "inside pool a", (sql) => newPool(sql, space, "10.0.0.100", "10.0.0.110"), "overlap");
    await refused(store, "across the end of a into b", (sql) => newPool(sql, space, "10.0.0.200", "10.0.1.10"), "overlap");
    await refused(store, "covering both pools", (sql) => newPool(sql, space, "9.0.0.0", "11.0.0.0"), "overlap");
    await refused(store, "reaching into a from below", (sql) => newPool(sql, space, "9.255.255.0", "10.0.0.0"), "overlap");
    // a second range for an existing pool is held to the same rule
    await refused(
      store,
      "an extra range of pool a over pool b",
      (sql) =>
        sql.run(
          `INSERT INTO pool_ranges (pool_id, seq, space_id, family, top_level, first, last, prefix_length, gateway, dns)
           VALUES (?, 1, ?, 4, 1, ?, ?, 24, NULL, NULL)`,
          [pa.id, space, key("10.0.1.128"), key("10.0.1.128")],
        ),
      "overlap",
    );
    assert.deepEqual((await engine.listPools({}, SERVER)).map((p) => p.name), ["a", "b"]);
    await assertIntact(engine);

    // next to them, or in another space, the same kind of write is accepted
    await store.transaction((sql) => newPool(sql, space, "10.0.2.0", "10.0.2.255"));
    const other = await engine.createSpace({ name: "other" }, ctx);
    await store.transaction((sql) => newPool(sql, other.id, "10.0.0.0", "10.0.0.255"));
  } finally {
    await cleanup();
  }
});
