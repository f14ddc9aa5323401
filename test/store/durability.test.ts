import assert from "node:assert/strict";
import { SERVER } from "../../src/engine/access.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Engine } from "../../src/engine/engine.js";
import { PostgresStore } from "../../src/store/postgres/postgres-store.js";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { AUTH, STORE, tempPostgresDatabase } from "../helpers.js";
import { startServerProcess } from "../process-helpers.js";

interface Ack {
  owner: string;
  address: string;
  id: string;
}

/**
 * Clients allocate as fast as they can while the server is killed with SIGKILL mid-stream. Every
 * allocation the server acknowledged must be there after a restart, no address may be held twice,
 * and the free-space index must still agree with the allocations.
 */
test(`acknowledged allocations survive kill -9 of the server, round after round (${STORE})`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "allot-crash-"));
  const dataDir = join(dir, "data");
  const db = STORE === "postgres" ? await tempPostgresDatabase() : null;
  const env: Record<string, string> = db ? { ALLOT_DATABASE_URL: db.url } : {};
  const acked: Ack[] = [];
  try {
    let server = await startServerProcess(dataDir, env);
    const created = await fetch(`${server.url}/v1/pools`, {
      method: "POST",
      headers: { ...AUTH, "content-type": "application/json" },
      body: JSON.stringify({ name: "crash", cidr: "10.99.0.0/16" }),
    });
    assert.equal(created.status, 201);

    for (let round = 0; round < 3; round++) {
      let stop = false;
      const url = server.url;
      const client = async (c: number) => {
        for (let i = 0; !stop && i < 5000; i++) {
          const owner = `r${round}-c${c}-${i}`;
          try {
            const res = await fetch(`${url}/v1/pools/crash/allocations`, {
              method: "POST",
              headers: { ...AUTH, "content-type": "application/json" },
              body: JSON.stringify(i % 7 === 3 ? { owner, size: 3 } : { owner }),
            });
            if (res.status === 201) {
              const a = (await res.json()) as Ack;
              acked.push({ owner, address: a.address, id: a.id });
            }
          } catch {
            return; // connection refused or reset: the server is gone
          }
        }
      };
      const clients = Array.from({ length: 8 }, (_, c) => client(c));
      const before = acked.length;
      while (acked.length < before + 150) await new Promise((r) => setTimeout(r, 10));
      await server.stop("SIGKILL");
      stop = true;
      await Promise.all(clients);
      server = await startServerProcess(dataDir, env);
    }
    await server.stop();

    const engine = await Engine.open(db ? await PostgresStore.open({ url: db.url }) : new SqliteStore({ file: join(dataDir, "allot.db") }));
    try {
      const all = [];
      let after: string | undefined;
      for (;;) {
        const page = await engine.listAllocations({ pool: "crash" }, { limit: 1000, ...(after ? { after } : {}) }, SERVER);
        all.push(...page.items);
        if (!page.next) break;
        after = page.next;
      }
      const byOwner = new Map(all.map((a) => [a.owner, a]));
      for (const a of acked) {
        const found = byOwner.get(a.owner);
        assert.ok(found, `acknowledged allocation ${a.address} for ${a.owner} survived`);
        assert.equal(found.id, a.id);
        assert.equal(found.address, a.address);
      }
      const addresses = all.map((a) => a.address);
      assert.equal(new Set(addresses).size, addresses.length, "no address held twice");
      assert.deepEqual(await engine.check(), [], "free-space index agrees with allocations");
      assert.ok(acked.length >= 450, `enough load: ${acked.length} acknowledged`);
    } finally {
      await engine.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await db?.drop();
  }
});
