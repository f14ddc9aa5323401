/**
 * A zone on PowerDNS Authoritative through its HTTP API: one PATCH per batch (concurrent PATCHes on
 * its SQLite backend fail with "database is locked", and the cost is per request, not per record).
 */
import type { DnsBackend, RrKey } from "./backend.js";
import type { Rr, RrsetChange } from "./wire.js";

const TIMEOUT_MS = 15_000;

interface PdnsRrset {
  name: string;
  type: string;
  ttl: number;
  records: { content: string; disabled?: boolean }[];
}

const dot = (n: string) => `${n}.`;
const undot = (n: string) => n.toLowerCase().replace(/\.$/, "");

export class PowerDnsBackend implements DnsBackend {
  private readonly base: string;

  constructor(
    private readonly zone: string,
    url: string,
    private readonly apiKey: string,
    serverId: string,
  ) {
    this.base = `${url.replace(/\/+$/, "")}/api/v1/servers/${encodeURIComponent(serverId)}/zones/${encodeURIComponent(dot(zone))}`;
  }

  private async call(method: string, body?: unknown): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(this.base, {
        method,
        headers: { "x-api-key": this.apiKey, ...(body ? { "content-type": "application/json" } : {}), accept: "application/json" },
        ...(body ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      throw new Error(`PowerDNS API ${this.base}: ${cause ?? (err as Error).message}`);
    }
    const text = await res.text();
    if (!res.ok) {
      let why = text.slice(0, 300);
      try {
        why = (JSON.parse(text) as { error?: string }).error ?? why;
      } catch {
        // not JSON: the text itself
      }
      const hint = res.status === 401 ? " (the API key is wrong)" : res.status === 404 || res.status === 422 ? ` (is zone ${this.zone} on the server?)` : "";
      throw new Error(`PowerDNS API ${method} zone ${this.zone}: HTTP ${res.status} ${why}${hint}`);
    }
    return text ? JSON.parse(text) : null;
  }

  async apply(changes: readonly RrsetChange[]): Promise<void> {
    if (changes.length === 0) return;
    await this.call("PATCH", {
      rrsets: changes.map((c) =>
        c.data.length === 0
          ? { name: dot(c.name), type: c.type, changetype: "DELETE" }
          : { name: dot(c.name), type: c.type, ttl: c.ttl, changetype: "REPLACE", records: c.data.map((d) => ({ content: c.type === "PTR" ? dot(d) : d, disabled: false })) },
      ),
    });
  }

  private async rrsets(): Promise<PdnsRrset[]> {
    const zone = (await this.call("GET")) as { rrsets?: PdnsRrset[] };
    return zone.rrsets ?? [];
  }

  async lookup(keys: readonly RrKey[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    if (keys.length === 0) return out;
    const wanted = new Set(keys.map((k) => `${k.name} ${k.type}`));
    for (const k of wanted) out.set(k, []);
    for (const r of await this.list()) {
      const key = `${r.name} ${r.type}`;
      if (wanted.has(key)) out.get(key)!.push(r.data);
    }
    return out;
  }

  async list(): Promise<Rr[]> {
    const out: Rr[] = [];
    for (const s of await this.rrsets()) {
      if (s.type === "SOA") continue;
      for (const r of s.records) {
        if (r.disabled) continue;
        out.push({ name: undot(s.name), type: s.type, ttl: s.ttl, data: s.type === "PTR" || s.type === "CNAME" || s.type === "NS" ? undot(r.content) : r.content });
      }
    }
    return out;
  }
}
