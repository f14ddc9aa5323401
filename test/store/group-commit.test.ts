import assert from "node:assert/strict";
import { SERVER } from "../../src/engine/access.js";
import { test } from "node:test";
import { ConstraintError, type Sql } from "../../src/store/store.js";
import { ctx, tempEngine } from "../helpers.js";

/**
 * Changes that arrive together share a commit. Each must still be all-or-nothing on its own: one
 * change failing in the middle of a batch undoes only itself, and the others are kept and answered.
 */

test("concurrent changes with failures among them: each succeeds or fails alone", async () => {
  const { engine, store, cleanup } = await tempEngine();
  try {
    await engine.createPool({ name: "p", cidr: "10.9.0.0/24" }, ctx);
    // 60 at once: every third asks for an address another request also asks for, every seventh is invalid
    const requests = Array.from({ length: 60 }, (_, i) => {
      if (i % 7 === 0) return engine.allocate({ pool: "p" }, { address: "10.8.0.1" }, ctx); // outside the pool
      if (i % 3 === 0) return engine.allocate({ pool: "p" }, { address: "10.9.0.200" }, ctx);
      return engine.allocate({ pool: "p" }, { owner: `vm-${i}` }, ctx);
    });
    const settled = await Promise.allSettled(requests);
    const ok = settled.filter((s) => s.status === "fulfilled").map((s) => (s as PromiseFulfilledResult<Awaited<(typeof requests)[number]>>).value);
    const failed = settled.filter((s) => s.status === "rejected");

    const outside = Array.from({ length: 60 }, (_, i) => i).filter((i) => i % 7 === 0).length;
    const contested = Array.from({ length: 60 }, (_, i) => i).filter((i) => i % 7 !== 0 && i % 3 === 0).length;
    const owners = 60 - outside - contested;
    // exactly one contested request wins its address; every owner request gets one
    assert.equal(ok.length, owners + 1);
    assert.equal(failed.length, outside + contested - 1);
    assert.equal(ok.filter((r) => r.allocation.address === "10.9.0.200").length, 1);

    // what was answered is what is stored, and nothing else
    const page = await engine.listAllocations({ pool: "p" }, { limit: 1000 }, SERVER);
    assert.deepEqual(page.items.map((a) => a.id).sort(), ok.map((r) => r.allocation.id).sort());
    assert.equal(new Set(page.items.map((a) => a.address)).size, page.items.length);
    assert.deepEqual(await engine.check(), []);
    // one history entry per kept allocation (plus the pool's), none for the refused ones
    const history = await engine.history({ pool: { pool: "p" }, limit: 1000 }, SERVER);
    assert.equal(history.filter((h) => h.action === "allocate").length, ok.length);
  } finally {
    await cleanup();
  }
  void store;
});

test("a change that fails with a constraint inside a batch does not undo the others", async () => {
  const { store, cleanup } = await tempEngine();
  try {
    await store.transaction((sql) => sql.run("CREATE TABLE gc_probe (k TEXT PRIMARY KEY)"));
    const results = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) => store.transaction(async (sql) => {
        await sql.run("INSERT INTO gc_probe (k) VALUES (?)", [`row-${i}`]);
        // every fourth change then breaks the key of an earlier row in the same change: it must vanish whole
        if (i % 4 === 0) await sql.run("INSERT INTO gc_probe (k) VALUES (?)", [`row-${i}`]);
        return i;
      })),
    );
    const kept = results.flatMap((r, i) => (r.status === "fulfilled" ? [i] : []));
    for (const [i, r] of results.entries()) {
      if (i % 4 === 0) assert.ok(r.status === "rejected" && r.reason instanceof ConstraintError, `change ${i} should fail on the unique key`);
      else assert.equal(r.status, "fulfilled", `change ${i} should succeed`);
    }
    const rows = await store.read((sql) => sql.all<{ k: string }>("SELECT k FROM gc_probe ORDER BY k"));
    assert.deepEqual(rows.map((r) => r.k), kept.map((i) => `row-${i}`).sort());
  } finally {
    await cleanup();
  }
});

/**
 * `count` changes with one key (a store that batches by key runs them in shared transactions), change
 * i queueing row-i, or the taken key when `bad(i)`, then doing `after`. Exactly the bad ones must fail,
 * on the unique key, and what was answered as done must be stored, every one of them.
 */
async function queuedWritesOnOnePool(count: number, bad: (i: number) => boolean, after: (sql: Sql, i: number) => Promise<void>): Promise<void> {
  const { store, cleanup } = await tempEngine();
  try {
    await store.transaction((sql) => sql.run("CREATE TABLE gc_queued (k TEXT PRIMARY KEY)"));
    await store.transaction((sql) => sql.run("INSERT INTO gc_queued (k) VALUES ('taken')"));
    const results = await Promise.allSettled(
      Array.from({ length: count }, (_, i) =>
        store.transaction(async (sql) => {
          await sql.queue("INSERT INTO gc_queued (k) VALUES (?)", [bad(i) ? "taken" : `row-${i}`]);
          await after(sql, i);
          return i;
        }, "one-pool"),
      ),
    );
    for (const [i, r] of results.entries()) {
      if (bad(i)) assert.ok(r.status === "rejected" && r.reason instanceof ConstraintError, `change ${i} should fail on the unique key, got ${r.status === "rejected" ? r.reason : "success"}`);
      else assert.equal(r.status, "fulfilled", `change ${i} should succeed: ${r.status === "rejected" ? r.reason : ""}`);
    }
    const rows = await store.read((sql) => sql.all<{ k: string }>("SELECT k FROM gc_queued WHERE k <> 'taken' ORDER BY k"));
    assert.deepEqual(rows.map((r) => r.k), results.flatMap((r, i) => (r.status === "fulfilled" ? [`row-${i}`] : [])).sort());
  } finally {
    await cleanup();
  }
}

test("changes to one pool that share a transaction: a queued write that fails when sent fails only its own change", async () => {
  // the failing write is queued (sent later, with another change's statements or the commit); a read
  // after the write, in the same change, sees it
  await queuedWritesOnOnePool(30, (i) => i % 5 === 0, async (sql, i) => {
    const seen = await sql.get<{ k: string }>("SELECT k FROM gc_queued WHERE k = ?", [`row-${i}`]);
    if (i % 5 !== 0) assert.equal(seen?.k, `row-${i}`);
  });
});

test("a change whose queued write fails only when the next change is sent: it fails, and the next one does not", async () => {
  // half the changes only queue their write and return: their failure shows when the batch's next
  // statement (another change's) or its commit is sent
  await queuedWritesOnOnePool(24, (i) => i % 6 === 0, async (sql, i) => {
    if (i % 2 === 1) await sql.get("SELECT COUNT(*) AS n FROM gc_queued");
  });
});
