/**
 * Kubernetes-style objects kept in Allot's database: one JSON document per object, a resourceVersion
 * from one counter that grows with every write, and a tombstone row after deletion, so a watch can
 * ask "what changed after version N" and see deletions too. Tombstones are pruned after a while; a
 * watch from before the newest pruned one is told to start over (410 Gone).
 */
import { randomUUID } from "node:crypto";
import type { Sql } from "../../store/store.js";
import type { KubeObject, ResourceType } from "./resources.js";

export interface StoredObject {
  object: KubeObject;
  rv: number;
  createdRv: number;
  deleted: boolean;
}

interface Row {
  body: string;
  rv: number;
  created_rv: number;
  deleted: number;
}

const toStored = (r: Row): StoredObject => ({ object: JSON.parse(r.body) as KubeObject, rv: Number(r.rv), createdRv: Number(r.created_rv), deleted: r.deleted === 1 });

/** The next resourceVersion; the counter row is locked until commit, so versions follow commit order per writer. */
async function nextRv(sql: Sql): Promise<number> {
  await sql.run("UPDATE kube_rv SET rv = rv + 1 WHERE id = 1");
  return Number((await sql.get<{ rv: number }>("SELECT rv FROM kube_rv WHERE id = 1"))!.rv);
}

export async function currentRv(sql: Sql): Promise<number> {
  return Number((await sql.get<{ rv: number }>("SELECT rv FROM kube_rv WHERE id = 1"))!.rv);
}

export async function getObject(sql: Sql, t: ResourceType, namespace: string, name: string): Promise<StoredObject | null> {
  const r = await sql.get<Row>("SELECT body, rv, created_rv, deleted FROM kube_objects WHERE grp = ? AND resource = ? AND namespace = ? AND name = ?", [t.group, t.resource, namespace, name]);
  return r && r.deleted === 0 ? toStored(r) : null;
}

export async function listObjects(sql: Sql, t: ResourceType, namespace?: string): Promise<StoredObject[]> {
  const rows = namespace === undefined
    ? await sql.all<Row>("SELECT body, rv, created_rv, deleted FROM kube_objects WHERE grp = ? AND resource = ? AND deleted = 0 ORDER BY namespace, name", [t.group, t.resource])
    : await sql.all<Row>("SELECT body, rv, created_rv, deleted FROM kube_objects WHERE grp = ? AND resource = ? AND namespace = ? AND deleted = 0 ORDER BY name", [t.group, t.resource, namespace]);
  return rows.map(toStored);
}

/** Writes an object (new or changed): gives it the next resourceVersion, and a uid and creation time when new. */
export async function putObject(sql: Sql, t: ResourceType, o: KubeObject, now = new Date()): Promise<KubeObject> {
  const rv = await nextRv(sql);
  const prior = await sql.get<Row>("SELECT body, rv, created_rv, deleted FROM kube_objects WHERE grp = ? AND resource = ? AND namespace = ? AND name = ?", [t.group, t.resource, o.metadata.namespace, o.metadata.name]);
  const live = prior && prior.deleted === 0 ? toStored(prior) : null;
  const object: KubeObject = {
    ...o,
    metadata: {
      ...o.metadata,
      uid: live?.object.metadata.uid ?? o.metadata.uid ?? randomUUID(),
      creationTimestamp: live?.object.metadata.creationTimestamp ?? o.metadata.creationTimestamp ?? now.toISOString().replace(/\.\d{3}Z$/, "Z"),
      resourceVersion: String(rv),
      generation: live ? (JSON.stringify(live.object.spec) === JSON.stringify(o.spec) ? (live.object.metadata.generation ?? 1) : (live.object.metadata.generation ?? 1) + 1) : 1,
    },
  };
  const body = JSON.stringify(object);
  if (prior) {
    await sql.run("UPDATE kube_objects SET uid = ?, rv = ?, created_rv = ?, deleted = 0, body = ? WHERE grp = ? AND resource = ? AND namespace = ? AND name = ?", [
      object.metadata.uid!, rv, live ? live.createdRv : rv, body, t.group, t.resource, o.metadata.namespace, o.metadata.name,
    ]);
  } else {
    await sql.run("INSERT INTO kube_objects (grp, resource, namespace, name, uid, rv, created_rv, deleted, body) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)", [
      t.group, t.resource, o.metadata.namespace, o.metadata.name, object.metadata.uid!, rv, rv, body,
    ]);
  }
  return object;
}

/** Removes an object, leaving a tombstone (with a new resourceVersion) for watchers, until it is pruned. */
export async function removeObject(sql: Sql, t: ResourceType, o: KubeObject, now = Date.now()): Promise<KubeObject> {
  const rv = await nextRv(sql);
  const gone: KubeObject = { ...o, metadata: { ...o.metadata, resourceVersion: String(rv) } };
  await sql.run("UPDATE kube_objects SET rv = ?, deleted = 1, deleted_at = ?, body = ? WHERE grp = ? AND resource = ? AND namespace = ? AND name = ?", [
    rv, now, JSON.stringify(gone), t.group, t.resource, o.metadata.namespace, o.metadata.name,
  ]);
  return gone;
}

/** How long a deleted object's tombstone is kept: a watch may resume from any version this recent. */
export const TOMBSTONES_KEPT_MS = 15 * 60_000;

/**
 * Removes tombstones deleted before `before` (ms; those from before deletion times were recorded, too)
 * and records the newest version removed: a watch asking to resume from below it is told to start
 * over (410), since deletions it would need are gone. Answers how many were removed.
 */
export async function pruneTombstones(sql: Sql, before: number): Promise<number> {
  const row = await sql.get<{ n: number; top: number | null }>(
    "SELECT COUNT(*) AS n, MAX(rv) AS top FROM kube_objects WHERE deleted = 1 AND (deleted_at IS NULL OR deleted_at < ?)",
    [before],
  );
  if (!row || Number(row.n) === 0) return 0;
  await sql.run("DELETE FROM kube_objects WHERE deleted = 1 AND rv <= ? AND (deleted_at IS NULL OR deleted_at < ?)", [row.top, before]);
  await sql.run("UPDATE kube_rv SET compacted = ? WHERE id = 1 AND compacted < ?", [row.top, row.top]);
  return Number(row.n);
}

/** The newest resourceVersion whose tombstones may have been pruned: watches resume only above it. */
export async function compactedRv(sql: Sql): Promise<number> {
  return Number((await sql.get<{ c: number }>("SELECT compacted AS c FROM kube_rv WHERE id = 1"))!.c);
}

/** Everything of a type that changed after `since`, oldest first: ADDED, MODIFIED or DELETED. */
export async function changesSince(sql: Sql, t: ResourceType, since: number, namespace?: string): Promise<{ type: "ADDED" | "MODIFIED" | "DELETED"; object: KubeObject; rv: number }[]> {
  const rows = await sql.all<Row>(
    `SELECT body, rv, created_rv, deleted FROM kube_objects WHERE rv > ? AND grp = ? AND resource = ?${namespace === undefined ? "" : " AND namespace = ?"} ORDER BY rv`,
    namespace === undefined ? [since, t.group, t.resource] : [since, t.group, t.resource, namespace],
  );
  return rows.map(toStored).map((s) => ({ type: s.deleted ? "DELETED" : s.createdRv > since ? "ADDED" : "MODIFIED", object: s.object, rv: s.rv }));
}
