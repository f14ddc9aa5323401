/**
 * The limits of this machine, measured in the same run as Allot's figures so every figure can be set
 * against them: how many fsyncs per second the data disk does, and how many plain single-row INSERT
 * transactions per second (and one 100,000-row INSERT) each store manages with nothing of Allot in
 * the way, on the same durability settings Allot uses.
 */
import Database from "better-sqlite3";
import { closeSync, fdatasyncSync, fsyncSync, openSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import pg from "pg";
import { type LatencyStats, round, summarize, usSince } from "./lib.js";

/**
 * fdatasync after each 4 KiB write into a preallocated file in `dir`, for `ms` milliseconds: what one
 * commit costs at least. The writes go round a fixed 4 MiB, as a database's log reuses its space, so
 * the file's size (metadata) never changes and each flush is of data alone.
 */
export function fsyncRate(dir: string, ms: number): LatencyStats {
  const file = join(dir, "fsync-probe");
  const span = 4 * 1024 * 1024;
  const page = Buffer.alloc(4096, 0x61);
  const fd = openSync(file, "w+");
  const samples: number[] = [];
  try {
    writeSync(fd, Buffer.alloc(span), 0, span, 0);
    fsyncSync(fd);
    const start = process.hrtime.bigint();
    for (let i = 0; usSince(start) < ms * 1000; i++) {
      const t0 = process.hrtime.bigint();
      writeSync(fd, page, 0, page.length, (i * page.length) % span);
      fdatasyncSync(fd);
      samples.push(usSince(t0));
    }
    return summarize(samples, usSince(start) / 1000);
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
}

const PAYLOAD = "allot-bench-row";

/** Single-row INSERT transactions on SQLite (WAL, synchronous=FULL), from `concurrency` connections each in its own thread. */
export async function sqliteInsertRate(dir: string, concurrency: number, ms: number): Promise<LatencyStats & { errors: number }> {
  const file = join(dir, `plain-${concurrency}.db`);
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  db.exec("CREATE TABLE plain (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)");
  db.close();
  // every writer starts at the same moment, after all threads have opened their connections
  const startAt = Date.now() + 500 + concurrency * 50;
  const endAt = startAt + ms;
  const script = fileURLToPath(new URL("./insert-load.mjs", import.meta.url));
  const outs = await Promise.all(
    Array.from({ length: concurrency }, () => {
      const w = new Worker(script, { workerData: { file, startAt, endAt } });
      return new Promise<{ samplesUs: number[]; errors: number }>((resolve, reject) => {
        w.once("message", resolve);
        w.once("error", reject);
      }).finally(() => w.terminate());
    }),
  );
  for (const suffix of ["", "-wal", "-shm"]) rmSync(file + suffix, { force: true });
  return { ...summarize(outs.flatMap((o) => o.samplesUs), ms), errors: outs.reduce((a, o) => a + o.errors, 0) };
}

/** Single-row INSERT transactions (autocommit) on PostgreSQL from `concurrency` connections. */
export async function postgresInsertRate(url: string, concurrency: number, ms: number): Promise<LatencyStats> {
  const pool = new pg.Pool({ connectionString: url, max: concurrency });
  try {
    await pool.query("DROP TABLE IF EXISTS plain; CREATE TABLE plain (id bigserial PRIMARY KEY, payload text NOT NULL)");
    const samples: number[] = [];
    const clients = await Promise.all(Array.from({ length: concurrency }, () => pool.connect()));
    const start = process.hrtime.bigint();
    await Promise.all(
      clients.map(async (c) => {
        while (usSince(start) < ms * 1000) {
          const t0 = process.hrtime.bigint();
          await c.query("INSERT INTO plain (payload) VALUES ($1)", [PAYLOAD]);
          samples.push(usSince(t0));
        }
        c.release();
      }),
    );
    return summarize(samples, usSince(start) / 1000);
  } finally {
    await pool.end();
  }
}

/** Columns of the plain bulk table: as many as an allocation row has, so the comparison is like for like. */
const BULK_COLUMNS = 15;

/** One transaction inserting `rows` rows (500 per statement, as Allot does) into a table with an integer key; seconds. */
export async function sqliteBulkInsert(dir: string, rows: number): Promise<number> {
  const file = join(dir, "plain-bulk.db");
  const db = new Database(file);
  try {
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    const cols = Array.from({ length: BULK_COLUMNS }, (_, i) => `c${i}`);
    db.exec(`CREATE TABLE plain (id INTEGER PRIMARY KEY, ${cols.map((c) => `${c} TEXT`).join(", ")})`);
    const per = 500;
    const stmt = db.prepare(`INSERT INTO plain (${cols.join(", ")}) VALUES ${Array.from({ length: per }, () => `(${cols.map(() => "?").join(", ")})`).join(", ")}`);
    const params = Array.from({ length: per * BULK_COLUMNS }, (_, i) => `value-${i % 97}`);
    const t0 = process.hrtime.bigint();
    db.transaction(() => {
      for (let i = 0; i < rows; i += per) stmt.run(...params);
    })();
    return round(usSince(t0) / 1e6, 3);
  } finally {
    db.close();
    for (const suffix of ["", "-wal", "-shm"]) rmSync(file + suffix, { force: true });
  }
}

export async function postgresBulkInsert(url: string, rows: number): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const cols = Array.from({ length: BULK_COLUMNS }, (_, i) => `c${i}`);
    await client.query(`DROP TABLE IF EXISTS plain_bulk; CREATE TABLE plain_bulk (id bigserial PRIMARY KEY, ${cols.map((c) => `${c} text`).join(", ")})`);
    const per = 500;
    let n = 0;
    const text = `INSERT INTO plain_bulk (${cols.join(", ")}) VALUES ${Array.from({ length: per }, () => `(${cols.map(() => `$${++n}`).join(", ")})`).join(", ")}`;
    const params = Array.from({ length: per * BULK_COLUMNS }, (_, i) => `value-${i % 97}`);
    const t0 = process.hrtime.bigint();
    await client.query("BEGIN");
    for (let i = 0; i < rows; i += per) await client.query(text, params);
    await client.query("COMMIT");
    return round(usSince(t0) / 1e6, 3);
  } finally {
    await client.end();
  }
}
