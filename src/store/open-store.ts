import { join } from "node:path";
import { PostgresStore } from "./postgres/postgres-store.js";
import { SqliteStore } from "./sqlite/sqlite-store.js";
import type { Store } from "./store.js";

/** The store a configuration names: PostgreSQL when a database URL is given, else SQLite in the data directory. */
export async function openStore(config: { databaseUrl: string | null; dataDir: string }): Promise<Store> {
  if (config.databaseUrl) return PostgresStore.open({ url: config.databaseUrl });
  return new SqliteStore({ file: join(config.dataDir, "allot.db") });
}
