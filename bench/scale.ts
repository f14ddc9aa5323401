/**
 * Durable allocations through the HTTP API, the way users run Allot: `allot serve` processes (one on
 * SQLite; one or three on one PostgreSQL database), loaded by N keep-alive clients from a worker
 * thread, every allocation committed before its answer. Also one request for a block of 100,000
 * addresses and one for 100,000 separate addresses. Servers start with the test suite's admin token
 * (ALLOT_ADMIN_TOKEN), which every request sends.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { AUTH } from "../test/helpers.js";
import { type ServerProcess, startServerProcess } from "../test/process-helpers.js";
import { type LatencyStats, round, summarize, usSince } from "./lib.js";

/** What bench/http-load.mjs takes and reports. */
interface LoadInput {
  urls: string[];
  /** JSON to POST; null to GET. */
  body: string | null;
  /** Sent with every request (the API token). */
  headers: Record<string, string>;
  concurrency: number;
  warmupMs: number;
  durationMs: number;
}
interface LoadOutput {
  samplesUs: number[];
  wallMs: number;
  statuses: Record<string, number>;
  errors: string[];
}

export interface LoadRow extends LatencyStats {
  store: "sqlite" | "postgres";
  replicas: number;
  concurrency: number;
  /** Pools the clients allocate from: 1 (all in one) or one per client. */
  pools: number;
  statuses: Record<string, number>;
}

export interface BulkRow {
  store: "sqlite" | "postgres";
  request: string;
  /** Seconds per request, client side, from sending it until the answer's headers arrive (the server's work done), per repetition. */
  seconds: number[];
  medianSeconds: number;
  /** The same until the whole answer was read. */
  wholeAnswerSeconds: number[];
  answerMiB: number;
  /** GET /healthz polled every 10 ms while the requests ran: how long other requests waited (ms). */
  healthz: { n: number; p50Ms: number; p99Ms: number; maxMs: number };
  /** The server's resident memory after the requests less before them, per 100,000 addresses asked for (MiB). */
  rssGrowthMiBPer100k: number;
}

/** The server process's resident set, from /proc (MiB). */
function rssMiB(pid: number | undefined): number {
  const m = pid === undefined ? null : /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : 0;
}

/** A running deployment: `replicas` server processes sharing one database. */
export interface Deployment {
  store: "sqlite" | "postgres";
  servers: ServerProcess[];
  stop(): Promise<void>;
}

export async function deploy(store: "sqlite" | "postgres", replicas: number, dataDir: string, databaseUrl?: string): Promise<Deployment> {
  const env: Record<string, string> = databaseUrl ? { ALLOT_DATABASE_URL: databaseUrl } : {};
  // one at a time: the first one migrates the schema, the others find it done
  const servers: ServerProcess[] = [];
  for (let i = 0; i < replicas; i++) servers.push(await startServerProcess(dataDir, env));
  return {
    store,
    servers,
    async stop() {
      await Promise.all(servers.map((s) => s.stop()));
    },
  };
}

async function post(url: string, body: unknown): Promise<{ status: number; bytes: number; text: () => string; headersUs: number }> {
  const t0 = process.hrtime.bigint();
  const res = await fetch(url, { method: "POST", headers: { ...AUTH, "content-type": "application/json" }, body: JSON.stringify(body) });
  const headersUs = usSince(t0);
  const buf = Buffer.from(await res.arrayBuffer());
  return { status: res.status, bytes: buf.length, text: () => buf.toString(), headersUs };
}

export async function createPool(d: Deployment, name: string, cidr: string): Promise<void> {
  const r = await post(new URL("/v1/pools", d.servers[0]!.url).toString(), { name, cidr, allocateReserved: false });
  if (r.status !== 201) throw new Error(`creating pool ${name} answered ${r.status}: ${r.text()}`);
}

/**
 * `concurrency` clients allocating the next free address, client i from pools[i % pools.length] through
 * server i % servers: all in one pool, or each in its own.
 */
export async function loadPools(d: Deployment, pools: string[], concurrency: number, warmupMs: number, durationMs: number): Promise<LoadRow> {
  const urls = Array.from({ length: Math.max(concurrency, d.servers.length) }, (_, i) =>
    new URL(`/v1/pools/${pools[i % pools.length]}/allocations`, d.servers[i % d.servers.length]!.url).toString(),
  );
  const out = await runLoad({ urls, body: "{}", headers: { ...AUTH }, concurrency, warmupMs, durationMs }, 201);
  return { store: d.store, replicas: d.servers.length, concurrency, pools: pools.length, statuses: out.statuses, ...summarize(out.samplesUs, out.wallMs) };
}

/** The HTTP stack alone: GET /healthz at the same concurrency, the floor under any API request. */
export async function loadHealth(d: Deployment, concurrency: number, warmupMs: number, durationMs: number): Promise<LatencyStats> {
  const out = await runLoad({ urls: [new URL("/healthz", d.servers[0]!.url).toString()], body: null, headers: {}, concurrency, warmupMs, durationMs }, 200);
  return summarize(out.samplesUs, out.wallMs);
}

async function runLoad(input: LoadInput, expected: number): Promise<LoadOutput> {
  const worker = new Worker(fileURLToPath(new URL("./http-load.mjs", import.meta.url)), { workerData: input });
  const out = await new Promise<LoadOutput>((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
    worker.once("exit", (code) => reject(new Error(`load worker exited with ${code} before reporting`)));
  }).finally(() => worker.terminate());
  const bad = Object.entries(out.statuses).filter(([s]) => s !== String(expected));
  if (bad.length > 0) throw new Error(`HTTP load saw answers other than ${expected}: ${JSON.stringify(out.statuses)} ${out.errors.join("; ")}`);
  return out;
}

/** One request for `body` (a block or a bulk of separate addresses), `times` times; the answer must be 201. */
export async function bulkRequest(d: Deployment, path: string, body: unknown, request: string, times: number, addresses: number): Promise<BulkRow> {
  const url = new URL(path, d.servers[0]!.url).toString();
  const health = new URL("/healthz", d.servers[0]!.url).toString();
  const pid = d.servers[0]!.proc.pid;
  const seconds: number[] = [];
  const wholeAnswerSeconds: number[] = [];
  const waits: number[] = [];
  let bytes = 0;
  const rss0 = rssMiB(pid);
  for (let i = 0; i < times; i++) {
    let busy = true;
    const poll = (async () => {
      while (busy) {
        const t = process.hrtime.bigint();
        await fetch(health).then((r) => r.arrayBuffer());
        waits.push(usSince(t) / 1000);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const t0 = process.hrtime.bigint();
    const r = await post(url, body).finally(() => (busy = false));
    await poll;
    wholeAnswerSeconds.push(round(usSince(t0) / 1e6, 3));
    seconds.push(round(r.headersUs / 1e6, 3));
    if (r.status !== 201) throw new Error(`${request} answered ${r.status}: ${r.text().slice(0, 500)}`);
    bytes = r.bytes;
  }
  const rssGrowthMiBPer100k = round(((rssMiB(pid) - rss0) / (addresses * times)) * 100_000, 1);
  const sorted = [...seconds].sort((a, b) => a - b);
  const w = waits.sort((a, b) => a - b);
  const at = (q: number) => round(w[Math.min(w.length - 1, Math.floor(w.length * q))] ?? 0, 1);
  return {
    store: d.store, request, seconds, wholeAnswerSeconds, medianSeconds: sorted[Math.floor(sorted.length / 2)]!, answerMiB: round(bytes / 1024 / 1024, 1),
    healthz: { n: w.length, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: round(w.at(-1) ?? 0, 1) }, rssGrowthMiBPer100k,
  };
}
