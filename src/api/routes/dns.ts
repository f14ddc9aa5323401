import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { checkZone } from "../../dns/check.js";
import { DnsCheckReport, DnsConflict, DnsZone, DnsZoneInput, DnsZonePatch, items, problems } from "../schemas.js";

const params = z.strictObject({ zone: z.string().min(1).max(255) });

/** DNS zones Allot keeps records in, their conflicts and drift checks: admin scope, like webhooks. */
export const dnsRoutes: FastifyPluginAsyncZod = async (app) => {
  const tags = ["dns"];
  const config = { scope: "admin" as const };
  const withBadGateway = { ...problems, 502: problems[400] };
  app.get("/dns/zones", { config, schema: { tags, summary: "List DNS zones (never their credentials)", response: { 200: items(DnsZone), ...problems } } }, async (req) => ({
    items: await req.engine.listDnsZones(req.change),
  }));

  app.post(
    "/dns/zones",
    { config, schema: { tags, summary: "Configure a zone: Allot publishes its space's allocations there from now on", body: DnsZoneInput, response: { 201: DnsZone, ...problems } } },
    async (req, reply) => reply.status(201).send(await req.engine.createDnsZone(req.body, req.change)),
  );

  app.get("/dns/zones/:zone", { config, schema: { tags, summary: "A zone and its publishing status", params, response: { 200: DnsZone, ...problems } } }, async (req) =>
    req.engine.getDnsZone(req.params.zone, req.change),
  );

  app.patch(
    "/dns/zones/:zone",
    { config, schema: { tags, summary: "Change a zone's pools, TTL or backend (a new backend is tried at once)", params, body: DnsZonePatch, response: { 200: DnsZone, ...problems } } },
    async (req) => req.engine.updateDnsZone(req.params.zone, req.body, req.change),
  );

  app.delete(
    "/dns/zones/:zone",
    { config, schema: { tags, summary: "Stop publishing to a zone (its records stay on the server)", params, response: { 200: DnsZone, ...problems } } },
    async (req) => req.engine.deleteDnsZone(req.params.zone, req.change),
  );

  app.get(
    "/dns/zones/:zone/conflicts",
    { config, schema: { tags, summary: "Names Allot wanted but left alone: records it did not write hold them", params, response: { 200: items(DnsConflict), ...problems } } },
    async (req) => ({ items: await req.engine.dnsConflicts(req.params.zone, req.change) }),
  );

  app.get(
    "/dns/zones/:zone/check",
    { config, schema: { tags, summary: "Compare the zone on its server with what Allot holds: missing, stale and foreign records", params, response: { 200: DnsCheckReport, ...withBadGateway } } },
    async (req) => checkZone(req.engine, req.params.zone, req.change, false),
  );

  app.post(
    "/dns/zones/:zone/check",
    {
      config,
      schema: {
        tags,
        summary: "Check the zone; with fix=true also repair Allot's own records (foreign ones are left alone)",
        params,
        querystring: z.strictObject({ fix: z.enum(["true", "false"]).optional() }),
        response: { 200: DnsCheckReport, ...withBadGateway },
      },
    },
    async (req) => checkZone(req.engine, req.params.zone, req.change, req.query.fix === "true"),
  );
};
