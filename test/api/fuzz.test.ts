import assert from "node:assert/strict";
import { test } from "node:test";
import type { InjectOptions } from "fastify";
import fc from "fast-check";
import { ctx, tempApp } from "../helpers.js";

/**
 * Hostile input: FUZZ_REQUESTS (default 10,000) random and malformed requests spread over every route
 * of the OpenAPI document: bad JSON, wrong types, huge and deeply nested bodies, invalid UTF-8, absurd
 * numbers, out-of-range prefix lengths, path and query tricks. None may answer 5xx; none that is
 * refused may change the database; memory stays bounded. Generation is seeded, so a failure repeats.
 */

const REQUESTS = Number(process.env.FUZZ_REQUESTS ?? 10_000);
const SEED = 20261122;

const ABSURD_NUMBERS = ["1e400", "-1e400", "18446744073709551616", "-0", "0.0000000001", "9007199254740993", "NaN", "Infinity", "1.5", "-1", "4294967297", "340282366920938463463374607431768211457"];
const TRICKY_STRINGS = [
  "../../etc/passwd", "..%2f..%2fsecret", "%00", "%2e%2e", "a/b", "10.0.0.0/33", "::/129", "10.0.0.0/-1", "fe80::1%eth0", "10.1", "010.0.0.1",
  "0.0.0.0/0", "::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "1.2.3.4.5", "256.0.0.1", " ", "\u0000", "\u202e", "😀", "x".repeat(5000),
  "' OR 1=1 --", "<script>", "__proto__", "constructor", "00:00:00:00:00:00", "zz:zz:zz:zz:zz:zz",
];

/** One malformed or random variant of a request to `path` (an OpenAPI path with {params}). */
function mutate(rand: () => number, method: string, path: string, pick: <T>(xs: readonly T[]) => T, json: () => unknown): InjectOptions {
  const param = () => (rand() < 0.5 ? encodeURIComponent(pick(TRICKY_STRINGS)) : pick(["default", "fuzz", "00000000-0000-0000-0000-000000000000", "fz-pool"]));
  let url = path.replace(/\{[^}]+\}/g, param);
  const r = rand();
  if (r < 0.15) url += `?${pick(["space", "limit", "after", "address", "force", "owner", "at", "from", "before", "zz"])}=${encodeURIComponent(pick([...TRICKY_STRINGS, ...ABSURD_NUMBERS]))}`;
  else if (r < 0.2) url += "?space=a&space=b&limit=1&limit=x";
  else if (r < 0.25) url += `?${"q=1&".repeat(300)}`;
  const opts: InjectOptions = { method: method as InjectOptions["method"], url };
  if (method === "GET" || method === "DELETE") return opts;
  const b = rand();
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (b < 0.15) opts.payload = '{"name": "x", "cidr": "10.0.0.0/24",';
  else if (b < 0.25) opts.payload = Buffer.from([0x7b, 0x22, 0x6e, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0xc3, 0x28, 0x22, 0x7d]); // {"n":"<invalid UTF-8>"}
  else if (b < 0.3) opts.payload = `${"[".repeat(20000)}${"]".repeat(20000)}`;
  else if (b < 0.33) opts.payload = `{"description": "${"a".repeat(1_100_000)}"}`; // over the 1 MiB limit
  else if (b < 0.45) opts.payload = `{"${pick(["name", "cidr", "size", "count", "prefixLength", "ttl", "address", "thresholds", "scope", "spaces", "url"])}": ${pick(ABSURD_NUMBERS)}}`;
  else if (b < 0.55) {
    opts.payload = JSON.stringify({ name: pick(TRICKY_STRINGS), cidr: pick(["10.0.0.0/33", "::/129", "10.0.0.0/-3", "1.2.3.4/32/1", pick(TRICKY_STRINGS)]), prefixLength: pick([-1, 33, 129, 1e9, 2.5]) });
  } else if (b < 0.6) {
    headers["content-type"] = pick(["text/plain", "application/xml", "application/json; charset=latin1", "multipart/form-data; boundary=x"]);
    opts.payload = "name=x";
  } else opts.payload = JSON.stringify(json());
  opts.headers = headers;
  return opts;
}

test(`${REQUESTS} hostile requests over every route: no 5xx, no change from a refused request, bounded memory`, async () => {
  const env = await tempApp();
  const { inject, engine } = env;
  try {
    await engine.createPool({ name: "fz-pool", cidr: "10.200.0.0/24" }, ctx);
    await engine.allocate({ pool: "fz-pool" }, { owner: "keeper" }, ctx);
    const doc = (await inject({ method: "GET", url: "/openapi.json" })).json() as { paths: Record<string, Record<string, unknown>> };
    const routes = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => [m.toUpperCase(), p] as const));
    assert.ok(routes.length > 25);

    // a cheap fingerprint of everything a change touches: every change writes history in its own transaction
    const fingerprint = () =>
      env.store.read(async (sql) => {
        const parts: unknown[] = [];
        for (const t of ["spaces", "pools", "allocations", "free_runs", "history", "tokens", "webhooks"]) parts.push((await sql.get(`SELECT COUNT(*) AS n FROM ${t}`)) ?? null);
        parts.push(await sql.get("SELECT MAX(seq) AS s FROM history"), await sql.get("SELECT MAX(updated_at) AS u, MAX(allocated) AS a FROM pools"));
        return JSON.stringify(parts);
      });

    // uniform in [0, 1): unbiased integers scaled (fast-check's doubles are uniform over bit patterns, not values)
    const rng = fc.sample(fc.noBias(fc.integer({ min: 0, max: 2 ** 30 - 1 })), { seed: SEED, numRuns: REQUESTS * 12 });
    let k = 0;
    const rand = () => rng[k++ % rng.length]! / 2 ** 30;
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const jsons = fc.sample(fc.jsonValue({ maxDepth: 4 }), { seed: SEED, numRuns: 500 });
    const json = () => pick(jsons);

    global.gc?.();
    const rssBefore = process.memoryUsage().rss;
    let baseline = await fingerprint();
    const statuses: Record<number, number> = {};
    for (let i = 0; i < REQUESTS; i++) {
      const [method, path] = pick(routes);
      const req = mutate(rand, method, path, pick, json);
      const res = await inject(req);
      statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
      const sent = Buffer.isBuffer(req.payload) ? req.payload.toString("hex") : String(req.payload ?? "").slice(0, 200);
      const what = `request ${i}: ${req.method} ${String(req.url).slice(0, 200)} ${sent} -> ${res.statusCode} ${res.body.slice(0, 200)}`;
      assert.ok(res.statusCode < 500, what);
      if (res.statusCode >= 400) {
        assert.match(String(res.headers["content-type"]), /problem\+json/, what);
        if (method !== "GET") assert.equal(await fingerprint(), baseline, `refused, yet the database changed: ${what}`);
      } else if (method !== "GET") {
        baseline = await fingerprint(); // a random body that happened to be valid: a real change
      }
    }
    global.gc?.();
    const grownMiB = (process.memoryUsage().rss - rssBefore) / 1024 / 1024;
    if (process.env.FUZZ_VERBOSE) console.log(JSON.stringify({ statuses, grownMiB }));
    assert.ok(grownMiB < 200, `RSS grew by ${grownMiB.toFixed(0)} MiB over ${REQUESTS} requests`);
    // mostly refusals, and the server still works
    const refused = Object.entries(statuses).filter(([s]) => Number(s) >= 400).reduce((n, [, c]) => n + c, 0);
    assert.ok(refused > REQUESTS * 0.6, `only ${refused} of ${REQUESTS} refused: ${JSON.stringify(statuses)}`);
    assert.equal((await inject({ method: "POST", url: "/v1/pools/fz-pool/allocations", payload: { owner: "after-fuzz" } })).statusCode, 201);
    assert.deepEqual(await engine.check(), []);
  } finally {
    await env.cleanup();
  }
});
