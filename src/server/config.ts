import { resolve } from "node:path";

/** What the user may set for `allot serve`: flags win over ALLOT_* variables, which win over defaults. */
export interface ServeFlags {
  port?: string;
  host?: string;
  dataDir?: string;
  logLevel?: string;
}

export interface ServeConfig {
  port: number;
  host: string;
  dataDir: string;
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
  return {
    port,
    host: flags.host ?? env.ALLOT_HOST ?? DEFAULTS.host,
    dataDir: resolve(flags.dataDir ?? env.ALLOT_DATA_DIR ?? DEFAULTS.dataDir),
    logLevel,
    expirySweepSeconds: 1,
  };
}
