/**
 * Bearer-token authentication for /v1. Each request's token is checked against the database through a
 * short cache (a token revoked on another server stops working within `cacheMs`; on this server, at
 * once). The route's scope (config.scope, else read for GET and write for the rest) must be within
 * the token's; the request's change context carries the token's spaces, which the engine checks.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Engine } from "../engine/engine.js";
import { type Scope, type Token, hashToken } from "../engine/tokens.js";
import { sendProblem } from "./problem.js";

declare module "fastify" {
  interface FastifyContextConfig {
    /** The scope a route needs; by default read for GET and HEAD, write for everything else. */
    scope?: Scope;
  }
}

const RANK: Record<Scope, number> = { read: 0, write: 1, admin: 2 };
const CACHE_LIMIT = 10_000;
/** Unknown tokens are remembered briefly too, so a client retrying a bad token does not reach the database each time. */
const NEGATIVE_MS = 1_000;

export class TokenCache {
  private readonly entries = new Map<string, { token: Token | null; until: number }>();

  constructor(
    private readonly engine: Engine,
    private readonly cacheMs: number,
  ) {}

  async verify(secret: string): Promise<Token | null> {
    const key = hashToken(secret);
    const now = Date.now();
    const hit = this.entries.get(key);
    if (hit && hit.until > now) return hit.token;
    const token = await this.engine.authenticate(secret);
    const expires = token?.expiresAt ? Date.parse(token.expiresAt) : Infinity;
    if (this.entries.size >= CACHE_LIMIT) this.entries.clear();
    this.entries.set(key, { token, until: Math.min(now + (token ? this.cacheMs : NEGATIVE_MS), expires) });
    return token;
  }

  /** After a revocation on this server. */
  clear(): void {
    this.entries.clear();
  }
}

export function requiredScope(req: FastifyRequest): Scope {
  return req.routeOptions.config.scope ?? (req.method === "GET" || req.method === "HEAD" ? "read" : "write");
}

export function registerAuth(app: FastifyInstance, engine: Engine, cache: TokenCache): void {
  app.addHook("onRequest", async (req: FastifyRequest, reply: FastifyReply) => {
    if (!req.routeOptions.url?.startsWith("/v1/")) return;
    const m = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? "");
    const token = m ? await cache.verify(m[1]!) : null;
    if (!token) {
      reply.header("www-authenticate", 'Bearer realm="allot"');
      return m
        ? sendProblem(reply, req, "unauthorized", "this API token is unknown, revoked or expired")
        : sendProblem(reply, req, "unauthorized", "send an API token as 'Authorization: Bearer <token>' (the server printed its admin token at first start; 'allot token create' makes more)");
    }
    const need = requiredScope(req);
    if (RANK[token.scope] < RANK[need]) {
      return sendProblem(reply, req, "forbidden", `${req.method} ${req.routeOptions.url} needs a token with ${need} scope; token ${token.name} has ${token.scope}`);
    }
    req.engine = engine;
    req.token = token;
    req.change = { actor: `token:${token.name}`, requestId: req.id, access: { name: token.name, spaces: token.spaces } };
  });
}
