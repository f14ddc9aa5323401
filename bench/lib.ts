/**
 * Small helpers for the benchmark: latency statistics, a seeded PRNG, file sizes, machine facts and
 * a plain-text table. Nothing here knows about Allot.
 */
import Database from "better-sqlite3";
import { existsSync, statSync } from "node:fs";
import { availableParallelism, cpus, loadavg, release, totalmem } from "node:os";

/** Microseconds elapsed since `t0` (a process.hrtime.bigint() reading). */
export function usSince(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1000;
}

export interface LatencyStats {
  /** Operations timed. */
  n: number;
  /** Operations planned; more than n when the loop hit its time budget first. */
  planned: number;
  /** Wall time of the whole timed loop, in milliseconds. */
  wallMs: number;
  /** Operations per second over the wall time. */
  opsPerSec: number;
  meanUs: number;
  p50Us: number;
  p95Us: number;
  p99Us: number;
  maxUs: number;
}

/** Nearest-rank percentile of an ascending array. */
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function summarize(samplesUs: number[], wallMs: number, planned = samplesUs.length): LatencyStats {
  const s = [...samplesUs].sort((a, b) => a - b);
  const sum = s.reduce((a, b) => a + b, 0);
  return {
    n: s.length,
    planned,
    wallMs: round(wallMs, 1),
    opsPerSec: round((s.length / wallMs) * 1000, 0),
    meanUs: round(sum / s.length, 1),
    p50Us: round(percentile(s, 50), 1),
    p95Us: round(percentile(s, 95), 1),
    p99Us: round(percentile(s, 99), 1),
    maxUs: round(s[s.length - 1] ?? Number.NaN, 1),
  };
}

export interface TimingPlan {
  /** Operations to time. */
  n: number;
  /** Untimed operations first, so JIT compilation and cold caches do not land in the figures. */
  warmup: number;
  /**
   * Wall-clock budget in milliseconds for the timed loop: it stops early (after at least `minOps`) when
   * an operation is so slow that n of them would not fit, and the figures say how many were timed.
   * Warm-up gets a tenth of it.
   */
  budgetMs: number;
  minOps?: number;
}

/** Runs `op(i)` one call after another (each awaited before the next starts), timing each call. */
export async function timeSerial(plan: TimingPlan, op: (i: number) => Promise<unknown>): Promise<LatencyStats> {
  const minOps = plan.minOps ?? 20;
  let i = 0;
  const warmStart = process.hrtime.bigint();
  for (let w = 0; w < plan.warmup && usSince(warmStart) < plan.budgetMs * 100; w++) await op(i++);
  const samples: number[] = [];
  const start = process.hrtime.bigint();
  while (samples.length < plan.n && (samples.length < minOps || usSince(start) < plan.budgetMs * 1000)) {
    const t0 = process.hrtime.bigint();
    await op(i++);
    samples.push(usSince(t0));
  }
  return summarize(samples, usSince(start) / 1000, plan.n);
}

export function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** mulberry32: a small deterministic PRNG so every run picks the same "random" addresses. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `k` distinct integers from [lo, hi) that satisfy `accept`, drawn with `rand`. */
export function pickDistinct(rand: () => number, k: number, lo: number, hi: number, accept: (x: number) => boolean): number[] {
  const seen = new Set<number>();
  const out: number[] = [];
  for (let guard = 0; out.length < k && guard < k * 1000; guard++) {
    const x = lo + Math.floor(rand() * (hi - lo));
    if (!accept(x) || seen.has(x)) continue;
    seen.add(x);
    out.push(x);
  }
  if (out.length < k) throw new Error(`could only pick ${out.length} of ${k} values in [${lo}, ${hi})`);
  return out;
}

export const MiB = 1024 * 1024;

export function fileSize(path: string): number {
  return existsSync(path) ? statSync(path).size : 0;
}

/** Main database file plus its -wal and -shm companions, in bytes. */
export function dbSizes(file: string): { db: number; wal: number; shm: number } {
  return { db: fileSize(file), wal: fileSize(`${file}-wal`), shm: fileSize(`${file}-shm`) };
}

/**
 * Bytes per table of a closed database file, each table's indexes counted with it (from SQLite's
 * dbstat table), largest first.
 */
export function tableSizes(file: string): { table: string; MiB: number }[] {
  const db = new Database(file, { readonly: true });
  try {
    const owner = new Map<string, string>();
    for (const r of db.prepare("SELECT name, tbl_name FROM sqlite_schema WHERE type IN ('table', 'index')").all() as { name: string; tbl_name: string }[]) {
      owner.set(r.name, r.tbl_name);
    }
    const bytes = new Map<string, number>();
    for (const r of db.prepare("SELECT name, SUM(pgsize) AS size FROM dbstat GROUP BY name").all() as { name: string; size: number }[]) {
      const t = owner.get(r.name) ?? r.name;
      bytes.set(t, (bytes.get(t) ?? 0) + r.size);
    }
    return [...bytes].sort((a, b) => b[1] - a[1]).map(([table, b]) => ({ table, MiB: round(b / MiB, 1) }));
  } finally {
    db.close();
  }
}

/** 1, 5 and 15 minute load averages: other work on the machine shows up here. */
export function load(): number[] {
  return loadavg().map((x) => round(x, 2));
}

export function memory(): { rssMiB: number; heapUsedMiB: number; externalMiB: number } {
  const m = process.memoryUsage();
  return { rssMiB: round(m.rss / MiB, 1), heapUsedMiB: round(m.heapUsed / MiB, 1), externalMiB: round(m.external / MiB, 1) };
}

export function machineInfo() {
  const c = cpus();
  const db = new Database(":memory:");
  const sqliteVersion = (db.prepare("SELECT sqlite_version() AS v").get() as { v: string }).v;
  db.close();
  return {
    node: process.version,
    platform: `${process.platform} ${release()} ${process.arch}`,
    cpuModel: c[0]?.model.trim() ?? "unknown",
    cores: c.length,
    availableParallelism: availableParallelism(),
    totalMemMiB: Math.round(totalmem() / MiB),
    sqlite: sqliteVersion,
  };
}

/** A left-aligned first column and right-aligned others, with a rule under the header. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === "number" ? fmtNum(c) : c)))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [line(cells[0]!), widths.map((w) => "-".repeat(w)).join("  "), ...cells.slice(1).map(line)].join("\n");
}

export function fmtNum(x: number): string {
  if (!Number.isFinite(x)) return "-";
  if (Number.isInteger(x)) return x.toLocaleString("en-US");
  return x.toLocaleString("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
}

export function fmtDuration(ms: number): string {
  const s = ms / 1000;
  return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${(s % 60).toFixed(0)} s`;
}
