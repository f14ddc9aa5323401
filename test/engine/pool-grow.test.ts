import assert from "node:assert/strict";
import { test } from "node:test";
import { SERVER } from "../../src/engine/access.js";
import { Engine } from "../../src/engine/engine.js";
import { AllotError } from "../../src/engine/errors.js";
import { ctx, tempEngine } from "../helpers.js";

const code = (p: Promise<unknown>) => p.then(() => "ok", (err: unknown) => (err instanceof AllotError ? `${err.code}: ${err.message}` : String(err)));

test("a pool grows by ranges: their addresses become free, the total and maps follow, and nothing else may be taken", async () => {
  const env = await tempEngine();
  try {
    const { engine } = env;
    await engine.createPool({ name: "grow", cidr: "10.200.0.0/30" }, ctx); // 2 usable
    await engine.createPool({ name: "neighbour", cidr: "10.200.8.0/24" }, ctx);
    for (let i = 0; i < 2; i++) await engine.allocate({ pool: "grow" }, {}, ctx);
    assert.match(await code(engine.allocate({ pool: "grow" }, {}, ctx)), /^pool-exhausted/);
    const map = await engine.poolMap({ pool: "grow" }, { cells: 4 }, SERVER); // kept, then brought up to date after the growth

    const grown = await engine.addRanges({ pool: "grow" }, [{ cidr: "10.200.1.0/29" }, { start: "10.200.2.10", end: "10.200.2.12", prefixLength: 24, gateway: "10.200.2.1" }], ctx);
    assert.deepEqual(grown.ranges.map((r) => r.cidr ?? `${r.start}-${r.end}`), ["10.200.0.0/30", "10.200.1.0/29", "10.200.2.10-10.200.2.12"]);
    assert.deepEqual([grown.usage.total, grown.usage.free], ["11", "9"]); // 2 + 6 + 3
    const next = await engine.allocate({ pool: "grow" }, {}, ctx);
    assert.equal(next.allocation.address, "10.200.1.1");
    assert.equal((await engine.allocate({ pool: "grow" }, { address: "10.200.2.11" }, ctx)).allocation.gateway, "10.200.2.1");
    assert.notDeepEqual((await engine.poolMap({ pool: "grow" }, { cells: 4 }, SERVER)).last, map.last, "the map covers the new ranges");
    assert.deepEqual(await engine.check(), []);
    assert.equal((await engine.history({ pool: { pool: "grow" }, entity: "pool", limit: 1 }, SERVER))[0]!.action, "grow");

    const refused: [Parameters<Engine["addRanges"]>[1], RegExp][] = [
      [[{ cidr: "10.200.0.0/31" }], /^invalid-range: ranges .* overlap/],
      [[{ cidr: "10.200.8.128/25" }], /^pool-overlap: 10\.200\.8\.128-10\.200\.8\.255 overlaps pool neighbour/],
      [[{ cidr: "2001:db8::/64" }], /^invalid-range: ranges: pool grow is IPv4/],
      [[{ cidr: "10.200.3.0/33" }], /^invalid-address: ranges\[0\]\.cidr/],
      [[], /^invalid-request: ranges: give 1 to 64/],
      // the second range fails after the first was written: the first goes with it
      [[{ cidr: "10.200.4.0/29" }, { cidr: "10.200.8.0/29" }], /^pool-overlap/],
    ];
    const before = await engine.getPool({ pool: "grow" }, SERVER);
    for (const [ranges, message] of refused) assert.match(await code(engine.addRanges({ pool: "grow" }, ranges, ctx)), message, JSON.stringify(ranges));
    assert.deepEqual(await engine.getPool({ pool: "grow" }, SERVER), before, "refusals change nothing");
    // a growth to the total the rolled-back one would have reached shows its own ranges
    const other = await engine.addRanges({ pool: "grow" }, [{ cidr: "10.200.5.0/29" }], ctx);
    assert.deepEqual(other.ranges.at(-1)!.cidr, "10.200.5.0/29");

    // another server on the same database sees the grown pool at once
    const second = await Engine.open(await env.openAgain());
    try {
      assert.deepEqual((await second.getPool({ pool: "grow" }, SERVER)).ranges.at(-1)!.cidr, "10.200.5.0/29");
      await second.addRanges({ pool: "grow" }, [{ cidr: "10.200.6.0/30" }], ctx);
      assert.equal((await engine.getPool({ pool: "grow" }, SERVER)).ranges.length, 5);
    } finally {
      await second.close();
    }

    const child = await engine.createChildPool({ pool: "neighbour" }, { name: "kid", prefixLength: 28 }, ctx);
    assert.match(await code(engine.addRanges({ pool: child.id }, [{ cidr: "10.201.0.0/24" }], ctx)), /^invalid-request: pool kid is a child pool/);
    // a pool-wide gateway goes only with ranges whose prefix holds it
    await engine.createPool({ name: "gw", cidr: "10.210.0.0/24", gateway: "10.210.0.1" }, ctx);
    const gw = await engine.addRanges({ pool: "gw" }, [{ cidr: "10.210.2.0/24" }, { start: "10.210.1.200", end: "10.210.1.210", prefixLength: 23 }], ctx);
    assert.deepEqual(gw.ranges.map((r) => r.gateway), ["10.210.0.1", null, "10.210.0.1"]);
    // a caller limited to another space cannot grow it
    assert.match(await code(engine.addRanges({ pool: "grow" }, [{ cidr: "10.202.0.0/24" }], { ...ctx, access: { name: "t", spaces: ["lab"] } })), /^forbidden/);
  } finally {
    await env.cleanup();
  }
});
