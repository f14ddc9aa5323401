// The failover scenario that test/ha/failover.test.ts asserts on and bench/failover.ts measures: a
// PostgreSQL HA cluster (deploy/postgres-ha/), two `allot serve` processes on it through HAProxy, 32
// clients allocating from one pool through both, and the primary's postmaster SIGKILLed in the middle.
// It returns what happened; it judges nothing.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startCluster } from "../../deploy/postgres-ha/local-cluster.js";
import { AUTH } from "../helpers.js";
import { type ServerProcess, allot, startServerProcess } from "../process-helpers.js";

export interface FailoverOptions {
  clients?: number;
  /** How long the load runs before the kill. */
  beforeKillMs?: number;
  /** How long the load goes on once writes succeed again after the kill. */
  afterRecoveryMs?: number;
  /** The longest wait for writes to succeed again after the kill; past it the load stops anyway. */
  maxOutageMs?: number;
  log?: (line: string) => void;
}

export interface FailoverResult {
  /** Start to a writable primary with a sync standby, in ms. */
  clusterReadyMs: number;
  primaryBefore: string;
  /** The primary once writes succeed again (the same node if Patroni restarted it in place). */
  primaryAfter: string | null;
  /** From the SIGKILL to the first acknowledged allocation among requests sent after it, in ms (null: none). */
  failoverMs: number | null;
  /** Allocations acknowledged (201, or 200 for an owner that a failed attempt had in fact committed). */
  acknowledged: number;
  /** Of those, answered 200: a retry found the allocation a request that the client saw fail had made. */
  acknowledgedOnRetry: number;
  /** Acknowledged allocations missing from the pool afterwards, or held at another address. */
  lost: string[];
  /** Addresses held by more than one allocation. */
  heldTwice: string[];
  requests: number;
  /** Requests answered 503 store-unavailable (each retried with the same owner). */
  unavailable: number;
  /** Anything else that was not a success: other statuses and codes, connection errors to Allot, timeouts. */
  unexpected: string[];
  /** `allot check` on the database afterwards. */
  check: { code: number | null; output: string };
  /** Both Allot servers still running when the load stopped (never restarted). */
  serversRunning: boolean;
  /** Status of a new allocation through each server after the load. */
  afterStatuses: number[];
}

type Outcome = { status: number; body: { address?: string; code?: string; detail?: string } } | { error: string };

export async function runFailover(options: FailoverOptions = {}): Promise<FailoverResult> {
  const { clients = 32, beforeKillMs = 4000, afterRecoveryMs = 5000, maxOutageMs = 60_000 } = options;
  const log = options.log ?? (() => {});
  const dir = mkdtempSync(join(tmpdir(), "allot-failover-"));
  const servers: ServerProcess[] = [];
  const t0 = Date.now();
  const cluster = await startCluster({ log });
  try {
    const clusterReadyMs = Date.now() - t0;
    log(`cluster ready in ${(clusterReadyMs / 1000).toFixed(1)} s`);
    // two servers starting together: the schema is made once (they take a lock for it)
    const started = await Promise.allSettled([0, 1].map((i) => startServerProcess(join(dir, `server${i}`), { ALLOT_DATABASE_URL: cluster.url })));
    for (const s of started) if (s.status === "fulfilled") servers.push(s.value);
    for (const s of started) if (s.status === "rejected") throw s.reason;
    const post = async (server: ServerProcess, path: string, body: unknown): Promise<Outcome> => {
      try {
        const res = await fetch(`${server.url}${path}`, {
          method: "POST",
          headers: { ...AUTH, "content-type": "application/json" },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(30_000),
        });
        return { status: res.status, body: (await res.json()) as { address?: string; code?: string } };
      } catch (err) {
        return { error: `${(err as Error).name}: ${(err as Error).message}` };
      }
    };
    const created = await post(servers[0]!, "/v1/pools", { name: "ha", cidr: "10.64.0.0/14" });
    if (!("status" in created) || created.status !== 201) throw new Error(`creating the pool: ${JSON.stringify(created)}`);

    // the load: each client allocates with owners of its own, retrying an owner after a 503 until it
    // is acknowledged (safe: the same owner gets the same allocation), alternating between the servers
    const acknowledged = new Map<string, string>();
    const unexpected: string[] = [];
    let requests = 0;
    let unavailable = 0;
    let acknowledgedOnRetry = 0;
    let stop = false;
    let killedAt = 0;
    let firstAckAfterKill = 0;
    const client = async (c: number) => {
      let turn = c;
      for (let n = 0; !stop; n++) {
        const owner = `c${c}-${n}`;
        for (let attempt = 0; !stop; attempt++) {
          const sentAt = Date.now();
          const out = await post(servers[turn++ % 2]!, "/v1/pools/ha/allocations", { owner });
          requests++;
          if ("status" in out && (out.status === 201 || out.status === 200) && out.body.address) {
            acknowledged.set(owner, out.body.address);
            if (out.status === 200) acknowledgedOnRetry++;
            if (killedAt && sentAt >= killedAt && !firstAckAfterKill) firstAckAfterKill = Date.now();
            break;
          }
          if ("status" in out && out.status === 503 && out.body.code === "store-unavailable") unavailable++;
          else if (unexpected.length < 50) unexpected.push(`${owner} attempt ${attempt}: ${"status" in out ? `${out.status} ${JSON.stringify(out.body)}` : out.error}`);
          await sleep(50);
        }
      }
    };
    const load = Array.from({ length: clients }, (_, c) => client(c));
    let primaryAfter: string | null = null;
    let primaryBefore = "";
    try {
      await sleep(beforeKillMs);
      const primary = await cluster.primary();
      const pid = primary && cluster.postmasterPid(primary);
      if (!primary || !pid) throw new Error(`no primary to kill\n${cluster.logs()}`);
      primaryBefore = primary.name;
      log(`${acknowledged.size} allocations acknowledged before the kill; SIGKILL ${primary.name}'s postmaster (${pid})`);
      killedAt = Date.now();
      process.kill(pid, "SIGKILL");
      while (!firstAckAfterKill && Date.now() - killedAt < maxOutageMs) await sleep(50);
      log(firstAckAfterKill ? `writes acknowledged again ${firstAckAfterKill - killedAt} ms after the kill` : `no write acknowledged within ${maxOutageMs} ms of the kill`);
      primaryAfter = (await cluster.primary())?.name ?? null;
      await sleep(afterRecoveryMs);
    } finally {
      stop = true;
      await Promise.all(load);
    }
    const serversRunning = servers.every((s) => s.proc.exitCode === null && s.proc.signalCode === null);

    // what the pool holds now, a page at a time
    const held = new Map<string, string>(); // owner → address
    const times = new Map<string, number>(); // address → allocations holding it
    for (let after: string | null = ""; after !== null; ) {
      const res = await fetch(`${servers[0]!.url}/v1/pools/ha/allocations?limit=1000${after ? `&after=${encodeURIComponent(after)}` : ""}`, { headers: AUTH });
      if (res.status !== 200) throw new Error(`listing allocations: ${res.status} ${await res.text()}`);
      const page = (await res.json()) as { items: { address: string; owner: string | null }[]; next: string | null };
      for (const a of page.items) {
        if (a.owner !== null) held.set(a.owner, a.address);
        times.set(a.address, (times.get(a.address) ?? 0) + 1);
      }
      after = page.next;
    }
    const heldTwice = [...times].filter(([, n]) => n > 1).map(([address]) => address);
    const lost = [...acknowledged].filter(([owner, address]) => held.get(owner) !== address).map(([owner, address]) => `${owner} ${address} (held: ${held.get(owner) ?? "nothing"})`);

    const check = allot(["check", "--database-url", cluster.url]);
    const afterStatuses: number[] = [];
    for (const [i, server] of servers.entries()) {
      const out = await post(server, "/v1/pools/ha/allocations", { owner: `after-${i}` });
      afterStatuses.push("status" in out ? out.status : 0);
      if (!("status" in out) || out.status !== 201) unexpected.push(`after the load, server ${i}: ${JSON.stringify(out)}`);
    }
    return {
      clusterReadyMs,
      primaryBefore,
      primaryAfter,
      failoverMs: firstAckAfterKill ? firstAckAfterKill - killedAt : null,
      acknowledged: acknowledged.size,
      acknowledgedOnRetry,
      lost,
      heldTwice,
      requests,
      unavailable,
      unexpected,
      check: { code: check.code, output: (check.stdout + check.stderr).trim() },
      serversRunning,
      afterStatuses,
    };
  } finally {
    await Promise.all(servers.map((s) => s.stop("SIGKILL")));
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
