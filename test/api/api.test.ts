import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { tempApp } from "../helpers.js";

let env: Awaited<ReturnType<typeof tempApp>>;
let app: { inject: Awaited<ReturnType<typeof tempApp>>["inject"] };

before(async () => {
  env = await tempApp();
  app = { inject: env.inject };
});
after(async () => {
  await env.cleanup();
});

const post = (url: string, payload: unknown) => app.inject({ method: "POST", url, payload: payload as object });
const get = (url: string) => app.inject({ method: "GET", url });

/** A problem document with the given status and code, and a detail that mentions `mentions`. */
function assertProblem(res: Awaited<ReturnType<typeof get>>, status: number, code: string, mentions?: RegExp) {
  assert.equal(res.statusCode, status, res.body);
  assert.match(String(res.headers["content-type"]), /^application\/problem\+json/);
  const p = res.json();
  assert.equal(p.code, code);
  assert.equal(p.type, `urn:allot:problem:${code}`);
  assert.equal(p.status, status);
  assert.equal(typeof p.title, "string");
  if (mentions) assert.match(p.detail, mentions);
}

describe("pools and allocations over HTTP", () => {
  test("a session: create a pool, allocate, look up, release", async () => {
    const created = await post("/v1/pools", {
      name: "lab-net",
      cidr: "10.20.0.0/24",
      gateway: "10.20.0.1",
      dns: ["10.20.0.53"],
      exclusions: ["10.20.0.2-10.20.0.9"],
      attributes: { site: "ams", rack: { row: 4, unit: [1, 2] } },
    });
    assert.equal(created.statusCode, 201, created.body);
    const pool = created.json();
    assert.deepEqual(pool.attributes, { site: "ams", rack: { row: 4, unit: [1, 2] } });
    assert.equal(pool.usage.total, "245"); // 256 - network - broadcast - gateway - 8 excluded

    const a = await post("/v1/pools/lab-net/allocations", { owner: "vm-1", mac: "AA-BB-CC-00-11-22", hostname: "vm1" });
    assert.equal(a.statusCode, 201);
    assert.equal(a.json().address, "10.20.0.10");
    assert.equal(a.json().mac, "aa:bb:cc:00:11:22");
    assert.equal(a.json().gateway, "10.20.0.1");
    assert.equal(a.json().prefixLength, 24);

    const again = await post("/v1/pools/lab-net/allocations", { owner: "vm-1" });
    assert.equal(again.statusCode, 200, "same owner: existing allocation, not a new one");
    assert.equal(again.json().id, a.json().id);

    const block = await post("/v1/pools/lab-net/allocations", { size: 4 });
    assert.equal(block.json().address, "10.20.0.11");
    assert.equal(block.json().lastAddress, "10.20.0.14");

    const found = await get("/v1/lookup?address=10.20.0.12");
    assert.equal(found.json().items[0].state, "allocated");
    assert.equal(found.json().items[0].allocation.id, block.json().id);

    const usage = await get("/v1/pools/lab-net/usage");
    assert.deepEqual(usage.json(), { total: "245", allocated: "5", inChildPools: "0", free: "240", utilization: 2.04 });

    const rel = await app.inject({ method: "DELETE", url: "/v1/pools/lab-net/allocations?owner=vm-1" });
    assert.equal(rel.statusCode, 200);
    assert.equal((await get("/v1/lookup?address=10.20.0.10")).json().items[0].state, "free");
    const relId = await app.inject({ method: "DELETE", url: `/v1/allocations/${block.json().id}` });
    assert.equal(relId.statusCode, 200);
    assert.equal((await get("/v1/pools/lab-net/usage")).json().allocated, "0");
  });

  test("IPv6 addresses come back canonical and usage is exact", async () => {
    const res = await post("/v1/pools", { name: "v6", cidr: "2001:0DB8:0000::/32" });
    assert.equal(res.statusCode, 201);
    assert.equal(res.json().ranges[0].cidr, "2001:db8::/32");
    assert.equal(res.json().usage.total, ((1n << 96n) - 1n).toString()); // all but the subnet-router anycast
    const a = await post("/v1/pools/v6/allocations", { address: "2001:DB8:0:0:0:0:0:00A" });
    assert.equal(a.json().address, "2001:db8::a");
    const child = await post("/v1/pools/v6/children", { name: "v6-sub", prefixLength: 48 });
    assert.equal(child.statusCode, 201, child.body);
    assert.equal(child.json().ranges[0].cidr, "2001:db8:1::/48", "the first /48 holds 2001:db8::a, so the next one");
    assert.equal(child.json().parent, "v6");
    const u = (await get("/v1/pools/v6/usage")).json();
    assert.equal(u.inChildPools, (1n << 80n).toString());
  });

  test("an allocation's hostname, MAC, labels and time-to-live can change; its address cannot", async () => {
    const a = (await post("/v1/pools/lab-net/allocations", { owner: "patch-me", ttl: 60 })).json();
    assert.ok(a.expiresAt);
    const patch = (payload: object) => app.inject({ method: "PATCH", url: `/v1/allocations/${a.id}`, payload });
    const renewed = await patch({ ttl: 3600, hostname: "db1", mac: "aabb.ccdd.eeff", labels: { tier: "db" } });
    assert.equal(renewed.statusCode, 200, renewed.body);
    assert.ok(Date.parse(renewed.json().expiresAt) > Date.parse(a.expiresAt) + 3000 * 1000);
    assert.equal(renewed.json().mac, "aa:bb:cc:dd:ee:ff");
    assert.equal(renewed.json().address, a.address);
    assert.equal((await patch({ ttl: null })).json().expiresAt, null);
    assertProblem(await patch({ ttl: 0 }), 400, "invalid-request", /ttl/);
    assertProblem(await patch({ address: "10.20.0.99" }), 400, "invalid-request", /address/);
    assert.equal((await get(`/v1/allocations/${a.id}`)).json().hostname, "db1");
    await app.inject({ method: "DELETE", url: `/v1/allocations/${a.id}` });
  });

  test("many separate addresses in one request: all of them, or none when the pool cannot hold them", async () => {
    await post("/v1/pools", { name: "bulk", cidr: "10.31.0.0/24", exclusions: ["10.31.0.5"] });
    await post("/v1/pools/bulk/allocations", { address: "10.31.0.3" });
    const res = await post("/v1/pools/bulk/allocations/bulk", { count: 10, labels: { batch: "1" } });
    assert.equal(res.statusCode, 201, res.body);
    const got = res.json().items.map((a: { address: string }) => a.address);
    // lowest free first, around the held address and the exclusion, each its own allocation
    assert.deepEqual(got, ["10.31.0.1", "10.31.0.2", "10.31.0.4", "10.31.0.6", "10.31.0.7", "10.31.0.8", "10.31.0.9", "10.31.0.10", "10.31.0.11", "10.31.0.12"]);
    assert.equal(new Set(res.json().items.map((a: { id: string }) => a.id)).size, 10);
    assert.equal((await get("/v1/pools/bulk/usage")).json().allocated, "11");
    const before = (await get("/v1/history?limit=1000")).json().items.length;
    assertProblem(await post("/v1/pools/bulk/allocations/bulk", { count: 300 }), 409, "pool-exhausted", /242 free addresses, fewer than the 300/);
    assert.equal((await get("/v1/pools/bulk/usage")).json().allocated, "11", "none of the 300 was taken");
    assert.equal((await get("/v1/history?limit=1000")).json().items.length, before);
    assertProblem(await post("/v1/pools/bulk/allocations/bulk", { count: 0 }), 400, "invalid-request", /count/);
    const all = await post("/v1/pools/bulk/allocations/bulk", { count: 242 });
    assert.equal(all.statusCode, 201);
    assert.equal(all.json().items.length, 242);
    assert.equal((await get("/v1/pools/bulk/usage")).json().free, "0");
    assert.deepEqual(await env.engine.check(), []);
    await app.inject({ method: "DELETE", url: "/v1/pools/bulk?force=true" });

    // a large answer is written in slices: it is still one JSON document, each item as stored
    await post("/v1/pools", { name: "bulk-big", cidr: "10.32.0.0/20" });
    const big = await post("/v1/pools/bulk-big/allocations/bulk", { count: 2500 });
    assert.equal(big.statusCode, 201, big.body.slice(0, 500));
    assert.match(String(big.headers["content-type"]), /^application\/json/);
    const items = big.json().items as { id: string; address: string }[];
    assert.equal(items.length, 2500);
    assert.equal(new Set(items.map((a) => a.address)).size, 2500);
    for (const i of [0, 999, 1000, 2499]) assert.deepEqual((await get(`/v1/allocations/${items[i]!.id}`)).json(), items[i]);
    await app.inject({ method: "DELETE", url: "/v1/pools/bulk-big?force=true" });
  });

  test("an address from a stretch of the pool: the lowest free there, or exhausted when the stretch is full", async () => {
    assert.equal((await post("/v1/pools", { name: "within-net", cidr: "10.21.0.0/24" })).statusCode, 201);
    const within = { start: "10.21.0.100", end: "10.21.0.101" };
    assert.equal((await post("/v1/pools/within-net/allocations", { within })).json().address, "10.21.0.100");
    assert.equal((await post("/v1/pools/within-net/allocations", { within })).json().address, "10.21.0.101");
    assertProblem(await post("/v1/pools/within-net/allocations", { within }), 409, "pool-exhausted", /no free address from 10\.21\.0\.100 to 10\.21\.0\.101/);
    assertProblem(await post("/v1/pools/within-net/allocations", { within: { start: "10.21.0.9", end: "10.21.0.1" } }), 400, "invalid-request", /start before end/);
    assert.equal((await post("/v1/pools/within-net/allocations", {})).json().address, "10.21.0.1", "the rest of the pool is untouched");
  });

  test("allocations list pages in address order", async () => {
    await post("/v1/pools", { name: "paged", cidr: "10.30.0.0/28" });
    for (let i = 0; i < 7; i++) await post("/v1/pools/paged/allocations", { owner: `o${i}` });
    const p1 = (await get("/v1/pools/paged/allocations?limit=5")).json();
    assert.equal(p1.items.length, 5);
    assert.equal(p1.next, "10.30.0.5");
    const p2 = (await get(`/v1/pools/paged/allocations?limit=5&after=${p1.next}`)).json();
    assert.deepEqual(p2.items.map((x: { address: string }) => x.address), ["10.30.0.6", "10.30.0.7"]);
    assert.equal(p2.next, null);
    const byOwner = (await get("/v1/pools/paged/allocations?owner=o3")).json();
    assert.equal(byOwner.items[0].address, "10.30.0.4");
  });

  test("allocations list sorts by address or by when they were made, either way, and pages in that order", async () => {
    await post("/v1/pools", { name: "sorted", cidr: "10.31.0.0/24" });
    const made = ["10.31.0.9", "10.31.0.3", "10.31.0.7", "10.31.0.5", "10.31.0.8"];
    for (const address of made) await post("/v1/pools/sorted/allocations", { address });
    /** Every page of the list in the given order, two at a time. */
    const walk = async (sort: string) => {
      const seen: string[] = [];
      let next: string | null = null;
      do {
        const page: { items: { address: string }[]; next: string | null } = (
          await get(`/v1/pools/sorted/allocations?limit=2&sort=${sort}${next ? `&after=${encodeURIComponent(next)}` : ""}`)
        ).json();
        seen.push(...page.items.map((x) => x.address));
        next = page.next;
      } while (next);
      return seen;
    };
    const byAddress = [...made].sort((a, b) => Number(a.split(".")[3]) - Number(b.split(".")[3]));
    assert.deepEqual(await walk("address"), byAddress);
    assert.deepEqual(await walk("-address"), [...byAddress].reverse());
    assert.deepEqual(await walk("created"), made);
    assert.deepEqual(await walk("-created"), [...made].reverse());
    assertProblem(await get("/v1/pools/sorted/allocations?sort=owner"), 400, "invalid-request", /sort/);
  });
});

describe("bad input gets a 4xx problem document and changes nothing", () => {
  const bad: [string, () => Promise<Awaited<ReturnType<typeof get>>>, number, string, RegExp][] = [
    ["malformed JSON", () => app.inject({ method: "POST", url: "/v1/pools", payload: '{"name": "x",', headers: { "content-type": "application/json" } }), 400, "invalid-request", /not valid JSON/],
    ["unknown field", () => post("/v1/pools", { name: "x", cidr: "10.9.0.0/24", gatway: "10.9.0.1" }), 400, "invalid-request", /gatway/],
    ["wrong type", () => post("/v1/pools", { name: "x", cidr: 42 }), 400, "invalid-request", /cidr/],
    ["invalid CIDR", () => post("/v1/pools", { name: "x", cidr: "10.9.0.0/33" }), 400, "invalid-address", /prefix length/],
    ["host bits set", () => post("/v1/pools", { name: "x", cidr: "10.9.0.1/24" }), 400, "invalid-address", /did you mean 10\.9\.0\.0\/24/],
    ["invalid address", () => post("/v1/pools/lab-net/allocations", { address: "10.20.0.300" }), 400, "invalid-address", /10\.20\.0\.300/],
    ["range outside its prefix", () => post("/v1/pools", { name: "x", ranges: [{ start: "10.9.0.10", end: "10.9.1.5", prefixLength: 24 }] }), 400, "invalid-range", /not inside its prefix 10\.9\.0\.0\/24/],
    ["overlapping pool", () => post("/v1/pools", { name: "x", cidr: "10.20.0.128/25" }), 409, "pool-overlap", /overlaps pool lab-net/],
    ["unknown pool", () => post("/v1/pools/nope/allocations", {}), 404, "pool-not-found", /nope/],
    ["unknown space", () => get("/v1/pools?space=nowhere"), 404, "space-not-found", /nowhere/],
    ["block larger than any free run", () => post("/v1/pools/lab-net/allocations", { size: 1000 }), 409, "block-unavailable", /1000/],
    ["zero ttl", () => post("/v1/pools/lab-net/allocations", { ttl: 0 }), 400, "invalid-request", /ttl/],
    ["negative ttl", () => post("/v1/pools/lab-net/allocations", { ttl: -5 }), 400, "invalid-request", /ttl/],
    ["absurd ttl", () => post("/v1/pools/lab-net/allocations", { ttl: 1e300 }), 400, "invalid-request", /ttl/],
    ["zero size", () => post("/v1/pools/lab-net/allocations", { size: 0 }), 400, "invalid-request", /size/],
    ["excluded address", () => post("/v1/pools/lab-net/allocations", { address: "10.20.0.5" }), 409, "address-unavailable", /excluded/],
    ["gateway address", () => post("/v1/pools/lab-net/allocations", { address: "10.20.0.1" }), 409, "address-unavailable", /gateway/],
    ["address outside the pool", () => post("/v1/pools/lab-net/allocations", { address: "10.21.0.1" }), 409, "address-outside-pool", /not inside/],
    ["bad MAC", () => post("/v1/pools/lab-net/allocations", { mac: "zz:zz" }), 400, "invalid-address", /MAC/],
    ["unknown route", () => get("/v1/nothing"), 404, "not-found", /no route/],
  ];
  for (const [name, send, status, code, mentions] of bad) {
    test(name, async () => {
      const before = (await get("/v1/history?limit=1000")).json().items.length;
      const usage = (await get("/v1/pools/lab-net/usage")).body;
      assertProblem(await send(), status, code, mentions);
      assert.equal((await get("/v1/history?limit=1000")).json().items.length, before, "no change recorded");
      assert.equal((await get("/v1/pools/lab-net/usage")).body, usage, "usage unchanged");
    });
  }

  test("an exhausted pool says how full it is", async () => {
    await post("/v1/pools", { name: "tiny", cidr: "10.40.0.0/30" });
    assert.equal((await post("/v1/pools/tiny/allocations", {})).statusCode, 201);
    assert.equal((await post("/v1/pools/tiny/allocations", {})).statusCode, 201);
    assertProblem(await post("/v1/pools/tiny/allocations", {}), 409, "pool-exhausted", /pool tiny is exhausted: 2 of 2 addresses allocated/);
  });

  test("deleting a pool that holds allocations is refused unless forced", async () => {
    assertProblem(await app.inject({ method: "DELETE", url: "/v1/pools/tiny" }), 409, "pool-in-use", /force/);
    assert.equal((await app.inject({ method: "DELETE", url: "/v1/pools/tiny?force=true" })).statusCode, 200);
    assert.equal((await get("/v1/pools/tiny")).statusCode, 404);
  });
});

describe("the API describes itself", () => {
  test("an OpenAPI 3.1 document lists every /v1 route", async () => {
    const doc = (await get("/openapi.json")).json();
    assert.equal(doc.openapi, "3.1.0");
    for (const path of ["/v1/spaces", "/v1/pools", "/v1/pools/{pool}", "/v1/pools/{pool}/allocations", "/v1/pools/{pool}/children", "/v1/pools/{pool}/usage", "/v1/lookup", "/v1/allocations/{id}"]) {
      assert.ok(doc.paths[path], `${path} documented`);
    }
    assert.ok(doc.paths["/v1/pools"].post.requestBody, "request bodies are described");
  });

  test("a browsable docs page is served", async () => {
    const res = await get("/docs/");
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers["content-type"]), /text\/html/);
  });

  test("every response carries a request id, and a caller's id is kept", async () => {
    const res = await app.inject({ method: "GET", url: "/v1/spaces", headers: { "x-request-id": "abc-123" } });
    assert.equal(res.headers["x-request-id"], "abc-123");
    const spaces = res.json().items.map((s: { name: string }) => s.name);
    assert.ok(spaces.includes("default"));
  });
});

test("validation answers in the user's terms, and the OpenAPI document lets /docs send a token", async () => {
  await post("/v1/pools", { name: "terms", cidr: "10.99.0.0/24" });
  const cases: [string, unknown, RegExp][] = [
    ["/v1/pools/terms/allocations", { size: 0 }, /^size: must be at least 1$/],
    ["/v1/pools/terms/allocations", { size: 1.5 }, /^size: must be a whole number, not 1\.5$/],
    ["/v1/pools/terms/allocations", { sise: 2 }, /^the request body: has a field it does not know: sise/],
    ["/v1/pools", { name: "", cidr: "10.98.0.0/24" }, /^name: must not be empty$/],
    ["/v1/pools", { name: "x", strategy: "fastest", cidr: "10.98.0.0/24" }, /^strategy: must be one of "lowest-free", "random"$/],
  ];
  for (const [url, body, detail] of cases) {
    const r = await post(url, body);
    assert.equal(r.statusCode, 400, JSON.stringify(body));
    assert.match(r.json().detail, detail);
  }
  assert.match((await get("/v1/pools/terms/allocations?limit=0")).json().detail, /^limit \(query parameter\): must be at least 1$/);

  const doc = (await app.inject({ method: "GET", url: "/openapi.json" })).json();
  assert.deepEqual(doc.components.securitySchemes.token, { type: "http", scheme: "bearer", description: doc.components.securitySchemes.token.description });
  assert.deepEqual(doc.security, [{ token: [] }]);
  assert.deepEqual(doc.paths["/healthz"].get.security, [], "health needs no token");
});
