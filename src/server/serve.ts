import type { FastifyInstance } from "fastify";
import { buildApp } from "../api/app.js";
import { Engine } from "../engine/engine.js";
import { openStore } from "../store/open-store.js";
import type { AddressInfo } from "node:net";
import { ConfigError, type ServeConfig } from "./config.js";

export interface RunningServer {
  app: FastifyInstance;
  engine: Engine;
  url: string;
  stop(): Promise<void>;
}

/** Opens the store, starts the HTTP server and the expiry sweeper. */
export async function startServer(config: ServeConfig): Promise<RunningServer> {
  let store;
  try {
    store = await openStore(config);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const engine = await Engine.open(store);
  const app = await buildApp({
    engine,
    logger: { level: config.logLevel },
  });
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
  const address = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}`;
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
