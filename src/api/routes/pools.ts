import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { type ProviderRequest, createProvidedPool, deletePool as deleteProvided } from "../../providers/provided-pools.js";
import type { ChildPoolInput as ChildInput, PoolInput as PInput, PoolPatch as PPatch, RangeInput as RInput } from "../../engine/types.js";
import { ChildPoolInput, Forecast, HistoryEntry, Pool, PoolInput, PoolParams, PoolPatch, RangeInput, SpaceQuery, Usage, items, poolRef as ref, problems } from "../schemas.js";

const bool = z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1");

export const poolRoutes: FastifyPluginAsyncZod = async (app) => {
  const tags = ["pools"];

  app.get(
    "/pools",
    {
      schema: {
        tags,
        summary: "List pools",
        querystring: z.strictObject({ space: z.string().max(128).optional(), parent: z.string().max(200).optional() }),
        response: { 200: items(Pool), ...problems },
      },
    },
    async (req) => {
      const { space, parent } = req.query;
      return {
        items: await req.engine.listPools({
          ...(space ? { space } : {}),
          ...(parent ? { parent: { pool: parent, ...(space ? { space } : {}) } } : {}),
        }, req.change),
      };
    },
  );

  app.post(
    "/pools",
    { schema: { tags, summary: "Create a pool from one or more ranges", body: PoolInput, response: { 201: Pool, ...problems } } },
    async (req, reply) => {
      const { provider, ...input } = req.body;
      const pool = provider
        ? await createProvidedPool(req.engine, input as PInput, provider as ProviderRequest, req.change)
        : await req.engine.createPool(input as PInput, req.change);
      return reply.status(201).send(pool);
    },
  );

  app.get(
    "/pools/:pool",
    { schema: { tags, summary: "Get a pool by id, or by name within ?space=", params: PoolParams, querystring: SpaceQuery, response: { 200: Pool, ...problems } } },
    async (req) => req.engine.getPool(ref(req.params, req.query), req.change),
  );

  app.patch(
    "/pools/:pool",
    { schema: { tags, summary: "Rename a pool or change its description, attributes or strategy", params: PoolParams, querystring: SpaceQuery, body: PoolPatch, response: { 200: Pool, ...problems } } },
    async (req) => req.engine.updatePool(ref(req.params, req.query), req.body as PPatch, req.change),
  );

  app.post(
    "/pools/:pool/ranges",
    {
      schema: {
        tags,
        summary: "Grow a top-level pool by more ranges (pools never shrink: their allocations live in their ranges)",
        params: PoolParams,
        querystring: SpaceQuery,
        body: z.strictObject({ ranges: z.array(RangeInput).min(1).max(64) }),
        response: { 200: Pool, ...problems },
      },
    },
    async (req) => req.engine.addRanges(ref(req.params, req.query), req.body.ranges as RInput[], req.change),
  );

  app.delete(
    "/pools/:pool",
    {
      schema: {
        tags,
        summary: "Delete a pool; refused while it holds allocations or child pools unless force=true",
        params: PoolParams,
        querystring: z.strictObject({ space: z.string().max(128).optional(), force: bool.optional() }),
        response: { 200: Pool, ...problems },
      },
    },
    async (req) => deleteProvided(req.engine, ref(req.params, req.query), { force: req.query.force ?? false }, req.change),
  );

  app.get(
    "/pools/:pool/children",
    { schema: { tags, summary: "List a pool's child pools", params: PoolParams, querystring: SpaceQuery, response: { 200: items(Pool), ...problems } } },
    async (req) => ({ items: await req.engine.listPools({ parent: ref(req.params, req.query) }, req.change) }),
  );

  app.post(
    "/pools/:pool/children",
    {
      schema: {
        tags,
        summary: "Carve a child pool: the first free aligned block of prefixLength, or an exact cidr",
        params: PoolParams,
        querystring: SpaceQuery,
        body: ChildPoolInput,
        response: { 201: Pool, ...problems },
      },
    },
    async (req, reply) => reply.status(201).send(await req.engine.createChildPool(ref(req.params, req.query), req.body as ChildInput, req.change)),
  );

  app.get(
    "/pools/:pool/usage",
    { schema: { tags, summary: "Exact usage of a pool (decimal strings)", params: PoolParams, querystring: SpaceQuery, response: { 200: Usage, ...problems } } },
    async (req) => req.engine.usage(ref(req.params, req.query), req.change),
  );

  app.get(
    "/pools/:pool/forecast",
    {
      schema: {
        tags,
        summary: "When the pool will run out at the pace of its last 30 days (a least-squares line through its usage)",
        params: PoolParams,
        querystring: SpaceQuery,
        response: { 200: Forecast, ...problems },
      },
    },
    async (req) => req.engine.forecast(ref(req.params, req.query), req.change),
  );

  app.get(
    "/pools/:pool/map",
    {
      schema: {
        tags,
        summary:
          "A pool's occupancy as a map: from start to end (else the whole pool) in at most `cells` cells, each with how many of its addresses are in the pool, free, allocated, in child pools, excluded and reserved",
        params: PoolParams,
        querystring: z.strictObject({
          space: z.string().max(128).optional(),
          cells: z.coerce.number().int().min(1).max(4096).default(256),
          start: z.string().max(100).optional(),
          end: z.string().max(100).optional(),
        }),
        response: {
          200: z.object({
            first: z.string(),
            last: z.string(),
            cellSize: z.string(),
            cells: z.array(
              z.object({
                first: z.string(),
                last: z.string(),
                total: z.string().describe("Addresses of the cell in the pool's ranges; free, allocated, inChildPools, excluded and reserved add up to it"),
                free: z.string(),
                allocated: z.string(),
                inChildPools: z.string().describe("Carved into child pools"),
                excluded: z.string(),
                reserved: z.string().describe("Network, broadcast and gateway addresses the pool keeps back"),
              }),
            ),
          }),
          ...problems,
        },
      },
    },
    async (req) => {
      const { cells, start, end } = req.query;
      return req.engine.poolMap(ref(req.params, req.query), { cells, ...(start ? { start } : {}), ...(end ? { end } : {}) }, req.change);
    },
  );

  app.get(
    "/pools/:pool/history",
    {
      schema: {
        tags,
        summary: "Changes to a pool and its allocations, newest first",
        params: PoolParams,
        querystring: z.strictObject({ space: z.string().max(128).optional(), limit: z.coerce.number().int().min(1).max(1000).optional() }),
        response: { 200: items(HistoryEntry), ...problems },
      },
    },
    async (req) => ({ items: await req.engine.history({ pool: ref(req.params, req.query), limit: req.query.limit ?? 100 }, req.change) }),
  );
};
