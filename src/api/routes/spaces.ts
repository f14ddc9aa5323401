import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { Space, SpaceInput, items, problems } from "../schemas.js";

export const spaceRoutes: FastifyPluginAsyncZod = async (app) => {
  const tags = ["spaces"];
  app.get("/spaces", { schema: { tags, summary: "List spaces", response: { 200: items(Space) } } }, async (req) => ({
    items: await req.engine.listSpaces(req.change),
  }));

  app.post(
    "/spaces",
    { config: { scope: "admin" }, schema: { tags, summary: "Create a space (an independent address plan)", body: SpaceInput, response: { 201: Space, ...problems } } },
    async (req, reply) => reply.status(201).send(await req.engine.createSpace(req.body, req.change)),
  );

  const params = z.strictObject({ space: z.string().min(1).max(128) });
  app.get("/spaces/:space", { schema: { tags, summary: "Get a space", params, response: { 200: Space, ...problems } } }, async (req) =>
    req.engine.getSpace(req.params.space, req.change),
  );

  app.delete(
    "/spaces/:space",
    { config: { scope: "admin" }, schema: { tags, summary: "Delete an empty space", params, response: { 200: Space, ...problems } } },
    async (req) => req.engine.deleteSpace(req.params.space, req.change),
  );
};
