/**
 * How fast changes reach their followers across servers, and what following costs while nothing
 * changes: `npm run bench:feed` (also run by `npm run bench`), JSON to bench/feed-results.json.
 *
 * Two `allot serve` processes (A and B) on one PostgreSQL. Each round commits a change through A and
 * times, from A's answer (the commit comes before it; for the watch, from A's request, since A answers
 * only after reconciling), until B delivers it:
 *   - a DHCP agent's sync held open on B answers with the new reservation (an allocation with a MAC);
 *   - a Kubernetes watch on B streams the new IPPool (created through A's Kubernetes API);
 *   - a webhook receives the allocation's event (from either server's delivery loop).
 * Then, with no changes, B holds 100 syncs and 100 watches open for 10 s: its CPU use meanwhile.
 *
 * BENCH_QUICK=1 runs fewer rounds.
 */
import { createServer } from "node:http";
import { type AddressInfo } from "node:net";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startPostgres } from "../scripts/pg-server.mjs";
import { type ServerProcess, startServerProcess } from "../test/process-helpers.js";
import { AUTH } from "../test/helpers.js";
import { machineInfo, round, summarize } from "./lib.js";

const QUICK = process.env.BENCH_QUICK === "1";
const ROUNDS = QUICK ? 10 : 40;
const HELD = 100;
const IDLE_MS = 10_000;

const progress = (m: string) => process.stderr.write(`[feed] ${m}\n`);

async function api(server: ServerProcess, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(new URL(path, server.url), {
    method,
    headers: { ...AUTH, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

async function must(server: ServerProcess, method: string, path: string, body?: unknown): Promise<any> {
  const r = await api(server, method, path, body);
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

const agentBody = (known: Record<string, string>, waitSeconds: number) => ({
  networks: [{ network: "lan", interface: "eth0" }],
  server: "dnsmasq",
  health: {},
  known,
  waitSeconds,
});

/** Opens a watch on B; calls `onEvent` with each event's object name as it arrives. */
function watch(server: ServerProcess, path: string, onEvent: (name: string) => void, signal: AbortSignal): void {
  void (async () => {
    try {
      const res = await fetch(new URL(path, server.url), { headers: AUTH, signal });
      const reader = res.body!.getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += Buffer.from(value).toString();
        for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line) onEvent(JSON.parse(line).object?.metadata?.name ?? "");
        }
      }
    } catch {
      // aborted at the end
    }
  })();
}

const pg = await startPostgres();
const dir = mkdtempSync(join(tmpdir(), "allot-feed-"));
// held syncs last up to half the agent timeout: long enough to outlast the idle measurement
const env = { ALLOT_DATABASE_URL: pg.url, ALLOT_DHCP_AGENT_TIMEOUT_MS: "60000" };
const a = await startServerProcess(join(dir, "a"), env);
const b = await startServerProcess(join(dir, "b"), env);
const receiver = createServer((req, res) => {
  let body = "";
  req.on("data", (d) => (body += d));
  req.on("end", () => {
    res.end();
    const at = performance.now();
    for (const e of JSON.parse(body).events as { entityId: string }[]) arrived(hooked, e.entityId, at);
  });
});
/** When each awaited thing arrived, and who waits for it: an arrival may come before its waiter. */
type Arrivals = Map<string, { at?: number; resolve?: (at: number) => void }>;
const hooked: Arrivals = new Map();
const arrived = (m: Arrivals, key: string, at: number) => {
  const e = m.get(key);
  if (e?.resolve) e.resolve(at);
  else if (!e) m.set(key, { at });
};
/** The arrival time of `key`, or NaN after 15 s. */
const arrival = (m: Arrivals, key: string) =>
  Promise.race([
    new Promise<number>((resolve) => {
      const e = m.get(key);
      if (e?.at !== undefined) resolve(e.at);
      else m.set(key, { resolve });
    }),
    new Promise<number>((resolve) => setTimeout(() => resolve(Number.NaN), 15_000)),
  ]);
await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
const stop = new AbortController();
const results = {
  generatedAt: new Date().toISOString(),
  machine: machineInfo(),
  rounds: ROUNDS,
  latencyMs: {} as Record<string, ReturnType<typeof summary>>,
  idle: {} as Record<string, number>,
  notSeenWithin15s: {} as Record<string, number>,
};
const summary = (ms: number[]) => {
  const s = summarize(ms.map((x) => x * 1000), 0);
  return { n: s.n, p50: round(s.p50Us / 1000, 1), p99: round(s.p99Us / 1000, 1), max: round(s.maxUs / 1000, 1) };
};

try {
  await must(a, "POST", "/v1/pools", { name: "lan-net", cidr: "10.70.0.0/22" });
  await must(a, "POST", "/v1/dhcp/networks", { name: "lan", space: "default", pools: ["lan-net"] });
  await must(a, "POST", "/v1/webhooks", { name: "bench", url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/` });
  // the agent on B: its first sync gets the network assigned
  let known: Record<string, string> = {};
  for (let i = 0; i < 20 && Object.keys(known).length === 0; i++) {
    const r = await must(b, "POST", "/v1/dhcp/agents/bench-agent/sync", agentBody({}, 0));
    known = Object.fromEntries((r.assignments as { network: string; hash: string }[]).map((x) => [x.network, x.hash]));
    if (Object.keys(known).length === 0) await new Promise((r) => setTimeout(r, 200));
  }
  if (Object.keys(known).length === 0) throw new Error("the bench agent was never assigned network lan");

  const watchers: Arrivals = new Map();
  watch(b, "/apis/ipam.metal3.io/v1alpha1/namespaces/default/ippools?watch=true", (name) => arrived(watchers, name, performance.now()), stop.signal);
  await new Promise((r) => setTimeout(r, 500));

  const dhcp: number[] = [];
  const hooks: number[] = [];
  const watches: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    // DHCP and webhook: one allocation with a MAC through A while B holds the agent's sync
    const held = api(b, "POST", "/v1/dhcp/agents/bench-agent/sync", agentBody(known, 3)).then((r) => ({ r, at: performance.now() }));
    await new Promise((r) => setTimeout(r, 50));
    const made = await must(a, "POST", "/v1/pools/lan-net/allocations", { mac: `52:54:00:00:${(i >> 8).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}` });
    const t0 = performance.now();
    const { r, at } = await held;
    if (r.status !== 200) throw new Error(`held sync answered ${r.status}`);
    known = Object.fromEntries((r.json.assignments as { network: string; hash: string }[]).map((x) => [x.network, x.hash]));
    dhcp.push(at - t0);
    hooks.push((await arrival(hooked, made.id)) - t0);
    // watch: an IPPool through A's Kubernetes API
    const name = `bench-${i}`;
    // from the request's start: A answers only after reconciling the namespace, later than its commit
    const t1 = performance.now();
    await must(a, "POST", "/apis/ipam.metal3.io/v1alpha1/namespaces/default/ippools", {
      apiVersion: "ipam.metal3.io/v1alpha1",
      kind: "IPPool",
      metadata: { name },
      spec: { namePrefix: name, clusterName: "bench", prefix: 24, pools: [{ start: `10.80.${i}.10`, end: `10.80.${i}.20` }] },
    });
    watches.push((await arrival(watchers, name)) - t1);
    if (i % 10 === 9) progress(`${i + 1} rounds`);
  }
  const lost = (xs: number[]) => xs.filter((x) => Number.isNaN(x)).length;
  results.latencyMs = { dhcpSync: summary(dhcp), watch: summary(watches.filter((x) => !Number.isNaN(x))), webhook: summary(hooks.filter((x) => !Number.isNaN(x))) };
  results.notSeenWithin15s = { watch: lost(watches), webhook: lost(hooks) };
  progress(`latency (ms): ${JSON.stringify(results.latencyMs)}`);

  // idle: HELD syncs (each its own agent) and HELD watches on B, nothing changing
  const idle = new AbortController();
  for (let i = 0; i < HELD; i++) {
    watch(b, `/apis/ipam.metal3.io/v1alpha1/namespaces/default/ippools?watch=true&resourceVersion=999999999`, () => {}, idle.signal);
    void fetch(new URL(`/v1/dhcp/agents/idle-${i}/sync`, b.url), {
      method: "POST",
      headers: { ...AUTH, "content-type": "application/json" },
      body: JSON.stringify(agentBody({}, 60)),
      signal: idle.signal,
    }).catch(() => {});
  }
  await new Promise((r) => setTimeout(r, 3000)); // every request is in and held
  const pid = b.proc.pid!;
  const c0 = cpuSeconds(pid);
  const w0 = performance.now();
  await new Promise((r) => setTimeout(r, IDLE_MS));
  const cpu = cpuSeconds(pid) - c0;
  const wall = (performance.now() - w0) / 1000;
  idle.abort();
  results.idle = { heldSyncs: HELD, heldWatches: HELD, seconds: round(wall, 1), cpuSeconds: round(cpu, 2), cpuPercent: round((cpu / wall) * 100, 1) };
  progress(`idle with ${HELD} held syncs and ${HELD} watches: ${JSON.stringify(results.idle)}`);
} finally {
  stop.abort();
  receiver.close();
  await Promise.all([a.stop(), b.stop()]);
  await pg.stop();
  rmSync(dir, { recursive: true, force: true });
}
const out = fileURLToPath(new URL(process.env.FEED_RESULTS ?? "./feed-results.json", import.meta.url));
writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
