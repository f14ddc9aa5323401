import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import type { InjectOptions } from "fastify";
import { type AppOptions, buildApp } from "../src/api/app.js";
import { Engine, type EngineOptions } from "../src/engine/engine.js";
import { PostgresStore } from "../src/store/postgres/postgres-store.js";
import { SqliteStore } from "../src/store/sqlite/sqlite-store.js";
import type { Store } from "../src/store/store.js";
import { SecretBox } from "../src/engine/secrets.js";

export const ctx = { actor: "test" };

/** The admin token every test server and app is started with (ALLOT_ADMIN_TOKEN), and its header. */
export const TEST_ADMIN_TOKEN = "allot_test-admin-token-not-a-secret";
export const AUTH = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } as const;
/** The secret key every test engine and server uses (ALLOT_SECRET_KEY), so servers sharing a database agree. */
export const TEST_SECRET_KEY = "a1".repeat(32);

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
  let openAgain: () => Promise<Store>;
  if (STORE === "postgres") {
    const db = await tempPostgresDatabase();
    store = await PostgresStore.open({ url: db.url });
    drop = db.drop;
    openAgain = () => PostgresStore.open({ url: db.url });
  } else {
    const file = join(dir, "allot.db");
    store = new SqliteStore({ file, synchronous: options.synchronous ?? "normal" });
    openAgain = async () => new SqliteStore({ file, synchronous: options.synchronous ?? "normal" });
  }
  const engine = await Engine.open(store, { secrets: new SecretBox(Buffer.from(TEST_SECRET_KEY, "hex")), ...options });
  return {
    engine,
    store,
    dir,
    /** The same database opened again, as a second server opens it (the caller closes it). */
    openAgain,
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

/**
 * The HTTP app on a fresh engine, with the test admin token, and `inject` that sends it (pass
 * `headers: { authorization: ... }` to send another token, or `{ authorization: undefined }` for none).
 */
export async function tempApp(options: Omit<AppOptions, "engine"> = {}, engineOptions: EngineOptions = {}) {
  const env = await tempEngine(engineOptions);
  await env.engine.ensureAdminToken(TEST_ADMIN_TOKEN);
  const app = await buildApp({ engine: env.engine, ...options });
  const inject = (opts: InjectOptions) => {
    const headers = Object.fromEntries(Object.entries({ ...AUTH, ...(opts.headers ?? {}) }).filter(([, v]) => v !== undefined));
    return app.inject({ ...opts, headers: headers as InjectOptions["headers"] });
  };
  return {
    ...env,
    app,
    inject,
    async cleanup() {
      await app.close();
      await env.cleanup();
    },
  };
}
