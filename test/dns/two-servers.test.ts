import assert from "node:assert/strict";
import { test } from "node:test";
import { reverseZoneOf } from "../../src/dns/names.js";
import { startDnsPublisher } from "../../src/dns/publisher.js";
import { Rfc2136Backend } from "../../src/dns/rfc2136.js";
import { SERVER } from "../../src/engine/access.js";
import { Engine } from "../../src/engine/engine.js";
import { SecretBox } from "../../src/engine/secrets.js";
import { STORE, TEST_SECRET_KEY, ctx, tempEngine } from "../helpers.js";
import { eventually, hasBind, quietLog, startNamed, until } from "./servers.js";

const FWD = "pair.test";
const REV = reverseZoneOf("10.50.0.0/16");

test("two servers on one PostgreSQL publish each change once in effect", { skip: !hasBind ? "named and dig are not installed" : STORE !== "postgres" ? "needs a shared PostgreSQL (ALLOT_TEST_STORES=postgres)" : false }, async () => {
  const named = await startNamed([FWD, REV]);
  const env = await tempEngine();
  const otherStore = await env.openAgain();
  const other = await Engine.open(otherStore, { secrets: new SecretBox(Buffer.from(TEST_SECRET_KEY, "hex")) });
  const engines = [env.engine, other];
  const stops: (() => Promise<void>)[] = [];
  try {
    await env.engine.createPool({ name: "lan", cidr: "10.50.0.0/24" }, ctx);
    const backend = { type: "rfc2136" as const, server: named.server, keyName: named.keyName, algorithm: "hmac-sha256", secret: named.secret };
    for (const name of [FWD, REV]) await env.engine.createDnsZone({ name, backend }, ctx);
    for (const e of engines) stops.push(startDnsPublisher(e, quietLog, 100));

    // changes made on both servers at once, each woken by the other's commits
    const n = 40;
    const made = await Promise.all(
      Array.from({ length: n }, (_, i) => engines[i % 2]!.allocate({ pool: "lan" }, { address: `10.50.0.${i + 10}`, hostname: `h${i}`, owner: `o${i}` }, ctx)),
    );
    await until(named.port, `h0.${FWD}`, "A", ["10.50.0.10"]);
    await until(named.port, `h${n - 1}.${FWD}`, "A", [`10.50.0.${n + 9}`]);
    for (const z of [FWD, REV]) {
      const zone = await eventually(async () => {
        const s = await env.engine.getDnsZone(z, SERVER);
        return s.pending === 0 ? s : null;
      }, `${z} to drain`);
      // one record change per allocation: no batch was sent by both servers
      assert.equal(zone.published, n, `${z}: ${zone.published} changes sent for ${n} allocations`);
      assert.equal(zone.failures, 0);
    }
    // renames on one server, releases on the other, interleaved
    await Promise.all(made.slice(0, 10).map((m, i) => engines[i % 2]!.updateAllocation(m.allocation.id, { hostname: `r${i}` }, ctx)));
    await Promise.all(made.slice(10, 20).map((m, i) => engines[(i + 1) % 2]!.release({ id: m.allocation.id }, ctx)));
    await until(named.port, `r9.${FWD}`, "A", ["10.50.0.19"]);
    await until(named.port, `h19.${FWD}`, "A", []);
    await eventually(async () => (await env.engine.getDnsZone(FWD, SERVER)).pending === 0 && (await env.engine.getDnsZone(REV, SERVER)).pending === 0, "both zones to drain");

    const direct = new Rfc2136Backend(FWD, named.server, { name: named.keyName, algorithm: "hmac-sha256", secret: Buffer.from(named.secret, "base64") });
    const a = (await direct.list()).filter((r) => r.type === "A" && r.name !== `ns1.${FWD}`).map((r) => `${r.name} ${r.data}`).sort();
    const want = [...Array.from({ length: 10 }, (_, i) => `r${i}.${FWD} 10.50.0.${i + 10}`), ...Array.from({ length: n - 20 }, (_, i) => `h${i + 20}.${FWD} 10.50.0.${i + 30}`)].sort();
    assert.deepEqual(a, want);
    const reverse = new Rfc2136Backend(REV, named.server, { name: named.keyName, algorithm: "hmac-sha256", secret: Buffer.from(named.secret, "base64") });
    assert.equal((await reverse.list()).filter((r) => r.type === "PTR").length, n - 10);
  } finally {
    for (const s of stops) await s();
    await other.close();
    await env.cleanup();
    await named.cleanup();
  }
});
