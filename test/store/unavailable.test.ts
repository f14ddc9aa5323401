import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { startPostgres } from "../../scripts/pg-server.mjs";
import { allot, startServerProcess } from "../process-helpers.js";
import { AUTH } from "../helpers.js";

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
