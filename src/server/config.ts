import { resolve } from "node:path";

/** What the user may set for `allot serve`: flags win over ALLOT_* variables, which win over defaults. */
export interface ServeFlags {
  port?: string;
  host?: string;
  dataDir?: string;
  databaseUrl?: string;
  logLevel?: string;
}

export interface ServeConfig {
  port: number;
  host: string;
  dataDir: string;
  /** postgres://… selects the PostgreSQL store; unset, the SQLite store in dataDir. */
  databaseUrl: string | null;
  logLevel: string;
  /** Seconds between sweeps for allocations whose time-to-live ran out. */
  expirySweepSeconds: number;
}

export const DEFAULTS = { port: 7878, host: "127.0.0.1", dataDir: "./allot-data", logLevel: "info" } as const;

export class ConfigError extends Error {}

export function resolveServeConfig(flags: ServeFlags, env: NodeJS.ProcessEnv = process.env): ServeConfig {
  const portText = flags.port ?? env.ALLOT_PORT ?? String(DEFAULTS.port);
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) {
    throw new ConfigError(`port "${portText}" is not a TCP port (0 to 65535); set --port or ALLOT_PORT`);
  }
  const logLevel = flags.logLevel ?? env.ALLOT_LOG_LEVEL ?? DEFAULTS.logLevel;
  if (!["fatal", "error", "warn", "info", "debug", "trace", "silent"].includes(logLevel)) {
    throw new ConfigError(`log level "${logLevel}" is unknown: use fatal, error, warn, info, debug, trace or silent`);
  }
  const databaseUrl = flags.databaseUrl ?? env.ALLOT_DATABASE_URL ?? null;
  if (databaseUrl !== null && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError(`database URL must start with postgres:// (got "${databaseUrl.replace(/:[^:@/]*@/, ":***@")}"); set --database-url or ALLOT_DATABASE_URL, or leave it unset for SQLite`);
  }
  return {
    port,
    databaseUrl,
    host: flags.host ?? env.ALLOT_HOST ?? DEFAULTS.host,
    dataDir: resolve(flags.dataDir ?? env.ALLOT_DATA_DIR ?? DEFAULTS.dataDir),
    logLevel,
    expirySweepSeconds: 1,
  };
}
