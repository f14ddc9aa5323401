import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import Fastify, { type FastifyInstance, type FastifyServerOptions, LogController } from "fastify";
import { jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from "fastify-type-provider-zod";
import { randomUUID } from "node:crypto";
import { z } from "zod";
import type { Engine } from "../engine/engine.js";
import type { ChangeContext } from "../engine/types.js";
import { errorHandler, sendProblem } from "./problem.js";
import { allocationRoutes } from "./routes/allocations.js";
import { lookupRoutes } from "./routes/lookup.js";
import { poolRoutes } from "./routes/pools.js";
import { spaceRoutes } from "./routes/spaces.js";

declare module "fastify" {
  interface FastifyRequest {
    engine: Engine;
    /** Actor and request id recorded with every change this request makes. */
    change: ChangeContext;
  }
}

export const VERSION = "0.1.0";

export interface AppOptions {
  engine: Engine;
  logger?: FastifyServerOptions["logger"];
  /** Largest accepted request body in bytes. */
  bodyLimit?: number;
}

/** Builds the HTTP app; it does not listen, so tests can drive it with inject(). */
export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    requestIdHeader: "x-request-id",
    genReqId: () => randomUUID(),
    routerOptions: { maxParamLength: 200 },
    // one log line per request (the onResponse hook below), not Fastify's two
    logController: new LogController({ disableRequestLogging: true }),
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((req, reply) => sendProblem(reply, req, "not-found", `no route ${req.method} ${req.url}; see /openapi.json`));

  const engine = options.engine;
  app.decorateRequest("engine", {
    getter: () => engine,
  });
  app.decorateRequest("change", {
    getter(this: { id: string }) {
      return { actor: "api", requestId: this.id };
    },
  });
  app.addHook("onSend", async (req, reply) => {
    reply.header("x-request-id", req.id);
  });
  app.addHook("onResponse", async (req, reply) => {
    req.log.info({ method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10 }, "request");
  });

  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "Allot IPAM API",
        version: VERSION,
        description:
          "Spaces, pools, child pools and allocations. Errors are RFC 9457 problem documents whose `code` is stable (see `type`: urn:allot:problem:<code>).",
      },
      tags: [
        { name: "spaces", description: "Independent address plans" },
        { name: "pools", description: "Sets of addresses made of ranges, minus exclusions" },
        { name: "allocations", description: "Addresses and blocks held by owners" },
        { name: "lookup", description: "Who holds an address" },
        { name: "history", description: "Every change, with actor and request id" },
        { name: "health", description: "Liveness" },
      ],
    },
    transform: jsonSchemaTransform,
  });
  await app.register(swaggerUi, { routePrefix: "/docs" });

  app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());
  app.get(
    "/healthz",
    { schema: { tags: ["health"], summary: "Liveness: the server is up", response: { 200: z.object({ status: z.literal("ok"), version: z.string() }) } } },
    async () => ({ status: "ok" as const, version: VERSION }),
  );

  await app.register(
    async (v1) => {
      await v1.register(spaceRoutes);
      await v1.register(poolRoutes);
      await v1.register(allocationRoutes);
      await v1.register(lookupRoutes);
    },
    { prefix: "/v1" },
  );
  return app;
}
