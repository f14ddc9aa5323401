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
    .option("--body-limit <bytes>", `largest request body (env ALLOT_BODY_LIMIT, default ${DEFAULTS.bodyLimit})`)
    .option("--rate-limit <n>", "requests a minute per token, 0 for none (env ALLOT_RATE_LIMIT, default 0)")
    .option("--tls", "serve HTTPS (env ALLOT_TLS=1); without --tls-cert/--tls-key, a self-signed certificate made in the data directory")
    .option("--tls-cert <file>", "PEM certificate for HTTPS (env ALLOT_TLS_CERT)")
    .option("--tls-key <file>", "PEM private key for HTTPS (env ALLOT_TLS_KEY)")
    .option("--kube-proxy-ca <file>", "serve as a Kubernetes aggregated API server: the CA of kube-apiserver's front-proxy client certificate (env ALLOT_KUBE_PROXY_CA)")
    .option("--kube-proxy-names <names>", "comma-separated common names that certificate may have, default any (env ALLOT_KUBE_PROXY_NAMES)")
    .option("--history-retention-days <n>", "delete history older than this, 0 to keep it (env ALLOT_HISTORY_RETENTION_DAYS, default 0)")
    .addHelpText(
      "after",
      "\nAlso from the environment: ALLOT_ADMIN_TOKEN (the admin token to create at first start, instead of a random one\nprinted once) and ALLOT_SECRET_KEY (64 hex digits: the key that encrypts secrets; default secret.key in the data directory).",
    )
    .action(async (opts: { port?: string; host?: string; dataDir?: string; databaseUrl?: string; logLevel?: string; bodyLimit?: string; rateLimit?: string; historyRetentionDays?: string; tls?: boolean; tlsCert?: string; tlsKey?: string; kubeProxyCa?: string; kubeProxyNames?: string }) => {
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
