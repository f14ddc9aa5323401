import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { type IncomingMessage, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { deliverDue } from "../../src/server/webhooks.js";
import { ctx, manualClock, tempApp } from "../helpers.js";

/** Prometheus text: the value of the sample whose name and labels match. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue;
    const inner = line.slice(name.length + 1, line.lastIndexOf("}"));
    const got = Object.fromEntries([...inner.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(line.slice(line.lastIndexOf("}") + 1));
  }
  return undefined;
}

test("/metrics: pool figures exact for IPv6, request counts and latencies, allocation failures by reason", async () => {
  const env = await tempApp();
  const { inject } = env;
  try {
    await inject({ method: "POST", url: "/v1/pools", payload: { name: "v6", cidr: "fd00:1::/48", allocateReserved: true } });
    await inject({ method: "POST", url: "/v1/pools", payload: { name: "tiny", cidr: "10.9.9.0/30" } });
    for (let i = 0; i < 3; i++) await inject({ method: "POST", url: "/v1/pools/v6/allocations", payload: {} });
    await inject({ method: "POST", url: "/v1/pools/tiny/allocations", payload: {} });
    await inject({ method: "POST", url: "/v1/pools/tiny/allocations", payload: {} });
    const full = await inject({ method: "POST", url: "/v1/pools/tiny/allocations", payload: {} });
    assert.equal(full.json().code, "pool-exhausted");
    await inject({ method: "POST", url: "/v1/pools/tiny/allocations", payload: { address: "10.9.9.1" } });

    const res = await inject({ method: "GET", url: "/metrics", headers: { authorization: undefined } });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers["content-type"]), /^text\/plain/);
    const m = res.body;
    // 2^80 addresses: a float, neither overflowed nor capped
    assert.equal(sample(m, "allot_pool_addresses", { pool: "v6", state: "total" }), 2 ** 80);
    assert.equal(sample(m, "allot_pool_addresses", { pool: "v6", state: "allocated" }), 3);
    assert.equal(sample(m, "allot_pool_addresses", { pool: "v6", state: "free" }), 2 ** 80 - 3);
    const ratio = sample(m, "allot_pool_utilization_ratio", { pool: "v6" })!;
    assert.ok(ratio > 0 && Math.abs(ratio - 3 / 2 ** 80) / (3 / 2 ** 80) < 1e-9, `ratio ${ratio}`);
    assert.equal(sample(m, "allot_pool_utilization_ratio", { pool: "tiny" }), 1);
    assert.equal(sample(m, "allot_allocation_failures_total", { reason: "pool-exhausted" }), 1);
    assert.equal(sample(m, "allot_allocation_failures_total", { reason: "address-unavailable" }), 1);
    assert.equal(sample(m, "allot_http_requests_total", { method: "POST", route: "/v1/pools/:pool/allocations", status: "201" }), 5);
    assert.ok(sample(m, "allot_http_request_duration_seconds_count", { method: "POST", route: "/v1/pools/:pool/allocations" })! >= 7);

    const ready = await inject({ method: "GET", url: "/readyz", headers: { authorization: undefined } });
    assert.deepEqual(ready.json(), { status: "ready", store: env.store.kind });
  } finally {
    await env.cleanup();
  }
});

test("utilisation thresholds: crossings up and back down are recorded in history and exported", async () => {
  const env = await tempApp();
  const { inject } = env;
  try {
    // 8 allocatable addresses; thresholds at 50% and 75%
    const made = await inject({ method: "POST", url: "/v1/pools", payload: { name: "t", cidr: "10.7.0.0/29", allocateReserved: true, thresholds: [75, 50] } });
    assert.deepEqual(made.json().thresholds, [50, 75]);
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push((await inject({ method: "POST", url: "/v1/pools/t/allocations", payload: {} })).json().id);
    let m = (await inject({ method: "GET", url: "/metrics" })).body;
    assert.equal(sample(m, "allot_pool_threshold_exceeded", { pool: "t", threshold: "50" }), 1);
    assert.equal(sample(m, "allot_pool_threshold_exceeded", { pool: "t", threshold: "75" }), 1);
    for (const id of ids.slice(0, 3)) await inject({ method: "DELETE", url: `/v1/allocations/${id}` });
    m = (await inject({ method: "GET", url: "/metrics" })).body;
    assert.equal(sample(m, "allot_pool_threshold_exceeded", { pool: "t", threshold: "75" }), 0);
    assert.equal(sample(m, "allot_pool_threshold_exceeded", { pool: "t", threshold: "50" }), 0, "3 of 8 is below 50%");

    const events = (await inject({ method: "GET", url: "/v1/history?pool=t&entity=pool" })).json().items.filter((h: { action: string }) => h.action.startsWith("threshold"));
    const seen = events.reverse().map((h: { action: string; after: { threshold: number } }) => `${h.action} ${h.after.threshold}`);
    assert.deepEqual(seen, ["threshold-crossed 50", "threshold-crossed 75", "threshold-cleared 75", "threshold-cleared 50"]);
    const bad = await inject({ method: "PATCH", url: "/v1/pools/t", payload: { thresholds: [0] } });
    assert.equal(bad.statusCode, 400);
  } finally {
    await env.cleanup();
  }
});

test("secret attributes are stored sealed, shown only as a hint, and opened for the server's own use", async () => {
  const env = await tempApp();
  const { inject } = env;
  try {
    const secret = "pk_live_0123456789abcdefWXYZ";
    const made = await inject({ method: "POST", url: "/v1/pools", payload: { name: "cloud", cidr: "10.8.0.0/24", secrets: { apiToken: secret } } });
    assert.equal(made.statusCode, 201, made.body);
    assert.deepEqual(made.json().secrets, { apiToken: "…WXYZ" });
    for (const url of ["/v1/pools/cloud", "/v1/pools", "/v1/history?limit=1000"]) assert.ok(!(await inject({ method: "GET", url })).body.includes(secret), url);
    const raw = await env.store.read((sql) => sql.all("SELECT secrets FROM pools"));
    assert.ok(!JSON.stringify(raw).includes(secret), "the database holds the secret in clear");
    assert.equal(await env.engine.poolSecret({ pool: "cloud" }, "apiToken"), secret);
    // changed, then removed
    await inject({ method: "PATCH", url: "/v1/pools/cloud", payload: { secrets: { apiToken: "another-secret-value-1234" } } });
    assert.equal(await env.engine.poolSecret({ pool: "cloud" }, "apiToken"), "another-secret-value-1234");
    const removed = await inject({ method: "PATCH", url: "/v1/pools/cloud", payload: { secrets: { apiToken: null } } });
    assert.deepEqual(removed.json().secrets, {});
  } finally {
    await env.cleanup();
  }
});

test("webhooks: every later change is POSTed, signed; a failing receiver is retried with backoff, nothing lost", async () => {
  const env = await tempApp();
  const { inject, engine } = env;
  const received: { body: string; signature: string }[] = [];
  let failNext = 2;
  const server = createServer((req: IncomingMessage, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      if (failNext > 0) {
        failNext--;
        res.writeHead(503).end();
        return;
      }
      received.push({ body, signature: String(req.headers["x-allot-signature"]) });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  const log = { warn: () => {}, error: () => {}, info: () => {} } as unknown as Parameters<typeof deliverDue>[1];
  try {
    const hook = await inject({ method: "POST", url: "/v1/webhooks", payload: { name: "audit", url, secret: "0123456789abcdef-secret" } });
    assert.equal(hook.statusCode, 201, hook.body);
    await inject({ method: "POST", url: "/v1/pools", payload: { name: "w", cidr: "10.6.0.0/24" } });
    for (let i = 0; i < 3; i++) await inject({ method: "POST", url: "/v1/pools/w/allocations", payload: { owner: `h-${i}` } });
    // first attempt fails (503): backs off; the changes themselves were never held up
    await deliverDue(engine, log);
    assert.equal(received.length, 0);
    let state = (await inject({ method: "GET", url: "/v1/webhooks" })).json().items[0];
    assert.equal(state.failures, 1);
    assert.equal(state.lastError, "HTTP 503");
    await new Promise((r) => setTimeout(r, 1100)); // 1 s backoff
    await deliverDue(engine, log); // fails again: now 2 s
    assert.equal(received.length, 0);
    await deliverDue(engine, log); // still backing off: no attempt
    assert.equal(failNext, 0);
    await new Promise((r) => setTimeout(r, 2100));
    await deliverDue(engine, log);
    assert.equal(received.length, 1);
    const { body, signature } = received[0]!;
    assert.equal(signature, `sha256=${createHmac("sha256", "0123456789abcdef-secret").update(body).digest("hex")}`);
    const payload = JSON.parse(body) as { webhook: string; events: { seq: number; action: string; entity: string; after: { owner?: string } }[] };
    assert.equal(payload.webhook, "audit");
    // the hook's own creation, the pool, the three allocations: in order, each once
    assert.deepEqual(payload.events.map((e) => `${e.entity}:${e.action}`), ["webhook:create", "pool:create", "allocation:allocate", "allocation:allocate", "allocation:allocate"]);
    assert.deepEqual(payload.events.map((e) => e.seq), [...payload.events.map((e) => e.seq)].sort((a, b) => a - b));
    state = (await inject({ method: "GET", url: "/v1/webhooks" })).json().items[0];
    assert.deepEqual([state.delivered, state.failures, state.lastError], [5, 0, null]);
    assert.ok(!JSON.stringify(state).includes("0123456789abcdef-secret"));
    // nothing new: nothing sent
    await deliverDue(engine, log);
    assert.equal(received.length, 1);
    await engine.deleteWebhook("audit", ctx);
  } finally {
    server.close();
    await env.cleanup();
  }
});

test("body size and per-token rate limits answer 413 and 429 with problem documents", async () => {
  const env = await tempApp({ bodyLimit: 2048, rateLimitPerMinute: 5 });
  try {
    const big = await env.inject({ method: "POST", url: "/v1/pools", payload: { name: "x", description: "d".repeat(4000) } });
    assert.equal(big.statusCode, 413);
    assert.equal(big.json().code, "payload-too-large");
    const codes: number[] = [];
    for (let i = 0; i < 7; i++) codes.push((await env.inject({ method: "GET", url: "/v1/spaces" })).statusCode);
    assert.deepEqual(codes.slice(0, 4), [200, 200, 200, 200]);
    assert.equal(codes[6], 429);
    const limited = await env.inject({ method: "GET", url: "/v1/spaces" });
    assert.equal(limited.json().code, "rate-limited");
    // another token has its own allowance; health is never limited
    const other = await env.engine.createToken({ name: "other", scope: "read" }, ctx);
    assert.equal((await env.inject({ method: "GET", url: "/v1/spaces", headers: { authorization: `Bearer ${other.token}` } })).statusCode, 200);
    assert.equal((await env.inject({ method: "GET", url: "/healthz" })).statusCode, 200);
  } finally {
    await env.cleanup();
  }
});

test("the exhaustion forecast: GET …/forecast and the metric alerts are written against", async () => {
  const clock = manualClock(Date.parse("2026-03-01T00:00:00Z"));
  const env = await tempApp({}, { clock: clock.now });
  try {
    await env.engine.createPool({ name: "filling", cidr: "10.95.0.0/24" }, ctx);
    await env.engine.createPool({ name: "quiet", cidr: "10.96.0.0/24" }, ctx);
    for (let i = 0; i < 40; i++) {
      clock.advance(86_400_000 / 4); // 4 a day for 10 days
      await env.engine.allocate({ pool: "filling" }, {}, ctx);
    }
    const f = (await env.inject({ method: "GET", url: "/v1/pools/filling/forecast" })).json();
    assert.equal(f.note, null);
    assert.ok(Math.abs(f.growthPerDay - 4) < 0.5, JSON.stringify(f));
    assert.ok(Math.abs(f.daysLeft - 214 / f.growthPerDay) < 0.05, JSON.stringify(f));
    assert.match(f.method, /least-squares/);
    assert.equal((await env.inject({ method: "GET", url: "/v1/pools/quiet/forecast" })).json().note, "too little history");
    const metrics = (await env.inject({ method: "GET", url: "/metrics" })).body;
    const line = metrics.split("\n").find((l) => l.startsWith('allot_pool_days_to_exhaustion{space="default",pool="filling"}'));
    assert.ok(line && Math.abs(Number(line.split(" ")[1]) - f.daysLeft) < 0.01, line);
    assert.doesNotMatch(metrics, /allot_pool_days_to_exhaustion\{[^}]*pool="quiet"/, "no forecast, no series");
  } finally {
    await env.cleanup();
  }
});
