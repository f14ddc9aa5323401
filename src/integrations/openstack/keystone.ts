/**
 * A minimal Keystone (identity v3, and v2.0 for older clients such as oVirt's): a user is an Allot
 * token (user name = the token's name, password = its secret), a project is an Allot space the token
 * may use. The token handed back is signed with the server's secret key, so every server sharing that
 * key accepts it, and it stops working when the Allot token is revoked.
 */
import { SERVER } from "../../engine/access.js";
import type { Engine } from "../../engine/engine.js";
import type { Token } from "../../engine/tokens.js";
import type { TokenCache } from "../../api/auth.js";

const PURPOSE = "keystone token v1";
const PREFIX = "allot-ks";
/** How long an issued token lasts; clients ask again when it runs out. */
export const TOKEN_SECONDS = 3600;

export interface Scoped {
  token: Token;
  project: string;
  projectId: string;
  expiresAt: number;
}

export class KeystoneError extends Error {}

const b64 = (s: string) => Buffer.from(s).toString("base64url");

export function issue(engine: Engine, s: { tokenId: string; project: string; projectId: string; expiresAt: number }): string {
  const payload = b64(JSON.stringify({ t: s.tokenId, p: s.project, i: s.projectId, e: s.expiresAt }));
  return `${PREFIX}.${payload}.${engine.sign(PURPOSE, payload)}`;
}

/** The scope a Keystone token carries, if it is ours, intact, unexpired and its Allot token still good. */
export async function verifyIssued(engine: Engine, text: string, now = Date.now()): Promise<Scoped | null> {
  const [prefix, payload, sig, ...rest] = text.split(".");
  if (prefix !== PREFIX || !payload || !sig || rest.length > 0 || engine.sign(PURPOSE, payload) !== sig) return null;
  let p: { t: string; p: string; i: string; e: number };
  try {
    p = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as typeof p;
  } catch {
    return null;
  }
  if (!(p.e > now)) return null;
  let token: Token;
  try {
    token = await engine.getToken(p.t);
  } catch {
    return null;
  }
  if (token.revokedAt || (token.expiresAt && Date.parse(token.expiresAt) <= now)) return null;
  if (token.spaces !== null && !token.spaces.includes(p.p)) return null;
  return { token, project: p.p, projectId: p.i, expiresAt: p.e };
}

/** Password authentication: the Allot token whose name and secret these are, scoped to a project it may use. */
export async function authenticate(
  engine: Engine,
  tokens: TokenCache,
  user: { name?: string; id?: string; password: string },
  project: { name?: string; id?: string } | null,
): Promise<Scoped> {
  const token = await tokens.verify(user.password);
  if (!token || (user.name !== undefined && user.name !== token.name) || (user.id !== undefined && user.id !== token.id)) {
    throw new KeystoneError("The request you have made requires authentication: the user name must be an Allot token's name and the password that token's secret, and the token must not be revoked or expired.");
  }
  // unscoped: the token's only space, else the default space
  const wanted = project ?? { name: token.spaces?.length === 1 ? token.spaces[0]! : "default" };
  const space = wanted.id !== undefined ? (await engine.listSpaces(SERVER)).find((s) => s.id === wanted.id) : await engine.getSpace(wanted.name ?? "", SERVER).catch(() => undefined);
  if (!space) throw new KeystoneError(`Could not find project: ${wanted.name ?? wanted.id}. Projects are Allot spaces; make it with: allot space create ${wanted.name ?? "NAME"}`);
  if (token.spaces !== null && !token.spaces.includes(space.name)) {
    throw new KeystoneError(`Token ${token.name} is limited to spaces ${token.spaces.join(", ")}; it has no role on project ${space.name}.`);
  }
  const expiresAt = Math.min(Date.now() + TOKEN_SECONDS * 1000, token.expiresAt ? Date.parse(token.expiresAt) : Infinity);
  return { token, project: space.name, projectId: space.id, expiresAt };
}

/** The role names Keystone would show for an Allot scope. */
export const roleOf = (t: Token) => (t.scope === "admin" ? "admin" : t.scope === "write" ? "member" : "reader");
