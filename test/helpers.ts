import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { Engine, type EngineOptions } from "../src/engine/engine.js";
import { PostgresStore } from "../src/store/postgres/postgres-store.js";
import { SqliteStore } from "../src/store/sqlite/sqlite-store.js";
import type { Store } from "../src/store/store.js";

export const ctx = { actor: "test" };

/** Which store the contract suites run on: scripts/test.mjs runs them once per store. */
export const STORE = process.env.ALLOT_TEST_STORE === "postgres" ? "postgres" : "sqlite";

/**
 * A URL for a fresh, empty database on the test run's PostgreSQL server, and a way to drop it. Each is
 * a schema of its own, reached through the connection's search_path: creating and dropping schemas is
 * cheap, where a database per test would copy a template and force checkpoints.
 */
export async function tempPostgresDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const admin = process.env.ALLOT_TEST_PG_URL;
  if (!admin) throw new Error("ALLOT_TEST_PG_URL is not set: run the tests with npm test, which starts PostgreSQL");
  const name = `allot_t_${randomBytes(6).toString("hex")}`;
  const exec = async (q: string) => {
    const client = new pg.Client({ connectionString: admin });
    await client.connect();
    try {
      await client.query(q);
    } finally {
      await client.end();
    }
  };
  await exec(`CREATE SCHEMA ${name}`);
  const url = new URL(admin);
  url.searchParams.set("options", `-c search_path=${name}`);
  return { url: url.toString(), drop: () => exec(`DROP SCHEMA IF EXISTS ${name} CASCADE`) };
}

/**
 * A fresh engine on a real store: a SQLite file in a temporary directory, or a new database on the
 * test run's PostgreSQL server when ALLOT_TEST_STORE=postgres. `cleanup` closes and removes it.
 */
export async function tempEngine(options: EngineOptions & { synchronous?: "full" | "normal" } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "allot-test-"));
  let store: Store;
  let drop = async () => {};
  if (STORE === "postgres") {
    const db = await tempPostgresDatabase();
    store = await PostgresStore.open({ url: db.url });
    drop = db.drop;
  } else {
    store = new SqliteStore({ file: join(dir, "allot.db"), synchronous: options.synchronous ?? "normal" });
  }
  const engine = await Engine.open(store, options);
  return {
    engine,
    store,
    dir,
    async cleanup() {
      await engine.close();
      await drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A clock tests can move forward. */
export function manualClock(start = Date.parse("2026-01-01T00:00:00Z")) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}
