/**
 * The DNS publishing loop of one server: lease a zone with history entries waiting, work out the
 * record changes they call for, send them as one update (RFC 2136) or one PATCH (PowerDNS), and
 * record the outcome. Every change is "replace the name's records of this type", so a batch sent
 * twice (after a lost lease or a crash before the outcome was saved) leaves the same zone.
 */
import { canonicalAddress } from "../addr/index.js";
import type { DnsOutcome, DnsRecord, DnsWork, DnsZone } from "../engine/dns.js";
import type { Engine } from "../engine/engine.js";
import type { DnsBackend, RrKey } from "./backend.js";
import { PowerDnsBackend } from "./powerdns.js";
import { Rfc2136Backend } from "./rfc2136.js";
import type { RrsetChange } from "./wire.js";

export function backendFor(zone: DnsZone, secret: string): DnsBackend {
  const b = zone.backend;
  if (b.type === "rfc2136") return new Rfc2136Backend(zone.name, b.server, { name: b.keyName, algorithm: b.algorithm, secret: Buffer.from(secret, "base64") });
  return new PowerDnsBackend(zone.name, b.url, secret, b.serverId);
}

export const rrKey = (r: { name: string; type: string }) => `${r.name} ${r.type}`;

/** Whether two record contents are the same (addresses in any text form, names in any case). */
export function sameData(type: string, a: string, b: string): boolean {
  if (type === "A" || type === "AAAA") {
    try {
      return canonicalAddress(a) === canonicalAddress(b);
    } catch {
      return a === b;
    }
  }
  return a.toLowerCase().replace(/\.$/, "") === b.toLowerCase().replace(/\.$/, "");
}

/**
 * The changes a leased batch calls for. A name and type Allot did not write, holding something else
 * on the server, is a conflict: left alone and reported. One Allot wrote for another allocation is
 * too (two allocations wanting one name: the first keeps it).
 */
export async function planBatch(w: DnsWork, backend: DnsBackend): Promise<{ changes: RrsetChange[]; result: DnsOutcome }> {
  const ttl = w.zone.ttl;
  const desired = new Map<string, DnsRecord>();
  const conflicts: DnsOutcome["conflicts"] = [];
  const taken = new Map(w.taken.map((r) => [rrKey(r), r]));
  for (const d of w.desired) {
    const k = rrKey(d);
    const first = desired.get(k);
    if (!first) desired.set(k, d);
    else if (first.allocationId !== d.allocationId) conflicts.push({ name: d.name, type: d.type, wanted: d.data, found: [first.data], allocationId: d.allocationId });
  }
  const published = new Map(w.published.map((r) => [rrKey(r), r]));
  const changes = new Map<string, RrsetChange>();
  const written: DnsRecord[] = [];
  const removed: { name: string; type: string }[] = [];
  for (const [k, p] of published) {
    if (!desired.has(k)) {
      changes.set(k, { name: p.name, type: p.type, ttl, data: [] });
      removed.push({ name: p.name, type: p.type });
    }
  }
  const unknown: RrKey[] = [];
  for (const [k, d] of desired) {
    const other = taken.get(k);
    if (other) {
      conflicts.push({ name: d.name, type: d.type, wanted: d.data, found: [other.data], allocationId: d.allocationId });
      continue;
    }
    const p = published.get(k);
    if (p) {
      if (!(p.allocationId === d.allocationId && sameData(d.type, p.data, d.data))) {
        changes.set(k, { name: d.name, type: d.type, ttl, data: [d.data] });
        written.push(d);
      }
      continue;
    }
    unknown.push({ name: d.name, type: d.type });
  }
  // names Allot has not written: only if the server has nothing there, or exactly this already
  const current = await backend.lookup(unknown);
  for (const u of unknown) {
    const k = rrKey(u);
    const d = desired.get(k)!;
    const found = current.get(k) ?? [];
    if (found.length === 0 || (found.length === 1 && sameData(d.type, found[0]!, d.data))) {
      changes.set(k, { name: d.name, type: d.type, ttl, data: [d.data] });
      written.push(d);
    } else {
      conflicts.push({ name: d.name, type: d.type, wanted: d.data, found, allocationId: d.allocationId });
    }
  }
  const list = [...changes.values()];
  return { changes: list, result: { written, removed, conflicts, sent: list.length } };
}

export interface PublishLog {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Publishes until no zone has entries due; returns how many batches were attempted. */
export async function publishDue(engine: Engine, log: PublishLog, batch = 500): Promise<number> {
  let attempts = 0;
  for (;;) {
    const w = await engine.leaseDnsWork(batch);
    if (!w) return attempts;
    attempts++;
    let outcome: { ok: true; result: DnsOutcome } | { ok: false; error: string };
    try {
      const backend = backendFor(w.zone, w.secretText);
      const plan = await planBatch(w, backend);
      if (plan.changes.length > 0) await backend.apply(plan.changes);
      outcome = { ok: true, result: plan.result };
      if (plan.result.conflicts.length > 0) {
        log.warn({ zone: w.zone.name, conflicts: plan.result.conflicts.map((c) => `${c.name} ${c.type}`) }, "DNS names held by records Allot did not write were left alone");
      }
    } catch (err) {
      outcome = { ok: false, error: (err as Error).message };
    }
    await engine.settleDnsWork(w, outcome);
    if (!outcome.ok) log.warn({ zone: w.zone.name, error: outcome.error, failures: w.zone.failures + 1 }, "DNS publishing failed; will retry with backoff");
  }
}

/**
 * Runs publishDue whenever a change is committed (by any server: the change feed), and every
 * `retryMs` besides, for zones waiting out a failed attempt's backoff. Returns what stops it (and
 * resolves once the loop has finished its current batch).
 */
export function startDnsPublisher(engine: Engine, log: PublishLog, retryMs = 1000): () => Promise<void> {
  const stop = new AbortController();
  const done = (async () => {
    let seen = engine.changes.version;
    while (!stop.signal.aborted) {
      try {
        await publishDue(engine, log);
      } catch (err) {
        if (!stop.signal.aborted) log.error({ err }, "DNS publishing loop failed");
      }
      seen = await engine.changes.wait(seen, retryMs, stop.signal);
    }
  })();
  return async () => {
    stop.abort();
    await done;
  };
}
