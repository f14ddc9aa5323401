import { Command } from "commander";
import { ConfigError, DEFAULTS, resolveServeConfig } from "../../server/config.js";
import { startServer } from "../../server/serve.js";

export function serveCommand(): Command {
  return new Command("serve")
    .description("run the Allot server (SQLite store in the data directory, created on first start)")
    .option("-p, --port <port>", `TCP port (env ALLOT_PORT, default ${DEFAULTS.port})`)
    .option("-H, --host <address>", `address to bind (env ALLOT_HOST, default ${DEFAULTS.host})`)
    .option("-d, --data-dir <dir>", `data directory (env ALLOT_DATA_DIR, default ${DEFAULTS.dataDir})`)
    .option("--database-url <url>", "postgres://user:password@host/db: use PostgreSQL instead of SQLite (env ALLOT_DATABASE_URL)")
    .option("--log-level <level>", `log level (env ALLOT_LOG_LEVEL, default ${DEFAULTS.logLevel})`)
    .action(async (opts: { port?: string; host?: string; dataDir?: string; databaseUrl?: string; logLevel?: string }) => {
      let server;
      try {
        server = await startServer(resolveServeConfig(opts));
      } catch (err) {
        if (err instanceof ConfigError) {
          process.stderr.write(`error: ${err.message}\n`);
          process.exit(2);
        }
        throw err;
      }
      const running = server;
      const stop = async () => {
        await running.stop();
        process.exit(0);
      };
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
}
