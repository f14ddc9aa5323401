import assert from "node:assert/strict";
import { SERVER } from "../../src/engine/access.js";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Engine } from "../../src/engine/engine.js";
import { PostgresStore } from "../../src/store/postgres/postgres-store.js";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { ctx, manualClock, tempPostgresDatabase } from "../helpers.js";
import { allot } from "../process-helpers.js";

/** An export without its header's time stamp, for comparing two exports of the same data. */
const body = (file: string) => {
  const [header, ...rows] = readFileSync(file, "utf8").trimEnd().split("\n");
  const h = JSON.parse(header!);
  delete h.exportedAt;
  return [JSON.stringify(h), ...rows];
};

test("export and import move a whole database SQLite -> PostgreSQL -> SQLite losslessly", async () => {
  const dir = mkdtempSync(join(tmpdir(), "allot-xfer-"));
  const db = await tempPostgresDatabase();
  try {
    // a database with something of everything
    const clock = manualClock(Date.now());
    const src = await Engine.open(new SqliteStore({ file: join(dir, "a", "allot.db") }), { clock: clock.now });
    await src.createSpace({ name: "tenant-b", description: "overlapping plan" }, ctx);
    await src.createPool(
      {
        name: "lab",
        ranges: [{ start: "10.0.0.10", end: "10.0.0.99", prefixLength: 24, gateway: "10.0.0.1", dns: ["10.0.0.53"] }, { cidr: "10.0.1.0/25" }],
        exclusions: ["10.0.0.50-10.0.0.55"],
        attributes: { site: "ams", nested: { list: [1, "two", null], ok: true } },
        strategy: "random",
      },
      ctx,
    );
    await src.createPool({ name: "lab", space: "tenant-b", cidr: "10.0.0.0/24" }, ctx);
    await src.createPool({ name: "v6", cidr: "2001:db8::/32" }, ctx);
    await src.createChildPool({ pool: "v6" }, { name: "v6-a", prefixLength: 48 }, ctx);
    await src.createChildPool({ pool: "v6-a" }, { name: "v6-a-1", prefixLength: 64 }, ctx);
    for (let i = 0; i < 40; i++) await src.allocate({ pool: "lab" }, { owner: `vm-${i}`, mac: `52:54:00:00:00:${(i + 16).toString(16)}`, labels: { i: String(i) } }, ctx);
    await src.allocate({ pool: "lab" }, { size: 8 }, ctx);
    await src.allocate({ pool: "lab" }, { owner: "lease", ttl: 3600 }, ctx);
    await src.allocate({ pool: "v6-a-1" }, { address: "2001:db8::1:2:3:4", hostname: "h" }, ctx);
    await src.release({ pool: { pool: "lab" }, owner: "vm-7" }, ctx);
    await src.close();

    const a = join(dir, "a.jsonl");
    const b = join(dir, "b.jsonl");
    const c = join(dir, "c.jsonl");
    const run = (...args: string[]) => {
      const r = allot(args);
      assert.equal(r.code, 0, r.stderr);
      return r;
    };
    run("export", "--data-dir", join(dir, "a"), "-f", a);
    assert.match(run("import", "--database-url", db.url, "-f", a).stderr, /imported \d+ rows/);
    run("export", "--database-url", db.url, "-f", b);
    assert.deepEqual(body(b), body(a), "PostgreSQL holds exactly what SQLite held");
    run("import", "--data-dir", join(dir, "c"), "-f", b);
    run("export", "--data-dir", join(dir, "c"), "-f", c);
    assert.deepEqual(body(c), body(a), "and back again");

    // the imported database works: consistent, same answers, and new changes number after the old
    const pg = await Engine.open(await PostgresStore.open({ url: db.url }));
    try {
      assert.deepEqual(await pg.check(), []);
      const [hit] = await pg.lookup("2001:db8::1:2:3:4", undefined, SERVER);
      assert.equal(hit!.pool, "v6-a-1");
      assert.equal(hit!.allocation!.hostname, "h");
      assert.equal((await pg.getPool({ pool: "lab" }, SERVER)).attributes.nested !== undefined, true);
      const before = (await pg.history({ limit: 1 }, SERVER))[0]!.seq;
      await pg.allocate({ pool: "lab", space: "tenant-b" }, { owner: "after-import" }, ctx);
      assert.ok((await pg.history({ limit: 1 }, SERVER))[0]!.seq > before);
    } finally {
      await pg.close();
    }

    // pools may come in any order: children listed before their parents still load
    const shuffled = join(dir, "shuffled.jsonl");
    const lines = readFileSync(a, "utf8").trimEnd().split("\n");
    const isPool = (l: string) => l.startsWith('{"table":"pools"');
    const firstPool = lines.findIndex(isPool);
    const pools = lines.filter(isPool);
    const children = new Set(pools.map((l) => JSON.parse(l).row).filter((r) => r.parent_id !== null).map((r) => r.id as string));
    const childFirst = (l: string) => (children.has(JSON.parse(l).row.id) ? 0 : 1);
    const rest = lines.slice(firstPool + pools.length);
    const isRange = (l: string) => l.startsWith('{"table":"pool_ranges"');
    const rangeChildFirst = (l: string) => (children.has(JSON.parse(l).row.pool_id) ? 0 : 1);
    writeFileSync(
      shuffled,
      [
        ...lines.slice(0, firstPool),
        ...[...pools].sort((x, y) => childFirst(x) - childFirst(y)),
        ...rest.filter(isRange).sort((x, y) => rangeChildFirst(x) - rangeChildFirst(y)),
        ...rest.filter((l) => !isRange(l)),
      ].join("\n"),
    );
    run("import", "--data-dir", join(dir, "e"), "-f", shuffled);
    run("export", "--data-dir", join(dir, "e"), "-f", join(dir, "e.jsonl"));
    assert.deepEqual(body(join(dir, "e.jsonl")), body(a));

    // a second import into a database that holds data is refused and changes nothing
    const again = allot(["import", "--database-url", db.url, "-f", a]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /import refused, nothing was changed: the target already holds 5 pools/);

    // a truncated export is refused whole
    const cut = join(dir, "cut.jsonl");
    writeFileSync(cut, readFileSync(a, "utf8").split("\n").slice(0, 20).join("\n"));
    const truncated = allot(["import", "--data-dir", join(dir, "d"), "-f", cut]);
    assert.equal(truncated.code, 2);
    assert.match(truncated.stderr, /truncated or altered/);
    assert.match(allot(["export", "--data-dir", join(dir, "d")]).stdout.split("\n")[0]!, /"pools":0/);
  } finally {
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
  }
});
