/**
 * The OpenStack face of Allot: Keystone at /identity (v3 and v2.0 tokens) and a Neutron v2.0 subset at
 * /network/v2.0 (networks, subnets, subnet pools, ports), in the shapes, filters and NeutronError
 * bodies the openstack CLI and oVirt's external network provider expect. The catalog a token comes
 * with points the network service at this server, so OS_AUTH_URL is the only address a client needs.
 */
import { SERVER } from "../../engine/access.js";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { randomUUID } from "node:crypto";
import type { Engine } from "../../engine/engine.js";
import { AllotError } from "../../engine/errors.js";
import type { TokenCache } from "../../api/auth.js";
import { KeystoneError, type Scoped, authenticate, issue, roleOf, verifyIssued } from "./keystone.js";
import { NeutronError, fromAllot } from "./errors.js";
import type { Doc, Kind } from "./objects.js";
import { type Caller, NeutronService, neutronTime, shown } from "./service.js";

const COLLECTIONS: { path: string; kind: Kind; one: string }[] = [
  { path: "networks", kind: "network", one: "network" },
  { path: "subnets", kind: "subnet", one: "subnet" },
  { path: "subnetpools", kind: "subnetpool", one: "subnetpool" },
  { path: "ports", kind: "port", one: "port" },
];

const baseUrl = (req: FastifyRequest) => `${req.protocol}://${req.headers.host ?? "127.0.0.1"}`;

function unauthorized(reply: FastifyReply, message = "The request you have made requires authentication.") {
  return reply.status(401).header("www-authenticate", 'Keystone uri="/identity/v3"').send({ error: { code: 401, title: "Unauthorized", message } });
}

function sendNeutron(reply: FastifyReply, e: NeutronError) {
  return reply.status(e.status).header("content-type", "application/json").send({ NeutronError: { type: e.type, message: e.message, detail: e.detail } });
}

/** Neutron's list filters: any top-level field by equality (repeated values: any of them), fixed_ips by ip_address or subnet_id. */
function filter(items: Doc[], query: Record<string, unknown>): Doc[] {
  const skip = new Set(["fields", "limit", "marker", "sort_key", "sort_dir", "page_reverse"]);
  return items.filter((item) =>
    Object.entries(query).every(([k, v]) => {
      if (skip.has(k)) return true;
      const wanted = (Array.isArray(v) ? v : [v]).map(String);
      if (k === "fixed_ips") {
        const ips = (item.fixed_ips ?? []) as { ip_address: string; subnet_id: string }[];
        return wanted.every((w) => {
          const [key, value] = w.split("=", 2) as [string, string | undefined];
          return ips.some((f) => (key === "ip_address" ? f.ip_address === value : key === "subnet_id" ? f.subnet_id === value : false));
        });
      }
      if (!(k in item)) return true; // unknown filters are ignored, as Neutron ignores them
      const actual = item[k];
      return wanted.some((w) => (Array.isArray(actual) ? actual.map(String).includes(w) : String(actual) === w || (typeof actual === "boolean" && w.toLowerCase() === String(actual))));
    }),
  );
}

function pick(item: Record<string, unknown>, fields: unknown): Record<string, unknown> {
  const list = (Array.isArray(fields) ? fields : fields === undefined ? [] : [fields]).map(String);
  return list.length === 0 ? item : Object.fromEntries(list.filter((f) => f in item).map((f) => [f, item[f]]));
}

export interface OpenStackOptions {
  engine: Engine;
  tokens: TokenCache;
}

export function registerOpenStack(app: FastifyInstance, { engine, tokens }: OpenStackOptions): void {
  const neutron = new NeutronService(engine);
  const hidden = { schema: { hide: true } };

  app.setErrorHandler((err, req, reply) => {
    if (err instanceof NeutronError) return sendNeutron(reply, err);
    if (err instanceof KeystoneError) return unauthorized(reply, err.message);
    if (err instanceof AllotError) return sendNeutron(reply, fromAllot(err));
    const status = (err as { statusCode?: number }).statusCode;
    if (status && status < 500) return sendNeutron(reply, new NeutronError(status, "BadRequest", (err as Error).message));
    req.log.error({ err }, "unexpected error");
    return sendNeutron(reply, new NeutronError(500, "InternalError", `an unexpected error occurred; quote request id ${req.id}`));
  });

  // ---- Keystone

  const versionV3 = (req: FastifyRequest) => ({
    id: "v3.14",
    status: "stable",
    updated: "2020-04-07T00:00:00Z",
    links: [{ rel: "self", href: `${baseUrl(req)}/identity/v3/` }],
    "media-types": [{ base: "application/json", type: "application/vnd.openstack.identity-v3+json" }],
  });
  const versionV2 = (req: FastifyRequest) => ({ id: "v2.0", status: "deprecated", updated: "2016-08-04T00:00:00Z", links: [{ rel: "self", href: `${baseUrl(req)}/identity/v2.0/` }] });
  app.get("/identity", hidden, async (req, reply) => reply.status(300).send({ versions: { values: [versionV3(req), versionV2(req)] } }));
  app.get("/identity/v3", hidden, async (req) => ({ version: versionV3(req) }));
  app.get("/identity/v2.0", hidden, async (req) => ({ version: versionV2(req) }));

  const catalog = (req: FastifyRequest) => {
    const base = baseUrl(req);
    const endpoints = (url: string) => ["public", "internal", "admin"].map((i) => ({ id: randomUUID().replace(/-/g, ""), interface: i, region: "RegionOne", region_id: "RegionOne", url }));
    return [
      { type: "network", name: "neutron", id: "allot-network", endpoints: endpoints(`${base}/network`) },
      { type: "identity", name: "keystone", id: "allot-identity", endpoints: endpoints(`${base}/identity/v3`) },
    ];
  };
  const tokenBody = (req: FastifyRequest, s: Scoped) => ({
    token: {
      methods: ["password"],
      user: { id: s.token.id, name: s.token.name, domain: { id: "default", name: "Default" }, password_expires_at: null },
      project: { id: s.projectId, name: s.project, domain: { id: "default", name: "Default" } },
      roles: [{ id: roleOf(s.token), name: roleOf(s.token) }],
      is_domain: false,
      expires_at: neutronTime(s.expiresAt),
      issued_at: neutronTime(Date.now()),
      audit_ids: [randomUUID().slice(0, 22)],
      catalog: catalog(req),
    },
  });

  // oVirt's provider dialog builds its authentication URL as scheme://host:port/v2.0 (or /v3): served there too
  app.get("/v2.0", hidden, async (req) => ({ version: versionV2(req) }));
  app.get("/v3", hidden, async (req) => ({ version: versionV3(req) }));
  const v3Tokens = async (req: FastifyRequest, reply: FastifyReply) => {
    const auth = ((req.body ?? {}) as { auth?: { identity?: { methods?: string[]; password?: { user?: { name?: string; id?: string; password?: string } } }; scope?: { project?: { name?: string; id?: string } } } }).auth;
    const user = auth?.identity?.password?.user;
    if (!auth?.identity?.methods?.includes("password") || !user || typeof user.password !== "string") {
      throw new NeutronError(400, "ValidationError", "Expecting to find identity with methods [\"password\"] and password.user {name, password} in auth");
    }
    if (auth.scope?.project && auth.scope.project.name === undefined && auth.scope.project.id === undefined) {
      throw new NeutronError(400, "ValidationError", "scope.project needs a name or an id (the Allot space)");
    }
    const project = auth.scope?.project ? { ...(auth.scope.project.name !== undefined ? { name: auth.scope.project.name } : {}), ...(auth.scope.project.id !== undefined ? { id: auth.scope.project.id } : {}) } : null;
    const s = await authenticate(engine, tokens, { password: user.password, ...(user.name !== undefined ? { name: user.name } : {}), ...(user.id !== undefined ? { id: user.id } : {}) }, project);
    return reply.status(201).header("x-subject-token", issue(engine, { tokenId: s.token.id, project: s.project, projectId: s.projectId, expiresAt: s.expiresAt })).send(tokenBody(req, s));
  };
  app.post("/identity/v3/auth/tokens", hidden, v3Tokens);
  app.post("/v3/auth/tokens", hidden, v3Tokens);
  app.get("/identity/v3/auth/tokens", hidden, async (req, reply) => {
    const caller = await verifyIssued(engine, String(req.headers["x-auth-token"] ?? ""));
    const subject = await verifyIssued(engine, String(req.headers["x-subject-token"] ?? ""));
    if (!caller) return unauthorized(reply);
    if (!subject) throw new NeutronError(404, "NotFound", "Could not find token (it is unknown or has expired).");
    // as Keystone's policy: a token's own details, or any token's for an admin (of its project's space)
    const admin = caller.token.scope === "admin" && (caller.token.spaces === null || caller.token.spaces.includes(subject.project));
    if (caller.token.id !== subject.token.id && !admin) {
      return reply.status(403).send({ error: { code: 403, title: "Forbidden", message: "You are not authorized to validate another user's token: only an admin or the token's own user may." } });
    }
    return reply.header("x-subject-token", String(req.headers["x-subject-token"])).send(tokenBody(req, subject));
  });

  const v2Tokens = async (req: FastifyRequest) => {
    const auth = ((req.body ?? {}) as { auth?: { passwordCredentials?: { username?: string; password?: string }; tenantName?: string; tenantId?: string } }).auth;
    const cred = auth?.passwordCredentials;
    if (!cred || typeof cred.password !== "string") throw new NeutronError(400, "ValidationError", "Expecting auth.passwordCredentials {username, password}");
    const project = auth.tenantName !== undefined ? { name: auth.tenantName } : auth.tenantId !== undefined ? { id: auth.tenantId } : null;
    const s = await authenticate(engine, tokens, { password: cred.password, ...(cred.username !== undefined ? { name: cred.username } : {}) }, project);
    const id = issue(engine, { tokenId: s.token.id, project: s.project, projectId: s.projectId, expiresAt: s.expiresAt });
    const url = `${baseUrl(req)}/network`;
    return {
      access: {
        token: { id, expires: neutronTime(s.expiresAt), issued_at: neutronTime(Date.now()), tenant: { id: s.projectId, name: s.project, enabled: true, description: "" } },
        serviceCatalog: [{ type: "network", name: "neutron", endpoints: [{ region: "RegionOne", publicURL: url, internalURL: url, adminURL: url, id: "allot-network" }], endpoints_links: [] }],
        user: { id: s.token.id, name: s.token.name, username: s.token.name, roles: [{ name: roleOf(s.token) }], roles_links: [] },
        metadata: { is_admin: s.token.scope === "admin" ? 1 : 0, roles: [] },
      },
    };
  };
  app.post("/identity/v2.0/tokens", hidden, v2Tokens);
  app.post("/v2.0/tokens", hidden, v2Tokens);

  // ---- Neutron

  const versions = (req: FastifyRequest) => ({ versions: [{ id: "v2.0", status: "CURRENT", links: [{ rel: "self", href: `${baseUrl(req)}/network/v2.0/` }] }] });
  app.get("/network", hidden, async (req) => versions(req));
  app.get("/network/", hidden, async (req) => versions(req));
  // oVirt tests its connection here, before any token
  const resources = (req: FastifyRequest) => ({
    resources: COLLECTIONS.map((c) => ({ name: c.one, collection: c.path, links: [{ rel: "self", href: `${baseUrl(req)}/network/v2.0/${c.path}` }] })),
  });
  app.get("/network/v2.0", hidden, async (req) => resources(req));
  app.get("/network/v2.0/", hidden, async (req) => resources(req));

  const callerOf = (req: FastifyRequest) => (req as FastifyRequest & { neutronCaller: Caller }).neutronCaller;
  /** X-Auth-Token: a token from /identity, or an Allot token itself (openstack --os-auth-type admin_token). */
  app.addHook("onRequest", async (req, reply) => {
    const url = req.routeOptions.url ?? "";
    if (!url.startsWith("/network/v2.0/") || url === "/network/v2.0/") return;
    const header = String(req.headers["x-auth-token"] ?? "");
    let scoped: Scoped | null = header ? await verifyIssued(engine, header) : null;
    if (!scoped && header) {
      const token = await tokens.verify(header);
      if (token) {
        // its only space, or (for an all-spaces token) the default one; a token of several spaces
        // must say which through Keystone
        const name = token.spaces === null ? "default" : token.spaces.length === 1 ? token.spaces[0]! : null;
        if (name === null) return unauthorized(reply, `token ${token.name} is limited to several spaces (${token.spaces!.join(", ")}); get a Keystone token for one project (/identity/v3) and send that`);
        const space = await engine.getSpace(name, SERVER).catch(() => null);
        if (space) scoped = { token, project: space.name, projectId: space.id, expiresAt: Infinity };
      }
    }
    if (!scoped) return unauthorized(reply);
    if (!["GET", "HEAD"].includes(req.method) && scoped.token.scope === "read") {
      return sendNeutron(reply, new NeutronError(403, "PolicyNotAuthorized", `token ${scoped.token.name} has read scope; ${req.method} needs write (use a token made with --scope write)`));
    }
    (req as FastifyRequest & { neutronCaller: Caller }).neutronCaller = { token: scoped.token, project: scoped.project, projectId: scoped.projectId, ctx: { actor: `token:${scoped.token.name}`, requestId: req.id } };
  });

  // no extensions beyond the core: clients then fall back to the plain calls
  app.get("/network/v2.0/extensions", hidden, async () => ({ extensions: [] }));
  app.get("/network/v2.0/extensions/:alias", hidden, async (req) => {
    throw new NeutronError(404, "ExtensionNotFound", `Extension with alias ${(req.params as { alias: string }).alias} does not exist`);
  });

  for (const c of COLLECTIONS) {
    const base = `/network/v2.0/${c.path}`;
    app.get(base, hidden, async (req) => {
      const q = req.query as Record<string, unknown>;
      let items = filter((await neutron.list(callerOf(req), c.kind)).map((d) => shown(d) as Doc), q);
      if (q.marker !== undefined) {
        const at = items.findIndex((i) => i.id === String(q.marker));
        items = at < 0 ? [] : items.slice(at + 1);
      }
      const limit = q.limit === undefined ? Infinity : Number(q.limit);
      const page = Number.isFinite(limit) && limit > 0 ? items.slice(0, limit) : items;
      const links = page.length < items.length ? { [`${c.path}_links`]: [{ rel: "next", href: `${baseUrl(req)}${base}?limit=${limit}&marker=${page[page.length - 1]!.id}` }] } : {};
      return { [c.path]: page.map((i) => pick(i, q.fields)), ...links };
    });
    app.get(`${base}/:id`, hidden, async (req) => {
      const q = req.query as Record<string, unknown>;
      return { [c.one]: pick(shown(await neutron.show(callerOf(req), c.kind, (req.params as { id: string }).id)), q.fields) };
    });
    app.post(base, hidden, async (req, reply) => {
      const body = (req.body ?? {}) as Record<string, unknown>;
      const isObject = (o: unknown): o is Record<string, unknown> => !!o && typeof o === "object" && !Array.isArray(o);
      const many = body[c.path];
      if (Array.isArray(many)) {
        if (many.length === 0) throw new NeutronError(400, "BadRequest", `Resources required: send {"${c.path}": [{...}, ...]} with at least one ${c.one}`);
        const bad = many.findIndex((o) => !isObject(o));
        if (bad >= 0) throw new NeutronError(400, "BadRequest", `Resource body required: ${c.path}[${bad}] must be an object {...}; nothing was created`);
        const made = await neutron.createMany(callerOf(req), c.kind, many as Record<string, unknown>[]);
        return reply.status(201).send({ [c.path]: made.map(shown) });
      }
      const one = body[c.one];
      if (!isObject(one)) throw new NeutronError(400, "BadRequest", `Resource body required: send {"${c.one}": {...}}, or {"${c.path}": [...]} to create several at once`);
      return reply.status(201).send({ [c.one]: shown(await neutron.create(callerOf(req), c.kind, one)) });
    });
    app.put(`${base}/:id`, hidden, async (req) => {
      const body = (req.body ?? {}) as Record<string, unknown>;
      const one = body[c.one];
      if (!one || typeof one !== "object" || Array.isArray(one)) throw new NeutronError(400, "BadRequest", `Resource body required: send {"${c.one}": {...}}`);
      const caller = callerOf(req);
      const id = (req.params as { id: string }).id;
      const o = one as Record<string, unknown>;
      const updated =
        c.kind === "network" ? await neutron.updateNetwork(caller, id, o)
        : c.kind === "subnet" ? await neutron.updateSubnet(caller, id, o)
        : c.kind === "subnetpool" ? await neutron.updateSubnetPool(caller, id, o)
        : await neutron.updatePort(caller, id, o);
      return { [c.one]: shown(updated) };
    });
    app.delete(`${base}/:id`, hidden, async (req, reply) => {
      await neutron.remove(callerOf(req), c.kind, (req.params as { id: string }).id);
      return reply.status(204).send();
    });
  }
}
