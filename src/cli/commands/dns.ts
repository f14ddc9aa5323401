import { Command } from "commander";
import type { DnsCheckReport, DnsDrift } from "../../dns/check.js";
import type { DnsConflict, DnsZone } from "../../engine/dns.js";
import { seg } from "../client.js";
import { UsageError, collect, compact, context, parseInteger, readInput } from "../context.js";
import { type Column, print, printList } from "../output.js";

const zoneColumns: Column<DnsZone>[] = [
  ["ZONE", (z) => z.name],
  ["SPACE", (z) => z.space],
  ["POOLS", (z) => (z.pools ? z.pools.join(",") : "(all)")],
  ["BACKEND", (z) => (z.backend.type === "rfc2136" ? `rfc2136 ${z.backend.server} key ${z.backend.keyName}` : `powerdns ${z.backend.url}`)],
  ["TTL", (z) => z.ttl],
  ["PUBLISHED", (z) => z.published],
  ["PENDING", (z) => z.pending],
  ["FAILURES", (z) => z.failures],
  ["CONFLICTS", (z) => z.conflicts],
  ["LAST ERROR", (z) => z.lastError],
];

interface BackendOptions {
  rfc2136?: string;
  keyFile?: string;
  keyName?: string;
  algorithm?: string;
  secret?: string;
  powerdns?: string;
  apiKey?: string;
  serverId?: string;
}

/** A key file as tsig-keygen writes it: key "NAME" { algorithm ALG; secret "BASE64"; }; */
function parseKeyFile(text: string, file: string): { keyName: string; algorithm: string; secret: string } {
  const m = /key\s+"?([^"\s{]+)"?\s*\{[^}]*?algorithm\s+([\w-]+)\s*;[^}]*?secret\s+"([^"]+)"/s.exec(text);
  if (!m) throw new UsageError(`${file} is not a TSIG key file as tsig-keygen writes it (key "NAME" { algorithm …; secret "…"; };)`);
  return { keyName: m[1]!, algorithm: m[2]!, secret: m[3]! };
}

function backendOf(o: BackendOptions, required: boolean): Record<string, unknown> | undefined {
  if (o.rfc2136 && o.powerdns) throw new UsageError("give --rfc2136 or --powerdns, not both");
  if (o.rfc2136) {
    const key = o.keyFile ? parseKeyFile(readInput(o.keyFile), o.keyFile) : undefined;
    const keyName = o.keyName ?? key?.keyName;
    const secret = o.secret ?? process.env.ALLOT_DNS_SECRET ?? key?.secret;
    if (!keyName || !secret) throw new UsageError("--rfc2136 needs the TSIG key: --key-file FILE (from tsig-keygen), or --key-name and --secret (or ALLOT_DNS_SECRET)");
    return { type: "rfc2136", server: o.rfc2136, keyName, algorithm: o.algorithm ?? key?.algorithm ?? "hmac-sha256", secret };
  }
  if (o.powerdns) {
    const apiKey = o.apiKey ?? process.env.ALLOT_DNS_SECRET;
    if (!apiKey) throw new UsageError("--powerdns needs --api-key (or ALLOT_DNS_SECRET)");
    return compact({ type: "powerdns", url: o.powerdns, apiKey, serverId: o.serverId });
  }
  if (required) throw new UsageError("give the zone's server: --rfc2136 HOST:PORT with its TSIG key, or --powerdns URL with --api-key");
  return undefined;
}

function backendOptions(cmd: Command): Command {
  return cmd
    .option("--rfc2136 <host:port>", "send RFC 2136 updates signed with TSIG to this server (BIND's named, …)")
    .option("--key-file <file>", "the TSIG key as tsig-keygen writes it")
    .option("--key-name <name>", "TSIG key name (instead of --key-file)")
    .option("--algorithm <alg>", "TSIG algorithm: hmac-sha256 (default), hmac-sha1, hmac-sha224, hmac-sha384, hmac-sha512")
    .option("--secret <base64>", "TSIG secret (instead of --key-file; or ALLOT_DNS_SECRET, which stays out of the process list)")
    .option("--powerdns <url>", "use PowerDNS's HTTP API at this URL (its webserver, e.g. http://127.0.0.1:8081)")
    .option("--api-key <key>", "PowerDNS api-key (or ALLOT_DNS_SECRET)")
    .option("--server-id <id>", "PowerDNS server id (default localhost)");
}

const driftColumns: Column<DnsDrift & { kind: string }>[] = [
  ["KIND", (d) => d.kind],
  ["NAME", (d) => d.name],
  ["TYPE", (d) => d.type],
  ["WANTED", (d) => d.wanted],
  ["FOUND", (d) => d.found],
];

export function dnsCommand(): Command {
  const dns = new Command("dns").description("DNS records that follow allocations, in BIND (RFC 2136 + TSIG) or PowerDNS (needs an admin token)");
  const zone = dns.command("zone").alias("zones").description("zones Allot publishes records in");
  backendOptions(
    zone
      .command("create [name]")
      .description("configure a zone (a forward zone, or a reverse zone such as 2.0.192.in-addr.arpa); records follow allocations from now on")
      .option("--prefix <cidr>", "instead of a name: the reverse zone of this prefix (0-25.2.0.192.in-addr.arpa for 192.0.2.0/25)")
      .option("-s, --space <space>", "the space whose allocations it follows (default 'default')")
      .option("--pool <pool>", "only this pool of the space (repeat for several; default: every pool)", collect, [])
      .option("--ttl <seconds>", "TTL of the records (default 300)", parseInteger),
  ).action(async (name: string | undefined, o: BackendOptions & { prefix?: string; space?: string; pool: string[]; ttl?: number }, cmd: Command) => {
    const { client, format } = context(cmd);
    if (!name && !o.prefix) throw new UsageError("give the zone's name, or --prefix for the reverse zone of a prefix");
    const body = compact({ name, prefix: o.prefix, space: o.space, pools: o.pool.length ? o.pool : undefined, ttl: o.ttl, backend: backendOf(o, true) });
    print(format, await client.request<DnsZone>("POST", "v1/dns/zones", body), zoneColumns);
  });
  zone
    .command("list")
    .description("list zones with their publishing state")
    .action(async (_o, cmd: Command) => {
      const { client, format } = context(cmd);
      printList(format, (await client.request<{ items: DnsZone[] }>("GET", "v1/dns/zones")).items, zoneColumns);
    });
  zone
    .command("show <zone>")
    .description("a zone and its publishing state")
    .action(async (z: string, _o, cmd: Command) => {
      const { client, format } = context(cmd);
      print(format, await client.request<DnsZone>("GET", `v1/dns/zones/${seg(z)}`), zoneColumns);
    });
  backendOptions(
    zone
      .command("update <zone>")
      .description("change a zone's pools, TTL or backend (a new backend, a fixed key, is tried at once)")
      .option("--pool <pool>", "only this pool (repeat for several)", collect, [])
      .option("--all-pools", "every pool of the space")
      .option("--ttl <seconds>", "TTL of the records", parseInteger),
  ).action(async (z: string, o: BackendOptions & { pool: string[]; allPools?: boolean; ttl?: number }, cmd: Command) => {
    const { client, format } = context(cmd);
    const body = compact({ pools: o.allPools ? null : o.pool.length ? o.pool : undefined, ttl: o.ttl, backend: backendOf(o, false) });
    print(format, await client.request<DnsZone>("PATCH", `v1/dns/zones/${seg(z)}`, body), zoneColumns);
  });
  zone
    .command("delete <zone>")
    .description("stop publishing to a zone (the records stay on the server)")
    .action(async (z: string, _o, cmd: Command) => {
      const { client, format } = context(cmd);
      print(format, await client.request<DnsZone>("DELETE", `v1/dns/zones/${seg(z)}`), zoneColumns);
    });
  dns
    .command("conflicts <zone>")
    .description("names Allot left alone because records it did not write hold them")
    .action(async (z: string, _o, cmd: Command) => {
      const { client, format } = context(cmd);
      const res = await client.request<{ items: DnsConflict[] }>("GET", `v1/dns/zones/${seg(z)}/conflicts`);
      printList(format, res.items, [
        ["NAME", (c) => c.name],
        ["TYPE", (c) => c.type],
        ["WANTED", (c) => c.wanted],
        ["FOUND", (c) => c.found],
        ["ALLOCATION", (c) => c.allocationId],
        ["SINCE", (c) => c.at],
      ]);
    });
  dns
    .command("check")
    .description("compare zones on their servers with what Allot holds: missing, stale and foreign records (exit 3 on drift)")
    .option("-z, --zone <zone>", "only this zone (default: every zone)")
    .option("--fix", "repair Allot's own records (foreign records are left alone)")
    .action(async (o: { zone?: string; fix?: boolean }, cmd: Command) => {
      const { client, format } = context(cmd);
      const zones = o.zone ? [o.zone] : (await client.request<{ items: DnsZone[] }>("GET", "v1/dns/zones")).items.map((z) => z.name);
      const reports: DnsCheckReport[] = [];
      for (const z of zones) {
        reports.push(await client.request<DnsCheckReport>(o.fix ? "POST" : "GET", `v1/dns/zones/${seg(z)}/check`, undefined, o.fix ? { fix: "true" } : {}));
      }
      const drift = reports.some((r) => r.missing.length + r.stale.length + r.foreign.length > 0);
      if (format !== "table") print(format, reports, [], { zones: reports });
      else {
        for (const r of reports) {
          const rows = [
            ...r.missing.map((d) => ({ ...d, kind: "missing" })),
            ...r.stale.map((d) => ({ ...d, kind: "stale" })),
            ...r.foreign.map((d) => ({ ...d, kind: "foreign" })),
          ];
          process.stdout.write(`zone ${r.zone}: ${rows.length === 0 ? "in step" : `${r.missing.length} missing, ${r.stale.length} stale, ${r.foreign.length} foreign`}${r.fixed !== null ? `; ${r.fixed} record changes sent to repair` : ""}\n`);
          if (rows.length) print(format, rows, driftColumns);
        }
      }
      // after a repair only foreign records remain, and those are someone else's to resolve
      if (drift && !o.fix) process.exitCode = 3;
    });
  return dns;
}
