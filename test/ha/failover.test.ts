import assert from "node:assert/strict";
import { test } from "node:test";
import { runFailover } from "./failover-scenario.js";

/**
 * The primary of a real PostgreSQL HA cluster (Debian's Patroni, etcd and HAProxy, two nodes with
 * synchronous replication, all on loopback: deploy/postgres-ha/) is killed while 32 clients allocate
 * through two Allot servers. Requests meet 503 store-unavailable until the standby takes over, the
 * servers recover by themselves, and nothing acknowledged is lost.
 */
test("the PostgreSQL primary killed under load: 503 meanwhile, nothing acknowledged lost, servers recover", { timeout: 240_000 }, async (t) => {
  const r = await runFailover({ log: (line) => t.diagnostic(line) });
  t.diagnostic(
    `failover: writes acknowledged again ${r.failoverMs} ms after the primary's postmaster was killed (${r.primaryBefore} → ${r.primaryAfter}); ` +
      `${r.acknowledged} allocations acknowledged (${r.acknowledgedOnRetry} on a retry of a request seen to fail), ${r.unavailable} answers 503 of ${r.requests} requests, lost ${r.lost.length}`,
  );
  assert.notEqual(r.failoverMs, null, "writes succeed again after the kill");
  assert.ok(r.primaryAfter === "pg1" || r.primaryAfter === "pg2", `a primary after the kill: ${r.primaryAfter}`);
  assert.ok(r.unavailable > 0, "some requests met the failover");
  assert.deepEqual(r.unexpected, [], "every failure was 503 store-unavailable, never a connection error or another status");
  assert.deepEqual(r.lost, [], "every acknowledged allocation is held, at its address");
  assert.deepEqual(r.heldTwice, [], "no address held twice");
  assert.equal(r.check.code, 0, r.check.output);
  assert.ok(r.serversRunning, "both servers still run (never restarted)");
  assert.deepEqual(r.afterStatuses, [201, 201], "both servers allocate afterwards");
});
