/**
 * Allot benchmark: `npm run bench`.
 *
 * Every figure is measured on real SQLite files in a fresh temporary directory, through the public
 * Engine methods (one transaction, and with synchronous=FULL one fsync, per operation) or the real
 * HTTP server. Pools are filled and fragmented beforehand in big transactions by bench/fill.ts.
 * Progress goes to stderr; the tables go to stdout; every figure also goes to bench/results.json.
 *
 * BENCH_QUICK=1 runs a scaled-down version (smaller fills and fewer operations) for trying changes;
 * BENCH_ONLY=scale runs only the limits, the HTTP load and the bulk requests.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runInNewContext } from "node:vm";
import { setFlagsFromString } from "node:v8";
import pg from "pg";
import { AUTH } from "../test/helpers.js";
import { type Family, formatAddress } from "../src/addr/index.js";
import { Engine } from "../src/engine/engine.js";
import type { PoolInput, PoolRef } from "../src/engine/types.js";
import { SqliteStore } from "../src/store/sqlite/sqlite-store.js";
import { startPostgres } from "../scripts/pg-server.mjs";
import { carveChildren, deleteEveryNthChild, fillPool, fragment } from "./fill.js";
import { measureDriver } from "./opennebula.js";
import { fsyncRate, postgresBulkInsert, postgresInsertRate, sqliteBulkInsert, sqliteInsertRate } from "./limits.js";
import { type BulkRow, type Deployment, type LoadRow, bulkRequest, createPool, deploy, loadHealth, loadPools } from "./scale.js";
import {
  type LatencyStats,
  MiB,
  dbSizes,
  fmtDuration,
  fmtNum,
  machineInfo,
  memory,
  pickDistinct,
  prng,
  load,
  round,
  summarize,
  tableSizes,
  table,
  timeSerial,
  usSince,
} from "./lib.js";

type Sync = "full" | "normal";

const QUICK = process.env.BENCH_QUICK === "1";
/** BENCH_ONLY=scale: only the limits, HTTP and bulk runs (to bench/scale-results.json), for changes to the stores. */
const SCALE_ONLY = process.env.BENCH_ONLY === "scale";
const CONFIG = {
  quick: QUICK,
  /** Timed operations per lowest-free measurement, after `warmup` untimed ones. */
  lowestFreeOps: QUICK ? 300 : 2_000,
  warmup: QUICK ? 50 : 200,
  /**
   * Wall-clock budget per timed loop (ms): a loop stops early once it is spent (after at least 20
   * operations), so a slow operation cannot stretch the run past ~10 minutes; tables show n timed.
   */
  lowestFreeBudgetMs: QUICK ? 3_000 : 20_000,
  opBudgetMs: QUICK ? 2_000 : 10_000,
  v4Fills: QUICK ? [1_000, 10_000, 100_000] : [1_000, 10_000, 100_000, 1_000_000],
  v6Fills: QUICK ? [1_000, 100_000] : [1_000, 1_000_000],
  /** Every n-th address of a fill is released again, leaving fill/n single-address holes. */
  fragmentEvery: 10,
  fillBatch: 20_000,
  specificOps: QUICK ? 200 : 1_000,
  releaseOps: QUICK ? 200 : 1_000,
  blockOps: QUICK ? 200 : 1_000,
  blockSize: 16,
  carveChildren: QUICK ? 2_000 : 20_000,
  carveEvery: 10,
  carveOps: QUICK ? 100 : 500,
  carveWarmup: QUICK ? 10 : 20,
  /** Milliseconds per limit measurement (fsync, plain inserts). */
  limitMs: QUICK ? 2_000 : 5_000,
  /** Concurrent clients of the durable HTTP runs and of the plain-insert limits set against them. */
  concurrencies: [1, 32],
  httpWarmupMs: QUICK ? 500 : 1_000,
  httpDurationMs: QUICK ? 3_000 : 10_000,
  /** PostgreSQL deployments: this many `allot serve` processes on one database. */
  replicas: [1, 3],
  bulkCount: 100_000,
  /** OpenNebula driver rounds: register, 4 gets, an allocate, 3 frees, unregister each. */
  oneRounds: QUICK ? 3 : 20,
  bulkRepeats: QUICK ? 1 : 3,
  /** The target for one request of 100,000 separate addresses on SQLite, in seconds. */
  bulkTargetSeconds: 2,
  v4Cidr: "10.0.0.0/8",
  v6Cidr: "fd00:0:1::/48",
};
const BIG_V4 = CONFIG.v4Fills[CONFIG.v4Fills.length - 1]!;
const CTX = { actor: "bench" };

const runStart = process.hrtime.bigint();
const progress = (msg: string) => process.stderr.write(`[${(usSince(runStart) / 1e6).toFixed(1).padStart(6)} s] ${msg}\n`);

/** A full collection before reading RSS, so garbage from earlier scenarios does not count (best effort). */
function collectGarbage(): void {
  try {
    setFlagsFromString("--expose-gc");
    (runInNewContext("gc") as () => void)();
  } catch {
    /* without gc the figure is only a little noisier */
  }
}

async function openEngine(file: string, synchronous: Sync): Promise<Engine> {
  return Engine.open(new SqliteStore({ file, synchronous }));
}

// ---------------------------------------------------------------------------------------------- results

interface LowestFreeRow extends LatencyStats {
  family: Family;
  cidr: string;
  fill: number;
  synchronous: Sync;
  /** Free runs in the pool's index when the timed loop started (holes left by the fragmentation, plus the tail). */
  freeRunsAtStart: number;
}
interface SetupRow {
  family: Family;
  fill: number;
  fillSeconds: number;
  fillAllocsPerSec: number;
  fragmentSeconds: number;
  released: number;
  dbFileMiB: number;
}
interface OpRow extends LatencyStats {
  operation: string;
  synchronous: Sync;
}

const results = {
  generatedAt: new Date().toISOString(),
  totalRunSeconds: 0,
  machine: machineInfo(),
  /** Load averages (1, 5, 15 min) before and after: the run shares the machine with whatever else runs. */
  loadAverage: { atStart: load(), atEnd: [] as number[] },
  config: CONFIG,
  lowestFree: [] as LowestFreeRow[],
  ratios: {} as Record<string, number>,
  setup: [] as SetupRow[],
  operationsAt1M: { fill: BIG_V4, rows: [] as OpRow[] },
  carve: { parent: CONFIG.v4Cidr, childrenCarved: 0, childrenDeleted: 0, setupSeconds: 0, rows: [] as OpRow[] },
  /** This machine's limits, measured in this run. */
  limits: {
    fsync: null as null | LatencyStats,
    plainInsert: [] as (LatencyStats & { store: "sqlite" | "postgres"; concurrency: number })[],
    plainBulk: [] as { store: "sqlite" | "postgres"; rows: number; seconds: number }[],
  },
  /** Durable allocations through the HTTP API, each with its ratio to the plain insert rate at the same concurrency. */
  http: [] as (LoadRow & { plainPerSec: number; ratioToPlain: number })[],
  /** GET /healthz on the SQLite server: the HTTP stack's own cost per request, under every API figure. */
  httpFloor: [] as (LatencyStats & { concurrency: number })[],
  bulk: [] as (BulkRow & { plainSeconds: number; ratioToPlain: number })[],
  /** OpenNebula driver actions, a process each, against the SQLite server. */
  opennebula: {} as Record<string, LatencyStats>,
  memory: {
    rssAtStartMiB: 0,
    afterBigFill: null as null | { fill: number; rssMiB: number; heapUsedMiB: number; externalMiB: number },
    /** Sizes after the WAL was checkpointed into the main file (the store closed). */
    dbFiles: [] as { what: string; dbMiB: number; walMiB: number }[],
    /** Where the bytes of the largest IPv4 database go, per table with its indexes. */
    bigFillTables: [] as { table: string; MiB: number }[],
  },
};

// ---------------------------------------------------------------------------------------------- scenarios

const dir = mkdtempSync(join(tmpdir(), "allot-bench-"));
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    rmSync(dir, { recursive: true, force: true });
    process.exit(signal === "SIGINT" ? 130 : 143);
  });
}

async function lowestFree(engine: Engine, ref: PoolRef, family: Family, cidr: string, fill: number, synchronous: Sync): Promise<void> {
  const freeRunsAtStart = (await engine.freeRuns(ref)).length;
  const stats = await timeSerial({ n: CONFIG.lowestFreeOps, warmup: CONFIG.warmup, budgetMs: CONFIG.lowestFreeBudgetMs }, () => engine.allocate(ref, {}, CTX));
  results.lowestFree.push({ family, cidr, fill, synchronous, freeRunsAtStart, ...stats });
  progress(`  lowest-free ${synchronous}: p50 ${stats.p50Us} µs, p99 ${stats.p99Us} µs, ${stats.opsPerSec} ops/s`);
}

/** The specific-address, release and block measurements on the 1M pool, for one durability setting. */
async function operationsAtBig(engine: Engine, ref: PoolRef, first: bigint, synchronous: Sync, picks: { holes: number[]; held: number[] }): Promise<void> {
  const at = (offset: number) => formatAddress({ family: 4, value: first + BigInt(offset) });
  const rows = results.operationsAt1M.rows;
  // specific: free holes from the upper half of the fill, which lowest-free never reached
  const spec = await timeSerial({ n: CONFIG.specificOps, warmup: 0, budgetMs: CONFIG.opBudgetMs }, (i) => engine.allocate(ref, { address: at(picks.holes[i]!) }, CTX));
  rows.push({ operation: "allocate specific address", synchronous, ...spec });
  // release by address: held addresses from the upper half (their neighbours are a mix of held and free)
  const rel = await timeSerial({ n: CONFIG.releaseOps, warmup: 0, budgetMs: CONFIG.opBudgetMs }, (i) => engine.release({ pool: ref, address: at(picks.held[i]!) }, CTX));
  rows.push({ operation: "release by address", synchronous, ...rel });
  const block = await timeSerial({ n: CONFIG.blockOps, warmup: 50, budgetMs: CONFIG.opBudgetMs }, () => engine.allocate(ref, { size: CONFIG.blockSize }, CTX));
  rows.push({ operation: `allocate block of ${CONFIG.blockSize}`, synchronous, ...block });
  progress(`  ${synchronous}: specific p50 ${spec.p50Us} µs, release p50 ${rel.p50Us} µs, block p50 ${block.p50Us} µs`);
}

async function fillScenario(family: Family, fill: number): Promise<void> {
  const cidr = family === 4 ? CONFIG.v4Cidr : CONFIG.v6Cidr;
  const file = join(dir, `v${family}-${fill}.db`);
  const ref: PoolRef = { pool: "bench" };
  progress(`IPv${family} ${cidr}, fill ${fmtNum(fill)}: ${file}`);

  let engine = await openEngine(file, "full");
  const input: PoolInput = { name: "bench", cidr, allocateReserved: false };
  await engine.createPool(input, CTX);

  let t0 = process.hrtime.bigint();
  const first = await fillPool(engine.store, ref, fill, CONFIG.fillBatch);
  const fillSeconds = usSince(t0) / 1e6;
  progress(`  filled in ${fillSeconds.toFixed(1)} s`);
  const isBig = family === 4 && fill === BIG_V4;
  if (isBig) {
    collectGarbage();
    results.memory.afterBigFill = { fill, ...memory() };
  }
  t0 = process.hrtime.bigint();
  const released = await fragment(engine.store, ref, first, fill, CONFIG.fragmentEvery, CONFIG.fillBatch);
  const fragmentSeconds = usSince(t0) / 1e6;
  progress(`  released every ${CONFIG.fragmentEvery}th (${fmtNum(released)}) in ${fragmentSeconds.toFixed(1)} s`);
  // the file as filled and fragmented: closing the last connection checkpoints the WAL into it
  await engine.close();
  const size = dbSizes(file);
  results.memory.dbFiles.push({ what: `IPv${family} pool, ${fmtNum(fill)} allocated then ${fmtNum(released)} released`, dbMiB: round(size.db / MiB, 1), walMiB: round(size.wal / MiB, 1) });
  if (isBig) results.memory.bigFillTables = tableSizes(file);
  engine = await openEngine(file, "full");

  // address picks for the 1M operations, made up front so both durability settings get fresh ones
  const rand = prng(0xa110 + fill);
  const half = Math.floor(fill / 2);
  const every = CONFIG.fragmentEvery;
  const holes = isBig ? pickDistinct(rand, 2 * CONFIG.specificOps, half, fill, (k) => k % every === every - 1) : [];
  const held = isBig ? pickDistinct(rand, 2 * CONFIG.releaseOps, half, fill, (k) => k % every !== every - 1) : [];

  await lowestFree(engine, ref, family, cidr, fill, "full");
  if (isBig) {
    await operationsAtBig(engine, ref, first, "full", { holes: holes.slice(0, CONFIG.specificOps), held: held.slice(0, CONFIG.releaseOps) });
  }
  await engine.close();
  results.setup.push({
    family,
    fill,
    fillSeconds: round(fillSeconds, 2),
    fillAllocsPerSec: Math.round(fill / fillSeconds),
    fragmentSeconds: round(fragmentSeconds, 2),
    released,
    dbFileMiB: round(size.db / MiB, 1),
  });

  engine = await openEngine(file, "normal");
  await lowestFree(engine, ref, family, cidr, fill, "normal");
  if (isBig) {
    await operationsAtBig(engine, ref, first, "normal", { holes: holes.slice(CONFIG.specificOps), held: held.slice(CONFIG.releaseOps) });
  }
  await engine.close();
  rmSync(file, { force: true }); // keep the temp dir small as we go
}

async function carveScenario(): Promise<void> {
  const file = join(dir, "carve.db");
  const parent: PoolRef = { pool: "parent" };
  progress(`child pools: /24 carves from ${CONFIG.v4Cidr} holding ${fmtNum(CONFIG.carveChildren)} children: ${file}`);
  let engine = await openEngine(file, "full");
  await engine.createPool({ name: "parent", cidr: CONFIG.v4Cidr, allocateReserved: false }, CTX);
  const t0 = process.hrtime.bigint();
  await carveChildren(engine.store, parent, CONFIG.carveChildren, 24, "child-");
  const deleted = await deleteEveryNthChild(engine.store, CONFIG.carveChildren, CONFIG.carveEvery, "child-");
  results.carve.childrenCarved = CONFIG.carveChildren;
  results.carve.childrenDeleted = deleted;
  results.carve.setupSeconds = round(usSince(t0) / 1e6, 2);
  progress(`  carved ${fmtNum(CONFIG.carveChildren)}, deleted ${fmtNum(deleted)} in ${results.carve.setupSeconds} s`);

  let n = 0;
  for (const synchronous of ["full", "normal"] as const) {
    if (synchronous === "normal") engine = await openEngine(file, "normal");
    const stats = await timeSerial({ n: CONFIG.carveOps, warmup: CONFIG.carveWarmup, budgetMs: CONFIG.opBudgetMs }, () =>
      engine.createChildPool(parent, { name: `timed-${n++}`, prefixLength: 24 }, CTX),
    );
    results.carve.rows.push({ operation: "carve child /24", synchronous, ...stats });
    progress(`  carve ${synchronous}: p50 ${stats.p50Us} µs`);
    await engine.close();
  }
  const size = dbSizes(file);
  results.memory.dbFiles.push({
    what: `/8 parent with ${fmtNum(CONFIG.carveChildren - deleted + n)} child pools`,
    dbMiB: round(size.db / MiB, 1),
    walMiB: round(size.wal / MiB, 1),
  });
  rmSync(file, { force: true });
}

/**
 * The scale-out targets, each against a limit measured in the same run: SQLite 32 clients on one pool
 * at least 60% of plain INSERTs and 1 client at least 50% of fsyncs; PostgreSQL one server 32 clients
 * on one pool at least 50% of plain INSERTs; three servers over 32 pools at least 1.5 times one server
 * (or within 10% of plain INSERTs). Rows without a target show "-".
 */
function httpTarget(r: LoadRow & { ratioToPlain: number }): string {
  const verdict = (ok: boolean, what: string) => `${ok ? "met" : "MISSED"} (${what})`;
  if (r.store === "sqlite" && r.concurrency === 1) {
    const fsync = results.limits.fsync?.opsPerSec ?? 0;
    return verdict(fsync > 0 && r.opsPerSec / fsync >= 0.5, `${pct(r.opsPerSec / fsync)} of fsync/s, >= 50%`);
  }
  if (r.store === "sqlite" && r.concurrency > 1 && r.pools === 1) return verdict(r.ratioToPlain >= 0.6, ">= 60% of plain");
  if (r.store === "postgres" && r.replicas === 1 && r.concurrency > 1 && r.pools === 1) return verdict(r.ratioToPlain >= 0.5, ">= 50% of plain");
  if (r.store === "postgres" && r.replicas > 1 && r.pools > 1) {
    const one = results.http.find((o) => o.store === "postgres" && o.replicas === 1 && o.concurrency === r.concurrency && o.pools === r.pools);
    const gain = one ? r.opsPerSec / one.opsPerSec : 0;
    return verdict(gain >= 1.5 || r.ratioToPlain >= 0.9, `${gain.toFixed(2)}x one server, >= 1.5x`);
  }
  return "-";
}

const pct = (x: number) => `${round(x * 100, 0)}%`;

function plainRate(store: "sqlite" | "postgres", concurrency: number): number {
  const row = results.limits.plainInsert.find((r) => r.store === store && r.concurrency === concurrency);
  if (!row) throw new Error(`no plain insert rate measured for ${store} at ${concurrency}`);
  return row.opsPerSec;
}

async function limitsScenario(pgUrl: string): Promise<void> {
  const fsync = fsyncRate(dir, CONFIG.limitMs);
  results.limits.fsync = fsync;
  progress(`fsync on ${dir}: ${fsync.opsPerSec}/s, p50 ${fsync.p50Us} µs`);
  for (const concurrency of CONFIG.concurrencies) {
    const sqlite = await sqliteInsertRate(dir, concurrency, CONFIG.limitMs);
    results.limits.plainInsert.push({ store: "sqlite", concurrency, ...sqlite });
    const pg = await postgresInsertRate(pgUrl, concurrency, CONFIG.limitMs);
    results.limits.plainInsert.push({ store: "postgres", concurrency, ...pg });
    progress(`plain INSERT transactions, ${concurrency} at once: SQLite ${sqlite.opsPerSec}/s (${sqlite.errors} busy errors), PostgreSQL ${pg.opsPerSec}/s`);
  }
  results.limits.plainBulk.push({ store: "sqlite", rows: CONFIG.bulkCount, seconds: await sqliteBulkInsert(dir, CONFIG.bulkCount) });
  results.limits.plainBulk.push({ store: "postgres", rows: CONFIG.bulkCount, seconds: await postgresBulkInsert(pgUrl, CONFIG.bulkCount) });
  progress(`plain ${fmtNum(CONFIG.bulkCount)}-row INSERT transaction: ${results.limits.plainBulk.map((b) => `${b.store} ${b.seconds} s`).join(", ")}`);
}

/** Durable HTTP allocation runs on one deployment, then (on single-server deployments) the 100,000-address requests. */
async function deploymentScenario(d: Deployment): Promise<void> {
  const label = `${d.store}, ${d.servers.length} server${d.servers.length > 1 ? "s" : ""}`;
  // each run gets its own /8 (pools in one space may not overlap)
  let octet = 10;
  const runs: { concurrency: number; pools: number }[] = [
    ...CONFIG.concurrencies.map((concurrency) => ({ concurrency, pools: 1 })),
    // the same clients each on a pool of its own: what changes when they stop contending for one pool
    { concurrency: Math.max(...CONFIG.concurrencies), pools: Math.max(...CONFIG.concurrencies) },
  ];
  for (const { concurrency, pools: n } of runs) {
    const pools = Array.from({ length: n }, (_, i) => `load-${concurrency}-${n}-${i}`);
    for (const [i, pool] of pools.entries()) await createPool(d, pool, `${octet}.${i}.0.0/16`);
    octet++;
    const row = await loadPools(d, pools, concurrency, CONFIG.httpWarmupMs, CONFIG.httpDurationMs);
    const plainPerSec = plainRate(d.store, concurrency);
    results.http.push({ ...row, plainPerSec, ratioToPlain: round(row.opsPerSec / plainPerSec, 2) });
    progress(`  ${label}, ${concurrency} clients, ${n} pool(s): ${row.opsPerSec} allocations/s, p50 ${row.p50Us} µs, p99 ${row.p99Us} µs`);
  }
  if (d.store === "sqlite") {
    for (const concurrency of CONFIG.concurrencies) {
      const floor = await loadHealth(d, concurrency, CONFIG.httpWarmupMs, CONFIG.httpDurationMs / 2);
      results.httpFloor.push({ concurrency, ...floor });
      progress(`  GET /healthz, ${concurrency} clients: ${floor.opsPerSec}/s, p50 ${floor.p50Us} µs`);
    }
  }
  if (d.servers.length > 1) return;
  if (d.store === "sqlite") {
    results.opennebula = await measureDriver(join(dir, "one-driver"), d.servers[0]!.url, AUTH.authorization.slice(7), CONFIG.oneRounds);
    progress(`  OpenNebula actions: ${Object.entries(results.opennebula).map(([a, s]) => `${a} p50 ${Math.round(s.p50Us / 1000)} ms`).join(", ")}`);
  }
  const plainSeconds = results.limits.plainBulk.find((b) => b.store === d.store)!.seconds;
  await createPool(d, "bulk", `${octet}.0.0.0/8`);
  const n = CONFIG.bulkCount;
  for (const [path, body, request] of [
    ["/v1/pools/bulk/allocations", { size: n }, `block of ${fmtNum(n)}`],
    ["/v1/pools/bulk/allocations/bulk", { count: n }, `${fmtNum(n)} separate addresses`],
  ] as const) {
    const row = await bulkRequest(d, path, body, request, CONFIG.bulkRepeats, n);
    results.bulk.push({ ...row, plainSeconds, ratioToPlain: round(row.medianSeconds / plainSeconds, 2) });
    progress(`  ${label}: ${request} answered in ${row.seconds.join(" / ")} s (whole answer read in ${row.wholeAnswerSeconds.join(" / ")} s)`);
  }
}

async function scaleScenario(): Promise<void> {
  progress("PostgreSQL (durable: fsync and synchronous_commit on), started for the limits and the scale-out runs");
  const pg = await startPostgres({ durable: true });
  try {
    await limitsScenario(pg.url);
    const deployments: [string, () => Promise<Deployment>][] = [
      ["sqlite", () => deploy("sqlite", 1, join(dir, "http-sqlite"))],
      ...CONFIG.replicas.map((n): [string, () => Promise<Deployment>] => [`postgres-${n}`, async () => {
        const db = `allot_bench_${n}`;
        await createDatabase(pg.url, db);
        const url = new URL(pg.url);
        url.pathname = `/${db}`;
        return deploy("postgres", n, join(dir, `http-pg-${n}`), url.toString());
      }]),
    ];
    for (const [name, start] of deployments) {
      progress(`HTTP: ${name}`);
      const d = await start();
      try {
        await deploymentScenario(d);
      } finally {
        await d.stop();
      }
    }
  } finally {
    await pg.stop();
  }
}

async function createDatabase(adminUrl: string, name: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
}

// ---------------------------------------------------------------------------------------------- report

function report(): string {
  const m = results.machine;
  const out: string[] = [];
  const us = (x: number) => round(x, x >= 100 ? 0 : 1);
  out.push(`Allot benchmark${QUICK ? " (BENCH_QUICK: scaled down)" : ""}`);
  out.push(`${m.cpuModel}, ${m.cores} cores, ${fmtNum(m.totalMemMiB)} MiB RAM; Node ${m.node}; SQLite ${m.sqlite}; ${m.platform}`);
  out.push(`Load average (1/5/15 min) at start ${results.loadAverage.atStart.join(" ")}, at end ${results.loadAverage.atEnd.join(" ")}`);
  const lim = results.limits;
  out.push("");
  out.push(`0. This machine's limits (same run): fsync of the data disk; plain single-row INSERT transactions (SQLite WAL synchronous=FULL, one connection`);
  out.push("   per writer thread; PostgreSQL fsync on, one connection per writer); one plain INSERT transaction of 100,000 rows");
  const limRows: (string | number)[][] = [];
  if (lim.fsync) limRows.push(["fdatasync after a 4 KiB overwrite", "1", lim.fsync.opsPerSec, us(lim.fsync.p50Us), us(lim.fsync.p99Us)]);
  for (const r of lim.plainInsert) limRows.push([`${r.store} single-row INSERT`, String(r.concurrency), r.opsPerSec, us(r.p50Us), us(r.p99Us)]);
  out.push(table(["limit", "writers", "per s", "p50", "p99"], limRows));
  for (const b of lim.plainBulk) out.push(`   ${b.store}: ${fmtNum(b.rows)} rows in one transaction: ${b.seconds} s`);
  out.push("");
  out.push(`Latencies in µs per operation, each its own transaction through the Engine (FULL = synchronous=FULL, the default; NORMAL = synchronous=NORMAL).`);
  out.push("");
  const plainP50 = lim.plainInsert.find((r) => r.store === "sqlite" && r.concurrency === 1)?.p50Us;
  out.push(`1. Lowest-free allocation vs. pool fill (every ${CONFIG.fragmentEvery}th address released after the fill; ${fmtNum(CONFIG.lowestFreeOps)} timed after ${CONFIG.warmup} warm-up)`);
  out.push(
    table(
      ["pool", "fill", "sync", "free runs", "n", "p50", "p95", "p99", "max", "ops/s", "of limit"],
      results.lowestFree.map((r) => [
        r.cidr, r.fill, r.synchronous.toUpperCase(), r.freeRunsAtStart, r.n, us(r.p50Us), us(r.p95Us), us(r.p99Us), us(r.maxUs), r.opsPerSec,
        r.synchronous === "full" && plainP50 ? `${(r.p50Us / plainP50).toFixed(2)}x` : "-",
      ]),
    ),
  );
  out.push(`   "of limit": p50 as a multiple of one plain single-row INSERT transaction on SQLite (p50 ${plainP50 ?? "-"} µs)`);
  for (const [k, v] of Object.entries(results.ratios)) out.push(`   ${k}: ${v.toFixed(2)}x (target: at most 1.5x)${v <= 1.5 ? "" : "  <-- MISSED"}`);
  if (results.lowestFree.some((r) => r.n < r.planned)) out.push(`   (n below ${fmtNum(CONFIG.lowestFreeOps)}: the loop hit its ${CONFIG.lowestFreeBudgetMs / 1000} s budget first)`);
  out.push("");
  out.push("   Set-up (bulk fill inside 20,000-allocation transactions, not a latency figure)");
  out.push(
    table(
      ["   pool", "fill", "fill s", "allocs/s", "fragment s", "released", "db MiB"],
      results.setup.map((r) => [`   IPv${r.family}`, r.fill, round(r.fillSeconds, 1), r.fillAllocsPerSec, round(r.fragmentSeconds, 1), r.released, r.dbFileMiB]),
    ),
  );
  out.push("");
  const opTable = (rows: OpRow[]) =>
    (rows.some((r) => r.n < r.planned) ? `(n below the planned count: the loop hit its ${CONFIG.opBudgetMs / 1000} s budget first)\n` : "") +
    table(["operation", "sync", "n", "p50", "p95", "p99", "max", "ops/s"], rows.map((r) => [r.operation, r.synchronous.toUpperCase(), r.n, us(r.p50Us), us(r.p95Us), us(r.p99Us), us(r.maxUs), r.opsPerSec]));
  out.push(`2./3. Specific address, release and block allocation in ${CONFIG.v4Cidr} holding ${fmtNum(BIG_V4)} allocations`);
  out.push(opTable(results.operationsAt1M.rows));
  out.push("");
  const c = results.carve;
  out.push(`4. Child pool carve (/24, first free aligned) from ${c.parent} holding ${fmtNum(c.childrenCarved - c.childrenDeleted)} children (${fmtNum(c.childrenDeleted)} /24 holes)`);
  out.push(opTable(c.rows));
  out.push("");
  out.push(`5. Durable allocations through the HTTP API: POST /v1/pools/<pool>/allocations (next free, one pool), keep-alive clients in a worker thread,`);
  out.push(`   \`allot serve\` processes (PostgreSQL: several on one database, clients spread over them); for ${CONFIG.httpDurationMs / 1000} s after ${CONFIG.httpWarmupMs / 1000} s warm-up.`);
  out.push(`   "of plain": allocations/s as a share of the same store's plain INSERT transactions/s at the same concurrency;`);
  out.push(`   "of HTTP": as a share of GET /healthz/s at the same concurrency (the HTTP stack alone, same machine: what any API request can reach here)`);
  out.push(
    table(
      ["store", "servers", "clients", "pools", "allocs", "allocs/s", "p50", "p99", "plain tx/s", "of plain", "of HTTP", "target"],
      results.http.map((r) => {
        const floor = results.httpFloor.find((f) => f.concurrency === r.concurrency);
        return [
          r.store, r.replicas, r.concurrency, r.pools, r.n, r.opsPerSec, us(r.p50Us), us(r.p99Us), r.plainPerSec, pct(r.ratioToPlain),
          floor ? pct(r.opsPerSec / floor.opsPerSec) : "-", httpTarget(r),
        ];
      }),
    ),
  );
  for (const f of results.httpFloor) out.push(`   HTTP floor, GET /healthz with ${f.concurrency} client(s): ${fmtNum(f.opsPerSec)}/s, p50 ${us(f.p50Us)} µs, p99 ${us(f.p99Us)} µs`);
  out.push("");
  out.push(`7. ${fmtNum(CONFIG.bulkCount)} addresses in one HTTP request (one server), median of ${CONFIG.bulkRepeats}: seconds until the answer starts (committed, serialised);`);
  out.push("   \"whole s\": until the client has read the whole answer");
  out.push(`   "of limit": time as a multiple of one plain ${fmtNum(CONFIG.bulkCount)}-row INSERT transaction on the same store. Target on SQLite: within ${CONFIG.bulkTargetSeconds} s`);
  out.push("   healthz: GET /healthz every 10 ms meanwhile, p99 and max ms (target p99 <= 100); RSS: the server's growth per 100,000 addresses, MiB");
  out.push(
    table(
      ["store", "request", "median s", "runs s", "whole s", "answer MiB", "plain s", "of limit", "target", "healthz p99", "max", "RSS"],
      results.bulk.map((b) => [
        b.store, b.request, round(b.medianSeconds, 2), b.seconds.map((x) => x.toFixed(2)).join(" / "), b.wholeAnswerSeconds.map((x) => x.toFixed(2)).join(" / "),
        b.answerMiB, round(b.plainSeconds, 2), `${b.ratioToPlain.toFixed(1)}x`,
        b.store === "sqlite" ? (b.medianSeconds <= CONFIG.bulkTargetSeconds ? "met" : "MISSED") : "-",
        `${b.healthz.p99Ms}${b.healthz.p99Ms <= 100 ? "" : " MISSED"}`, b.healthz.maxMs, b.rssGrowthMiBPer100k,
      ]),
    ),
  );
  out.push("");
  out.push("8. OpenNebula driver actions, each its own process as oned runs it (ms, process start included; oned gives up at 90,000)");
  out.push(
    table(
      ["action", "n", "p50", "p99", "max"],
      Object.entries(results.opennebula).map(([a, s]) => [a, s.n, round(s.p50Us / 1000, 0), round(s.p99Us / 1000, 0), round(s.maxUs / 1000, 0)]),
    ),
  );
  out.push("");
  const mem = results.memory;
  out.push("6. Memory and disk");
  const mrows: (string | number)[][] = [["RSS at start", `${mem.rssAtStartMiB} MiB`]];
  if (mem.afterBigFill) {
    mrows.push([`RSS after the ${fmtNum(mem.afterBigFill.fill)} fill`, `${mem.afterBigFill.rssMiB} MiB (V8 heap ${mem.afterBigFill.heapUsedMiB} MiB)`]);
  }
  for (const f of mem.dbFiles) mrows.push([`database file: ${f.what}`, `${fmtNum(f.dbMiB)} MiB`]);
  for (const t of mem.bigFillTables.filter((t) => t.MiB >= 0.1)) mrows.push([`  of which table ${t.table} (with indexes) in the ${fmtNum(BIG_V4)} IPv4 file`, `${fmtNum(t.MiB)} MiB`]);
  out.push(table(["what", "size"], mrows));
  out.push("");
  out.push(`Total run time: ${fmtDuration(results.totalRunSeconds * 1000)}`);
  return out.join("\n");
}

function ratio(family: Family, sync: Sync): void {
  const rows = results.lowestFree.filter((r) => r.family === family && r.synchronous === sync).sort((a, b) => a.fill - b.fill);
  const lo = rows[0];
  const hi = rows[rows.length - 1];
  if (!lo || !hi || lo === hi) return;
  results.ratios[`IPv${family} p50 at ${fmtNum(hi.fill)} / p50 at ${fmtNum(lo.fill)}, ${sync.toUpperCase()}`] = round(hi.p50Us / lo.p50Us, 2);
}

// ---------------------------------------------------------------------------------------------- main

try {
  // the OpenNebula driver runs the compiled dist/ under plain node, as oned does
  const built = spawnSync(process.execPath, [fileURLToPath(new URL("../scripts/build.mjs", import.meta.url))], { stdio: "inherit", cwd: fileURLToPath(new URL("..", import.meta.url)) });
  if (built.status !== 0) throw new Error("npm run build failed");
  collectGarbage();
  results.memory.rssAtStartMiB = memory().rssMiB;
  progress(`temp dir ${dir}${QUICK ? " (BENCH_QUICK)" : ""}`);
  await scaleScenario();
  if (!SCALE_ONLY) {
    for (const fill of CONFIG.v4Fills) await fillScenario(4, fill);
    for (const fill of CONFIG.v6Fills) await fillScenario(6, fill);
    for (const family of [4, 6] as const) for (const sync of ["full", "normal"] as const) ratio(family, sync);
    await carveScenario();
  }
  results.totalRunSeconds = round(usSince(runStart) / 1e6, 1);
  results.loadAverage.atEnd = load();
  const resultsFile = fileURLToPath(new URL(SCALE_ONLY ? "./scale-results.json" : "./results.json", import.meta.url));
  writeFileSync(resultsFile, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`${report()}\n`);
  progress(`wrote ${resultsFile}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
