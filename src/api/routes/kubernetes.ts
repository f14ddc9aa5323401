import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { applyManifest } from "../../integrations/kubernetes/manifests.js";
import { exportNamespace, importNamespace } from "../../integrations/kubernetes/namespace-bundle.js";
import { problems } from "../schemas.js";

/** Manifests and namespace moves for the Metal3 / Cluster API objects (the objects themselves live under /apis). */
export const kubernetesRoutes: FastifyPluginAsyncZod = async (app) => {
  const tags = ["kubernetes"];
  const Applied = z.object({
    apiVersion: z.string(),
    kind: z.string(),
    namespace: z.string(),
    name: z.string(),
    action: z.enum(["created", "configured", "unchanged"]),
  });
  app.post(
    "/kubernetes/apply",
    {
      schema: {
        tags,
        summary: "Apply a manifest of IPPool, IPClaim, IPAddressClaim and IPAddress objects: every document is checked first, then all are written or none",
        body: z.strictObject({
          objects: z.array(z.unknown()).max(10_000).describe("the manifest's documents, as JSON objects"),
          namespace: z.string().min(1).max(63).default("default").describe("for documents that name none"),
          dryRun: z.boolean().default(false).describe("check and report, change nothing"),
        }),
        response: { 200: z.object({ items: z.array(Applied) }), ...problems },
      },
    },
    async (req) => ({ items: await applyManifest({ engine: req.engine, token: req.token, ctx: req.change }, req.body.objects, { namespace: req.body.namespace, dryRun: req.body.dryRun }) }),
  );

  const params = z.strictObject({ namespace: z.string().min(1).max(63) });
  app.get(
    "/kubernetes/namespaces/:namespace/export",
    {
      schema: {
        tags,
        summary: "One namespace's objects (as stored, status included) and the pools and allocations behind its IPPools, for import elsewhere",
        params,
        response: { 200: z.object({ format: z.string(), version: z.number(), namespace: z.string(), exportedAt: z.string(), objects: z.array(z.unknown()), pools: z.array(z.unknown()) }), ...problems },
      },
    },
    async (req) => exportNamespace(req.engine, req.params.namespace, req.change),
  );

  app.post(
    "/kubernetes/namespaces/:namespace/import",
    {
      schema: {
        tags,
        summary: "Load a namespace export: refused whole if anything in it already exists here",
        params,
        body: z.record(z.string(), z.unknown()),
        response: { 201: z.object({ objects: z.number(), pools: z.number(), allocations: z.number() }), ...problems },
      },
    },
    async (req, reply) => reply.status(201).send(await importNamespace(req.engine, req.token, req.params.namespace, req.body, req.change)),
  );
};
