import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { HistoryEntry, LookupResult, items, problems } from "../schemas.js";

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
        summary: "Recent changes, newest first",
        querystring: z.strictObject({ limit: z.coerce.number().int().min(1).max(1000).optional() }),
        response: { 200: items(HistoryEntry), ...problems },
      },
    },
    async (req) => ({ items: await req.engine.history({ limit: req.query.limit ?? 100 }) }),
  );
};
