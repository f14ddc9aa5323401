// Runs the test suites with node's test runner through tsx (node 20's --test neither expands globs
// nor picks up .ts files by itself). Every file runs on SQLite; the store contract suites (engine,
// store, api) run a second time on a real PostgreSQL server that this script starts and stops.
//   node scripts/test.mjs [substring…]     only files whose path contains one of the substrings
//   ALLOT_TEST_STORES=sqlite               skip the PostgreSQL pass
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { startPostgres } from "./pg-server.mjs";

const CONTRACT = ["test/engine/", "test/store/constraints", "test/store/durability", "test/store/group-commit", "test/api/", "test/dns/"];
/** Suites about what only a shared database allows (several servers on one store). */
const POSTGRES_ONLY = ["test/store/replicas", "test/store/unavailable", "test/store/export-import", "test/dns/two-servers"];
const filter = process.argv.slice(2);
const stores = (process.env.ALLOT_TEST_STORES ?? "sqlite,postgres").split(",");
const files = readdirSync("test", { recursive: true })
  .map(String)
  .filter((f) => f.endsWith(".test.ts"))
  .map((f) => join("test", f))
  .filter((f) => filter.length === 0 || filter.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error(`no test files match ${filter.join(" ")}`);
  process.exit(1);
}

// the OpenNebula driver's scripts run the compiled dist/ under plain node, as oned would: build it fresh
const built = spawnSync(process.execPath, ["scripts/build.mjs"], { stdio: "inherit" });
if (built.status !== 0) process.exit(built.status ?? 1);

let pg;
let status = 0;
try {
  if (stores.includes("postgres")) pg = await startPostgres();
  const env = { ...process.env, ...(pg ? { ALLOT_TEST_PG_URL: pg.url } : {}) };
  const run = (store, list) => {
    if (list.length === 0) return;
    console.log(`\n# ${list.length} test files on ${store}\n`);
    const r = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-concurrency=2", ...list], {
      stdio: "inherit",
      // the model-based test's sequences are ~10x slower over a network protocol: fewer of them on PostgreSQL
      env: { ...env, ALLOT_TEST_STORE: store, ...(store === "postgres" ? { PROPERTY_RUNS: process.env.PROPERTY_RUNS ?? "10", FUZZ_REQUESTS: process.env.FUZZ_REQUESTS ?? "2000" } : {}) },
    });
    if (r.status !== 0) status = r.status ?? 1;
  };
  if (stores.includes("sqlite")) run("sqlite", files.filter((f) => !POSTGRES_ONLY.some((c) => f.startsWith(c))));
  if (pg) run("postgres", files.filter((f) => [...CONTRACT, ...POSTGRES_ONLY].some((c) => f.startsWith(c))));
} finally {
  await pg?.stop();
}
process.exit(status);
