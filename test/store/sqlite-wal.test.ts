// The -wal file stays bounded: SQLite's automatic checkpoints copy pages back but never shrink the file,
// and cannot finish at all while another process (an `allot export`, say) holds an older snapshot. Here a
// second connection holds one while writes go on, as such a process would; once it lets go, the store's
// idle checkpoint empties the -wal file.
import { SERVER } from "../../src/engine/access.js";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { Engine } from "../../src/engine/engine.js";
import { SecretBox } from "../../src/engine/secrets.js";
import { tmpdir } from "node:os";
import { TEST_SECRET_KEY, ctx } from "../helpers.js";

const walBytes = (file: string) => {
  try {
    return statSync(`${file}-wal`).size;
  } catch {
    return 0;
  }
};

test("the -wal file grows while a reader holds a snapshot and is emptied once the store is idle", async () => {
  const dir = mkdtempSync(join(tmpdir(), "allot-wal-"));
  const file = join(dir, "allot.db");
  const store = new SqliteStore({ file, synchronous: "normal", checkpointEveryMs: 100 });
  const engine = await Engine.open(store, { secrets: new SecretBox(Buffer.from(TEST_SECRET_KEY, "hex")) });
  const reader = new Database(file, { readonly: true });
  try {
    await engine.createPool({ name: "p", cidr: "10.0.0.0/12" }, ctx);
    reader.exec("BEGIN");
    reader.prepare("SELECT count(*) FROM allocations").get(); // the snapshot starts at the first read
    for (let i = 0; i < 10; i++) await engine.allocateMany({ pool: "p" }, { count: 2000 }, ctx);
    const held = walBytes(file);
    assert.ok(held > 4 * 1024 * 1024, `the snapshot kept the WAL from being reused: ${held} bytes`);
    reader.exec("COMMIT");

    const deadline = Date.now() + 5000;
    while (walBytes(file) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(walBytes(file), 0, "emptied by the idle checkpoint");
    assert.equal((await engine.usage({ pool: "p" }, SERVER)).allocated, "20000", "and every change is in the database");
  } finally {
    reader.close();
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
