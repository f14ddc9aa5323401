import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { HistoryQuery as Query } from "../../engine/engine.js";
import { AllotError } from "../../engine/errors.js";
import { Allocation, HistoryEntry, HistoryQuery, Holding, LookupResult, items, problems } from "../schemas.js";

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
    async (req) => ({ items: await req.engine.lookup(req.query.address, req.query.space, req.change) }),
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
      return { items: await req.engine.history(query, req.change) };
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
      const holder = await req.engine.holderAt(address, at, space, req.change);
      return { address, space, at: new Date(Date.parse(at)).toISOString(), holder };
    },
  );

  app.get(
    "/search",
    {
      schema: {
        tags: ["lookup"],
        summary: "Find allocations by MAC, owner or host name (or its beginning), in the token's spaces; an address gives its holders",
        querystring: z.strictObject({ q: z.string().min(1).max(253), limit: z.coerce.number().int().min(1).max(200).default(50) }),
        response: { 200: z.object({ addresses: z.array(LookupResult), allocations: z.array(Allocation) }), ...problems },
      },
    },
    async (req) => {
      const q = req.query.q.trim();
      // an address is looked up; anything else is searched for among MACs, owners and host names
      let addresses: Awaited<ReturnType<typeof req.engine.lookup>> = [];
      try {
        addresses = await req.engine.lookup(q, undefined, req.change);
      } catch (err) {
        // not an address; anything else that went wrong is still an error
        if (!(err instanceof AllotError && err.code === "invalid-address")) throw err;
      }
      return { addresses, allocations: await req.engine.search(q, req.change, req.query.limit) };
    },
  );

  app.get(
    "/whoami",
    {
      schema: {
        tags: ["tokens"],
        summary: "The token this request was made with: its name, scope and spaces (never its secret)",
        response: { 200: z.object({ id: z.string(), name: z.string(), scope: z.enum(["read", "write", "admin"]), spaces: z.array(z.string()).nullable(), expiresAt: z.string().nullable() }), ...problems },
      },
    },
    async (req) => {
      const { id, name, scope, spaces, expiresAt } = req.token;
      return { id, name, scope, spaces, expiresAt };
    },
  );
};
