import { resolve } from "node:path";

/** What the user may set for `allot serve`: flags win over ALLOT_* variables, which win over defaults. */
export interface ServeFlags {
  port?: string;
  host?: string;
  dataDir?: string;
  databaseUrl?: string;
  logLevel?: string;
  bodyLimit?: string;
  rateLimit?: string;
  historyRetentionDays?: string;
  tls?: boolean;
  tlsCert?: string;
  tlsKey?: string;
  kubeProxyCa?: string;
  kubeProxyNames?: string;
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
  /** Largest request body in bytes. */
  bodyLimit: number;
  /** Requests per minute per token on /v1; 0 for no limit. */
  rateLimitPerMinute: number;
  /** History older than this many days is deleted; 0 keeps it forever. */
  historyRetentionDays: number;
  /** ALLOT_ADMIN_TOKEN: the admin token to create at first start instead of a random one. */
  adminToken: string | null;
  /** Serve HTTPS: with these PEM files, or (null) a self-signed certificate kept in the data directory. */
  tls: { cert: string | null; key: string | null } | null;
  /**
   * Kubernetes API aggregation: the CA that signs kube-apiserver's front-proxy client certificate (its
   * --requestheader-client-ca-file) and the common names allowed (--requestheader-allowed-names; empty
   * for any). Requests proxied with that certificate act for the user in X-Remote-User.
   */
  kubeProxy: { ca: string; names: string[] } | null;
  /** ALLOT_SECRET_KEY: the key that seals secrets; unset, secret.key in the data directory (created if missing). */
  secretKey: string | null;
}

export const DEFAULTS = { port: 7878, host: "127.0.0.1", dataDir: "./allot-data", logLevel: "info", bodyLimit: 1_048_576, rateLimit: 0, historyRetentionDays: 0 } as const;

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
  const whole = (text: string, what: string, max: number) => {
    if (!/^\d+$/.test(text) || Number(text) > max) throw new ConfigError(`${what} "${text}" is not a whole number from 0 to ${max}`);
    return Number(text);
  };
  const bodyLimit = whole(flags.bodyLimit ?? env.ALLOT_BODY_LIMIT ?? String(DEFAULTS.bodyLimit), "body limit (--body-limit, ALLOT_BODY_LIMIT, bytes)", 1024 ** 3);
  if (bodyLimit < 1024) throw new ConfigError(`body limit ${bodyLimit} is too small to carry a request; use at least 1024 bytes`);
  const tls = tlsConfig(flags, env);
  return {
    port,
    databaseUrl,
    bodyLimit,
    rateLimitPerMinute: whole(flags.rateLimit ?? env.ALLOT_RATE_LIMIT ?? String(DEFAULTS.rateLimit), "rate limit (--rate-limit, ALLOT_RATE_LIMIT, requests a minute per token)", 10_000_000),
    historyRetentionDays: whole(
      flags.historyRetentionDays ?? env.ALLOT_HISTORY_RETENTION_DAYS ?? String(DEFAULTS.historyRetentionDays),
      "history retention (--history-retention-days, ALLOT_HISTORY_RETENTION_DAYS)",
      100_000,
    ),
    adminToken: env.ALLOT_ADMIN_TOKEN || null,
    tls,
    kubeProxy: kubeProxyConfig(flags, env, tls !== null),
    secretKey: env.ALLOT_SECRET_KEY || null,
    host: flags.host ?? env.ALLOT_HOST ?? DEFAULTS.host,
    dataDir: resolve(flags.dataDir ?? env.ALLOT_DATA_DIR ?? DEFAULTS.dataDir),
    logLevel,
    expirySweepSeconds: 1,
  };
}

function tlsConfig(flags: ServeFlags, env: NodeJS.ProcessEnv): ServeConfig["tls"] {
  const cert = flags.tlsCert ?? env.ALLOT_TLS_CERT ?? null;
  const key = flags.tlsKey ?? env.ALLOT_TLS_KEY ?? null;
  const on = flags.tls === true || ["1", "true", "yes"].includes((env.ALLOT_TLS ?? "").toLowerCase()) || cert !== null || key !== null;
  if (!on) return null;
  if ((cert === null) !== (key === null)) throw new ConfigError("give both --tls-cert and --tls-key (or ALLOT_TLS_CERT and ALLOT_TLS_KEY), or neither for a self-signed certificate");
  return { cert: cert ? resolve(cert) : null, key: key ? resolve(key) : null };
}

function kubeProxyConfig(flags: ServeFlags, env: NodeJS.ProcessEnv, tls: boolean): ServeConfig["kubeProxy"] {
  const ca = flags.kubeProxyCa ?? env.ALLOT_KUBE_PROXY_CA ?? null;
  const namesText = flags.kubeProxyNames ?? env.ALLOT_KUBE_PROXY_NAMES ?? null;
  if (ca === null) {
    if (namesText !== null) throw new ConfigError("--kube-proxy-names (ALLOT_KUBE_PROXY_NAMES) needs --kube-proxy-ca (ALLOT_KUBE_PROXY_CA), the CA of kube-apiserver's front-proxy certificate");
    return null;
  }
  if (!tls) throw new ConfigError("--kube-proxy-ca needs HTTPS: add --tls (kube-apiserver reaches an aggregated API server over HTTPS only)");
  const names = (namesText ?? "").split(",").map((n) => n.trim()).filter(Boolean);
  return { ca: resolve(ca), names };
}
