/**
 * DNS zones and the records Allot publishes in them, engine side: zone rows, leasing a zone's pending
 * history entries (as webhooks lease theirs), what records a set of allocations should have, and
 * settling a batch's outcome. Talking to DNS servers is src/dns/, outside any transaction.
 */
import { type Address, formatAddress, fromKey } from "../addr/index.js";
import type { Sql } from "../store/store.js";
import { type AllocationRow } from "./allocation-repo.js";
import type { TxEnv } from "./allocations.js";
import { checkSpace, mayUse, type Caller } from "./access.js";
import { AllotError } from "./errors.js";
import { record } from "./history.js";
import { type PoolState, loadPoolById } from "./pool-repo.js";
import type { SealedSecret } from "./secrets.js";
import { findSpace } from "./spaces.js";
import { DNS_TEMPLATE, type ReverseSpan, dnsName, forwardName, inSpan, inZone, nameProblem, ptrName, renderTemplate, reverseSpan, reverseZoneOf } from "../dns/names.js";
import { TSIG_ALGORITHMS, type TsigAlgorithm } from "../dns/wire.js";
import { checkName } from "./pools.js";

export type DnsBackendInput =
  | { type: "rfc2136"; server: string; keyName: string; algorithm: string; secret: string }
  | { type: "powerdns"; url: string; apiKey: string; serverId?: string };

/** A backend as stored and shown: everything but the credential, of which a hint. */
export type DnsBackendConfig =
  | { type: "rfc2136"; server: string; keyName: string; algorithm: TsigAlgorithm; secretHint: string }
  | { type: "powerdns"; url: string; serverId: string; apiKeyHint: string };

export interface DnsZoneInput {
  /** The zone's name; or give `prefix` for the reverse zone of a prefix. */
  name?: string;
  prefix?: string;
  space?: string;
  pools?: string[] | null;
  ttl?: number;
  backend: DnsBackendInput;
}

export interface DnsZonePatch {
  pools?: string[] | null;
  ttl?: number;
  backend?: DnsBackendInput;
}

export interface DnsZone {
  id: string;
  name: string;
  kind: "forward" | "reverse";
  /** For a reverse zone, the prefix it covers. */
  prefix: string | null;
  space: string;
  pools: string[] | null;
  ttl: number;
  backend: DnsBackendConfig;
  /** Record changes sent so far. */
  published: number;
  /** History entries waiting to be published. */
  pending: number;
  /** Failed attempts since the last success (the next one backs off accordingly). */
  failures: number;
  lastError: string | null;
  /** Names Allot wanted but left alone, because something else holds them. */
  conflicts: number;
  createdAt: string;
}

export interface DnsConflict {
  zone: string;
  name: string;
  type: string;
  wanted: string;
  found: string[];
  allocationId: string;
  at: string;
}

/** A record Allot wants, or wrote, for an allocation. */
export interface DnsRecord {
  name: string;
  type: "A" | "AAAA" | "PTR";
  data: string;
  allocationId: string;
}

interface ZoneRow {
  id: string;
  name: string;
  space_id: string;
  pools: string | null;
  ttl: number;
  backend: string;
  secret: string;
  published: number;
  failures: number;
  next_attempt_at: number;
  last_error: string | null;
  created_at: string;
}

/** Blocks larger than this get no names from a template (a /64 would be 2^64 records). */
export const MAX_BLOCK_NAMES = 256;

const iso = (ms: number) => new Date(ms).toISOString();

function zoneNameOf(input: DnsZoneInput): string {
  if (input.prefix !== undefined && input.name !== undefined) throw new AllotError("invalid-request", "give name or prefix, not both");
  if (input.prefix !== undefined) return reverseZoneOf(input.prefix);
  if (input.name === undefined) throw new AllotError("invalid-request", "name: give the zone's name (or prefix, for the reverse zone of a prefix)");
  const name = dnsName(input.name, "name");
  reverseSpan(name); // refuses malformed reverse names
  return name;
}

function checkTtl(ttl: number | undefined): number {
  const t = ttl ?? 300;
  if (!Number.isInteger(t) || t < 0 || t > 2147483647) throw new AllotError("invalid-request", `ttl must be a whole number of seconds from 0 to 2147483647, not ${ttl}`);
  return t;
}

/** Validates a backend; returns what is stored and the credential to seal. */
function checkBackend(b: DnsBackendInput): { config: Record<string, unknown>; secret: string } {
  if (b.type === "rfc2136") {
    const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(b.server ?? "");
    if (!m || (m[2] !== undefined && (Number(m[2]) < 1 || Number(m[2]) > 65535))) {
      throw new AllotError("invalid-request", `backend.server: ${JSON.stringify(b.server)} is not host:port (such as 192.0.2.53:53 or [2001:db8::53]:53)`);
    }
    const keyName = dnsName(b.keyName ?? "", "backend.keyName");
    if (!(b.algorithm in TSIG_ALGORITHMS)) {
      throw new AllotError("invalid-request", `backend.algorithm: ${JSON.stringify(b.algorithm)} is not a TSIG algorithm Allot signs with; use one of ${Object.keys(TSIG_ALGORITHMS).join(", ")}`);
    }
    const s = (b.secret ?? "").trim();
    if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s) || s.length < 4) {
      throw new AllotError("invalid-request", "backend.secret: the TSIG secret must be base64, as tsig-keygen writes it");
    }
    if (Buffer.from(s, "base64").length < 16) throw new AllotError("invalid-request", "backend.secret: the TSIG secret is shorter than 16 bytes; make one with tsig-keygen");
    return { config: { type: "rfc2136", server: b.server, keyName, algorithm: b.algorithm as TsigAlgorithm }, secret: s };
  }
  if (b.type === "powerdns") {
    let url: URL;
    try {
      url = new URL(b.url);
    } catch {
      throw new AllotError("invalid-request", `backend.url: ${JSON.stringify(b.url)} is not a URL; give PowerDNS's webserver address, such as http://127.0.0.1:8081`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new AllotError("invalid-request", `backend.url must be http:// or https://, not ${url.protocol}`);
    if (!b.apiKey) throw new AllotError("invalid-request", "backend.apiKey: give PowerDNS's api-key");
    const serverId = b.serverId ?? "localhost";
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(serverId)) throw new AllotError("invalid-request", `backend.serverId: ${JSON.stringify(serverId)} is not a PowerDNS server id (such as localhost)`);
    return { config: { type: "powerdns", url: b.url.replace(/\/+$/, ""), serverId }, secret: b.apiKey };
  }
  throw new AllotError("invalid-request", `backend.type must be rfc2136 or powerdns, not ${JSON.stringify((b as { type?: unknown }).type)}`);
}

function sealBackend(env: TxEnv, b: DnsBackendInput): { backend: string; secret: string } {
  const { config, secret } = checkBackend(b);
  if (!env.secrets) throw new AllotError("secrets-unavailable", "this server has no key to encrypt the zone's credential with; set ALLOT_SECRET_KEY");
  return { backend: JSON.stringify(config), secret: JSON.stringify(env.secrets.seal(secret)) };
}

async function spaceNameOf(sql: Sql, spaceId: string): Promise<string> {
  return (await sql.get<{ name: string }>("SELECT name FROM spaces WHERE id = ?", [spaceId]))?.name ?? spaceId;
}

async function toZone(sql: Sql, r: ZoneRow): Promise<DnsZone> {
  const span = reverseSpan(r.name);
  const hint = (JSON.parse(r.secret) as SealedSecret).hint;
  const stored = JSON.parse(r.backend) as DnsBackendConfig;
  const backend: DnsBackendConfig = stored.type === "rfc2136" ? { ...stored, secretHint: hint } : { ...stored, apiKeyHint: hint };
  const pending = await sql.get<{ n: number | string }>("SELECT COUNT(*) AS n FROM dns_outbox WHERE zone_id = ?", [r.id]);
  const conflicts = await sql.get<{ n: number | string }>("SELECT COUNT(*) AS n FROM dns_conflicts WHERE zone_id = ?", [r.id]);
  return {
    id: r.id,
    name: r.name,
    kind: span ? "reverse" : "forward",
    prefix: span ? `${formatAddress({ family: span.prefix.family, value: span.prefix.network })}/${span.prefix.length}` : null,
    space: await spaceNameOf(sql, r.space_id),
    pools: r.pools === null ? null : (JSON.parse(r.pools) as string[]),
    ttl: Number(r.ttl),
    backend,
    published: Number(r.published),
    pending: Number(pending?.n ?? 0),
    failures: Number(r.failures),
    lastError: r.last_error,
    conflicts: Number(conflicts?.n ?? 0),
    createdAt: r.created_at,
  };
}

function checkPools(pools: string[] | null | undefined): string | null {
  if (pools === undefined || pools === null) return null;
  if (pools.length === 0) throw new AllotError("invalid-request", "pools: give at least one pool name, or leave pools out for every pool of the space");
  for (const p of pools) checkName("pool", p);
  return JSON.stringify([...new Set(pools)].sort());
}

export async function createZone(env: TxEnv, input: DnsZoneInput): Promise<DnsZone> {
  const name = zoneNameOf(input);
  const space = await findSpace(env.sql, input.space ?? "default");
  const pools = checkPools(input.pools);
  const ttl = checkTtl(input.ttl);
  const sealed = sealBackend(env, input.backend);
  if (await env.sql.get("SELECT 1 AS x FROM dns_zones WHERE name = ?", [name])) {
    throw new AllotError("dns-zone-exists", `zone ${name} is already configured; delete it first or change it`);
  }
  const row: ZoneRow = {
    id: env.newId(),
    name,
    space_id: space.id,
    pools,
    ttl,
    backend: sealed.backend,
    secret: sealed.secret,
    published: 0,
    failures: 0,
    next_attempt_at: 0,
    last_error: null,
    created_at: iso(env.now),
  };
  await env.sql.run(
    "INSERT INTO dns_zones (id, name, space_id, pools, ttl, backend, secret, published, failures, next_attempt_at, last_error, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [row.id, row.name, row.space_id, row.pools, row.ttl, row.backend, row.secret, 0, 0, 0, null, row.created_at],
  );
  const zone = await toZone(env.sql, row);
  await record(env.sql, env.ctx, row.created_at, { action: "create", entity: "dns-zone", entityId: row.id, spaceId: space.id, after: zone });
  return zone;
}

async function zoneRow(sql: Sql, caller: Caller, name: string): Promise<ZoneRow> {
  const n = name.trim().toLowerCase().replace(/\.$/, "");
  const row = (await sql.get<ZoneRow>("SELECT * FROM dns_zones WHERE name = ?", [n])) ?? (await sql.get<ZoneRow>("SELECT * FROM dns_zones WHERE id = ?", [name]));
  // a zone in a space the caller may not use answers as missing
  if (!row || !mayUse(caller, await spaceNameOf(sql, row.space_id))) throw new AllotError("dns-zone-not-found", `no DNS zone ${name} is configured`);
  return row;
}

export async function listZones(sql: Sql, caller: Caller): Promise<DnsZone[]> {
  const out: DnsZone[] = [];
  for (const r of await sql.all<ZoneRow>("SELECT * FROM dns_zones ORDER BY name")) {
    const z = await toZone(sql, r);
    if (mayUse(caller, z.space)) out.push(z);
  }
  return out;
}

export async function getZone(sql: Sql, caller: Caller, name: string): Promise<DnsZone> {
  return toZone(sql, await zoneRow(sql, caller, name));
}

export async function updateZone(env: TxEnv, name: string, patch: DnsZonePatch): Promise<DnsZone> {
  const row = await zoneRow(env.sql, env.ctx, name);
  const before = await toZone(env.sql, row);
  const next = { ...row };
  if (patch.pools !== undefined) next.pools = checkPools(patch.pools);
  if (patch.ttl !== undefined) next.ttl = checkTtl(patch.ttl);
  if (patch.backend !== undefined) Object.assign(next, sealBackend(env, patch.backend));
  // a zone backing off after failures (a wrong key, say) is tried at once; a zone another server has
  // leased keeps its lease, or two servers would send overlapping batches
  await env.sql.run("UPDATE dns_zones SET pools = ?, ttl = ?, backend = ?, secret = ?, next_attempt_at = CASE WHEN failures > 0 THEN 0 ELSE next_attempt_at END, failures = 0 WHERE id = ?", [
    next.pools,
    next.ttl,
    next.backend,
    next.secret,
    row.id,
  ]);
  const after = await toZone(env.sql, { ...next, next_attempt_at: row.failures > 0 ? 0 : row.next_attempt_at, failures: 0 });
  await record(env.sql, env.ctx, iso(env.now), { action: "update", entity: "dns-zone", entityId: row.id, spaceId: row.space_id, before, after });
  return after;
}

/** Forgets a zone and what Allot wrote in it; the records stay on the DNS server. */
export async function deleteZone(env: TxEnv, name: string): Promise<DnsZone> {
  const row = await zoneRow(env.sql, env.ctx, name);
  const zone = await toZone(env.sql, row);
  for (const t of ["dns_outbox", "dns_records", "dns_conflicts"]) await env.sql.run(`DELETE FROM ${t} WHERE zone_id = ?`, [row.id]);
  await env.sql.run("DELETE FROM dns_zones WHERE id = ?", [row.id]);
  await record(env.sql, env.ctx, iso(env.now), { action: "delete", entity: "dns-zone", entityId: row.id, spaceId: row.space_id, before: zone });
  return zone;
}

// ---- what records allocations should have

interface ZoneScope {
  name: string;
  pools: Set<string> | null;
  span: ReverseSpan | null;
}

const scopeOf = (r: ZoneRow): ZoneScope => ({ name: r.name, pools: r.pools === null ? null : new Set(JSON.parse(r.pools) as string[]), span: reverseSpan(r.name) });
const applies = (z: ZoneScope, pool: PoolState) => z.pools === null || z.pools.has(pool.name);

/**
 * The fully qualified name for a host name or template result: kept if it already lies in one of the
 * space's forward zones for the pool; as given if it has a dot (a name in a zone Allot does not fill:
 * its PTR points there, and no A is written); else with the first such zone appended; else none.
 */
function qualify(label: string, forward: ZoneScope[], pool: PoolState): string | null {
  const h = label.trim().toLowerCase().replace(/\.$/, "");
  if (!h) return null;
  const zones = forward.filter((z) => applies(z, pool));
  if (zones.some((z) => inZone(h, z.name) && h !== z.name)) return h;
  if (h.includes(".")) return nameProblem(h) ? null : h;
  if (zones.length > 0) return forwardName(h, zones[0]!.name);
  return null;
}

/** Each address of an allocation with the name it should carry. */
function namesOf(row: AllocationRow, pool: PoolState, forward: ZoneScope[]): { a: Address; fqdn: string }[] {
  const first = fromKey(row.first);
  const last = fromKey(row.last);
  const family = pool.family;
  const template = typeof pool.attributes[DNS_TEMPLATE] === "string" ? (pool.attributes[DNS_TEMPLATE] as string) : null;
  if (first === last && row.hostname) {
    const fqdn = qualify(row.hostname, forward, pool);
    return fqdn ? [{ a: { family, value: first }, fqdn }] : [];
  }
  if (!template || last - first >= BigInt(MAX_BLOCK_NAMES)) return [];
  const out: { a: Address; fqdn: string }[] = [];
  for (let v = first; v <= last; v++) {
    const a = { family, value: v };
    const fqdn = qualify(renderTemplate(template, a, row.owner), forward, pool);
    if (fqdn) out.push({ a, fqdn });
  }
  return out;
}

/** The records `zone` should hold for these allocation rows (of its space). */
async function desiredRecords(sql: Sql, zone: ZoneRow, rows: AllocationRow[], now: number): Promise<DnsRecord[]> {
  const scope = scopeOf(zone);
  const forward = (await sql.all<ZoneRow>("SELECT * FROM dns_zones WHERE space_id = ? ORDER BY name", [zone.space_id])).map(scopeOf).filter((z) => z.span === null);
  const pools = new Map<string, PoolState>();
  const out: DnsRecord[] = [];
  for (const row of rows) {
    if (row.child_pool_id || (row.expires_at !== null && Number(row.expires_at) <= now)) continue;
    let pool = pools.get(row.pool_id);
    if (!pool) {
      pool = await loadPoolById(sql, row.pool_id);
      pools.set(row.pool_id, pool);
    }
    if (!applies(scope, pool)) continue;
    for (const { a, fqdn } of namesOf(row, pool, forward)) {
      const data = formatAddress(a);
      if (scope.span === null) {
        if (inZone(fqdn, scope.name) && fqdn !== scope.name) out.push({ name: fqdn, type: a.family === 4 ? "A" : "AAAA", data, allocationId: row.id });
      } else if (inSpan(a, scope.span)) {
        out.push({ name: ptrName(a, scope.span, scope.name), type: "PTR", data: fqdn, allocationId: row.id });
      }
    }
  }
  return out;
}

interface RecordRow {
  name: string;
  type: "A" | "AAAA" | "PTR";
  data: string;
  allocation_id: string;
}
const toRecord = (r: RecordRow): DnsRecord => ({ name: r.name, type: r.type, data: r.data, allocationId: r.allocation_id });

const inList = (n: number) => Array.from({ length: n }, () => "?").join(", ");

// ---- the publisher's lease

export interface DnsWork {
  zone: DnsZone;
  /** The credential in clear (opened by the engine). */
  secret: SealedSecret;
  lease: number;
  seqs: number[];
  /** Allocations whose records this batch brings up to date. */
  allocationIds: string[];
  desired: DnsRecord[];
  /** What Allot wrote for those allocations. */
  published: DnsRecord[];
  /** What Allot wrote, for other allocations, under the names and types desired. */
  taken: DnsRecord[];
}

/** How long a server may take over one batch before another may take the same zone. */
export const DNS_LEASE_MS = 60_000;

async function chunks<T, R>(items: T[], size: number, fn: (chunk: T[]) => Promise<R[]>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size) out.push(...(await fn(items.slice(i, i + size))));
  return out;
}

/** Leases one zone with entries due (its next attempt time passed), or returns null. */
export async function leaseZone(env: TxEnv, batch: number): Promise<DnsWork | null> {
  const due = await env.sql.all<ZoneRow>(
    "SELECT * FROM dns_zones z WHERE next_attempt_at <= ? AND EXISTS (SELECT 1 FROM dns_outbox o WHERE o.zone_id = z.id) ORDER BY next_attempt_at, id",
    [env.now],
  );
  for (const row of due) {
    const lease = env.now + DNS_LEASE_MS;
    const taken = await env.sql.run("UPDATE dns_zones SET next_attempt_at = ? WHERE id = ? AND next_attempt_at = ?", [lease, row.id, row.next_attempt_at]);
    if (taken.changes !== 1) continue; // another server took it
    const seqs = (await env.sql.all<{ seq: number }>("SELECT seq FROM dns_outbox WHERE zone_id = ? ORDER BY seq LIMIT ?", [row.id, batch])).map((r) => Number(r.seq));
    const ids = [
      ...new Set(
        (await chunks(seqs, 500, (c) => env.sql.all<{ entity_id: string }>(`SELECT entity_id FROM history WHERE entity = 'allocation' AND seq IN (${inList(c.length)})`, c))).map(
          (r) => r.entity_id,
        ),
      ),
    ];
    // the allocations as they are now: a batch converges on the current state, whatever order entries came in
    const rows = await chunks(ids, 500, (c) => env.sql.all<AllocationRow>(`SELECT * FROM allocations WHERE id IN (${inList(c.length)})`, c));
    const desired = await desiredRecords(env.sql, row, rows, env.now);
    const published = (
      await chunks(ids, 500, (c) => env.sql.all<RecordRow>(`SELECT * FROM dns_records WHERE zone_id = ? AND allocation_id IN (${inList(c.length)})`, [row.id, ...c]))
    ).map(toRecord);
    const names = [...new Set(desired.map((d) => d.name))];
    const mine = new Set(ids);
    const taken2 = (await chunks(names, 500, (c) => env.sql.all<RecordRow>(`SELECT * FROM dns_records WHERE zone_id = ? AND name IN (${inList(c.length)})`, [row.id, ...c])))
      .map(toRecord)
      .filter((r) => !mine.has(r.allocationId));
    return { zone: await toZone(env.sql, row), secret: JSON.parse(row.secret) as SealedSecret, lease, seqs, allocationIds: ids, desired, published, taken: taken2 };
  }
  return null;
}

/** What a batch did: records now written (and removed) by Allot, and names it left to others. */
export interface DnsOutcome {
  written: DnsRecord[];
  removed: { name: string; type: string }[];
  conflicts: Omit<DnsConflict, "zone" | "at">[];
  /** Record changes sent. */
  sent: number;
}

export async function settleZone(env: TxEnv, w: DnsWork, outcome: { ok: true; result: DnsOutcome } | { ok: false; error: string }): Promise<boolean> {
  if (!outcome.ok) {
    const failures = w.zone.failures + 1;
    // 1 s, 2 s, 4 s … capped at 30 s: a DNS server back from a restart gets its records soon
    const wait = Math.min(2 ** (failures - 1) * 1000, 30_000);
    const r = await env.sql.run("UPDATE dns_zones SET failures = ?, next_attempt_at = ?, last_error = ? WHERE id = ? AND next_attempt_at = ?", [
      failures,
      env.now + wait,
      outcome.error.slice(0, 500),
      w.zone.id,
      w.lease,
    ]);
    return r.changes === 1;
  }
  const r = await env.sql.run("UPDATE dns_zones SET published = published + ?, failures = 0, next_attempt_at = 0, last_error = NULL WHERE id = ? AND next_attempt_at = ?", [
    outcome.result.sent,
    w.zone.id,
    w.lease,
  ]);
  if (r.changes !== 1) return false; // the lease ran out and another server redoes the batch
  await writeRecords(env, w.zone.id, outcome.result, w.allocationIds);
  for (let i = 0; i < w.seqs.length; i += 500) {
    const c = w.seqs.slice(i, i + 500);
    await env.sql.run(`DELETE FROM dns_outbox WHERE zone_id = ? AND seq IN (${inList(c.length)})`, [w.zone.id, ...c]);
  }
  return true;
}

async function writeRecords(env: TxEnv, zoneId: string, result: DnsOutcome, allocationIds: string[]): Promise<void> {
  for (const k of result.removed) await env.sql.run("DELETE FROM dns_records WHERE zone_id = ? AND name = ? AND type = ?", [zoneId, k.name, k.type]);
  for (const rec of result.written) {
    await env.sql.run("DELETE FROM dns_records WHERE zone_id = ? AND name = ? AND type = ?", [zoneId, rec.name, rec.type]);
    await env.sql.run("INSERT INTO dns_records (zone_id, name, type, data, allocation_id) VALUES (?, ?, ?, ?, ?)", [zoneId, rec.name, rec.type, rec.data, rec.allocationId]);
  }
  for (let i = 0; i < allocationIds.length; i += 500) {
    const c = allocationIds.slice(i, i + 500);
    await env.sql.run(`DELETE FROM dns_conflicts WHERE zone_id = ? AND allocation_id IN (${inList(c.length)})`, [zoneId, ...c]);
  }
  for (const c of result.conflicts) {
    await env.sql.run("DELETE FROM dns_conflicts WHERE zone_id = ? AND name = ? AND type = ?", [zoneId, c.name, c.type]);
    await env.sql.run("INSERT INTO dns_conflicts (zone_id, name, type, wanted, found, allocation_id, at) VALUES (?, ?, ?, ?, ?, ?, ?)", [
      zoneId,
      c.name,
      c.type,
      c.wanted,
      JSON.stringify(c.found),
      c.allocationId,
      iso(env.now),
    ]);
  }
}

// ---- the whole zone, for checks

export interface DnsZoneState {
  zone: DnsZone;
  secret: SealedSecret;
  /** Every record the zone should hold now. */
  desired: DnsRecord[];
  /** Every record Allot wrote in it. */
  published: DnsRecord[];
}

export async function zoneState(sql: Sql, caller: Caller, name: string, now: number): Promise<DnsZoneState> {
  const row = await zoneRow(sql, caller, name);
  checkSpace(caller, await spaceNameOf(sql, row.space_id));
  const rows = await sql.all<AllocationRow>("SELECT * FROM allocations WHERE space_id = ? AND child_pool_id IS NULL", [row.space_id]);
  return {
    zone: await toZone(sql, row),
    secret: JSON.parse(row.secret) as SealedSecret,
    desired: await desiredRecords(sql, row, rows, now),
    published: (await sql.all<RecordRow>("SELECT * FROM dns_records WHERE zone_id = ?", [row.id])).map(toRecord),
  };
}

/** After a repair: what Allot now holds written (and no longer) in the zone. */
export async function recordRepair(env: TxEnv, zoneName: string, result: DnsOutcome): Promise<void> {
  const row = await zoneRow(env.sql, env.ctx, zoneName);
  await writeRecords(env, row.id, result, []);
  await env.sql.run("UPDATE dns_zones SET published = published + ? WHERE id = ?", [result.sent, row.id]);
}

export async function listConflicts(sql: Sql, caller: Caller, name: string): Promise<DnsConflict[]> {
  const row = await zoneRow(sql, caller, name);
  const rows = await sql.all<{ name: string; type: string; wanted: string; found: string; allocation_id: string; at: string }>(
    "SELECT * FROM dns_conflicts WHERE zone_id = ? ORDER BY name, type",
    [row.id],
  );
  return rows.map((r) => ({ zone: row.name, name: r.name, type: r.type, wanted: r.wanted, found: JSON.parse(r.found) as string[], allocationId: r.allocation_id, at: r.at }));
}

/** Figures for metrics: per zone, entries waiting, failures in a row, conflicts, changes sent. */
export async function zoneFigures(sql: Sql): Promise<{ zone: string; pending: number; failures: number; conflicts: number; published: number }[]> {
  const rows = await sql.all<{ name: string; failures: number; published: number; pending: number | string; conflicts: number | string }>(
    `SELECT z.name, z.failures, z.published,
       (SELECT COUNT(*) FROM dns_outbox o WHERE o.zone_id = z.id) AS pending,
       (SELECT COUNT(*) FROM dns_conflicts c WHERE c.zone_id = z.id) AS conflicts
     FROM dns_zones z ORDER BY z.name`,
  );
  return rows.map((r) => ({ zone: r.name, pending: Number(r.pending), failures: Number(r.failures), conflicts: Number(r.conflicts), published: Number(r.published) }));
}
