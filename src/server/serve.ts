import type { FastifyInstance } from "fastify";
import { join } from "node:path";
import { buildApp } from "../api/app.js";
import { Engine } from "../engine/engine.js";
import { SqliteStore } from "../store/sqlite/sqlite-store.js";
import type { ServeConfig } from "./config.js";

export interface RunningServer {
  app: FastifyInstance;
  engine: Engine;
  url: string;
  stop(): Promise<void>;
}

/** Opens the store, starts the HTTP server and the expiry sweeper. */
export async function startServer(config: ServeConfig): Promise<RunningServer> {
  const store = new SqliteStore({ file: join(config.dataDir, "allot.db") });
  const engine = await Engine.open(store);
  const app = await buildApp({
    engine,
    logger: { level: config.logLevel },
  });
  const address = await app.listen({ port: config.port, host: config.host });
  app.log.info({ dataDir: config.dataDir, store: store.kind }, `Allot listening on ${address}`);

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

  return {
    app,
    engine,
    url: address,
    async stop() {
      clearInterval(timer);
      await app.close();
      await engine.close();
    },
  };
}
