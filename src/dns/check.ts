/**
 * Drift between a zone as its DNS server has it (AXFR, or PowerDNS's GET zone) and what Allot holds:
 * records missing, Allot's own records that are stale, and foreign records (not written by Allot)
 * holding names Allot wants. A repair changes only Allot's own records.
 */
import type { Caller } from "../engine/access.js";
import type { DnsOutcome, DnsRecord } from "../engine/dns.js";
import type { Engine } from "../engine/engine.js";
import { AllotError } from "../engine/errors.js";
import type { ChangeContext } from "../engine/types.js";
import { backendFor, rrKey, sameData } from "./publisher.js";
import type { RrsetChange } from "./wire.js";

export interface DnsDrift {
  name: string;
  type: string;
  /** What Allot wants there (null: nothing). */
  wanted: string | null;
  /** What the server has. */
  found: string[];
  allocationId: string | null;
}

export interface DnsCheckReport {
  zone: string;
  /** Records Allot should have there that the server lacks. */
  missing: DnsDrift[];
  /** Allot's own records that no allocation wants any more, or that hold other content. */
  stale: DnsDrift[];
  /** Records Allot did not write holding names it wants (left alone, also with fix). */
  foreign: DnsDrift[];
  /** With fix: record changes sent. */
  fixed: number | null;
}

const TYPES = new Set(["A", "AAAA", "PTR"]);

export async function checkZone(engine: Engine, zoneName: string, caller: Caller, fix: false): Promise<DnsCheckReport>;
export async function checkZone(engine: Engine, zoneName: string, caller: ChangeContext, fix: boolean): Promise<DnsCheckReport>;
export async function checkZone(engine: Engine, zoneName: string, caller: Caller | ChangeContext, fix: boolean): Promise<DnsCheckReport> {
  const state = await engine.dnsZoneState(zoneName, caller);
  const backend = backendFor(state.zone, state.secretText);
  let records;
  try {
    records = await backend.list();
  } catch (err) {
    throw new AllotError("dns-failed", `reading zone ${state.zone.name} from its server: ${(err as Error).message}`);
  }
  const server = new Map<string, string[]>();
  for (const r of records) {
    if (!TYPES.has(r.type)) continue;
    const k = rrKey(r);
    server.set(k, [...(server.get(k) ?? []), r.data]);
  }
  const published = new Map(state.published.map((r) => [rrKey(r), r]));
  // one wish per name and type: the allocation that already holds it, else the first
  const desired = new Map<string, DnsRecord>();
  for (const d of state.desired) {
    const k = rrKey(d);
    const holder = published.get(k)?.allocationId;
    if (!desired.has(k) || holder === d.allocationId) desired.set(k, d);
  }
  const report: DnsCheckReport = { zone: state.zone.name, missing: [], stale: [], foreign: [], fixed: null };
  const changes = new Map<string, RrsetChange>();
  const result: DnsOutcome = { written: [], removed: [], conflicts: [], sent: 0 };
  const ttl = state.zone.ttl;
  for (const [k, p] of published) {
    const d = desired.get(k);
    const found = server.get(k) ?? [];
    if (!d) {
      report.stale.push({ name: p.name, type: p.type, wanted: null, found, allocationId: p.allocationId });
      changes.set(k, { name: p.name, type: p.type, ttl, data: [] });
      result.removed.push({ name: p.name, type: p.type });
    } else if (found.length > 0 && !(found.length === 1 && sameData(d.type, found[0]!, d.data))) {
      report.stale.push({ name: p.name, type: p.type, wanted: d.data, found, allocationId: p.allocationId });
    }
  }
  for (const [k, d] of desired) {
    const found = server.get(k) ?? [];
    if (found.length === 1 && sameData(d.type, found[0]!, d.data)) {
      // there already; Allot's own from now on if it was not (a batch sent but not yet settled)
      if (!published.has(k)) result.written.push(d);
      continue;
    }
    const p = published.get(k);
    if (found.length > 0 && !p) {
      report.foreign.push({ name: d.name, type: d.type, wanted: d.data, found, allocationId: d.allocationId });
      continue;
    }
    if (found.length === 0) report.missing.push({ name: d.name, type: d.type, wanted: d.data, found, allocationId: d.allocationId });
    changes.set(k, { name: d.name, type: d.type, ttl, data: [d.data] });
    result.written.push(d);
  }
  if (!fix) return report;
  const list = [...changes.values()];
  try {
    if (list.length > 0) await backend.apply(list);
  } catch (err) {
    throw new AllotError("dns-failed", `repairing zone ${state.zone.name}: ${(err as Error).message}`);
  }
  result.sent = list.length;
  await engine.recordDnsRepair(state.zone.name, result, caller as ChangeContext);
  report.fixed = list.length;
  return report;
}
