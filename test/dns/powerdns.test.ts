import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { reverseZoneOf } from "../../src/dns/names.js";
import { startDnsPublisher } from "../../src/dns/publisher.js";
import { SERVER } from "../../src/engine/access.js";
import type { Engine } from "../../src/engine/engine.js";
import { ctx, tempEngine } from "../helpers.js";
import { type Pdns, eventually, hasPdns, quietLog, startPdns, until } from "./servers.js";

const FWD = "pdns.test";
const REV4 = reverseZoneOf("10.20.0.0/16");
const REV6 = reverseZoneOf("fd00:2::/32");

let pdns: Pdns;
let env: Awaited<ReturnType<typeof tempEngine>>;
let engine: Engine;
let stopPublisher: () => Promise<void>;

before(async () => {
  if (!hasPdns) return;
  pdns = await startPdns([FWD, REV4, REV6]);
  env = await tempEngine();
  engine = env.engine;
  await engine.createPool({ name: "hosts", cidr: "10.20.1.0/24" }, ctx);
  await engine.createPool({ name: "v6", cidr: "fd00:2::/64", attributes: { "dns.template": "n-{ip}" } }, ctx);
  const backend = { type: "powerdns" as const, url: pdns.url, apiKey: pdns.apiKey };
  for (const name of [FWD, REV4, REV6]) await engine.createDnsZone({ name, backend, ttl: 120 }, ctx);
  stopPublisher = startDnsPublisher(engine, quietLog, 200);
});

after(async () => {
  if (!hasPdns) return;
  await stopPublisher();
  await env.cleanup();
  await pdns.cleanup();
});

const opts = { skip: hasPdns ? false : "pdns_server, sqlite3 or dig are not installed (apt-get install pdns-server pdns-backend-sqlite3 sqlite3 bind9-dnsutils)" };

test("PowerDNS: allocate, rename, release; a template names IPv6 addresses", opts, async () => {
  const { allocation } = await engine.allocate({ pool: "hosts" }, { address: "10.20.1.7", hostname: "app" }, ctx);
  await until(pdns.port, `app.${FWD}`, "A", ["10.20.1.7"]);
  await until(pdns.port, `7.1.20.10.in-addr.arpa`, "PTR", [`app.${FWD}.`]);
  await engine.updateAllocation(allocation.id, { hostname: "api" }, ctx);
  await until(pdns.port, `api.${FWD}`, "A", ["10.20.1.7"]);
  await until(pdns.port, `app.${FWD}`, "A", []);
  await until(pdns.port, `7.1.20.10.in-addr.arpa`, "PTR", [`api.${FWD}.`]);
  await engine.release({ id: allocation.id }, ctx);
  await until(pdns.port, `api.${FWD}`, "A", []);
  await until(pdns.port, `7.1.20.10.in-addr.arpa`, "PTR", []);

  const six = await engine.allocate({ pool: "v6" }, { address: "fd00:2::5" }, ctx);
  await until(pdns.port, `n-fd00-2--5.${FWD}`, "AAAA", ["fd00:2::5"]);
  await until(pdns.port, "5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.0.0.d.f.ip6.arpa", "PTR", [`n-fd00-2--5.${FWD}.`]);
  await engine.release({ id: six.allocation.id }, ctx);
  await until(pdns.port, `n-fd00-2--5.${FWD}`, "AAAA", []);
});

test("PowerDNS: a wrong API key is a clear error; fixed, the records arrive", opts, async () => {
  await engine.updateDnsZone(FWD, { backend: { type: "powerdns", url: pdns.url, apiKey: "wrong-key-wrong-key" } }, ctx);
  const a = await engine.allocate({ pool: "hosts" }, { hostname: "late" }, ctx);
  const failed = await eventually(async () => {
    const z = await engine.getDnsZone(FWD, SERVER);
    return z.failures > 0 ? z : null;
  }, "the PATCH to be refused");
  assert.match(failed.lastError ?? "", /HTTP 401/);
  await engine.updateDnsZone(FWD, { backend: { type: "powerdns", url: pdns.url, apiKey: pdns.apiKey } }, ctx);
  await until(pdns.port, `late.${FWD}`, "A", [a.allocation.address]);
});
