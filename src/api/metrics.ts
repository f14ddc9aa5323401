/**
 * Prometheus metrics at /metrics: request counts and latencies per route, allocation failures by
 * reason, and per pool its addresses by state, utilisation and thresholds. Pool figures are read at
 * scrape time. Counts are exact decimals in the engine; here they become floats, which hold even an
 * IPv6 /0 (2^128) without overflow, and utilisation is computed as a float ratio so a barely used
 * IPv6 pool shows its small fraction rather than 0 or a capped value.
 */
import { SERVER } from "../engine/access.js";
import type { FastifyInstance } from "fastify";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Engine } from "../engine/engine.js";
import type { ErrorCode } from "../engine/errors.js";
import { reached } from "../engine/pool-repo.js";

declare module "fastify" {
  interface FastifyReply {
    /** The problem code this answer carried, if it was an error. */
    problemCode: ErrorCode | null;
  }
}

/** Routes whose failures count as allocation failures. */
const FORECAST_MS = 300_000;
const ALLOCATING = new Set(["/v1/pools/:pool/allocations", "/v1/pools/:pool/allocations/bulk"]);

export function registerMetrics(app: FastifyInstance, engine: Engine): void {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "allot_" });
  const requests = new Counter({
    name: "allot_http_requests_total",
    help: "HTTP requests answered, by method, route template and status",
    labelNames: ["method", "route", "status"],
    registers: [registry],
  });
  const latency = new Histogram({
    name: "allot_http_request_duration_seconds",
    help: "Time to answer HTTP requests, by method and route template",
    labelNames: ["method", "route"],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const failures = new Counter({
    name: "allot_allocation_failures_total",
    help: "Allocation requests refused, by reason (the problem code, e.g. pool-exhausted)",
    labelNames: ["reason"],
    registers: [registry],
  });
  const addresses = new Gauge({
    name: "allot_pool_addresses",
    help: "Addresses of each pool by state: total, allocated, in_child_pools, free",
    labelNames: ["space", "pool", "state"],
    registers: [registry],
  });
  const utilization = new Gauge({
    name: "allot_pool_utilization_ratio",
    help: "Share of each pool's addresses allocated or in child pools (0 to 1)",
    labelNames: ["space", "pool"],
    registers: [registry],
  });
  const exceeded = new Gauge({
    name: "allot_pool_threshold_exceeded",
    help: "1 while a pool's utilisation is at or above one of its thresholds (percent), else 0",
    labelNames: ["space", "pool", "threshold"],
    registers: [registry],
  });

  const daysLeft = new Gauge({
    name: "allot_pool_days_to_exhaustion",
    help: "Days until the pool has no free address at the pace of its last 30 days (GET /v1/pools/{pool}/forecast); absent without a forecast or while not growing",
    labelNames: ["space", "pool"],
    registers: [registry],
  });
  // a forecast reads a month of the pool's history: each is worked out at most once every few minutes
  const forecasts = new Map<string, { at: number; days: number | null }>();

  // DNS publishing, per zone, read from the database at scrape time (every server shows the same figures)
  const dnsGauges = {
    pending: new Gauge({ name: "allot_dns_queue_depth", help: "Changes waiting to be published to each DNS zone", labelNames: ["zone"], registers: [registry] }),
    failures: new Gauge({ name: "allot_dns_failures", help: "Failed publishing attempts in a row for each DNS zone (0 when the last one succeeded)", labelNames: ["zone"], registers: [registry] }),
    conflicts: new Gauge({ name: "allot_dns_conflicts", help: "Names in each DNS zone that Allot left alone because records it did not write hold them", labelNames: ["zone"], registers: [registry] }),
    published: new Gauge({ name: "allot_dns_record_changes_published", help: "Record changes sent to each DNS zone since it was configured", labelNames: ["zone"], registers: [registry] }),
  };

  app.decorateReply("problemCode", null);
  app.addHook("onResponse", async (req, reply) => {
    const route = req.routeOptions.url ?? "unmatched";
    requests.inc({ method: req.method, route, status: String(reply.statusCode) });
    latency.observe({ method: req.method, route }, reply.elapsedTime / 1000);
    if (req.method === "POST" && ALLOCATING.has(route) && reply.statusCode >= 400) failures.inc({ reason: reply.problemCode ?? String(reply.statusCode) });
  });

  app.get("/metrics", { schema: { hide: true } }, async (_req, reply) => {
    addresses.reset();
    utilization.reset();
    exceeded.reset();
    daysLeft.reset();
    const now = Date.now();
    const pools = await engine.listPools({}, SERVER);
    for (const id of forecasts.keys()) if (!pools.some((p) => p.id === id)) forecasts.delete(id);
    for (const p of pools) {
      const labels = { space: p.space, pool: p.name };
      const total = BigInt(p.usage.total);
      const used = BigInt(p.usage.allocated) + BigInt(p.usage.inChildPools);
      addresses.set({ ...labels, state: "total" }, Number(total));
      addresses.set({ ...labels, state: "allocated" }, Number(BigInt(p.usage.allocated)));
      addresses.set({ ...labels, state: "in_child_pools" }, Number(BigInt(p.usage.inChildPools)));
      addresses.set({ ...labels, state: "free" }, Number(BigInt(p.usage.free)));
      utilization.set(labels, total === 0n ? 0 : Number(used) / Number(total));
      for (const t of p.thresholds) exceeded.set({ ...labels, threshold: String(t) }, reached(used, total, t) ? 1 : 0);
      let f = forecasts.get(p.id);
      if (!f || now - f.at > FORECAST_MS) {
        // a pool deleted since the list has no forecast; the scrape goes on
        const days = await engine.forecast({ pool: p.id }, SERVER).then((x) => x.daysLeft, () => null);
        f = { at: now, days };
        forecasts.set(p.id, f);
      }
      if (f.days !== null) daysLeft.set(labels, f.days);
    }
    for (const g of Object.values(dnsGauges)) g.reset();
    for (const z of await engine.dnsFigures()) {
      dnsGauges.pending.set({ zone: z.zone }, z.pending);
      dnsGauges.failures.set({ zone: z.zone }, z.failures);
      dnsGauges.conflicts.set({ zone: z.zone }, z.conflicts);
      dnsGauges.published.set({ zone: z.zone }, z.published);
    }
    return reply.header("content-type", registry.contentType).send(await registry.metrics());
  });
}
