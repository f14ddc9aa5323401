import assert from "node:assert/strict";
import { test } from "node:test";
import { tempApp } from "../helpers.js";

const secret = Buffer.alloc(32, 9).toString("base64");
const rfc2136 = { type: "rfc2136", server: "127.0.0.1:5353", keyName: "allot-key", algorithm: "hmac-sha256", secret };

test("bad zone input is refused naming the field, and nothing is stored", async () => {
  const { inject, cleanup } = await tempApp();
  try {
    const bad: [unknown, RegExp][] = [
      [{ name: "bad..name", backend: rfc2136 }, /name: .*empty label/],
      [{ name: "under score!.test", backend: rfc2136 }, /name: .*may hold only/],
      [{ name: "300.2.0.192.in-addr.arpa", backend: rfc2136 }, /name: .*reverse zone of IPv4/],
      [{ name: "1-25.2.0.192.in-addr.arpa", backend: rfc2136 }, /host bits/],
      [{ name: "x.0.ip6.arpa", backend: rfc2136 }, /IPv6 nibbles/],
      [{ prefix: "192.0.16.0/20", backend: rfc2136 }, /prefix: .*octet boundaries/],
      [{ prefix: "2001:db8::/33", backend: rfc2136 }, /prefix: .*nibble/],
      [{ name: "example.test", backend: { ...rfc2136, algorithm: "hmac-md5" } }, /backend.algorithm: .*hmac-sha256/],
      [{ name: "example.test", backend: { ...rfc2136, secret: "not base64!!" } }, /backend.secret: .*base64/],
      [{ name: "example.test", backend: { ...rfc2136, secret: "c2hvcnQ=" } }, /backend.secret: .*16 bytes/],
      [{ name: "example.test", backend: { ...rfc2136, server: "a b:99999" } }, /backend.server/],
      [{ name: "example.test", backend: { ...rfc2136, keyName: "bad key" } }, /backend.keyName/],
      [{ name: "example.test", backend: { type: "powerdns", url: "ftp://x", apiKey: "k" } }, /backend.url/],
      [{ name: "example.test", backend: { type: "nsd" } }, /backend/],
      [{ name: "example.test", ttl: -1, backend: rfc2136 }, /ttl/],
    ];
    for (const [payload, message] of bad) {
      const res = await inject({ method: "POST", url: "/v1/dns/zones", payload: payload as object });
      assert.equal(res.statusCode, 400, `${JSON.stringify(payload)}: ${res.body}`);
      assert.match(res.json().detail, message, JSON.stringify(payload));
    }
    assert.deepEqual((await inject({ method: "GET", url: "/v1/dns/zones" })).json().items, []);

    // templates that make invalid names: the pool is not made, nor changed
    for (const t of ["{nope}", "-{a}", "x".repeat(70) + "{d}", "{a}..{b}", 5]) {
      const res = await inject({ method: "POST", url: "/v1/pools", payload: { name: "p", cidr: "192.0.2.0/24", attributes: { "dns.template": t } } });
      assert.equal(res.statusCode, 400, `${t}: ${res.body}`);
      assert.match(res.json().detail, /attributes\.dns\.template/);
    }
    const six = await inject({ method: "POST", url: "/v1/pools", payload: { name: "p6", cidr: "2001:db8::/64", attributes: { "dns.template": "h-{d}" } } });
    assert.equal(six.statusCode, 400);
    assert.match(six.json().detail, /\{ip\}/);
    assert.equal((await inject({ method: "GET", url: "/v1/pools" })).json().items.length, 0);
    assert.equal((await inject({ method: "POST", url: "/v1/pools", payload: { name: "p", cidr: "192.0.2.0/24" } })).statusCode, 201);
    const patched = await inject({ method: "PATCH", url: "/v1/pools/p", payload: { attributes: { "dns.template": "bad name {a}" } } });
    assert.equal(patched.statusCode, 400);
    assert.deepEqual((await inject({ method: "GET", url: "/v1/pools/p" })).json().attributes, {});
  } finally {
    await cleanup();
  }
});

test("zones: create, list, show, change, delete; credentials never shown; limited tokens see their spaces only", async () => {
  const { inject, cleanup } = await tempApp();
  try {
    const made = await inject({ method: "POST", url: "/v1/dns/zones", payload: { name: "Example.Test.", backend: rfc2136, ttl: 60 } });
    assert.equal(made.statusCode, 201, made.body);
    const zone = made.json();
    assert.equal(zone.name, "example.test");
    assert.equal(zone.kind, "forward");
    assert.equal(zone.backend.secretHint, `…${secret.slice(-4)}`);
    assert.ok(!made.body.includes(secret));
    const rev = await inject({ method: "POST", url: "/v1/dns/zones", payload: { prefix: "192.0.2.0/26", backend: { type: "powerdns", url: "http://127.0.0.1:8081", apiKey: "pdns-api-key-123" } } });
    assert.equal(rev.statusCode, 201, rev.body);
    assert.equal(rev.json().name, "0-26.2.0.192.in-addr.arpa");
    assert.equal(rev.json().prefix, "192.0.2.0/26");
    assert.equal(rev.json().backend.apiKeyHint, "…-123");
    assert.ok(!rev.body.includes("pdns-api-key-123"));
    assert.equal((await inject({ method: "POST", url: "/v1/dns/zones", payload: { name: "example.test", backend: rfc2136 } })).json().code, "dns-zone-exists");
    const list = await inject({ method: "GET", url: "/v1/dns/zones" });
    assert.deepEqual(list.json().items.map((z: { name: string }) => z.name), ["0-26.2.0.192.in-addr.arpa", "example.test"]);
    const changed = await inject({ method: "PATCH", url: "/v1/dns/zones/example.test", payload: { ttl: 120, pools: ["a", "b"] } });
    assert.equal(changed.statusCode, 200, changed.body);
    assert.deepEqual([changed.json().ttl, changed.json().pools], [120, ["a", "b"]]);

    // a token limited to another space neither sees nor manages these zones
    await inject({ method: "POST", url: "/v1/spaces", payload: { name: "lab" } });
    const tok = (await inject({ method: "POST", url: "/v1/tokens", payload: { name: "lab-admin", scope: "admin", spaces: ["lab"] } })).json().token as string;
    const as = { authorization: `Bearer ${tok}` };
    assert.deepEqual((await inject({ method: "GET", url: "/v1/dns/zones", headers: as })).json().items, []);
    assert.equal((await inject({ method: "GET", url: "/v1/dns/zones/example.test", headers: as })).statusCode, 404);
    assert.equal((await inject({ method: "POST", url: "/v1/dns/zones", headers: as, payload: { name: "x.test", backend: rfc2136 } })).statusCode, 403);
    assert.equal((await inject({ method: "POST", url: "/v1/dns/zones", headers: as, payload: { name: "x.test", space: "lab", backend: rfc2136 } })).statusCode, 201);
    assert.equal((await inject({ method: "DELETE", url: "/v1/spaces/lab" })).json().code, "space-in-use", "a space with zones stays");
    const writer = (await inject({ method: "POST", url: "/v1/tokens", payload: { name: "w", scope: "write" } })).json().token as string;
    assert.equal((await inject({ method: "GET", url: "/v1/dns/zones", headers: { authorization: `Bearer ${writer}` } })).statusCode, 403);

    assert.equal((await inject({ method: "DELETE", url: "/v1/dns/zones/example.test" })).statusCode, 200);
    assert.equal((await inject({ method: "GET", url: "/v1/dns/zones/example.test" })).json().code, "dns-zone-not-found");
    const history = await inject({ method: "GET", url: "/v1/history?entity=dns-zone" });
    assert.ok(!history.body.includes(secret), "history keeps hints, never secrets");
    assert.deepEqual(history.json().items.map((e: { action: string }) => e.action).slice(0, 2), ["delete", "create"]);

    // metrics: queue depth, failures and conflicts per zone
    const metrics = (await inject({ method: "GET", url: "/metrics" })).body;
    assert.match(metrics, /allot_dns_queue_depth\{zone="0-26.2.0.192.in-addr.arpa"\} 0/);
    assert.match(metrics, /allot_dns_failures\{zone="x.test"\} 0/);
    assert.match(metrics, /allot_dns_conflicts\{zone="x.test"\} 0/);
  } finally {
    await cleanup();
  }
});
