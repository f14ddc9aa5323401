import assert from "node:assert/strict";
import Database from "better-sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Engine } from "../../src/engine/engine.js";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { ctx } from "../helpers.js";
import { allot } from "../process-helpers.js";

test("allot check passes a consistent database and explains each inconsistency, exiting 1", async () => {
  const dir = mkdtempSync(join(tmpdir(), "allot-check-"));
  try {
    const engine = await Engine.open(new SqliteStore({ file: join(dir, "allot.db") }));
    await engine.createPool({ name: "lab", cidr: "10.7.0.0/24" }, ctx);
    await engine.createChildPool({ pool: "lab" }, { name: "lab-sub", prefixLength: 28 }, ctx);
    for (let i = 0; i < 5; i++) await engine.allocate({ pool: "lab" }, { owner: `vm-${i}` }, ctx);
    await engine.close();

    const ok = allot(["check", "--data-dir", dir]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /consistent: 2 pools checked/);

    // an allocation row vanishes behind the engine's back: its addresses are neither held nor free,
    // and the pool's counter no longer adds up
    const db = new Database(join(dir, "allot.db"));
    db.prepare("DELETE FROM allocations WHERE owner = 'vm-2'").run();
    db.close();

    const bad = allot(["check", "--data-dir", dir]);
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /default\/lab\s+allocations and free runs cover .* but the allocatable addresses are/);
    assert.match(bad.stdout, /allocated is recorded as 5 but allocations add up to 4/);
    assert.match(bad.stderr, /2 inconsistencies/);

    const json = JSON.parse(allot(["check", "--data-dir", dir, "-o", "json"]).stdout);
    assert.equal(json.consistent, false);
    assert.equal(json.problems.length, 2);

    const missing = allot(["check", "--database-url", "mysql://nope"]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /must start with postgres:\/\//);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
