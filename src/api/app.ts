import { SERVER } from "../engine/access.js";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import fastifyStatic from "@fastify/static";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import Fastify, { type FastifyInstance, type FastifyServerOptions, LogController } from "fastify";
import { jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from "fastify-type-provider-zod";
import { randomUUID } from "node:crypto";
import { z } from "zod";
import type { Engine } from "../engine/engine.js";
import type { ChangeContext } from "../engine/types.js";
import rateLimit from "@fastify/rate-limit";
import { AllotError } from "../engine/errors.js";
import { TokenCache, registerAuth } from "./auth.js";
import { registerKubeApi } from "../integrations/kubernetes/api.js";
import { registerMetrics } from "./metrics.js";
import { kubernetesRoutes } from "./routes/kubernetes.js";
import { dhcpRoutes } from "./routes/dhcp.js";
import { registerOpenStack } from "../integrations/openstack/api.js";
import { errorHandler, sendProblem } from "./problem.js";
import type { Token } from "../engine/tokens.js";
import { adminRoutes } from "./routes/admin.js";
import { dnsRoutes } from "./routes/dns.js";
import { allocationRoutes } from "./routes/allocations.js";
import { lookupRoutes } from "./routes/lookup.js";
import { poolRoutes } from "./routes/pools.js";
import { spaceRoutes } from "./routes/spaces.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The engine; every call passes `change`, whose access the engine checks (set by the auth hook on /v1 routes). */
    engine: Engine;
    /** The request's token (set by the auth hook on /v1 routes). */
    token: Token;
    /** Actor and request id recorded with every change this request makes, and the token's spaces. */
    change: ChangeContext;
  }
}

export const VERSION = "0.1.0";

export interface AppOptions {
  engine: Engine;
  logger?: FastifyServerOptions["logger"];
  /** Largest accepted request body in bytes (default 1 MiB). */
  bodyLimit?: number;
  /** Requests per minute per token on /v1; 0 or absent for no limit. */
  rateLimitPerMinute?: number;
  /** How long a checked token is trusted before the database is asked again (default 10 s). */
  tokenCacheMs?: number;
  /** Serve HTTPS with this PEM certificate and key (and, for Kubernetes aggregation, the front-proxy CA). */
  https?: { cert: string; key: string; ca?: string; requestCert?: boolean; rejectUnauthorized?: boolean };
  /** Trust kube-apiserver's front-proxy certificate (verified against https.ca) with these common names (empty: any). */
  kubeProxyNames?: string[];
}

/** Builds the HTTP app; it does not listen, so tests can drive it with inject(). */
export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    ...(options.https ? { https: options.https } : {}),
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    requestIdHeader: "x-request-id",
    genReqId: () => randomUUID(),
    // OpenStack clients join a base URL ending in / with a path starting with one (…/v2.0//tokens)
    routerOptions: { maxParamLength: 200, ignoreDuplicateSlashes: true },
    // errors the router and parser raise before any route runs get the same problem documents
    frameworkErrors: (err, req, reply) => {
      const status = typeof err.statusCode === "number" && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 400;
      const detail = err.code === "FST_ERR_MAX_PARAM_LENGTH" ? "a path segment is longer than 200 characters" : err.message;
      return sendProblem(reply, req, "invalid-request", detail, {}, status);
    },
    // one log line per request (the onResponse hook below), not Fastify's two
    logController: new LogController({ disableRequestLogging: true }),
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((req, reply) => sendProblem(reply, req, "not-found", `no route ${req.method} ${req.url}; see /openapi.json`));

  const engine = options.engine;
  const tokens = new TokenCache(engine, options.tokenCacheMs ?? 10_000);
  app.decorateRequest("engine", null as unknown as Engine);
  app.decorateRequest("token", null as unknown as Token);
  app.decorateRequest("change", null as unknown as ChangeContext);
  registerAuth(app, engine, tokens);
  registerMetrics(app, engine);
  if (options.rateLimitPerMinute) {
    await app.register(rateLimit, {
      global: true,
      hook: "preHandler", // after authentication: the limit is per token
      max: options.rateLimitPerMinute,
      timeWindow: 60_000,
      keyGenerator: (req) => req.change?.actor ?? req.ip,
      allowList: (req) => !req.routeOptions.url?.startsWith("/v1/"),
      errorResponseBuilder: (_req, ctx) =>
        new AllotError("rate-limited", `this token may make ${ctx.max} requests a minute (ALLOT_RATE_LIMIT); retry in ${Math.ceil(ctx.ttl / 1000)} s`),
    });
  }
  // NUL characters mean nothing in names, addresses or labels, and PostgreSQL cannot store them: refused
  // up front so both stores answer alike
  app.addHook("preValidation", async (req, reply) => {
    let text = "";
    try {
      text = req.body === undefined ? "" : JSON.stringify(req.body);
    } catch {
      return sendProblem(reply, req, "invalid-request", "the request body is nested too deeply to be a request");
    }
    if (/%00/.test(req.url) || text.includes("\\u0000")) {
      return sendProblem(reply, req, "invalid-request", "the request contains a NUL character (\\u0000 or %00); remove it");
    }
  });
  // a token revoked here stops working here at once
  app.addHook("onResponse", async (req, reply) => {
    if (req.routeOptions.url === "/v1/tokens/:token" && req.method === "DELETE" && reply.statusCode === 200) tokens.clear();
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
        { name: "webhooks", description: "Change events POSTed to your URL, signed with HMAC-SHA256" },
        { name: "tokens", description: "API tokens: scopes read < write < admin, optionally limited to spaces" },
        { name: "kubernetes", description: "Metal3 / Cluster API manifests and namespace moves (the objects themselves are served under /apis for kubectl)" },
        { name: "dhcp", description: "DHCP delivery: networks, rendered server configurations, agents" },
        { name: "dns", description: "DNS records that follow allocations, in BIND (RFC 2136 + TSIG) or PowerDNS" },
        { name: "health", description: "Liveness and readiness (no token needed)" },
      ],
      // every /v1 route takes the token as a bearer; /docs' "Authorize" then sends it with "Try it out"
      components: { securitySchemes: { token: { type: "http", scheme: "bearer", description: "An Allot API token (allot_…): printed at first start, or made with allot token create" } } },
      security: [{ token: [] }],
    },
    transform: jsonSchemaTransform,
  });
  await app.register(swaggerUi, { routePrefix: "/docs" });
  // the web UI: its page, script and styles, compiled into dist/ui (npm ci or npm run build makes them)
  const ui = fileURLToPath(new URL("../../dist/ui/", import.meta.url));
  if (existsSync(ui)) {
    await app.register(fastifyStatic, { root: ui, prefix: "/ui/", decorateReply: false, schemaHide: true });
    app.get("/", { schema: { hide: true } }, async (_req, reply) => reply.redirect("/ui/"));
  }

  app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());
  app.get(
    "/healthz",
    { schema: { tags: ["health"], security: [], summary: "Liveness: the server is up", response: { 200: z.object({ status: z.literal("ok"), version: z.string() }) } } },
    async () => ({ status: "ok" as const, version: VERSION }),
  );
  app.get(
    "/readyz",
    {
      schema: {
        tags: ["health"],
        security: [],
        summary: "Readiness: the database answers and would take a write",
        description:
          "503 names the cause (disk full, database read-only, database unreachable); on SQLite it is a small real write, at most one a second.",
        response: {
          200: z.object({ status: z.literal("ready"), store: z.string() }),
          503: z.object({ status: z.literal("unavailable"), store: z.string(), reason: z.string() }),
        },
      },
    },
    async (_req, reply) => {
      const store = engine.store.kind;
      let reason: string | null;
      try {
        await engine.listSpaces(SERVER);
        // a database that reads but cannot write (full, read-only, a standby) is not ready either
        reason = await engine.store.writable();
      } catch (err) {
        reason = (err as Error).message;
      }
      if (reason) return reply.status(503).send({ status: "unavailable" as const, store, reason });
      return { status: "ready" as const, store };
    },
  );

  // the Kubernetes-style API (Metal3 and Cluster API IPAM resources) at /api, /apis, /version, /openapi
  await app.register(async (kube) => registerKubeApi(kube, { engine, tokens, ...(options.kubeProxyNames ? { proxyNames: options.kubeProxyNames } : {}) }));

  // OpenStack: Keystone at /identity, Neutron at /network (openstack CLI, oVirt)
  await app.register(async (os) => registerOpenStack(os, { engine, tokens }));

  await app.register(
    async (v1) => {
      await v1.register(spaceRoutes);
      await v1.register(poolRoutes);
      await v1.register(allocationRoutes);
      await v1.register(lookupRoutes);
      await v1.register(adminRoutes);
      await v1.register(kubernetesRoutes);
      await v1.register(dhcpRoutes);
      await v1.register(dnsRoutes);
    },
    { prefix: "/v1" },
  );
  return app;
}
