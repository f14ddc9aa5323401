/**
 * DNS publishing: `node --import tsx bench/dns.ts`, JSON to stdout and bench/dns-results.json.
 *
 * Per backend (BIND 9 by RFC 2136 + TSIG, PowerDNS by its API), with an engine on SQLite and its
 * publisher loop in this process:
 *   - latency: from an allocation's acknowledgement (allocate() returned: committed) until the A
 *     record answers a DNS query to the server (polled every 2 ms over TCP, as dig +tcp would ask);
 *   - throughput: a bulk allocation of N addresses in a pool with a naming template (N A and N PTR
 *     records), from the commit until every change is published, in record changes per second;
 *   - against a plain update loop in the same run: one record per RFC 2136 message (or per PATCH),
 *     one at a time, as a script calling nsupdate or the API per record would.
 *
 * Needs named, pdns_server, sqlite3 and dig (Debian: bind9 bind9-dnsutils pdns-server
 * pdns-backend-sqlite3 sqlite3). BENCH_QUICK=1 runs fewer rounds.
 */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { DnsBackend } from "../src/dns/backend.js";
import { reverseZoneOf } from "../src/dns/names.js";
import { PowerDnsBackend } from "../src/dns/powerdns.js";
import { startDnsPublisher } from "../src/dns/publisher.js";
import { Rfc2136Backend } from "../src/dns/rfc2136.js";
import { SERVER } from "../src/engine/access.js";
import type { DnsBackendInput } from "../src/engine/dns.js";
import { ctx, tempEngine } from "../test/helpers.js";
import { dig, quietLog, startNamed, startPdns } from "../test/dns/servers.js";
import { machineInfo, round, summarize } from "./lib.js";

const QUICK = process.env.BENCH_QUICK === "1";
const ROUNDS = QUICK ? 10 : 50;
const BULK = QUICK ? 200 : 1000;
const PLAIN = QUICK ? 50 : 200;
const FWD = "bench.test";
const REV = reverseZoneOf("10.60.0.0/16");

const progress = (m: string) => process.stderr.write(`[dns] ${m}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(check: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await sleep(2);
  }
}

async function run(kind: "rfc2136" | "powerdns", backend: DnsBackendInput, port: number, plain: DnsBackend) {
  // answers come from the DNS port, for either backend: plain queries need no key
  const probe = new Rfc2136Backend(FWD, `127.0.0.1:${port}`, { name: "none", algorithm: "hmac-sha256", secret: Buffer.alloc(32) });
  const env = await tempEngine();
  const { engine } = env;
  const stop = startDnsPublisher(engine, quietLog, 200);
  try {
    await engine.createPool({ name: "hosts", cidr: "10.60.0.0/20" }, ctx);
    await engine.createPool({ name: "racks", cidr: "10.60.16.0/20", attributes: { "dns.template": "r-{a}-{b}-{c}-{d}" } }, ctx);
    for (const name of [FWD, REV]) await engine.createDnsZone({ name, backend, ttl: 60 }, ctx);

    progress(`${kind}: latency, ${ROUNDS} rounds`);
    const samples: number[] = [];
    const t0 = Date.now();
    for (let i = 0; i < ROUNDS; i++) {
      const { allocation } = await engine.allocate({ pool: "hosts" }, { hostname: `lat${i}` }, ctx);
      const acked = process.hrtime.bigint();
      const name = `lat${i}.${FWD}`;
      await waitFor(async () => ((await probe.lookup([{ name, type: "A" }])).get(`${name} A`) ?? []).includes(allocation.address));
      samples.push(Number(process.hrtime.bigint() - acked) / 1000);
    }
    const latency = summarize(samples, Date.now() - t0);
    const digged = await dig(port, `lat0.${FWD}`, "A");

    progress(`${kind}: ${BULK} addresses in one bulk allocation (${BULK * 2} record changes)`);
    const before = (await engine.getDnsZone(FWD, SERVER)).published + (await engine.getDnsZone(REV, SERVER)).published;
    const tb = Date.now();
    const bulk = await engine.allocateMany({ pool: "racks" }, { count: BULK }, ctx);
    await waitFor(async () => {
      const f = await engine.getDnsZone(FWD, SERVER);
      const r = await engine.getDnsZone(REV, SERVER);
      return f.pending === 0 && r.pending === 0;
    });
    const bulkMs = Date.now() - tb;
    const after = (await engine.getDnsZone(FWD, SERVER)).published + (await engine.getDnsZone(REV, SERVER)).published;
    const last = [...bulk.items()].at(-1)!.address;
    const lastName = `r-${last.replace(/\./g, "-")}.${FWD}`;
    const present = ((await probe.lookup([{ name: lastName, type: "A" }])).get(`${lastName} A`) ?? []).includes(last);

    progress(`${kind}: plain loop, ${PLAIN} records one per message`);
    const tp = Date.now();
    for (let i = 0; i < PLAIN; i++) await plain.apply([{ name: `plain${i}.${FWD}`, type: "A", ttl: 60, data: [`10.61.${i >> 8}.${i & 255}`] }]);
    const plainMs = Date.now() - tp;
    return {
      latency: { ...latency, note: "from allocate() returning to the A record answering a TCP query; polled every 2 ms" },
      digAnswersLat0: digged,
      bulk: { addresses: BULK, recordChanges: after - before, ms: bulkMs, changesPerSec: round(((after - before) / bulkMs) * 1000, 0), lastRecordPresent: present },
      plainLoop: { records: PLAIN, ms: plainMs, recordsPerSec: round((PLAIN / plainMs) * 1000, 0) },
    };
  } finally {
    await stop();
    await env.cleanup();
  }
}

async function main() {
  const out: Record<string, unknown> = { machine: machineInfo(), quick: QUICK, at: new Date().toISOString() };
  const named = await startNamed([FWD, REV]);
  try {
    const key = { name: named.keyName, algorithm: "hmac-sha256" as const, secret: Buffer.from(named.secret, "base64") };
    out.bind = await run("rfc2136", { type: "rfc2136", server: named.server, keyName: named.keyName, algorithm: "hmac-sha256", secret: named.secret }, named.port, new Rfc2136Backend(FWD, named.server, key));
  } finally {
    await named.cleanup();
  }
  const pdns = await startPdns([FWD, REV]);
  try {
    out.powerdns = await run("powerdns", { type: "powerdns", url: pdns.url, apiKey: pdns.apiKey }, pdns.port, new PowerDnsBackend(FWD, pdns.url, pdns.apiKey, "localhost"));
  } finally {
    await pdns.cleanup();
  }
  const text = JSON.stringify(out, null, 2);
  process.stdout.write(`${text}\n`);
  writeFileSync(fileURLToPath(new URL("dns-results.json", import.meta.url)), `${text}\n`);
}

await main();
