import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { checkZone } from "../../src/dns/check.js";
import { reverseZoneOf } from "../../src/dns/names.js";
import { startDnsPublisher } from "../../src/dns/publisher.js";
import { Rfc2136Backend } from "../../src/dns/rfc2136.js";
import { SERVER } from "../../src/engine/access.js";
import type { Engine } from "../../src/engine/engine.js";
import { ctx, tempEngine } from "../helpers.js";
import { type Named, dig, eventually, hasBind, quietLog, startNamed, until } from "./servers.js";

const FWD = "conflict.test";
const REV = reverseZoneOf("10.30.0.0/24");

let named: Named;
let env: Awaited<ReturnType<typeof tempEngine>>;
let engine: Engine;
let stopPublisher: (() => Promise<void>) | null = null;
let direct: Rfc2136Backend;

before(async () => {
  if (!hasBind) return;
  named = await startNamed([FWD, REV]);
  env = await tempEngine();
  engine = env.engine;
  await engine.createPool({ name: "lan", cidr: "10.30.0.0/24" }, ctx);
  const backend = { type: "rfc2136" as const, server: named.server, keyName: named.keyName, algorithm: "hmac-sha256", secret: named.secret };
  for (const name of [FWD, REV]) await engine.createDnsZone({ name, backend }, ctx);
  // someone else's records, written past Allot
  direct = new Rfc2136Backend(FWD, named.server, { name: named.keyName, algorithm: "hmac-sha256", secret: Buffer.from(named.secret, "base64") });
  stopPublisher = startDnsPublisher(engine, quietLog, 200);
});

after(async () => {
  if (!hasBind) return;
  await stopPublisher?.();
  await env.cleanup();
  await named.cleanup();
});

const opts = { skip: hasBind ? false : "named and dig are not installed (apt-get install bind9 bind9-dnsutils)" };

test("a foreign record is left alone and reported; check lists missing, stale and foreign; fix repairs Allot's own", opts, async () => {
  await direct.apply([{ name: `taken.${FWD}`, type: "A", ttl: 300, data: ["10.99.0.1"] }]);
  const web = await engine.allocate({ pool: "lan" }, { address: "10.30.0.10", hostname: "web" }, ctx);
  const old = await engine.allocate({ pool: "lan" }, { address: "10.30.0.11", hostname: "old" }, ctx);
  const taken = await engine.allocate({ pool: "lan" }, { address: "10.30.0.12", hostname: "taken" }, ctx);
  assert.equal(taken.allocation.hostname, "taken", "the allocation succeeds regardless");
  await until(named.port, `web.${FWD}`, "A", ["10.30.0.10"]);
  await until(named.port, `old.${FWD}`, "A", ["10.30.0.11"]);
  const zone = await eventually(async () => {
    const z = await engine.getDnsZone(FWD, SERVER);
    return z.conflicts === 1 && z.pending === 0 ? z : null;
  }, "the conflict to be reported");
  assert.equal(zone.failures, 0);
  assert.deepEqual(await dig(named.port, `taken.${FWD}`, "A"), ["10.99.0.1"], "not overwritten");
  const [conflict] = await engine.dnsConflicts(FWD, SERVER);
  assert.deepEqual({ ...conflict, at: undefined }, { zone: FWD, name: `taken.${FWD}`, type: "A", wanted: "10.30.0.12", found: ["10.99.0.1"], allocationId: taken.allocation.id, at: undefined });

  // drift: Allot's record removed behind its back, and a release not yet published
  await stopPublisher!();
  stopPublisher = null;
  await direct.apply([{ name: `web.${FWD}`, type: "A", ttl: 300, data: [] }]);
  await engine.release({ id: old.allocation.id }, ctx);
  const report = await checkZone(engine, FWD, SERVER, false);
  assert.equal(report.fixed, null);
  assert.deepEqual(report.missing.map((m) => `${m.name} ${m.wanted}`), [`web.${FWD} 10.30.0.10`]);
  assert.deepEqual(report.stale.map((m) => `${m.name} ${m.found.join(",")}`), [`old.${FWD} 10.30.0.11`]);
  assert.deepEqual(report.foreign.map((m) => `${m.name} ${m.found.join(",")} ${m.wanted}`), [`taken.${FWD} 10.99.0.1 10.30.0.12`]);

  const fixed = await checkZone(engine, FWD, ctx, true);
  assert.equal(fixed.fixed, 2);
  await until(named.port, `web.${FWD}`, "A", ["10.30.0.10"]);
  await until(named.port, `old.${FWD}`, "A", []);
  assert.deepEqual(await dig(named.port, `taken.${FWD}`, "A"), ["10.99.0.1"], "a repair leaves foreign records alone");
  const again = await checkZone(engine, FWD, SERVER, false);
  assert.deepEqual([again.missing.length, again.stale.length, again.foreign.length], [0, 0, 1]);

  // the pending release still goes out, harmlessly
  stopPublisher = startDnsPublisher(engine, quietLog, 200);
  await eventually(async () => (await engine.getDnsZone(FWD, SERVER)).pending === 0, "the queue to drain");
  const last = await checkZone(engine, FWD, SERVER, false);
  assert.deepEqual([last.missing.length, last.stale.length], [0, 0]);
  // the reverse zone never conflicted
  await until(named.port, `10.${REV}`, "PTR", [`web.${FWD}.`]);
  await until(named.port, `11.${REV}`, "PTR", []);
  assert.equal((await checkZone(engine, REV, SERVER, false)).missing.length, 0);
  void web;
});
