import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { HistoryQuery as Query } from "../../engine/engine.js";
import { HistoryEntry, HistoryQuery, Holding, LookupResult, items, problems } from "../schemas.js";

export const lookupRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    "/lookup",
    {
      schema: {
        tags: ["lookup"],
        summary: "Who holds an address: its pool, state and allocation, in one space or in every space",
        querystring: z.strictObject({ address: z.string().min(1).max(100), space: z.string().max(128).optional() }),
        response: { 200: items(LookupResult), ...problems },
      },
    },
    async (req) => ({ items: await req.engine.lookup(req.query.address, req.query.space) }),
  );

  app.get(
    "/history",
    {
      schema: {
        tags: ["history"],
        summary: "Changes, newest first, filtered by space, pool, address, owner, actor, entity and time",
        querystring: HistoryQuery,
        response: { 200: items(HistoryEntry), ...problems },
      },
    },
    async (req) => {
      const { pool, space, ...rest } = req.query;
      const query: Query = { ...rest, ...(space !== undefined ? { space } : {}), ...(pool !== undefined ? { pool: { pool, ...(space !== undefined ? { space } : {}) } } : {}) };
      return { items: await req.engine.history(query) };
    },
  );

  app.get(
    "/history/holder",
    {
      schema: {
        tags: ["history"],
        summary: "Who held an address at a given moment: the allocation live then",
        querystring: z.strictObject({
          address: z.string().min(1).max(100),
          at: z.string().min(1).max(64).describe("ISO 8601 time, e.g. 2026-11-01T12:00:00Z"),
          space: z.string().max(128).optional(),
        }),
        response: { 200: Holding, ...problems },
      },
    },
    async (req) => {
      const { address, at, space = "default" } = req.query;
      const holder = await req.engine.holderAt(address, at, space);
      return { address, space, at: new Date(Date.parse(at)).toISOString(), holder };
    },
  );
};
