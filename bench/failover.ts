/**
 * How long Allot is without service when its PostgreSQL primary dies: the scenario of
 * test/ha/failover.test.ts run once (a Patroni/etcd/HAProxy cluster of two nodes with synchronous
 * replication, two Allot servers, 32 clients allocating, the primary's postmaster SIGKILLed). Records the
 * time from the kill to the first acknowledged allocation sent after it, how many allocations were
 * acknowledged, and how many of those were lost afterwards (must be 0). Writes bench/failover-results.json.
 * BENCH_QUICK=1 runs the load for less time around the kill.
 */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { runFailover } from "../test/ha/failover-scenario.js";
import { load } from "./lib.js";

const QUICK = process.env.BENCH_QUICK === "1";
const r = await runFailover({
  beforeKillMs: QUICK ? 2000 : 10_000,
  afterRecoveryMs: QUICK ? 2000 : 10_000,
  log: (line) => process.stderr.write(`# ${line}\n`),
});
const out = {
  quick: QUICK,
  clients: 32,
  clusterReadyMs: r.clusterReadyMs,
  failoverMs: r.failoverMs,
  primaryBefore: r.primaryBefore,
  primaryAfter: r.primaryAfter,
  acknowledged: r.acknowledged,
  acknowledgedOnRetry: r.acknowledgedOnRetry,
  acknowledgedThenLost: r.lost.length,
  heldTwice: r.heldTwice.length,
  requests: r.requests,
  unavailable503: r.unavailable,
  unexpectedFailures: r.unexpected.length,
  checkExitCode: r.check.code,
  loadAverage: load(),
};
process.stdout.write(
  `failover: writes acknowledged again ${r.failoverMs} ms after the primary was killed (${r.primaryBefore} → ${r.primaryAfter}); ` +
    `${r.acknowledged} acknowledged, ${r.lost.length} lost, ${r.unavailable} answers 503, ${r.unexpected.length} other failures\n`,
);
writeFileSync(fileURLToPath(new URL(QUICK ? "./failover-results-quick.json" : "./failover-results.json", import.meta.url)), `${JSON.stringify(out, null, 2)}\n`);
if (r.lost.length > 0 || r.heldTwice.length > 0 || r.unexpected.length > 0 || r.check.code !== 0) {
  process.stderr.write(`${[...r.lost, ...r.heldTwice, ...r.unexpected, r.check.output].join("\n")}\n`);
  process.exit(1);
}
