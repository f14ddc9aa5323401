import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { AGENT_TIMEOUT_MS, type Assignment, agentsSeenBy, assignmentsOf, changeMark, forgetAgent, holdSync, networkStatus, syncAgent } from "../../dhcp/agents.js";
import { DhcpNetworkInput, DhcpOptions, NAME, createNetwork, deleteNetwork, listNetworks, networkConfig, updateNetwork } from "../../dhcp/networks.js";
import { render } from "../../dhcp/render.js";
import { problems } from "../schemas.js";

/** DHCP delivery: networks (what is served, with which options), rendered configurations, and the agents that serve them. */
export const dhcpRoutes: FastifyPluginAsyncZod = async (app) => {
  const tags = ["dhcp"];
  const params = z.strictObject({ network: z.string().regex(NAME).max(63) });
  const anything = z.record(z.string(), z.unknown());

  app.get("/dhcp/networks", { schema: { tags, summary: "List DHCP networks", response: { 200: z.object({ items: z.array(anything) }), ...problems } } }, async (req) => ({
    items: await listNetworks(req.engine, req.change),
  }));
  app.post(
    "/dhcp/networks",
    { schema: { tags, summary: "Make a DHCP network: a space's IPv4 pools (all, or those named) served with these options", body: DhcpNetworkInput, response: { 201: anything, ...problems } } },
    async (req, reply) => reply.status(201).send(await createNetwork(req.engine, req.body, req.change)),
  );
  app.get(
    "/dhcp/networks/:network",
    { schema: { tags, summary: "A DHCP network, its reservation count, problems, and the agents serving it with their health", params, response: { 200: anything, ...problems } } },
    async (req) => networkStatus(req.engine, req.params.network, req.change),
  );
  app.patch(
    "/dhcp/networks/:network",
    {
      schema: {
        tags,
        summary: "Change a DHCP network's options, pools or server count",
        params,
        body: z.strictObject({ options: DhcpOptions.optional(), servers: z.number().int().min(1).max(16).optional(), pools: z.array(z.string().min(1).max(128)).max(256).optional() }),
        response: { 200: anything, ...problems },
      },
    },
    async (req) => updateNetwork(req.engine, req.params.network, req.body, req.change),
  );
  app.delete("/dhcp/networks/:network", { schema: { tags, summary: "Stop serving a DHCP network (its allocations stay)", params, response: { 200: anything, ...problems } } }, async (req) =>
    deleteNetwork(req.engine, req.params.network, req.change),
  );
  app.get(
    "/dhcp/networks/:network/config",
    {
      schema: {
        tags,
        summary: "The network rendered for dnsmasq or ISC Kea in restricted mode (only reserved MACs are answered)",
        params,
        querystring: z.strictObject({
          format: z.enum(["dnsmasq", "kea"]).default("dnsmasq"),
          interface: z.string().min(1).max(15).regex(/^[^\s/]+$/, "an interface name").default("eth0"),
          dir: z.string().min(1).max(255).regex(/^\/\S*$/, "an absolute path").optional(),
        }),
        response: { 200: z.object({ main: z.string(), files: z.record(z.string(), z.string()), problems: z.array(z.string()) }), ...problems },
      },
    },
    async (req) => {
      const config = await networkConfig(req.engine, req.params.network, req.change);
      const r = render(req.query.format, config, { interface: req.query.interface, dir: req.query.dir ?? `/var/lib/allot-dhcp/${req.params.network}`, inlineHosts: true });
      return { ...r, problems: config.problems };
    },
  );

  app.get("/dhcp/agents", { schema: { tags, summary: "DHCP agents: what they reach, what they serve, their health and when last heard from", response: { 200: z.object({ items: z.array(anything) }), ...problems } } }, async (req) => ({
    items: (await agentsSeenBy(req.engine, req.change)) as unknown as Record<string, unknown>[],
  }));
  const agent = z.strictObject({ name: z.string().regex(NAME).max(63) });
  app.delete("/dhcp/agents/:name", { config: { scope: "admin" }, schema: { tags, summary: "Forget an agent (its networks go to others)", params: agent, response: { 204: z.null(), ...problems } } }, async (req, reply) => {
    await forgetAgent(req.engine, req.params.name, req.change);
    return reply.status(204).send(null);
  });
  app.post(
    "/dhcp/agents/:name/sync",
    {
      schema: {
        tags,
        summary: "An agent reports (reach, health) and gets its assignments; held open up to waitSeconds until they differ from `known`",
        params: agent,
        body: z.strictObject({
          networks: z.array(z.strictObject({ network: z.string().regex(NAME), interface: z.string().min(1).max(15), netns: z.string().min(1).max(64).optional() })).max(256),
          server: z.enum(["dnsmasq", "kea"]),
          health: z.record(z.string(), z.strictObject({ state: z.enum(["starting", "serving", "failed", "stopped"]), error: z.string().max(2000).optional(), since: z.string() })),
          known: z.record(z.string(), z.string()).default({}),
          waitSeconds: z.number().min(0).max(60).default(0),
        }),
        response: { 200: z.object({ assignments: z.array(anything) }), ...problems },
      },
    },
    async (req, reply) => {
      const { known, waitSeconds, ...report } = req.body;
      const differs = (as: Assignment[]) => as.length !== Object.keys(known).length || as.some((a) => known[a.network] !== a.hash);
      // the feed's version, then the mark, then the assignments: a change landing while they are read
      // then shows as a newer version and a new mark
      const feed = req.engine.changes;
      let seen = feed.version;
      let mark = await changeMark(req.engine);
      let assignments = await syncAgent(req.engine, req.params.name, report, req.token);
      // held open: answered as soon as the assignments or their reservations change (a push)
      const gone = new AbortController();
      reply.raw.once("close", () => gone.abort());
      // held for less than half the time after which an agent counts as lost: a live agent is back
      // with a new sync well before then, and one that hangs (its connection still open) is found out
      const deadline = Date.now() + Math.min(waitSeconds * 1000, AGENT_TIMEOUT_MS / 2);
      if (differs(assignments) || Date.now() >= deadline) return { assignments: assignments as unknown as Record<string, unknown>[] };
      // woken by the change feed, not by polling: the mark is read again only when something committed
      const release = holdSync(req.engine, (err) => req.log.error({ err }, "DHCP scheduling failed"));
      try {
        while (!differs(assignments) && !gone.signal.aborted && Date.now() < deadline) {
          seen = await feed.wait(seen, deadline - Date.now(), gone.signal);
          const now = await changeMark(req.engine);
          if (now !== mark) {
            mark = now;
            assignments = await assignmentsOf(req.engine, req.params.name, req.token);
          }
        }
      } finally {
        release();
      }
      return { assignments: assignments as unknown as Record<string, unknown>[] };
    },
  );
};
