/**
 * API tokens. A token is a random secret shown once; only its SHA-256 is stored (a 256-bit random
 * secret needs no slow hash: there is nothing to guess). Each has a scope (read < write < admin) and
 * optionally a list of spaces it is limited to.
 */
import { createHash, randomBytes } from "node:crypto";
import type { Sql } from "../store/store.js";
import type { TxEnv } from "./allocations.js";
import { within } from "./access.js";
import { AllotError } from "./errors.js";
import { record } from "./history.js";
import { checkName } from "./pools.js";

export const SCOPES = ["read", "write", "admin"] as const;
export type Scope = (typeof SCOPES)[number];

export interface Token {
  id: string;
  name: string;
  scope: Scope;
  /** Spaces the token is limited to; null for all spaces. */
  spaces: string[] | null;
  /** The token's last four characters, to tell tokens apart without revealing them. */
  hint: string;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
}

/** A token just made: the only time its secret is known to anyone but its holder. */
export interface NewToken extends Token {
  token: string;
}

export interface TokenInput {
  name: string;
  scope: Scope;
  spaces?: string[] | null;
  /** ISO 8601 time after which the token no longer works. */
  expiresAt?: string | null;
  /** Use this secret instead of a random one (ALLOT_ADMIN_TOKEN at first start). */
  token?: string;
}

interface TokenRow {
  id: string;
  name: string;
  scope: string;
  spaces: string | null;
  hash: string;
  hint: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
}

/** Shortest secret accepted from the operator: anything shorter could be guessed. */
export const MIN_SECRET_LENGTH = 24;
export const TOKEN_PREFIX = "allot_";

export const hashToken = (token: string) => createHash("sha256").update(token, "utf8").digest("hex");
const generate = () => `${TOKEN_PREFIX}${randomBytes(32).toString("base64url")}`;

const toToken = (r: TokenRow): Token => ({
  id: r.id,
  name: r.name,
  scope: r.scope as Scope,
  spaces: r.spaces === null ? null : (JSON.parse(r.spaces) as string[]),
  hint: r.hint,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  revokedAt: r.revoked_at,
});

export async function createToken(env: TxEnv, input: TokenInput): Promise<NewToken> {
  checkName("token", input.name);
  if (!SCOPES.includes(input.scope)) throw new AllotError("invalid-request", `scope must be one of ${SCOPES.join(", ")}, not ${JSON.stringify(input.scope)}`);
  const secret = input.token ?? generate();
  if (secret.length < MIN_SECRET_LENGTH || /\s/.test(secret)) {
    throw new AllotError("invalid-request", `a token must be at least ${MIN_SECRET_LENGTH} characters with no spaces; leave it out to get a random one`);
  }
  let spaces: string[] | null = null;
  if (input.spaces !== undefined && input.spaces !== null) {
    if (input.spaces.length === 0) throw new AllotError("invalid-request", "spaces, when given, must name at least one space (leave it out for all spaces)");
    spaces = [...new Set(input.spaces)].sort();
    for (const s of spaces) {
      if (!(await env.sql.get("SELECT 1 AS x FROM spaces WHERE name = ?", [s]))) throw new AllotError("space-not-found", `space ${s} does not exist`);
    }
  }
  let expiresAt: string | null = null;
  if (input.expiresAt !== undefined && input.expiresAt !== null) {
    const ms = Date.parse(input.expiresAt);
    if (Number.isNaN(ms)) throw new AllotError("invalid-request", `expiresAt ${JSON.stringify(input.expiresAt)} is not an ISO 8601 time such as 2027-01-01T00:00:00Z`);
    if (ms <= env.now) throw new AllotError("invalid-request", `expiresAt ${input.expiresAt} is in the past`);
    expiresAt = new Date(ms).toISOString();
  }
  if (await env.sql.get("SELECT 1 AS x FROM tokens WHERE name = ?", [input.name])) {
    throw new AllotError("token-exists", `a token named ${input.name} already exists; revoke it or pick another name`);
  }
  const row: TokenRow = {
    id: env.newId(),
    name: input.name,
    scope: input.scope,
    spaces: spaces === null ? null : JSON.stringify(spaces),
    hash: hashToken(secret),
    hint: secret.slice(-4),
    created_at: new Date(env.now).toISOString(),
    expires_at: expiresAt,
    revoked_at: null,
  };
  await env.sql.run(
    "INSERT INTO tokens (id, name, scope, spaces, hash, hint, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [row.id, row.name, row.scope, row.spaces, row.hash, row.hint, row.created_at, row.expires_at, row.revoked_at],
  );
  const token = toToken(row);
  await record(env.sql, env.ctx, row.created_at, { action: "create", entity: "token", entityId: row.id, after: token });
  return { ...token, token: secret };
}

export async function listTokens(sql: Sql): Promise<Token[]> {
  return (await sql.all<TokenRow>("SELECT * FROM tokens ORDER BY name")).map(toToken);
}

export async function findToken(sql: Sql, idOrName: string): Promise<Token> {
  // by id first: a token named like another token's id must not stand in for it
  const row =
    (await sql.get<TokenRow>("SELECT * FROM tokens WHERE id = ?", [idOrName])) ?? (await sql.get<TokenRow>("SELECT * FROM tokens WHERE name = ?", [idOrName]));
  if (!row) throw new AllotError("token-not-found", `no token has the id or name ${idOrName}`);
  return toToken(row);
}

export async function revokeToken(env: TxEnv, idOrName: string): Promise<Token> {
  const before = await findToken(env.sql, idOrName);
  // a space-limited admin manages only tokens within its spaces; others answer as missing
  if (!within(env.ctx, before)) throw new AllotError("token-not-found", `no token has the id or name ${idOrName}`);
  if (before.revokedAt !== null) return before;
  const at = new Date(env.now).toISOString();
  await env.sql.run("UPDATE tokens SET revoked_at = ? WHERE id = ?", [at, before.id]);
  const after = { ...before, revokedAt: at };
  await record(env.sql, env.ctx, at, { action: "revoke", entity: "token", entityId: before.id, before, after });
  return after;
}

/** The live token with this secret, or null (unknown, revoked or expired). */
export async function tokenBySecret(sql: Sql, secret: string, now: number): Promise<Token | null> {
  const row = await sql.get<TokenRow>("SELECT * FROM tokens WHERE hash = ?", [hashToken(secret)]);
  if (!row || row.revoked_at !== null || (row.expires_at !== null && Date.parse(row.expires_at) <= now)) return null;
  return toToken(row);
}

export async function countTokens(sql: Sql): Promise<number> {
  return Number((await sql.get<{ n: number | string }>("SELECT COUNT(*) AS n FROM tokens"))?.n ?? 0);
}
