import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type AddressInfo, createServer } from "node:net";
import { test } from "node:test";
import { startPostgres } from "../../scripts/pg-server.mjs";
import { allot, startServerProcess } from "../process-helpers.js";
import pg from "pg";
import { AUTH, tempPostgresDatabase } from "../helpers.js";

test("a database that goes away gives 503 with the reason, and nothing half-made", async () => {
  const dir = mkdtempSync(join(tmpdir(), "allot-unavail-"));
  const pg = await startPostgres();
  let stopped = false;
  const server = await startServerProcess(join(dir, "data"), { ALLOT_DATABASE_URL: pg.url });
  try {
    const post = (path: string, body: unknown) =>
      fetch(`${server.url}${path}`, { method: "POST", headers: { ...AUTH, "content-type": "application/json" }, body: JSON.stringify(body) });
    assert.equal((await post("/v1/pools", { name: "p", cidr: "10.8.0.0/24" })).status, 201);
    await pg.stop();
    stopped = true;
    const res = await post("/v1/pools/p/allocations", { owner: "x" });
    assert.equal(res.status, 503);
    const problem = (await res.json()) as { code: string; detail: string };
    assert.equal(problem.code, "store-unavailable");
    assert.match(problem.detail, /cannot be reached|connection to the database was lost|shutting down/);
  } finally {
    await server.stop();
    if (!stopped) await pg.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a wrong password or unknown database stops the start with the reason", () => {
  const admin = new URL(process.env.ALLOT_TEST_PG_URL!);
  const wrong = new URL(admin);
  wrong.password = "not-the-password";
  const r = allot(["serve", "--port", "0", "--database-url", wrong.toString()]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /cannot open the PostgreSQL database at postgres:\/\/postgres:\*\*\*@.*: the password is wrong/);
  assert.doesNotMatch(r.stderr, /not-the-password/, "the password is never printed");

  const nodb = new URL(admin);
  nodb.pathname = "/no_such_db";
  const r2 = allot(["serve", "--port", "0", "--database-url", nodb.toString()]);
  assert.equal(r2.code, 2);
  assert.match(r2.stderr, /the database does not exist/);
});

test("connections ended under write load answer 503 and the server recovers by itself", async () => {
  const dir = mkdtempSync(join(tmpdir(), "allot-unavail-"));
  const db = await tempPostgresDatabase();
  const app = `allot-kill-${process.pid}`;
  const url = new URL(db.url);
  url.searchParams.set("application_name", app);
  const server = await startServerProcess(join(dir, "data"), { ALLOT_DATABASE_URL: url.toString() });
  const admin = new pg.Client({ connectionString: process.env.ALLOT_TEST_PG_URL });
  await admin.connect();
  try {
    const post = (path: string, body: unknown) =>
      fetch(`${server.url}${path}`, { method: "POST", headers: { ...AUTH, "content-type": "application/json" }, body: JSON.stringify(body) });
    assert.equal((await post("/v1/pools", { name: "p", cidr: "10.9.0.0/16" })).status, 201);
    const acknowledged: string[] = [];
    const statuses = new Map<number, number>();
    let stop = false;
    let n = 0;
    const writer = async () => {
      while (!stop) {
        const owner = `o${n++}`;
        const res = await post("/v1/pools/p/allocations", { owner }).catch(() => null);
        if (res === null) continue;
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (res.status === 201) acknowledged.push(((await res.json()) as { address: string }).address);
        else {
          const problem = (await res.json()) as { code: string };
          assert.equal(res.status, 503, JSON.stringify(problem));
          assert.equal(problem.code, "store-unavailable");
        }
      }
    };
    const writers = Array.from({ length: 16 }, writer);
    // end every connection of the server's several times while requests are writing
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 300));
      await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", [app]);
    }
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await Promise.all(writers);
    assert.equal(server.proc.exitCode, null, "the server is still running");
    assert.ok((statuses.get(503) ?? 0) > 0, `some requests met the ended connections: ${JSON.stringify([...statuses])}`);
    // recovered on its own: the next writes succeed
    const after = await post("/v1/pools/p/allocations", { owner: "after" });
    assert.equal(after.status, 201);
    const items: string[] = [];
    for (let after: string | null = ""; after !== null; ) {
      const page = (await (await fetch(`${server.url}/v1/pools/p/allocations?limit=1000${after ? `&after=${after}` : ""}`, { headers: AUTH })).json()) as {
        items: { address: string }[];
        next: string | null;
      };
      items.push(...page.items.map((a) => a.address));
      after = page.next;
    }
    const held = new Set(items);
    for (const a of acknowledged) assert.ok(held.has(a), `acknowledged ${a} is held`);
    assert.equal(held.size, items.length, "no address twice");
  } finally {
    await admin.end();
    await server.stop();
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("/readyz answers 503 naming a read-only database, and 200 once it takes writes again", async () => {
  const dir = mkdtempSync(join(tmpdir(), "allot-unavail-"));
  // a database of its own: default_transaction_read_only is set per database, as an operator might
  const name = `allot_ro_${process.pid}_${Date.now()}`;
  const admin = new pg.Client({ connectionString: process.env.ALLOT_TEST_PG_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(process.env.ALLOT_TEST_PG_URL!);
  url.pathname = `/${name}`;
  const server = await startServerProcess(join(dir, "data"), { ALLOT_DATABASE_URL: url.toString() });
  // settings reach new sessions only: end the server's, and its pool opens fresh ones
  const reconnect = () => admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", [name]);
  const readyzBecomes = async (status: number) => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const res = await fetch(`${server.url}/readyz`);
      const body = (await res.json()) as { status: string; reason?: string };
      if ((res.status === status && (status === 200 || /read-only/.test(body.reason ?? ""))) || Date.now() > deadline) return { status: res.status, body };
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  try {
    assert.equal((await readyzBecomes(200)).status, 200);
    await admin.query(`ALTER DATABASE ${name} SET default_transaction_read_only = on`);
    await reconnect();
    const down = await readyzBecomes(503);
    assert.equal(down.status, 503, JSON.stringify(down.body));
    assert.match(down.body.reason!, /the database is read-only .*transaction_read_only is on/);
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200, "liveness is not readiness");

    await admin.query(`ALTER DATABASE ${name} RESET default_transaction_read_only`);
    await reconnect();
    assert.equal((await readyzBecomes(200)).status, 200);
  } finally {
    await server.stop();
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a database that accepts connections and never answers stops the start within the connect timeout, with the reason", async () => {
  // the kernel completes the TCP handshake; nothing ever answers PostgreSQL's start-up message
  const silent = createServer(() => {});
  await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
  try {
    const port = (silent.address() as AddressInfo).port;
    const t0 = Date.now();
    const r = allot(["serve", "--port", "0", "--database-url", `postgres://allot:secret@127.0.0.1:${port}/allot`]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /cannot open the PostgreSQL database at postgres:\/\/allot:\*\*\*@127\.0\.0\.1:\d+\/allot: it did not answer within 10 s/);
    assert.ok(Date.now() - t0 < 40_000, `gave up after ${Date.now() - t0} ms`);
  } finally {
    silent.close();
  }
});

test("a transaction left open by a stopped server ends by itself, so its pool's lock is not held for ever", async () => {
  const db = await tempPostgresDatabase();
  const { PostgresStore } = await import("../../src/store/postgres/postgres-store.js");
  const store = await PostgresStore.open({ url: db.url });
  try {
    const row = await store.read((sql) => sql.get<{ t: string }>("SELECT current_setting('idle_in_transaction_session_timeout') AS t"));
    assert.equal(row?.t, "1min");
  } finally {
    await store.close();
    await db.drop();
  }
});
