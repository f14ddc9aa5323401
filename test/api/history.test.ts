import assert from "node:assert/strict";
import { SERVER } from "../../src/engine/access.js";
import { Engine } from "../../src/engine/engine.js";
import { test } from "node:test";
import { manualClock, tempApp } from "../helpers.js";

/**
 * History answers the questions an operator asks after the fact: who held this address at that
 * moment, what did this owner or that token do, what happened in this time window.
 */

const HOUR = 3600_000;

test("who held 10.0.0.5 at a given moment: the allocation live then, through reuse and blocks", async () => {
  const clock = manualClock(Date.parse("2026-11-01T08:00:00Z"));
  const env = await tempApp({}, { clock: clock.now });
  const { inject } = env;
  const at = (iso: string) => inject({ method: "GET", url: `/v1/history/holder?address=10.0.0.5&at=${encodeURIComponent(iso)}` });
  try {
    assert.equal((await inject({ method: "POST", url: "/v1/pools", payload: { name: "lab", cidr: "10.0.0.0/24" } })).statusCode, 201);
    // 09:00 vm-a takes 10.0.0.5; 11:00 it is released; 13:00 vm-b takes it; 15:00 vm-b lets go, and at 16:00
    // a block 10.0.0.4-10.0.0.7 (held by "rack-1") covers it
    clock.advance(HOUR);
    const a = (await inject({ method: "POST", url: "/v1/pools/lab/allocations", payload: { address: "10.0.0.5", owner: "vm-a", mac: "52:54:00:00:00:0a" } })).json();
    clock.advance(2 * HOUR);
    assert.equal((await inject({ method: "DELETE", url: "/v1/pools/lab/allocations?owner=vm-a" })).statusCode, 200);
    clock.advance(2 * HOUR);
    const b = (await inject({ method: "POST", url: "/v1/pools/lab/allocations", payload: { address: "10.0.0.5", owner: "vm-b" } })).json();
    clock.advance(2 * HOUR);
    await inject({ method: "DELETE", url: `/v1/allocations/${b.id}` });
    clock.advance(HOUR);
    const block = (await inject({ method: "POST", url: "/v1/pools/lab/allocations", payload: { address: "10.0.0.4", size: 4, owner: "rack-1" } })).json();
    assert.equal(block.lastAddress, "10.0.0.7");

    const holder = async (iso: string) => {
      const res = await at(iso);
      assert.equal(res.statusCode, 200, res.body);
      return res.json().holder as null | { allocation: { id: string; owner: string; mac: string | null }; allocatedAt: string; releasedAt: string | null };
    };
    assert.equal(await holder("2026-11-01T08:30:00Z"), null, "before anyone");
    const noon1 = await holder("2026-11-01T10:00:00Z");
    assert.equal(noon1?.allocation.id, a.id);
    assert.equal(noon1?.allocation.mac, "52:54:00:00:00:0a");
    assert.equal(noon1?.allocatedAt, "2026-11-01T09:00:00.000Z");
    assert.equal(noon1?.releasedAt, "2026-11-01T11:00:00.000Z");
    assert.equal(await holder("2026-11-01T12:00:00Z"), null, "between holders");
    assert.equal((await holder("2026-11-01T14:00:00+00:00"))?.allocation.owner, "vm-b");
    assert.equal(await holder("2026-11-01T15:30:00Z"), null);
    const now = await holder("2026-11-01T17:00:00Z");
    assert.equal(now?.allocation.owner, "rack-1", "the block covering the address");
    assert.equal(now?.releasedAt, null);

    // every change that touched the address, newest first
    const touched = (await inject({ method: "GET", url: "/v1/history?address=10.0.0.5" })).json().items;
    assert.deepEqual(touched.map((h: { action: string }) => h.action), ["allocate", "release", "allocate", "release", "allocate"]);
    // 10.0.0.6 was only ever in the block
    assert.equal((await inject({ method: "GET", url: "/v1/history?address=10.0.0.6" })).json().items.length, 1);

    const bad = await at("yesterday");
    assert.equal(bad.statusCode, 400);
    assert.match(bad.json().detail, /ISO 8601/);
  } finally {
    await env.cleanup();
  }
});

test("history filters by owner, actor, entity, pool and time window, and pages by seq", async () => {
  const clock = manualClock(Date.parse("2026-11-02T00:00:00Z"));
  const env = await tempApp({}, { clock: clock.now });
  const { inject, engine } = env;
  try {
    await inject({ method: "POST", url: "/v1/pools", payload: { name: "p1", cidr: "10.1.0.0/24" } });
    await inject({ method: "POST", url: "/v1/pools", payload: { name: "p2", cidr: "10.2.0.0/24" } });
    const other = await engine.createToken({ name: "robot", scope: "write" }, { actor: "test" });
    for (let i = 0; i < 6; i++) {
      clock.advance(HOUR);
      await inject({
        method: "POST",
        url: `/v1/pools/${i % 2 ? "p1" : "p2"}/allocations`,
        payload: { owner: `o-${i % 3}` },
        ...(i >= 3 ? { headers: { authorization: `Bearer ${other.token}` } } : {}),
      });
    }
    const q = async (qs: string) => {
      const res = await inject({ method: "GET", url: `/v1/history?${qs}` });
      assert.equal(res.statusCode, 200, res.body);
      return res.json().items as { seq: number; at: string; actor: string; action: string; entity: string; after: { owner?: string; pool?: string } }[];
    };
    assert.deepEqual((await q("owner=o-0")).map((h) => h.after.owner), ["o-0", "o-0"]);
    assert.equal((await q("actor=token:robot")).length, 3);
    assert.ok((await q("actor=token:robot")).every((h) => h.action === "allocate"));
    assert.equal((await q("entity=pool")).length, 2);
    assert.ok((await q("pool=p1&entity=allocation")).every((h) => h.after.pool === "p1"));
    const window = await q("from=2026-11-02T02:00:00Z&to=2026-11-02T04:00:00Z");
    assert.deepEqual(window.map((h) => h.at), ["2026-11-02T04:00:00.000Z", "2026-11-02T03:00:00.000Z", "2026-11-02T02:00:00.000Z"]);
    // pages: newest first, then everything below the last seq seen
    const page1 = await q("limit=3");
    const page2 = await q(`limit=3&before=${page1[2]!.seq}`);
    assert.ok(page2[0]!.seq < page1[2]!.seq);
    assert.equal(new Set([...page1, ...page2].map((h) => h.seq)).size, 6);
    assert.equal((await inject({ method: "GET", url: "/v1/history?entity=nonsense" })).statusCode, 400);
  } finally {
    await env.cleanup();
  }
});

test("retention deletes history older than the cutoff, and only that", async () => {
  const clock = manualClock(Date.parse("2026-10-01T00:00:00Z"));
  const env = await tempApp({}, { clock: clock.now });
  try {
    await env.inject({ method: "POST", url: "/v1/pools", payload: { name: "old", cidr: "10.3.0.0/24" } });
    clock.advance(40 * 24 * HOUR);
    await env.inject({ method: "POST", url: "/v1/pools/old/allocations", payload: {} });
    const before = await env.engine.history({ limit: 1000 }, SERVER);
    const removed = await env.engine.pruneHistory("2026-10-15T00:00:00Z");
    const after = await env.engine.history({ limit: 1000 }, SERVER);
    assert.equal(removed, before.filter((h) => h.at < "2026-10-15").length);
    assert.ok(removed >= 2);
    assert.ok(after.length > 0 && after.every((h) => h.at >= "2026-10-15"));
  } finally {
    await env.cleanup();
  }
});

test("retention removes only the oldest stretch: an entry stamped early by a slow clock takes no newer ones with it", async () => {
  const clock = manualClock(Date.parse("2026-10-01T00:00:00Z"));
  const env = await tempApp({}, { clock: clock.now });
  try {
    await env.inject({ method: "POST", url: "/v1/pools", payload: { name: "old", cidr: "10.3.0.0/24" } });
    clock.advance(40 * 24 * HOUR);
    await env.inject({ method: "POST", url: "/v1/pools/old/allocations", payload: { owner: "on-time" } });
    // a second server whose clock is six weeks slow
    const slow = await Engine.open(env.engine.store, { clock: () => Date.parse("2026-10-02T00:00:00Z") });
    await slow.allocate({ pool: "old" }, { owner: "slow-clock" }, { actor: "slow" });
    const before = await env.engine.history({ limit: 1000 }, SERVER);
    const removed = await env.engine.pruneHistory("2026-10-15T00:00:00Z");
    const after = await env.engine.history({ limit: 1000 }, SERVER);
    assert.equal(removed, before.filter((h) => h.at < "2026-10-01T01").length);
    assert.ok(removed >= 1);
    const owners = after.filter((h) => h.action === "allocate").map((h) => (h.after as { owner: string }).owner);
    assert.deepEqual(owners, ["slow-clock", "on-time"]);
  } finally {
    await env.cleanup();
  }
});
