import { Readable } from "node:stream";
import { setImmediate as nextTurn } from "node:timers/promises";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { ALLOCATION_SORTS, type AllocateRequest, type AllocationPatch as Patch } from "../../engine/types.js";
import { AllocateInput, Allocation, AllocationPatch, BulkAllocateInput, PoolParams, items, poolRef as ref, problems } from "../schemas.js";

export const allocationRoutes: FastifyPluginAsyncZod = async (app) => {
  const tags = ["allocations"];

  app.post(
    "/pools/:pool/allocations",
    {
      schema: {
        tags,
        summary: "Allocate the next free address, a specific address, or a contiguous block",
        description:
          "With an owner the request is idempotent: asking again with the same owner returns the allocation it holds (200) instead of a new one (201).",
        params: PoolParams,
        querystring: z.strictObject({ space: z.string().max(128).optional() }),
        body: AllocateInput,
        response: { 200: Allocation, 201: Allocation, ...problems },
      },
    },
    async (req, reply) => {
      const { allocation, created } = await req.engine.allocate(ref(req.params, req.query), req.body as AllocateRequest, req.change);
      return reply.status(created ? 201 : 200).send(allocation);
    },
  );

  app.post(
    "/pools/:pool/allocations/bulk",
    {
      schema: {
        tags,
        summary: "Allocate many separate addresses in one request, all or none",
        params: PoolParams,
        querystring: z.strictObject({ space: z.string().max(128).optional() }),
        body: BulkAllocateInput,
        response: { 201: items(Allocation), ...problems },
      },
    },
    async (req, reply) => {
      const taken = await req.engine.allocateMany(ref(req.params, req.query), req.body, req.change);
      // streamed, a slice at a time, as the client reads it: a large answer is never built whole in
      // memory, and writing it lets other requests through
      // (the schema types the body; a stream of that body's text is what fastify sends as it is)
      const body = Readable.from(jsonItems(taken.items())) as unknown as { items: never[] };
      return reply.status(201).type("application/json; charset=utf-8").send(body);
    },
  );

  app.get(
    "/pools/:pool/allocations",
    {
      schema: {
        tags,
        summary: "List a pool's allocations, in address order or by when they were made, a page at a time",
        params: PoolParams,
        querystring: z.strictObject({
          space: z.string().max(128).optional(),
          owner: z.string().max(512).optional(),
          mac: z.string().max(32).optional(),
          hostname: z.string().max(253).optional(),
          sort: z
            .enum(ALLOCATION_SORTS)
            .optional()
            .describe("address (the default), -address, created (oldest first) or -created (newest first)"),
          after: z.string().max(100).optional().describe("Return allocations after this one in the sort order (the previous page's next)"),
          limit: z.coerce.number().int().min(1).max(1000).optional(),
        }),
        response: { 200: items(Allocation).extend({ next: z.string().nullable() }), ...problems },
      },
    },
    async (req) => {
      const { space, limit = 100, after, owner, mac, hostname, sort } = req.query;
      return req.engine.listAllocations(ref(req.params, { space }), {
        limit,
        ...(sort !== undefined ? { sort } : {}),
        ...(after !== undefined ? { after } : {}),
        ...(owner !== undefined ? { owner } : {}),
        ...(mac !== undefined ? { mac: mac.toLowerCase().replace(/-/g, ":") } : {}),
        ...(hostname !== undefined ? { hostname } : {}),
      }, req.change);
    },
  );

  app.delete(
    "/pools/:pool/allocations",
    {
      schema: {
        tags,
        summary: "Release by ?address= (any address of the allocation) or by ?owner=",
        params: PoolParams,
        querystring: z.strictObject({
          space: z.string().max(128).optional(),
          address: z.string().max(100).optional(),
          owner: z.string().max(512).optional(),
        }),
        response: { 200: Allocation, ...problems },
      },
    },
    async (req, reply) => {
      const { address, owner, space } = req.query;
      const pool = ref(req.params, { space });
      if ((address === undefined) === (owner === undefined)) {
        const err = Object.assign(new Error("give exactly one of ?address= or ?owner= to say what to release"), { statusCode: 400 });
        throw err;
      }
      return reply.send(
        await req.engine.release(address !== undefined ? { pool, address } : { pool, owner: owner! }, req.change),
      );
    },
  );

  const idParams = z.strictObject({ id: z.string().min(1).max(100) });
  app.get("/allocations/:id", { schema: { tags, summary: "Get an allocation", params: idParams, response: { 200: Allocation, ...problems } } }, async (req) =>
    req.engine.getAllocation(req.params.id, req.change),
  );

  app.patch(
    "/allocations/:id",
    { schema: { tags, summary: "Change an allocation's MAC, hostname, labels or time-to-live (renew)", params: idParams, body: AllocationPatch, response: { 200: Allocation, ...problems } } },
    async (req) => req.engine.updateAllocation(req.params.id, req.body as Patch, req.change),
  );

  app.delete(
    "/allocations/:id",
    { schema: { tags, summary: "Release an allocation by id", params: idParams, response: { 200: Allocation, ...problems } } },
    async (req) => req.engine.release({ id: req.params.id }, req.change),
  );
};

/** Items written per slice of a streamed answer. */
const SLICE = 1000;

/** `{"items":[…]}` in slices of JSON text, yielding to the event loop between them. */
async function* jsonItems(items: Iterable<unknown>): AsyncGenerator<string> {
  let slice: string[] = [];
  let first = true;
  yield '{"items":[';
  for (const item of items) {
    slice.push(JSON.stringify(item));
    if (slice.length === SLICE) {
      yield `${first ? "" : ","}${slice.join(",")}`;
      first = false;
      slice = [];
      await nextTurn();
    }
  }
  yield `${first || slice.length === 0 ? "" : ","}${slice.join(",")}]}`;
}
