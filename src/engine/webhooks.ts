/**
 * Webhooks: change events delivered by HTTP POST, signed with a per-hook HMAC secret. A trigger on
 * history copies each new entry's number into every hook's outbox in the change's own transaction, so
 * delivery never holds up a change, misses nothing that committed, survives restarts, and is at least
 * once. Servers sharing a database take a hook in turn by leasing it.
 */
import { randomBytes } from "node:crypto";
import type { Sql } from "../store/store.js";
import type { TxEnv } from "./allocations.js";
import { within } from "./access.js";
import { AllotError } from "./errors.js";
import { type HistoryEntry, listHistory, record } from "./history.js";
import { checkName } from "./pools.js";
import type { SealedSecret } from "./secrets.js";

export interface Webhook {
  id: string;
  name: string;
  url: string;
  /** Spaces whose changes it receives; null for every change. */
  spaces: string[] | null;
  secretHint: string;
  /** Events delivered so far. */
  delivered: number;
  /** Failed attempts since the last success (the next attempt backs off accordingly). */
  failures: number;
  lastError: string | null;
  createdAt: string;
}

export interface NewWebhook extends Webhook {
  /** The signing secret, shown once (when the caller did not give one). */
  secret: string;
}

export interface WebhookInput {
  name: string;
  url: string;
  secret?: string;
  spaces?: string[] | null;
}

interface WebhookRow {
  id: string;
  name: string;
  url: string;
  secret: string;
  spaces: string | null;
  delivered: number;
  failures: number;
  next_attempt_at: number;
  last_error: string | null;
  created_at: string;
}

const toWebhook = (r: WebhookRow): Webhook => ({
  id: r.id,
  name: r.name,
  url: r.url,
  spaces: r.spaces === null ? null : (JSON.parse(r.spaces) as string[]),
  secretHint: (JSON.parse(r.secret) as SealedSecret).hint,
  delivered: Number(r.delivered),
  failures: r.failures,
  lastError: r.last_error,
  createdAt: r.created_at,
});

export async function createWebhook(env: TxEnv, input: WebhookInput): Promise<NewWebhook> {
  checkName("webhook", input.name);
  let url: URL;
  try {
    url = new URL(input.url);
  } catch {
    throw new AllotError("invalid-request", `url ${JSON.stringify(input.url)} is not a URL; give an http:// or https:// URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new AllotError("invalid-request", `url must be http:// or https://, not ${url.protocol}`);
  if (!env.secrets) throw new AllotError("secrets-unavailable", "this server has no key to encrypt the webhook's secret with; set ALLOT_SECRET_KEY");
  const secret = input.secret ?? randomBytes(32).toString("base64url");
  if (secret.length < 16) throw new AllotError("invalid-request", "a webhook secret must be at least 16 characters; leave it out to get a random one");
  if (input.spaces) {
    for (const s of input.spaces) {
      if (!(await env.sql.get("SELECT 1 AS x FROM spaces WHERE name = ?", [s]))) throw new AllotError("space-not-found", `space ${s} does not exist`);
    }
  }
  if (await env.sql.get("SELECT 1 AS x FROM webhooks WHERE name = ?", [input.name])) {
    throw new AllotError("webhook-exists", `a webhook named ${input.name} already exists; delete it or pick another name`);
  }
  // it receives changes from now on (its creation's own entry included), not the whole past
  const row: WebhookRow = {
    id: env.newId(),
    name: input.name,
    url: url.toString(),
    secret: JSON.stringify(env.secrets.seal(secret)),
    spaces: input.spaces ? JSON.stringify([...new Set(input.spaces)].sort()) : null,
    delivered: 0,
    failures: 0,
    next_attempt_at: 0,
    last_error: null,
    created_at: new Date(env.now).toISOString(),
  };
  await env.sql.run(
    "INSERT INTO webhooks (id, name, url, secret, spaces, delivered, failures, next_attempt_at, last_error, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [row.id, row.name, row.url, row.secret, row.spaces, row.delivered, row.failures, row.next_attempt_at, row.last_error, row.created_at],
  );
  const hook = toWebhook(row);
  await record(env.sql, env.ctx, row.created_at, { action: "create", entity: "webhook", entityId: row.id, after: hook });
  return { ...hook, secret };
}

export async function listWebhooks(sql: Sql): Promise<Webhook[]> {
  return (await sql.all<WebhookRow>("SELECT * FROM webhooks ORDER BY name")).map(toWebhook);
}

export async function deleteWebhook(env: TxEnv, idOrName: string): Promise<Webhook> {
  // by id first: a name that looks like another hook's id must not pick that one
  const row =
    (await env.sql.get<WebhookRow>("SELECT * FROM webhooks WHERE id = ?", [idOrName])) ?? (await env.sql.get<WebhookRow>("SELECT * FROM webhooks WHERE name = ?", [idOrName]));
  // a space-limited admin manages only webhooks within its spaces; others answer as missing
  if (!row || !within(env.ctx, toWebhook(row))) throw new AllotError("webhook-not-found", `no webhook has the id or name ${idOrName}`);
  await env.sql.run("DELETE FROM webhooks WHERE id = ?", [row.id]);
  const hook = toWebhook(row);
  await record(env.sql, env.ctx, new Date(env.now).toISOString(), { action: "delete", entity: "webhook", entityId: row.id, before: hook });
  return hook;
}

/** A hook this server has leased, with what it should deliver next. */
export interface DueDelivery {
  hook: Webhook;
  secret: SealedSecret;
  /** next_attempt_at as leased: the outcome is written only if nobody took the hook since. */
  lease: number;
  /** The outbox entries taken. */
  seqs: number[];
  /** What to send: the entries among them in the hook's spaces, oldest first. */
  events: HistoryEntry[];
}

/** How long a server may take over one delivery before another may try the same hook. */
export const LEASE_MS = 60_000;

/** Leases one due hook (its next attempt time passed) with events waiting, or returns null. */
export async function leaseDue(env: TxEnv, batch: number): Promise<DueDelivery | null> {
  const due = await env.sql.all<WebhookRow>(
    "SELECT * FROM webhooks w WHERE next_attempt_at <= ? AND EXISTS (SELECT 1 FROM webhook_outbox o WHERE o.webhook_id = w.id) ORDER BY next_attempt_at, id",
    [env.now],
  );
  for (const row of due) {
    const lease = env.now + LEASE_MS;
    const taken = await env.sql.run("UPDATE webhooks SET next_attempt_at = ? WHERE id = ? AND next_attempt_at = ?", [lease, row.id, row.next_attempt_at]);
    if (taken.changes !== 1) continue; // another server took it
    const seqs = (await env.sql.all<{ seq: number }>("SELECT seq FROM webhook_outbox WHERE webhook_id = ? ORDER BY seq LIMIT ?", [row.id, batch])).map((r) => Number(r.seq));
    const spaces = row.spaces === null ? null : new Set(JSON.parse(row.spaces) as string[]);
    const spaceIds = spaces ? new Set((await env.sql.all<{ id: string; name: string }>("SELECT id, name FROM spaces")).filter((s) => spaces.has(s.name)).map((s) => s.id)) : null;
    const entries = await historyBySeq(env.sql, seqs);
    // entries outside the hook's spaces (or pruned meanwhile) are dropped from its outbox undelivered
    const events = entries.filter((e) => spaceIds === null || (e.spaceId !== null && spaceIds.has(e.spaceId)));
    return { hook: toWebhook(row), secret: JSON.parse(row.secret) as SealedSecret, lease, seqs, events };
  }
  return null;
}

async function historyBySeq(sql: Sql, seqs: number[]): Promise<HistoryEntry[]> {
  if (seqs.length === 0) return [];
  const lo = seqs[0]!;
  const hi = seqs[seqs.length - 1]!;
  const wanted = new Set(seqs);
  const rows = await listHistory(sql, { beforeSeq: hi + 1, fromSeq: lo, limit: hi - lo + 1 });
  return rows.filter((e) => wanted.has(e.seq)).reverse();
}

/** Records a delivery's outcome: on success its events leave the outbox; on failure the next attempt backs off. */
export async function settleDelivery(sql: Sql, d: DueDelivery, now: number, outcome: { ok: true } | { ok: false; error: string }): Promise<void> {
  if (outcome.ok) {
    // (none when another server delivered them between this lease's two reads: only the lease ends)
    if (d.seqs.length > 0) await sql.run(`DELETE FROM webhook_outbox WHERE webhook_id = ? AND seq IN (${d.seqs.map(() => "?").join(", ")})`, [d.hook.id, ...d.seqs]);
    await sql.run("UPDATE webhooks SET delivered = delivered + ?, failures = 0, next_attempt_at = 0, last_error = NULL WHERE id = ? AND next_attempt_at = ?", [d.events.length, d.hook.id, d.lease]);
    return;
  }
  const failures = d.hook.failures + 1;
  // 1 s, 2 s, 4 s … capped at 5 minutes
  const wait = Math.min(2 ** (failures - 1) * 1000, 300_000);
  await sql.run("UPDATE webhooks SET failures = ?, next_attempt_at = ?, last_error = ? WHERE id = ? AND next_attempt_at = ?", [
    failures,
    now + wait,
    outcome.error.slice(0, 500),
    d.hook.id,
    d.lease,
  ]);
}
