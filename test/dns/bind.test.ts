import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { reverseZoneOf } from "../../src/dns/names.js";
import { startDnsPublisher } from "../../src/dns/publisher.js";
import type { Engine } from "../../src/engine/engine.js";
import { SERVER } from "../../src/engine/access.js";
import { ctx, tempEngine } from "../helpers.js";
import { type Named, eventually, hasBind, quietLog, startNamed, until } from "./servers.js";

const FWD = "example.test";
const REV4 = reverseZoneOf("192.0.2.0/24"); // 2.0.192.in-addr.arpa
const REV6 = reverseZoneOf("fd00:1::/48"); // nibbles
const CLASSLESS = reverseZoneOf("198.51.100.0/25"); // 0-25.100.51.198.in-addr.arpa

let named: Named;
let env: Awaited<ReturnType<typeof tempEngine>>;
let engine: Engine;
let stopPublisher: () => Promise<void>;

before(async () => {
  if (!hasBind) return;
  named = await startNamed([FWD, REV4, REV6, CLASSLESS]);
  env = await tempEngine();
  engine = env.engine;
  await engine.createPool({ name: "hosts", cidr: "192.0.2.0/25" }, ctx);
  await engine.createPool({ name: "blocks", cidr: "192.0.2.128/25", attributes: { "dns.template": "host-{a}-{b}-{c}-{d}" } }, ctx);
  await engine.createPool({ name: "v6", cidr: "fd00:1::/64" }, ctx);
  await engine.createPool({ name: "small", cidr: "198.51.100.0/25" }, ctx);
  const backend = { type: "rfc2136" as const, server: named.server, keyName: named.keyName, algorithm: "hmac-sha256", secret: named.secret };
  for (const name of [FWD, REV4, REV6, CLASSLESS]) await engine.createDnsZone({ name, backend, ttl: 60 }, ctx);
  stopPublisher = startDnsPublisher(engine, quietLog, 200);
});

after(async () => {
  if (!hasBind) return;
  await stopPublisher();
  await env.cleanup();
  await named.cleanup();
});

const opts = { skip: hasBind ? false : "named and dig are not installed (apt-get install bind9 bind9-dnsutils)" };

test("reverse zone names: octets, RFC 2317 and nibbles", () => {
  assert.equal(REV4, "2.0.192.in-addr.arpa");
  assert.equal(CLASSLESS, "0-25.100.51.198.in-addr.arpa");
  assert.equal(REV6, "0.0.0.0.1.0.0.0.0.0.d.f.ip6.arpa");
  assert.equal(reverseZoneOf("10.0.0.0/8"), "10.in-addr.arpa");
});

test("BIND: a host name gets A and PTR; a rename moves them; a release removes them", opts, async () => {
  const { allocation } = await engine.allocate({ pool: "hosts" }, { hostname: "web1", owner: "vm-1" }, ctx);
  assert.equal(allocation.address, "192.0.2.1");
  await until(named.port, `web1.${FWD}`, "A", ["192.0.2.1"]);
  await until(named.port, `1.${REV4}`, "PTR", [`web1.${FWD}.`]);

  await engine.updateAllocation(allocation.id, { hostname: "web2" }, ctx);
  await until(named.port, `web2.${FWD}`, "A", ["192.0.2.1"]);
  await until(named.port, `web1.${FWD}`, "A", []);
  await until(named.port, `1.${REV4}`, "PTR", [`web2.${FWD}.`]);

  // a host name already in the zone is kept as it is
  await engine.updateAllocation(allocation.id, { hostname: `db.${FWD}` }, ctx);
  await until(named.port, `db.${FWD}`, "A", ["192.0.2.1"]);
  await until(named.port, `web2.${FWD}`, "A", []);

  await engine.release({ id: allocation.id }, ctx);
  await until(named.port, `db.${FWD}`, "A", []);
  await until(named.port, `1.${REV4}`, "PTR", []);

  // nothing for an allocation without a host name in a pool without a template
  const plain = await engine.allocate({ pool: "hosts" }, { owner: "vm-2" }, ctx);
  await eventually(async () => (await engine.getDnsZone(FWD, SERVER)).pending === 0, "the queue to drain");
  await until(named.port, `1.${REV4}`, "PTR", []);
  await engine.release({ id: plain.allocation.id }, ctx);
});

test("BIND: IPv6 gets AAAA and an ip6.arpa PTR; an RFC 2317 zone gets its PTR", opts, async () => {
  const v6 = await engine.allocate({ pool: "v6" }, { address: "fd00:1::10", hostname: "six" }, ctx);
  await until(named.port, `six.${FWD}`, "AAAA", ["fd00:1::10"]);
  await until(named.port, "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.0.0.d.f.ip6.arpa", "PTR", [`six.${FWD}.`]);
  const small = await engine.allocate({ pool: "small" }, { address: "198.51.100.5", hostname: "tiny" }, ctx);
  await until(named.port, `5.${CLASSLESS}`, "PTR", [`tiny.${FWD}.`]);
  await until(named.port, `tiny.${FWD}`, "A", ["198.51.100.5"]);
  await engine.release({ id: v6.allocation.id }, ctx);
  await engine.release({ id: small.allocation.id }, ctx);
  await until(named.port, `six.${FWD}`, "AAAA", []);
  await until(named.port, `5.${CLASSLESS}`, "PTR", []);
});

test("BIND: a block in a pool with a naming template gets a name per address", opts, async () => {
  const block = await engine.allocate({ pool: "blocks" }, { address: "192.0.2.132", size: 4, owner: "rack-1" }, ctx);
  for (const d of [132, 133, 134, 135]) {
    await until(named.port, `host-192-0-2-${d}.${FWD}`, "A", [`192.0.2.${d}`]);
    await until(named.port, `${d}.${REV4}`, "PTR", [`host-192-0-2-${d}.${FWD}.`]);
  }
  await engine.release({ id: block.allocation.id }, ctx);
  await until(named.port, `host-192-0-2-134.${FWD}`, "A", []);
  await until(named.port, `135.${REV4}`, "PTR", []);
});

test("BIND: a change made while named is down arrives once it is back", opts, async () => {
  await named.stop();
  const late = await engine.allocate({ pool: "hosts" }, { hostname: "late" }, ctx);
  const z = await eventually(async () => {
    const zone = await engine.getDnsZone(FWD, SERVER);
    return zone.failures > 0 ? zone : null;
  }, "a failed attempt");
  assert.match(z.lastError ?? "", /ECONNREFUSED|ECONNRESET|closed|no answer/);
  assert.ok(z.pending > 0);
  await named.start();
  await until(named.port, `late.${FWD}`, "A", [late.allocation.address], 60_000);
  await eventually(async () => {
    const zone = await engine.getDnsZone(FWD, SERVER);
    return zone.failures === 0 && zone.pending === 0 && zone.lastError === null;
  }, "the zone to recover");
  await engine.release({ id: late.allocation.id }, ctx);
  await until(named.port, `late.${FWD}`, "A", []);
});

test("BIND: a wrong key is a clear error on the zone; with the key fixed the records arrive", opts, async () => {
  const good = { type: "rfc2136" as const, server: named.server, keyName: named.keyName, algorithm: "hmac-sha256", secret: named.secret };
  const zone = await engine.updateDnsZone(FWD, { backend: { ...good, secret: Buffer.alloc(32, 7).toString("base64") } }, ctx);
  assert.equal(zone.backend.type === "rfc2136" && zone.backend.secretHint, `…${Buffer.alloc(32, 7).toString("base64").slice(-4)}`);
  const a = await engine.allocate({ pool: "hosts" }, { hostname: "keyed" }, ctx);
  const failed = await eventually(async () => {
    const z = await engine.getDnsZone(FWD, SERVER);
    return z.failures > 0 ? z : null;
  }, "the update to be refused");
  assert.match(failed.lastError ?? "", /NOTAUTH|BADSIG|TSIG/);
  assert.ok(!JSON.stringify(failed).includes(named.secret), "the secret is never shown");
  await engine.updateDnsZone(FWD, { backend: good }, ctx);
  await until(named.port, `keyed.${FWD}`, "A", [a.allocation.address]);
  await engine.release({ id: a.allocation.id }, ctx);
  await until(named.port, `keyed.${FWD}`, "A", []);
});
