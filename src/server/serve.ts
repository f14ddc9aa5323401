import { TOMBSTONES_KEPT_MS, pruneTombstones } from "../integrations/kubernetes/objects.js";
import type { FastifyInstance } from "fastify";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import selfsigned from "selfsigned";
import { AllotError } from "../engine/errors.js";
import { SecretBox, newSecretKey, parseSecretKey } from "../engine/secrets.js";
import { buildApp } from "../api/app.js";
import { Engine } from "../engine/engine.js";
import { openStore } from "../store/open-store.js";
import { whyNotWritable } from "../store/sqlite/why-not-writable.js";
import type { AddressInfo } from "node:net";
import { ConfigError, type ServeConfig } from "./config.js";
import { startWebhookLoop } from "./webhooks.js";
import { startDnsPublisher } from "../dns/publisher.js";
import { startResync } from "../integrations/kubernetes/metal3.js";

export interface RunningServer {
  app: FastifyInstance;
  engine: Engine;
  url: string;
  stop(): Promise<void>;
}

/** Opens the store, starts the HTTP server and the expiry sweeper. */
export async function startServer(config: ServeConfig): Promise<RunningServer> {
  const box = new SecretBox(secretKey(config));
  let store;
  try {
    store = await openStore(config);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  // a server that cannot write is no use: say why now rather than answer every change with 503
  const unwritable = await store.writable();
  if (unwritable) {
    await store.close();
    throw new ConfigError(`cannot start: ${unwritable}`);
  }
  let engine: Engine;
  try {
    engine = await Engine.open(store, { secrets: box });
  } catch (err) {
    await store.close();
    throw new ConfigError((err as Error).message);
  }
  let admin;
  try {
    admin = await engine.ensureAdminToken(config.adminToken ?? undefined);
  } catch (err) {
    await engine.close();
    if (err instanceof AllotError) throw new ConfigError(`ALLOT_ADMIN_TOKEN: ${err.message}`);
    throw err;
  }
  if (admin && !config.adminToken) {
    // the only time this secret exists outside its holder: the database keeps a hash
    process.stderr.write(
      `\nCreated the admin API token. It is shown this once and stored only as a hash; keep it now:\n\n  ${admin.token}\n\n` +
        `Use it with: export ALLOT_TOKEN=${admin.token}\n(make narrower tokens with 'allot token create')\n\n`,
    );
  }
  let https;
  try {
    https = config.tls ? tlsFiles(config) : undefined;
    // kube-apiserver proves itself with a client certificate from its front-proxy CA; other clients need none
    if (https && config.kubeProxy) https = { ...https, ca: readFileSync(config.kubeProxy.ca, "utf8"), requestCert: true, rejectUnauthorized: false };
  } catch (err) {
    await engine.close();
    throw new ConfigError((err as Error).message);
  }
  const app = await buildApp({
    engine,
    ...(https ? { https } : {}),
    ...(config.kubeProxy ? { kubeProxyNames: config.kubeProxy.names } : {}),
    logger: { level: config.logLevel },
    bodyLimit: config.bodyLimit,
    rateLimitPerMinute: config.rateLimitPerMinute,
  });
  if (admin) app.log.info({ token: admin.name, fromEnvironment: !!config.adminToken }, "created the admin token");
  if (config.kubeProxy) app.log.info({ ca: config.kubeProxy.ca, names: config.kubeProxy.names.length ? config.kubeProxy.names : "any" }, "serving as a Kubernetes aggregated API server: trusting the front-proxy certificate");
  try {
    await app.listen({ port: config.port, host: config.host });
  } catch (err) {
    await engine.close();
    const code = (err as { code?: string }).code;
    if (code === "EADDRINUSE") throw new ConfigError(`${config.host}:${config.port} is already in use; stop what holds it or pick another --port / ALLOT_PORT`);
    if (code === "EADDRNOTAVAIL" || code === "ENOTFOUND") throw new ConfigError(`cannot bind ${config.host}: no such local address; set --host / ALLOT_HOST`);
    throw err;
  }
  const { port } = app.server.address() as AddressInfo;
  const address = `${https ? "https" : "http"}://${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}`;
  app.log.info({ store: store.kind, location: store.location }, `Allot listening on ${address}`);

  let sweeping = false;
  const timer = setInterval(() => {
    if (sweeping) return;
    sweeping = true;
    engine
      .expire()
      .then((n) => n > 0 && app.log.info({ released: n }, "released expired allocations"))
      .catch((err: unknown) => app.log.error({ err }, "expiry sweep failed"))
      .finally(() => (sweeping = false));
  }, config.expirySweepSeconds * 1000);
  timer.unref();

  const stopWebhooks = startWebhookLoop(engine, app.log);
  const stopDns = startDnsPublisher(engine, app.log);
  const stopResync = startResync({ engine, store, ctx: { actor: "kubernetes-resync" }, log: (err) => app.log.error({ err }, "metal3 resync failed") });
  // deleted Kubernetes objects' tombstones, once no watch can still need them
  const tombstones = setInterval(() => {
    store
      .transaction((sql) => pruneTombstones(sql, Date.now() - TOMBSTONES_KEPT_MS))
      .then((n) => n > 0 && app.log.info({ removed: n }, "pruned Kubernetes tombstones"))
      .catch((err: unknown) => app.log.error({ err }, "pruning Kubernetes tombstones failed"));
  }, 5 * 60_000);
  tombstones.unref();
  const retention = config.historyRetentionDays > 0 ? setInterval(() => void prune(), 3600_000) : null;
  retention?.unref();
  const prune = async () => {
    try {
      const removed = await engine.pruneHistory(new Date(Date.now() - config.historyRetentionDays * 86_400_000).toISOString());
      if (removed > 0) app.log.info({ removed, retentionDays: config.historyRetentionDays }, "deleted history past its retention");
    } catch (err) {
      app.log.error({ err }, "history retention sweep failed");
    }
  };
  if (retention) void prune();

  return {
    app,
    engine,
    url: address,
    async stop() {
      clearInterval(timer);
      clearInterval(tombstones);
      if (retention) clearInterval(retention);
      stopWebhooks();
      stopResync();
      await stopDns();
      await app.close();
      await engine.close();
    },
  };
}

/** The key that seals secrets: ALLOT_SECRET_KEY, else secret.key in the data directory, made on first start. */
function secretKey(config: ServeConfig): Buffer {
  if (config.secretKey) {
    try {
      return parseSecretKey(config.secretKey);
    } catch (err) {
      throw new ConfigError((err as Error).message);
    }
  }
  const file = join(config.dataDir, "secret.key");
  if (existsSync(file)) {
    try {
      return parseSecretKey(readFileSync(file, "utf8"));
    } catch (err) {
      throw new ConfigError(`${file}: ${(err as Error).message}`);
    }
  }
  const key = newSecretKey();
  try {
    mkdirSync(config.dataDir, { recursive: true });
    writeFileSync(file, `${key.toString("hex")}\n`, { mode: 0o600, flag: "wx" });
  } catch (err) {
    // another server sharing this data directory made it first: use theirs
    if ((err as { code?: string }).code === "EEXIST") return parseSecretKey(readFileSync(file, "utf8"));
    throw new ConfigError(`cannot create the secret key ${file}: ${whyNotWritable(file) ?? (err as Error).message} (or set ALLOT_SECRET_KEY)`);
  }
  chmodSync(file, 0o600);
  return key;
}

/**
 * The HTTPS certificate: the given PEM files, or a self-signed one (for localhost, 127.0.0.1, ::1 and
 * the bind address) made once into the data directory, where a client can find it to trust it.
 */
function tlsFiles(config: ServeConfig): { cert: string; key: string } {
  const tls = config.tls!;
  if (tls.cert && tls.key) return { cert: readFileSync(tls.cert, "utf8"), key: readFileSync(tls.key, "utf8") };
  const certFile = join(config.dataDir, "tls.crt");
  const keyFile = join(config.dataDir, "tls.key");
  if (existsSync(certFile) && existsSync(keyFile)) return { cert: readFileSync(certFile, "utf8"), key: readFileSync(keyFile, "utf8") };
  const ipHost = /^[\d.]+$|:/.test(config.host) && config.host !== "0.0.0.0" && config.host !== "::";
  // a name of its own (two Allot servers' certificates can then be trusted side by side) and this
  // machine's host name beside the loopback names
  const made = selfsigned.generate([{ name: "commonName", value: `allot-${randomBytes(4).toString("hex")}` }], {
    keySize: 2048,
    days: 3650,
    algorithm: "sha256",
    extensions: [
      { name: "basicConstraints", cA: true },
      { name: "subjectKeyIdentifier" },
      {
        name: "subjectAltName",
        altNames: [
          { type: 2, value: "localhost" },
          { type: 7, ip: "127.0.0.1" },
          { type: 7, ip: "::1" },
          ...(hostname() !== "localhost" ? [{ type: 2, value: hostname() }] : []),
          ...(ipHost && config.host !== "127.0.0.1" ? [{ type: 7, ip: config.host }] : []),
          ...(!ipHost && config.host !== "localhost" && config.host !== "0.0.0.0" && config.host !== "::" ? [{ type: 2, value: config.host }] : []),
        ],
      },
    ],
  });
  mkdirSync(config.dataDir, { recursive: true });
  writeFileSync(keyFile, made.private, { mode: 0o600 });
  writeFileSync(certFile, made.cert);
  return { cert: made.cert, key: made.private };
}
