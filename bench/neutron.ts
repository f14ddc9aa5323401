/**
 * Port create and delete through a real neutron-server (Debian's python3-neutron), with ipam_driver =
 * allot against internal (Neutron's reference driver) in the same run: p50 and p99 of each, and their
 * ratio. Calls go straight to Neutron's API (the openstack CLI's own start-up would hide the difference).
 * Writes bench/neutron-results.json. BENCH_QUICK=1 makes fewer ports.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { TEST_ADMIN_TOKEN } from "../test/helpers.js";
import { startServerProcess } from "../test/process-helpers.js";
import { installDriver, startNeutron } from "../test/integrations/neutron-server.js";
import { type LatencyStats, summarize, usSince } from "./lib.js";

const PORTS = process.env.BENCH_QUICK === "1" ? 40 : 200;

async function call(url: string, method: string, body?: unknown): Promise<Record<string, Record<string, unknown>>> {
  const res = await fetch(url, { method, headers: { "content-type": "application/json" }, ...(body ? { body: JSON.stringify(body) } : {}) });
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${await res.text()}`);
  return res.status === 204 ? {} : ((await res.json()) as Record<string, Record<string, unknown>>);
}

async function measure(url: string): Promise<{ create: LatencyStats; delete: LatencyStats }> {
  const net = (await call(`${url}/v2.0/networks`, "POST", { network: { name: "bench" } })).network!;
  await call(`${url}/v2.0/subnets`, "POST", { subnet: { network_id: net.id, ip_version: 4, cidr: "10.200.0.0/16" } });
  // a few ports first, so neither driver is timed on its first call
  for (let i = 0; i < 5; i++) await call(`${url}/v2.0/ports/${String((await call(`${url}/v2.0/ports`, "POST", { port: { network_id: net.id } })).port!.id)}`, "DELETE");
  const created: number[] = [];
  const deleted: number[] = [];
  const ids: string[] = [];
  const c0 = process.hrtime.bigint();
  for (let i = 0; i < PORTS; i++) {
    const t0 = process.hrtime.bigint();
    ids.push(String((await call(`${url}/v2.0/ports`, "POST", { port: { network_id: net.id } })).port!.id));
    created.push(usSince(t0));
  }
  const createMs = usSince(c0) / 1000;
  const d0 = process.hrtime.bigint();
  for (const id of ids) {
    const t0 = process.hrtime.bigint();
    await call(`${url}/v2.0/ports/${id}`, "DELETE");
    deleted.push(usSince(t0));
  }
  return { create: summarize(created, createMs), delete: summarize(deleted, usSince(d0) / 1000) };
}

const dir = mkdtempSync(join(tmpdir(), "allot-bench-neutron-"));
const allot = await startServerProcess(join(dir, "allot"));
try {
  await fetch(`${allot.url}/v1/spaces`, { method: "POST", headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, "content-type": "application/json" }, body: JSON.stringify({ name: "neutron" }) });
  const site = installDriver(dir);
  const results: Record<string, { create: LatencyStats; delete: LatencyStats }> = {};
  for (const driver of ["internal", "allot"]) {
    const neutron = await startNeutron({ dir: join(dir, driver), ipamDriver: driver, pythonPath: site, allot: { url: allot.url, token: TEST_ADMIN_TOKEN, space: "neutron" } });
    try {
      results[driver] = await measure(neutron.url);
    } finally {
      await neutron.stop();
    }
  }
  const ms = (us: number) => Math.round(us / 100) / 10;
  const ratio = (op: "create" | "delete", q: "p50Us" | "p99Us") => Math.round((results.allot![op][q] / results.internal![op][q]) * 100) / 100;
  const out = {
    ports: PORTS,
    internal: results.internal,
    allot: results.allot,
    ratio: { createP50: ratio("create", "p50Us"), createP99: ratio("create", "p99Us"), deleteP50: ratio("delete", "p50Us"), deleteP99: ratio("delete", "p99Us") },
  };
  for (const op of ["create", "delete"] as const) {
    process.stdout.write(
      `port ${op}: internal p50 ${ms(results.internal![op].p50Us)} ms p99 ${ms(results.internal![op].p99Us)} ms; allot p50 ${ms(results.allot![op].p50Us)} ms p99 ${ms(results.allot![op].p99Us)} ms\n`,
    );
  }
  process.stdout.write(`${JSON.stringify(out.ratio)}\n`);
  writeFileSync(fileURLToPath(new URL("./neutron-results.json", import.meta.url)), `${JSON.stringify(out, null, 2)}\n`);
} finally {
  await allot.stop();
  rmSync(dir, { recursive: true, force: true });
}
