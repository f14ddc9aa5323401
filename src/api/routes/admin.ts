import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { NewToken, NewWebhook, Token, TokenInput, Webhook, WebhookInput, items, problems } from "../schemas.js";

/** Tokens and webhooks: admin scope (a space-limited admin manages those within its spaces). */
export const adminRoutes: FastifyPluginAsyncZod = async (app) => {
  const tags = ["tokens"];
  const config = { scope: "admin" as const };
  app.get("/tokens", { config, schema: { tags, summary: "List tokens (never their secrets)", response: { 200: items(Token), ...problems } } }, async (req) => ({
    items: await req.engine.listTokens(req.change),
  }));

  app.post(
    "/tokens",
    { config, schema: { tags, summary: "Create a token; its secret is in this answer only", body: TokenInput, response: { 201: NewToken, ...problems } } },
    async (req, reply) => reply.status(201).send(await req.engine.createToken(req.body, req.change)),
  );

  app.delete(
    "/tokens/:token",
    {
      config,
      schema: { tags, summary: "Revoke a token, by id or name", params: z.strictObject({ token: z.string().min(1).max(128) }), response: { 200: Token, ...problems } },
    },
    async (req) => req.engine.revokeToken(req.params.token, req.change),
  );

  const hooks = ["webhooks"];
  app.get("/webhooks", { config, schema: { tags: hooks, summary: "List webhooks (never their secrets)", response: { 200: items(Webhook), ...problems } } }, async (req) => ({
    items: await req.engine.listWebhooks(req.change),
  }));

  app.post(
    "/webhooks",
    {
      config,
      schema: {
        tags: hooks,
        summary: "Create a webhook: every later change (in its spaces) is POSTed to it, signed in x-allot-signature",
        body: WebhookInput,
        response: { 201: NewWebhook, ...problems },
      },
    },
    async (req, reply) => reply.status(201).send(await req.engine.createWebhook(req.body, req.change)),
  );

  app.delete(
    "/webhooks/:webhook",
    {
      config,
      schema: { tags: hooks, summary: "Delete a webhook, by id or name", params: z.strictObject({ webhook: z.string().min(1).max(128) }), response: { 200: Webhook, ...problems } },
    },
    async (req) => req.engine.deleteWebhook(req.params.webhook, req.change),
  );
};
