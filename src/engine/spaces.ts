import type { Sql } from "../store/store.js";
import type { TxEnv } from "./allocations.js";
import { AllotError } from "./errors.js";
import { record } from "./history.js";
import { checkName } from "./pools.js";
import type { Space } from "./types.js";

interface SpaceRow {
  id: string;
  name: string;
  description: string;
  created_at: string;
}

const toSpace = (r: SpaceRow): Space => ({ id: r.id, name: r.name, description: r.description, createdAt: r.created_at });

export const DEFAULT_SPACE = "default";

/** Finds a space; with `lock`, holds its row until commit (pool creation in a space queues on it). */
export async function findSpace(sql: Sql, name: string, lock = false): Promise<Space> {
  const row = await sql.get<SpaceRow>(`SELECT * FROM spaces s WHERE name = ?${lock ? sql.lock("s") : ""}`, [name]);
  if (!row) throw new AllotError("space-not-found", `space ${name} does not exist; create it with POST /v1/spaces or 'allot space create ${name}'`);
  return toSpace(row);
}

export async function listSpaces(sql: Sql): Promise<Space[]> {
  return (await sql.all<SpaceRow>("SELECT * FROM spaces ORDER BY name")).map(toSpace);
}

export async function createSpace(env: TxEnv, input: { name: string; description?: string }, quietIfExists = false): Promise<Space> {
  checkName("space", input.name);
  const existing = await env.sql.get<SpaceRow>("SELECT * FROM spaces WHERE name = ?", [input.name]);
  if (existing) {
    if (quietIfExists) return toSpace(existing);
    throw new AllotError("space-exists", `space ${input.name} already exists`);
  }
  const row: SpaceRow = { id: env.newId(), name: input.name, description: input.description ?? "", created_at: new Date(env.now).toISOString() };
  await env.sql.run("INSERT INTO spaces (id, name, description, created_at) VALUES (?, ?, ?, ?)", [row.id, row.name, row.description, row.created_at]);
  const space = toSpace(row);
  await record(env.sql, env.ctx, row.created_at, { action: "create", entity: "space", entityId: row.id, spaceId: row.id, after: space });
  return space;
}

export async function deleteSpace(env: TxEnv, name: string): Promise<Space> {
  if (name === DEFAULT_SPACE) throw new AllotError("invalid-request", "the default space always exists and cannot be deleted");
  const space = await findSpace(env.sql, name, true);
  const pools = await env.sql.get<{ n: number }>("SELECT COUNT(*) AS n FROM pools WHERE space_id = ?", [space.id]);
  if (pools && Number(pools.n) > 0) {
    throw new AllotError("space-in-use", `space ${name} still holds ${pools.n} pools; delete them first`);
  }
  // the space is also a Kubernetes namespace and an OpenStack project: their objects would outlive it
  const kube = await env.sql.get<{ n: number }>("SELECT COUNT(*) AS n FROM kube_objects WHERE namespace = ? AND deleted = 0", [name]);
  if (kube && Number(kube.n) > 0) throw new AllotError("space-in-use", `space ${name} is a Kubernetes namespace still holding ${kube.n} objects; delete them first (kubectl or allot delete)`);
  const neutron = await env.sql.get<{ n: number }>("SELECT COUNT(*) AS n FROM neutron_objects WHERE project = ?", [name]);
  if (neutron && Number(neutron.n) > 0) throw new AllotError("space-in-use", `space ${name} is an OpenStack project still holding ${neutron.n} networks, subnets or ports; delete them first`);
  const zones = await env.sql.get<{ n: number }>("SELECT COUNT(*) AS n FROM dns_zones WHERE space_id = ?", [space.id]);
  if (zones && Number(zones.n) > 0) throw new AllotError("space-in-use", `space ${name} still has ${zones.n} DNS zones; delete them first (allot dns zone delete)`);
  await env.sql.run("DELETE FROM spaces WHERE id = ?", [space.id]);
  await record(env.sql, env.ctx, new Date(env.now).toISOString(), { action: "delete", entity: "space", entityId: space.id, spaceId: space.id, before: space });
  return space;
}
