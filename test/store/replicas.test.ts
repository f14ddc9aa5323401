import assert from "node:assert/strict";
import { SERVER } from "../../src/engine/access.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parseAddress } from "../../src/addr/index.js";
import { Engine } from "../../src/engine/engine.js";
import type { Allocation } from "../../src/engine/types.js";
import { PostgresStore } from "../../src/store/postgres/postgres-store.js";
import { AUTH, tempPostgresDatabase } from "../helpers.js";
import { type ServerProcess, startServerProcess } from "../process-helpers.js";

const POOLS = ["rack-a", "rack-b"];
const CLIENTS = 32;
const ROUNDS = 12;

async function call(url: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: body === undefined ? AUTH : { ...AUTH, "content-type": "application/json" },
    body: body === undefined ? null : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Allocation & { code?: string } };
}

/**
 * Three servers on one PostgreSQL database, 32 clients spread over them, each doing a fixed mix of
 * next-free, same-owner retries, specific addresses, blocks and releases on two pools. Afterwards no
 * address is held twice, every acknowledged allocation that was not released is there, and the
 * free-space index agrees with the allocations.
 */
test("three servers on one PostgreSQL database never hand out an address twice", async () => {
  const db = await tempPostgresDatabase();
  const dir = mkdtempSync(join(tmpdir(), "allot-replicas-"));
  const servers: ServerProcess[] = [];
  const held = new Map<string, Allocation>(); // id -> acknowledged and not released
  try {
    for (let i = 0; i < 3; i++) servers.push(await startServerProcess(join(dir, `d${i}`), { ALLOT_DATABASE_URL: db.url }));
    for (const [i, name] of POOLS.entries()) {
      const r = await call(servers[0]!.url, "POST", "/v1/pools", { name, cidr: `10.${200 + i}.0.0/22` });
      assert.equal(r.status, 201);
    }
    const statuses: Record<string, number> = {};
    const count = (s: number) => (statuses[s] = (statuses[s] ?? 0) + 1);

    const client = async (c: number) => {
      const url = servers[c % servers.length]!.url;
      const pool = POOLS[c % POOLS.length]!;
      const mine: Allocation[] = [];
      for (let i = 0; i < ROUNDS; i++) {
        const owner = `c${c}-${i}`;
        const a = await call(url, "POST", `/v1/pools/${pool}/allocations`, { owner });
        count(a.status);
        assert.equal(a.status, 201, JSON.stringify(a.body));
        held.set(a.body.id, a.body);
        mine.push(a.body);
        // a retry through another server answers the same allocation
        const again = await call(servers[(c + 1) % servers.length]!.url, "POST", `/v1/pools/${pool}/allocations`, { owner });
        count(again.status);
        assert.equal(again.status, 200);
        assert.equal(again.body.id, a.body.id);
        // a specific address others may be racing for: exactly one of them gets it
        const poolIndex = POOLS.indexOf(pool);
        const s = await call(url, "POST", `/v1/pools/${pool}/allocations`, { address: `10.${200 + poolIndex}.3.${10 + (i % 8)}` });
        count(s.status);
        if (s.status === 201) held.set(s.body.id, s.body);
        else assert.equal(s.body.code, "address-unavailable");
        if (i % 3 === 0) {
          const b = await call(url, "POST", `/v1/pools/${pool}/allocations`, { size: 4 });
          count(b.status);
          assert.equal(b.status, 201);
          held.set(b.body.id, b.body);
        }
        if (i % 2 === 1) {
          const victim = mine.shift()!;
          const r = await call(url, "DELETE", `/v1/allocations/${victim.id}`);
          count(r.status);
          assert.equal(r.status, 200);
          held.delete(victim.id);
        }
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));
    assert.ok((statuses[201] ?? 0) > CLIENTS * ROUNDS, `work was done: ${JSON.stringify(statuses)}`);
  } finally {
    for (const s of servers) await s.stop();
    rmSync(dir, { recursive: true, force: true });
  }

  const engine = await Engine.open(await PostgresStore.open({ url: db.url }));
  try {
    const stored: Allocation[] = [];
    for (const pool of POOLS) {
      for (let after: string | undefined; ; ) {
        const page = await engine.listAllocations({ pool }, { limit: 1000, ...(after ? { after } : {}) }, SERVER);
        stored.push(...page.items);
        if (!page.next) break;
        after = page.next;
      }
    }
    // no address held twice: runs in address order never overlap
    const runs = stored.map((a) => ({ first: parseAddress(a.address).value, last: parseAddress(a.lastAddress).value })).sort((x, y) => (x.first < y.first ? -1 : 1));
    for (let i = 1; i < runs.length; i++) assert.ok(runs[i]!.first > runs[i - 1]!.last, "an address is held twice");
    // what was acknowledged and not released is exactly what is stored
    assert.deepEqual(new Set(stored.map((a) => a.id)), new Set(held.keys()));
    for (const a of stored) assert.equal(a.address, held.get(a.id)!.address);
    assert.deepEqual(await engine.check(), [], "free-space index and counters agree with the allocations");
  } finally {
    await engine.close();
    await db.drop();
  }
});
