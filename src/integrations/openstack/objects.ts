/**
 * Neutron resources kept in Allot's database: one JSON document per network, subnet, subnet pool or
 * port, in its project (an Allot space, by name). A port's MAC is unique on its network (an index).
 */
import type { Sql } from "../../store/store.js";

export type Kind = "network" | "subnet" | "subnetpool" | "port";
export type Doc = Record<string, unknown> & { id: string; name: string; project_id: string };

export interface Stored<T extends Doc = Doc> {
  body: T;
  /** The project's space name. */
  project: string;
}

interface Row {
  body: string;
  project: string;
}

const read = <T extends Doc>(r: Row): Stored<T> => ({ body: JSON.parse(r.body) as T, project: r.project });

export async function getDoc<T extends Doc = Doc>(sql: Sql, kind: Kind, id: string): Promise<Stored<T> | null> {
  const r = await sql.get<Row>("SELECT body, project FROM neutron_objects WHERE id = ? AND kind = ?", [id, kind]);
  return r ? read<T>(r) : null;
}

/**
 * A document read under a row lock held until the transaction ends (where transactions run side by
 * side): changes that lock the same document go one at a time.
 */
export async function lockDoc<T extends Doc = Doc>(sql: Sql, kind: Kind, id: string): Promise<Stored<T> | null> {
  const rows = await sql.lockAndRead<Row>(
    `SELECT o.id FROM neutron_objects o WHERE o.id = ? AND o.kind = ?${sql.lock("o")}`, [id, kind],
    "SELECT body, project FROM neutron_objects WHERE id = ? AND kind = ?", [id, kind],
  );
  return rows[0] ? read<T>(rows[0]) : null;
}

let last = 0;
/** A creation order finer than created_at's seconds: subnets are tried in the order they were made. */
export function nextOrder(): number {
  last = Math.max(last + 1, Date.now() * 1000);
  return last;
}

/** Every document of a kind, in one project or (null) in all, oldest first. */
export async function listDocs<T extends Doc = Doc>(sql: Sql, kind: Kind, project: string | null, networkId?: string): Promise<Stored<T>[]> {
  const where = ["kind = ?"];
  const params: string[] = [kind];
  if (project !== null) {
    where.push("project = ?");
    params.push(project);
  }
  if (networkId !== undefined) {
    where.push("network_id = ?");
    params.push(networkId);
  }
  const rows = await sql.all<Row>(`SELECT body, project FROM neutron_objects WHERE ${where.join(" AND ")}`, params);
  return rows.map((r) => read<T>(r)).sort((a, b) => Number(a.body._order ?? 0) - Number(b.body._order ?? 0) || a.body.id.localeCompare(b.body.id));
}

export async function insertDoc(sql: Sql, kind: Kind, project: string, body: Doc, keys: { networkId?: string; mac?: string } = {}): Promise<void> {
  await sql.run("INSERT INTO neutron_objects (id, kind, project, network_id, mac, revision, body) VALUES (?, ?, ?, ?, ?, ?, ?)", [
    body.id, kind, project, keys.networkId ?? null, keys.mac ?? null, Number(body.revision_number ?? 0), JSON.stringify(body),
  ]);
}

/**
 * Replaces a document only if it is still at the revision the change was made from: a change made
 * from a stale read (another update, or a delete, came first) writes nothing and answers false.
 */
export async function replaceDoc(sql: Sql, body: Doc, fromRevision: number, mac: string | null = null): Promise<boolean> {
  const r = await sql.run("UPDATE neutron_objects SET body = ?, mac = ?, revision = ? WHERE id = ? AND revision = ?", [JSON.stringify(body), mac, Number(body.revision_number), body.id, fromRevision]);
  return r.changes === 1;
}

/** Removes a document and answers it as it was when removed (null if already gone). */
export async function takeDoc<T extends Doc = Doc>(sql: Sql, kind: Kind, id: string): Promise<T | null> {
  // one statement: what is answered is exactly what was deleted, whatever else commits around it
  const r = await sql.get<{ body: string }>("DELETE FROM neutron_objects WHERE id = ? AND kind = ? RETURNING body", [id, kind]);
  return r ? (JSON.parse(r.body) as T) : null;
}

/** The port on a network holding a MAC, if any. */
export async function portByMac(sql: Sql, networkId: string, mac: string): Promise<string | null> {
  const r = await sql.get<{ id: string }>("SELECT id FROM neutron_objects WHERE kind = 'port' AND network_id = ? AND mac = ?", [networkId, mac]);
  return r?.id ?? null;
}
