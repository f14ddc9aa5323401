import { SERVER } from "../../engine/access.js";
import { Command } from "commander";
import { Engine } from "../../engine/engine.js";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { resolveServeConfig } from "../../server/config.js";
import { openStore } from "../../store/open-store.js";
import type { Store } from "../../store/store.js";
import { UsageError, context } from "../context.js";
import { print } from "../output.js";

/** Store options shared by the commands that open a database directly rather than through a server. */
export function withStoreOptions(cmd: Command): Command {
  return cmd
    .option("-d, --data-dir <dir>", "SQLite data directory (env ALLOT_DATA_DIR, default ./allot-data)")
    .option("--database-url <url>", "PostgreSQL instead (env ALLOT_DATABASE_URL)");
}

/**
 * Opens the store that --data-dir / --database-url (or the environment) name. With `mustExist`, a
 * SQLite data directory without a database is an error rather than a new, empty database.
 */
export async function openStoreFrom(o: { dataDir?: string; databaseUrl?: string }, mustExist: boolean): Promise<Store> {
  try {
    const config = resolveServeConfig({ ...(o.dataDir ? { dataDir: o.dataDir } : {}), ...(o.databaseUrl ? { databaseUrl: o.databaseUrl } : {}) });
    if (mustExist && !config.databaseUrl && !existsSync(join(config.dataDir, "allot.db"))) {
      throw new UsageError(`there is no Allot database in ${config.dataDir}; name it with --data-dir or ALLOT_DATA_DIR`);
    }
    return await openStore(config);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError((err as Error).message);
  }
}

export function checkCommand(): Command {
  return withStoreOptions(
    new Command("check").description(
      "verify a database offline: constraints, the free-space index against allocations, usage counters and orphans",
    ),
  ).action(async (o: { dataDir?: string; databaseUrl?: string }, cmd: Command) => {
    const { format } = context(cmd);
    const engine = await Engine.open(await openStoreFrom(o, true));
    try {
      const problems = await engine.check();
      const pools = (await engine.listPools({}, SERVER)).length;
      if (format !== "table") print(format, problems, [], { consistent: problems.length === 0, pools, problems });
      else if (problems.length === 0) process.stdout.write(`consistent: ${pools} ${pools === 1 ? "pool" : "pools"} checked in ${engine.store.location}\n`);
      else {
        print(format, problems, [["POOL", (p) => p.pool], ["PROBLEM", (p) => p.message]]);
        process.stderr.write(`${problems.length} inconsistencies in ${engine.store.location}\n`);
      }
      if (problems.length > 0) process.exitCode = 1;
    } finally {
      await engine.close();
    }
  });
}
