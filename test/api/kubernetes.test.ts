import assert from "node:assert/strict";
import { parseAddress } from "../../src/addr/index.js";
import { SERVER } from "../../src/engine/access.js";
import { after, before, test } from "node:test";
import { startResync } from "../../src/integrations/kubernetes/metal3.js";
import { pruneTombstones } from "../../src/integrations/kubernetes/objects.js";
import { ctx, tempApp } from "../helpers.js";

/**
 * The Metal3 / Cluster API objects through the HTTP API, on each store: manifests applied whole or
 * not at all, pools reconciled one by one, paused pools, the random strategy, JSON patch, claims that
 * wait for a full pool, and a namespace moved to another Allot without loss.
 */

type Env = Awaited<ReturnType<typeof tempApp>>;
let env: Env;
before(async () => {
  env = await tempApp();
});
after(async () => env.cleanup());

const M3 = "ipam.metal3.io/v1alpha1";
const CAPI = "ipam.cluster.x-k8s.io/v1beta1";
const pool = (name: string, spec: Record<string, unknown>, metadata: Record<string, unknown> = {}) => ({ apiVersion: M3, kind: "IPPool", metadata: { name, ...metadata }, spec: { namePrefix: name, ...spec } });
const claim = (name: string, poolName: string, metadata: Record<string, unknown> = {}) => ({ apiVersion: M3, kind: "IPClaim", metadata: { name, ...metadata }, spec: { pool: { name: poolName } } });

async function apply(e: Env, objects: unknown[], namespace: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
  return e.inject({ method: "POST", url: "/v1/kubernetes/apply", payload: { objects, namespace, ...extra }, headers });
}
async function kube(e: Env, ns: string, resource: string, name = "", group = "ipam.metal3.io/v1alpha1") {
  const r = await e.inject({ method: "GET", url: `/apis/${group}/namespaces/${ns}/${resource}${name ? `/${name}` : ""}` });
  return { status: r.statusCode, body: r.json() as { items: { metadata: { name: string }; spec: Record<string, unknown> }[]; spec: Record<string, unknown>; status?: Record<string, unknown>; metadata: Record<string, unknown> } };
}
async function addresses(e: Env, ns: string): Promise<Record<string, string>> {
  const list = (await kube(e, ns, "ipaddresses")).body.items;
  return Object.fromEntries(list.map((a) => [(a.spec.claim as { name: string }).name, a.spec.address as string]));
}
/** Every Kubernetes object and space, to show a refused request changed nothing. */
const snapshot = (e: Env) =>
  e.store.read(async (sql) => JSON.stringify([await sql.all("SELECT grp, resource, namespace, name, rv, deleted FROM kube_objects ORDER BY 1, 2, 3, 4"), await sql.all("SELECT name FROM spaces ORDER BY 1"), await sql.all("SELECT name FROM pools ORDER BY 1")]));

test("a manifest is applied whole: created, then unchanged, then configured; dry runs change nothing", async () => {
  const objects = [pool("p1", { pools: [{ start: "10.20.0.1", end: "10.20.0.9" }] }), claim("c1", "p1"), { apiVersion: CAPI, kind: "IPAddressClaim", metadata: { name: "m1", namespace: "other" }, spec: { poolRef: { name: "p1" } } }];
  const first = await apply(env, objects, "apply");
  assert.equal(first.statusCode, 200, first.body);
  assert.deepEqual(first.json().items.map((i: { namespace: string; name: string; action: string }) => `${i.namespace}/${i.name} ${i.action}`), ["apply/p1 created", "apply/c1 created", "other/m1 created"]);
  assert.deepEqual(await addresses(env, "apply"), { c1: "10.20.0.1" });
  const again = await apply(env, objects, "apply");
  assert.deepEqual(again.json().items.map((i: { action: string }) => i.action), ["unchanged", "unchanged", "unchanged"]);

  const before = await snapshot(env);
  const dry = await apply(env, [claim("c2", "p1"), claim("c1", "p1", { labels: { role: "worker" } })], "apply", { dryRun: true });
  assert.deepEqual(dry.json().items.map((i: { action: string }) => i.action), ["created", "configured"]);
  assert.equal(await snapshot(env), before, "a dry run wrote something");

  // labels and annotations become what the file says; the status the server wrote is kept
  await apply(env, [claim("c1", "p1", { labels: { role: "worker" } })], "apply");
  const c1 = (await kube(env, "apply", "ipclaims", "c1")).body as unknown as { metadata: { labels: Record<string, string> }; status: { address: { name: string } } };
  assert.deepEqual(c1.metadata.labels, { role: "worker" });
  assert.equal(c1.status.address.name, "p1-10-20-0-1");
});

test("one bad document refuses the whole manifest, naming the document and field, and changes nothing", async () => {
  const before = await snapshot(env);
  const good = claim("fine", "p1");
  const cases: [unknown[], RegExp][] = [
    [[good, pool("bad", { pools: [{ start: "10.30.0.9", end: "10.30.0.1" }] })], /document 2 \(IPPool "bad" in namespace apply\): spec\.pools\[0\]\.end: 10\.30\.0\.1 is before the entry's start/],
    [[good, pool("bad", { pools: [{ start: "10.30.0.1", end: "2001:db8::1" }] })], /spec\.pools\[0\]\.end.*not the same family/],
    [[good, pool("bad", { pools: [{ start: "10.30.0.1", end: "10.30.0.5" }], preAllocations: { x: "10.30.1.1" } })], /spec\.preAllocations\.x.*outside every entry/],
    [[good, pool("bad", { pools: [{ start: "10.30.0.1" }], prefix: 129 })], /spec\.prefix: Invalid prefix value, it must be between 0 and 128/],
    [[good, { apiVersion: M3, kind: "IPBanana", metadata: { name: "x" } }], /document 2 \(IPBanana "x"\).*not a kind Allot serves/],
    [[good, { apiVersion: "ipam.metal3.io/v9", kind: "IPPool", metadata: { name: "x" } }], /IPPool in ipam\.metal3\.io\/v9 is not a kind/],
    [[good, { apiVersion: M3, kind: "IPClaim", metadata: { name: "lost" }, spec: {} }], /spec\.pool\.name: required/],
    [[good, good], /document 2 .*appears twice/],
    [[good, pool("p1", { namePrefix: "renamed", pools: [{ start: "10.20.0.1", end: "10.20.0.9" }] })], /document 2 \(IPPool "p1" in namespace apply\): spec\.namePrefix: is immutable/],
    [[good, "text"], /document 2: is not an object/],
  ];
  for (const [objects, expected] of cases) {
    const r = await apply(env, objects, "apply");
    assert.equal(r.statusCode, 400, `${String(expected)}: ${r.body}`);
    assert.match(r.json().detail, expected);
  }
  // a new namespace named only by a refused manifest is not made either
  const r = await apply(env, [claim("x", "p"), pool("bad", { pools: [{ start: "10.0.0.1", subnet: "" }] })], "brand-new");
  assert.equal(r.statusCode, 400);
  assert.equal(await snapshot(env), before);
});

test("a token limited to some spaces cannot apply into others", async () => {
  const t = await env.engine.createToken({ name: "apply-limited", scope: "write", spaces: ["apply"] }, ctx);
  const before = await snapshot(env);
  const r = await apply(env, [claim("ok", "p1"), claim("sneaky", "p1", { namespace: "other" })], "apply", {}, { authorization: `Bearer ${t.token}` });
  assert.equal(r.statusCode, 403);
  assert.match(r.json().detail, /cannot write to namespace other/);
  assert.equal(await snapshot(env), before);
});

test("each pool is reconciled on its own: a pool that cannot be served says why, the others go on", async () => {
  await env.engine.createSpace({ name: "iso" }, ctx);
  // an Allot pool of the same name made through /v1 is never taken over
  await env.engine.createPool({ name: "taken", space: "iso", cidr: "10.40.0.0/24" }, ctx);
  const r = await apply(env, [pool("taken", { pools: [{ start: "10.41.0.1", end: "10.41.0.9" }] }), pool("fine", { pools: [{ start: "10.42.0.1", end: "10.42.0.9" }] }), claim("a", "taken"), claim("b", "fine")], "iso");
  assert.equal(r.statusCode, 200);
  const taken = (await kube(env, "iso", "ippools", "taken")).body;
  assert.match(String(taken.status?.errorMessage), /already has an Allot pool named taken that this IPPool did not make/);
  assert.deepEqual(await addresses(env, "iso"), { b: "10.42.0.1" });
  const table = await env.inject({ method: "GET", url: "/apis/ipam.metal3.io/v1alpha1/namespaces/iso/ippools", headers: { accept: "application/json;as=Table;v=v1;g=meta.k8s.io" } });
  assert.ok(table.json().rows.some((row: { cells: string[] }) => row.cells[0] === "taken" && row.cells.some((c) => /did not make/.test(String(c)))));
  // deleting the IPPool leaves the other pool alone
  await env.inject({ method: "DELETE", url: "/apis/ipam.metal3.io/v1alpha1/namespaces/iso/ipclaims/a" });
  await env.inject({ method: "DELETE", url: "/apis/ipam.metal3.io/v1alpha1/namespaces/iso/ippools/taken" });
  assert.equal((await kube(env, "iso", "ippools", "taken")).status, 404);
  assert.equal((await env.engine.getPool({ pool: "taken", space: "iso" }, SERVER)).ranges[0]!.start, "10.40.0.0");
});

test("a paused pool stands still until the annotation goes; clusterName labels the pool", async () => {
  await apply(env, [pool("held", { clusterName: "c9", pools: [{ start: "10.50.0.1", end: "10.50.0.9" }] }, { annotations: { "cluster.x-k8s.io/paused": "" } }), claim("w", "held")], "pause");
  assert.deepEqual(await addresses(env, "pause"), {});
  await apply(env, [pool("held", { clusterName: "c9", pools: [{ start: "10.50.0.1", end: "10.50.0.9" }] })], "pause");
  assert.deepEqual(await addresses(env, "pause"), { w: "10.50.0.1" });
  const held = (await kube(env, "pause", "ippools", "held")).body;
  assert.deepEqual(held.metadata.labels, { "cluster.x-k8s.io/cluster-name": "c9", "cluster.x-k8s.io/provider": "ipam-metal3" });
  // the labels Allot added do not make the same manifest count as a change
  const again = await apply(env, [pool("held", { clusterName: "c9", pools: [{ start: "10.50.0.1", end: "10.50.0.9" }] })], "pause");
  assert.equal(again.json().items[0].action, "unchanged");
});

test("the random strategy hands out distinct addresses, exhausting entries in declaration order", async () => {
  const names = Array.from({ length: 12 }, (_, i) => `r${i}`);
  await apply(env, [pool("rnd", { allocationStrategy: "random", pools: [{ start: "10.60.0.1", end: "10.60.0.8" }, { start: "10.61.0.1", end: "10.61.0.255" }] }), ...names.map((n) => claim(n, "rnd"))], "random");
  const got = await addresses(env, "random");
  assert.equal(Object.keys(got).length, 12);
  assert.equal(new Set(Object.values(got)).size, 12);
  const first = Object.values(got).filter((a) => a.startsWith("10.60.0.")).sort();
  assert.deepEqual(first, ["10.60.0.1", "10.60.0.2", "10.60.0.3", "10.60.0.4", "10.60.0.5", "10.60.0.6", "10.60.0.7", "10.60.0.8"]);
  const second = Object.values(got).filter((a) => a.startsWith("10.61.0."));
  assert.equal(second.length, 4);
  // random, not lowest-free: four picks out of 255 being exactly .1-.4 would be a 1 in 10^8 chance
  assert.notDeepEqual(second.sort(), ["10.61.0.1", "10.61.0.2", "10.61.0.3", "10.61.0.4"]);
  const r = await apply(env, [pool("rnd", { allocationStrategy: "sequential", pools: [{ start: "10.60.0.1", end: "10.60.0.8" }, { start: "10.61.0.1", end: "10.61.0.255" }] })], "random");
  assert.match(r.json().detail, /allocationStrategy: is immutable/);
});

test("an entry that yields no addresses (only end; start outside its subnet) is accepted, and the pool's status says so", async () => {
  const spec = { pools: [{ end: "10.100.0.9" }, { start: "10.100.1.1", end: "10.100.1.2" }, { start: "10.100.3.5", subnet: "10.100.2.0/24" }] };
  const r = await apply(env, [pool("sparse", spec), claim("s1", "sparse"), claim("s2", "sparse"), claim("s3", "sparse")], "idle");
  assert.equal(r.statusCode, 200, r.body);
  // only the middle entry hands anything out; Metal3 serves nothing from the other two either
  assert.deepEqual(await addresses(env, "idle"), { s1: "10.100.1.1", s2: "10.100.1.2" });
  assert.equal((await kube(env, "idle", "ipclaims", "s3")).body.status?.errorMessage, "Exhausted IP Pools");
  const stored = (await kube(env, "idle", "ippools", "sparse")).body;
  assert.deepEqual(stored.spec.pools, spec.pools, "the entries are stored as written");
  assert.equal(
    stored.status?.errorMessage,
    "spec.pools[0] yields no addresses: it has only end (give start or subnet); spec.pools[2] yields no addresses: start 10.100.3.5 is outside its subnet 10.100.2.0/24",
  );
  assert.deepEqual(stored.status?.indexes, { s1: "10.100.1.1", s2: "10.100.1.2" });
  // fixing the entry clears the message and serves the waiting claim
  await apply(env, [pool("sparse", { pools: [{ start: "10.100.0.1", end: "10.100.0.9" }, { start: "10.100.1.1", end: "10.100.1.2" }] })], "idle");
  const fixed = (await kube(env, "idle", "ippools", "sparse")).body;
  assert.equal(fixed.status?.errorMessage, undefined);
  assert.equal((await addresses(env, "idle")).s3, "10.100.0.1");
});

test("an explicitly empty subnet is refused naming the field, through apply and the kube API; an absent one is not", async () => {
  const before = await snapshot(env);
  const bad = pool("blank", { pools: [{ start: "10.101.0.1", end: "10.101.0.9", subnet: "" }] });
  const applied = await apply(env, [bad], "blank");
  assert.equal(applied.statusCode, 400);
  assert.match(applied.json().detail, /document 1 \(IPPool "blank" in namespace blank\): spec\.pools\[0\]\.subnet: is empty; give a CIDR \(such as 192\.168\.0\.0\/24\) or leave subnet out/);
  const posted = await env.inject({ method: "POST", url: `/apis/${M3}/namespaces/blank/ippools`, payload: bad });
  assert.equal(posted.statusCode, 422, posted.body);
  assert.deepEqual(posted.json().details.causes.map((c: { field: string }) => c.field), ["spec.pools[0].subnet"]);
  assert.equal(await snapshot(env), before, "a refused pool changed something");
  const absent = await apply(env, [pool("blank", { pools: [{ start: "10.101.0.1", end: "10.101.0.9" }] })], "blank");
  assert.equal(absent.statusCode, 200, absent.body);
});

test("the random strategy is refused for an entry it cannot index: start alone, only end, more than 2^63-1 addresses", async () => {
  const cases: [unknown[], RegExp][] = [
    [[{ start: "10.102.0.1", end: "10.102.0.9" }, { start: "10.103.0.1" }], /spec\.pools\[1\]: cannot be used with allocationStrategy random: start alone runs to the end of the address space \(give end or subnet, or use allocationStrategy sequential\)/],
    [[{ end: "10.102.0.9" }], /spec\.pools\[0\]: cannot be used with allocationStrategy random: it has only end/],
    [[{ subnet: "2001:db8::/64" }], /spec\.pools\[0\]: cannot be used with allocationStrategy random: it holds 18446744073709551615 addresses, more than random can pick among \(9223372036854775807, 2\^63-1\)/],
    [[{ start: "2001:db8::", end: "2001:db8::8000:0:0:0" }], /it holds 9223372036854775809 addresses/],
  ];
  for (const [entries, expected] of cases) {
    const r = await apply(env, [pool("rand", { allocationStrategy: "random", pools: entries })], "strategy");
    assert.equal(r.statusCode, 400, `${JSON.stringify(entries)}: ${r.body}`);
    assert.match(r.json().detail, expected);
    // the same entries are fine for the sequential strategy
    const seq = await apply(env, [pool("rand", { allocationStrategy: "sequential", pools: entries })], "strategy", { dryRun: true });
    assert.equal(seq.statusCode, 200, `${JSON.stringify(entries)}: ${seq.body}`);
  }
  // a subnet alone counts from its network: a /65 holds 2^63-1 addresses to pick from, the most random takes
  const r = await apply(env, [pool("wide", { allocationStrategy: "random", pools: [{ subnet: "2001:db8:1::/65" }] }), claim("w1", "wide")], "strategy");
  assert.equal(r.statusCode, 200, r.body);
  const w1 = parseAddress((await addresses(env, "strategy")).w1!).value;
  const network = parseAddress("2001:db8:1::").value;
  assert.ok(w1 > network && w1 < network + (1n << 63n), `${w1} is outside the /65`);
});

test("allocationStrategy defaults to sequential in what is stored and read back; the default is no change on re-apply", async () => {
  const first = await apply(env, [pool("plain", { pools: [{ start: "10.104.0.1", end: "10.104.0.9" }] })], "defaults");
  assert.equal(first.statusCode, 200, first.body);
  assert.equal((await kube(env, "defaults", "ippools", "plain")).body.spec.allocationStrategy, "sequential");
  const stored = await env.store.read((sql) => sql.get<{ body: string }>("SELECT body FROM kube_objects WHERE resource = 'ippools' AND namespace = 'defaults' AND name = 'plain'"));
  assert.equal(JSON.parse(stored!.body).spec.allocationStrategy, "sequential");
  const again = await apply(env, [pool("plain", { pools: [{ start: "10.104.0.1", end: "10.104.0.9" }] })], "defaults");
  assert.equal(again.json().items[0].action, "unchanged");
  // the kube API writes it too (an empty strategy is the default, as Metal3's defaulting webhook has it), and answers with it
  const posted = await env.inject({ method: "POST", url: `/apis/${M3}/namespaces/defaults/ippools`, payload: pool("posted", { allocationStrategy: "", pools: [{ start: "10.104.1.1", end: "10.104.1.9" }] }) });
  assert.equal(posted.statusCode, 201, posted.body);
  assert.equal(posted.json().spec.allocationStrategy, "sequential");
  // and shows it on an object stored before the default was written
  const { allocationStrategy: _dropped, ...older } = JSON.parse(stored!.body).spec;
  await env.store.transaction((sql) => sql.run("UPDATE kube_objects SET body = ? WHERE resource = 'ippools' AND namespace = 'defaults' AND name = 'plain'", [JSON.stringify({ ...JSON.parse(stored!.body), spec: older })]));
  const legacy = await env.store.read((sql) => sql.get<{ body: string }>("SELECT body FROM kube_objects WHERE resource = 'ippools' AND namespace = 'defaults' AND name = 'plain'"));
  assert.equal(JSON.parse(legacy!.body).spec.allocationStrategy, undefined);
  assert.equal((await kube(env, "defaults", "ippools", "plain")).body.spec.allocationStrategy, "sequential");
  assert.ok((await kube(env, "defaults", "ippools")).body.items.every((p) => p.spec.allocationStrategy === "sequential"));
});

test("a deleted claim another controller still holds keeps its address and its place in status.indexes until only the IPAM's finalizer is left", async () => {
  const other = "metal3data.infrastructure.cluster.x-k8s.io";
  const url = (kind: string, name = "", group = M3) => `/apis/${group}/namespaces/finalizers/${kind}${name ? `/${name}` : ""}`;
  await apply(env, [pool("fin", { pools: [{ start: "10.105.0.1", end: "10.105.0.3" }] })], "finalizers");
  // (made through the kube API: apply keeps the finalizers the server wrote, not a manifest's)
  assert.equal((await env.inject({ method: "POST", url: url("ipclaims"), payload: claim("held", "fin", { finalizers: [other] }) })).statusCode, 201);
  const capi = { apiVersion: CAPI, kind: "IPAddressClaim", metadata: { name: "held-capi", finalizers: [other] }, spec: { poolRef: { apiGroup: "ipam.metal3.io", kind: "IPPool", name: "fin" } } };
  assert.equal((await env.inject({ method: "POST", url: url("ipaddressclaims", "", CAPI), payload: capi })).statusCode, 201);
  assert.deepEqual(await addresses(env, "finalizers"), { held: "10.105.0.1" });
  for (const u of [url("ipclaims", "held"), url("ipaddressclaims", "held-capi", CAPI)]) {
    const deleted = await env.inject({ method: "DELETE", url: u });
    assert.equal(deleted.statusCode, 200, deleted.body);
    const live = (await env.inject({ method: "GET", url: u })).json();
    assert.ok(live.metadata.deletionTimestamp, "the claim is gone already");
  }
  const indexes = async () => (await kube(env, "finalizers", "ippools", "fin")).body.status?.indexes;
  const allocated = async () => (await env.engine.listAllocations({ pool: "fin", space: "finalizers" }, { limit: 10 }, SERVER)).items.map((a) => `${a.address} ${a.owner}`);
  assert.deepEqual(await indexes(), { "held": "10.105.0.1", "held-capi": "10.105.0.2" });
  assert.deepEqual(await allocated(), ["10.105.0.1 held", "10.105.0.2 held-capi"]);
  // the next claim does not get either address, and the pool may not shrink past them
  await apply(env, [claim("next", "fin")], "finalizers");
  assert.equal((await addresses(env, "finalizers")).next, "10.105.0.3");
  const shrink = await apply(env, [pool("fin", { pools: [{ start: "10.105.0.3", end: "10.105.0.3" }] })], "finalizers");
  assert.equal(shrink.statusCode, 400);
  assert.match(shrink.json().detail, /spec\.pools: 10\.105\.0\.1 is in use \(by claim held\) but out of bounds/);

  // the other controller lets go: only the IPAM's finalizer is left, so the address goes back and the claim goes
  const patch = (u: string, finalizers: string[]) => env.inject({ method: "PATCH", url: u, headers: { "content-type": "application/merge-patch+json" }, payload: JSON.stringify({ metadata: { finalizers } }) });
  assert.equal((await patch(url("ipclaims", "held"), ["ipclaim.ipam.metal3.io"])).statusCode, 200);
  assert.equal((await env.inject({ method: "GET", url: url("ipclaims", "held") })).statusCode, 404);
  assert.deepEqual(await indexes(), { "held-capi": "10.105.0.2", "next": "10.105.0.3" });
  assert.deepEqual(await allocated(), ["10.105.0.2 held-capi", "10.105.0.3 next"]);
  assert.equal((await patch(url("ipaddressclaims", "held-capi", CAPI), ["ipam.metal3.io/ipaddressclaim"])).statusCode, 200);
  assert.deepEqual(await indexes(), { next: "10.105.0.3" });
  assert.deepEqual(await allocated(), ["10.105.0.3 next"]);
});

test("kubectl patch --type=json: operations apply together or not at all", async () => {
  const url = "/apis/ipam.metal3.io/v1alpha1/namespaces/apply/ipclaims/c1";
  const headers = { "content-type": "application/json-patch+json" };
  const ok = await env.inject({ method: "PATCH", url, headers, payload: JSON.stringify([{ op: "add", path: "/metadata/labels/tier", value: "db" }, { op: "test", path: "/spec/pool/name", value: "p1" }]) });
  assert.equal(ok.statusCode, 200, ok.body);
  assert.equal(ok.json().metadata.labels.tier, "db");
  const failed = await env.inject({ method: "PATCH", url, headers, payload: JSON.stringify([{ op: "add", path: "/metadata/labels/tier", value: "web" }, { op: "test", path: "/spec/pool/name", value: "nope" }]) });
  assert.equal(failed.statusCode, 422);
  assert.match(failed.json().message, /operation 2 \(counting from 1\) cannot be applied: its test failed/);
  assert.equal((await kube(env, "apply", "ipclaims", "c1")).body.metadata.labels && ((await kube(env, "apply", "ipclaims", "c1")).body.metadata.labels as Record<string, string>).tier, "db");
  const immutable = await env.inject({ method: "PATCH", url, headers, payload: JSON.stringify([{ op: "replace", path: "/spec/pool/name", value: "other" }]) });
  assert.equal(immutable.statusCode, 422);
});

test("a claim waiting on a full pool gets an address released through /v1; a claim's own address is never handed on", async () => {
  await env.engine.createSpace({ name: "resync" }, ctx);
  await apply(env, [pool("full", { pools: [{ start: "10.70.0.1", end: "10.70.0.2" }] }), claim("first", "full")], "resync");
  // the pool's other address is taken outside Kubernetes, so the next claim waits
  await env.engine.allocate({ pool: "full", space: "resync" }, { address: "10.70.0.2", owner: "by-hand" }, ctx);
  await apply(env, [claim("waiting", "full")], "resync");
  const status = (name: string) => kube(env, "resync", "ipclaims", name).then((r) => r.body.status as { errorMessage?: string; address?: { name: string } });
  assert.equal((await status("waiting")).errorMessage, "Exhausted IP Pools");
  const stop = startResync({ engine: env.engine, store: env.store, ctx }, 50);
  try {
    // releasing the claim's own address through /v1 does not free it: the IPAddress object still holds it
    await env.engine.release({ pool: { pool: "full", space: "resync" }, owner: "first" }, ctx);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await status("waiting")).errorMessage, "Exhausted IP Pools");
    const held = (await env.engine.listAllocations({ pool: "full", space: "resync" }, { limit: 10 }, SERVER)).items.map((a) => `${a.address} ${a.owner}`);
    assert.deepEqual(held, ["10.70.0.1 first", "10.70.0.2 by-hand"]);
    // the address taken by hand, released, goes to the waiting claim without another Kubernetes write
    await env.engine.release({ pool: { pool: "full", space: "resync" }, owner: "by-hand" }, ctx);
    for (let i = 0; i < 100 && !(await status("waiting")).address; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal((await status("waiting")).address?.name, "full-10-70-0-2");
  } finally {
    stop();
  }
  assert.deepEqual(await addresses(env, "resync"), { first: "10.70.0.1", waiting: "10.70.0.2" });
});

test("a namespace moves to another Allot losslessly; a clashing or broken import changes nothing", async () => {
  const exported = await env.inject({ method: "GET", url: "/v1/kubernetes/namespaces/apply/export" });
  assert.equal(exported.statusCode, 200);
  const bundle = exported.json();
  assert.equal(bundle.pools.length, 1);
  assert.deepEqual(bundle.pools[0].allocations.map((a: { address: string; owner: string }) => `${a.address} ${a.owner}`), ["10.20.0.1 c1"]);

  const target = await tempApp();
  try {
    const strip = (b: { objects: { metadata: Record<string, unknown> }[]; exportedAt?: string }) => JSON.stringify({ ...b, exportedAt: 0, objects: b.objects.map((o) => ({ ...o, metadata: { ...o.metadata, resourceVersion: 0 } })) });
    // broken: an allocation outside its pool; the pools made so far are taken back
    const broken = structuredClone(bundle);
    broken.pools[0].allocations.push({ address: "10.99.0.1", owner: "x", mac: null, hostname: null, labels: {}, expiresAt: null });
    const refused = await target.inject({ method: "POST", url: "/v1/kubernetes/namespaces/apply/import", payload: broken });
    assert.equal(refused.statusCode, 409, refused.body);
    assert.match(refused.json().detail, /import refused and rolled back: .*10\.99\.0\.1/);
    assert.equal((await target.inject({ method: "GET", url: "/v1/spaces/apply" })).statusCode, 404, "the namespace it made stayed");
    assert.equal((await kube(target, "apply", "ipclaims")).body.items.length, 0);

    const imported = await target.inject({ method: "POST", url: "/v1/kubernetes/namespaces/apply/import", payload: bundle });
    assert.equal(imported.statusCode, 201, imported.body);
    assert.deepEqual(imported.json(), { objects: bundle.objects.length, pools: 1, allocations: 1 });
    const back = (await target.inject({ method: "GET", url: "/v1/kubernetes/namespaces/apply/export" })).json();
    assert.equal(strip(back), strip(bundle));
    // and the moved pool goes on from where it was: the next claim gets the next address
    await apply(target, [claim("c3", "p1")], "apply");
    assert.equal((await addresses(target, "apply")).c3, "10.20.0.2");

    const again = await target.inject({ method: "POST", url: "/v1/kubernetes/namespaces/apply/import", payload: bundle });
    assert.equal(again.statusCode, 409);
    assert.match(again.json().detail, /already has IPPool p1/);
    const wrong = await target.inject({ method: "POST", url: "/v1/kubernetes/namespaces/elsewhere/import", payload: bundle });
    assert.equal(wrong.statusCode, 400);
    assert.match(wrong.json().detail, /holds namespace apply, not elsewhere/);
  } finally {
    await target.cleanup();
  }
});

test("changing a pool's entries keeps every address its claims hold; shrinking past one is refused", async () => {
  const entries = (extra: unknown[] = []) => pool("grow", { pools: [{ start: "10.80.0.1", end: "10.80.0.2" }, ...extra] });
  await apply(env, [entries(), claim("g1", "grow"), claim("g2", "grow"), claim("g3", "grow")], "grow");
  assert.deepEqual(await addresses(env, "grow"), { g1: "10.80.0.1", g2: "10.80.0.2" });
  const r = await apply(env, [entries([{ start: "10.80.1.1", end: "10.80.1.9" }])], "grow");
  assert.equal(r.statusCode, 200, r.body);
  // the waiting claim gets an address of the new entry; the others keep theirs, in the Allot pool too
  assert.deepEqual(await addresses(env, "grow"), { g1: "10.80.0.1", g2: "10.80.0.2", g3: "10.80.1.1" });
  const held = (await env.engine.listAllocations({ pool: "grow", space: "grow" }, { limit: 10 }, SERVER)).items.map((a) => `${a.address} ${a.owner}`);
  assert.deepEqual(held, ["10.80.0.1 g1", "10.80.0.2 g2", "10.80.1.1 g3"]);
  assert.equal((await env.engine.getPool({ pool: "grow", space: "grow" }, SERVER)).attributes["kubernetes.restoring"], undefined);

  const shrink = await apply(env, [pool("grow", { pools: [{ start: "10.80.0.1", end: "10.80.0.1" }, { start: "10.80.1.1", end: "10.80.1.9" }] })], "grow");
  assert.equal(shrink.statusCode, 400);
  assert.match(shrink.json().detail, /spec\.pools: 10\.80\.0\.2 is in use \(by claim g2\) but out of bounds/);

  // an address taken through /v1 in a Metal3 pool is not silently dropped by a remake
  await env.engine.allocate({ pool: "grow", space: "grow" }, { address: "10.80.1.5", owner: "by-hand" }, ctx);
  await apply(env, [entries([{ start: "10.80.1.1", end: "10.80.1.9" }, { start: "10.80.2.1", end: "10.80.2.2" }])], "grow");
  assert.match(String((await kube(env, "grow", "ippools", "grow")).body.status?.errorMessage), /10\.80\.1\.5 \(owner by-hand\) was allocated outside Kubernetes/);
  assert.equal((await env.engine.getPool({ pool: "grow", space: "grow" }, SERVER)).ranges.length, 2);
});

test("a remake never drops child pools carved through /v1; patches are held to the object's shape; imports say what is missing", async () => {
  await apply(env, [pool("carved", { pools: [{ start: "10.90.0.0", end: "10.90.0.255" }] }), claim("k1", "carved")], "carve");
  await env.engine.createChildPool({ pool: "carved", space: "carve" }, { name: "vms", prefixLength: 28 }, ctx);
  await env.engine.allocate({ pool: "vms", space: "carve" }, { owner: "vm1" }, ctx);
  await apply(env, [pool("carved", { pools: [{ start: "10.90.0.0", end: "10.90.0.255" }, { start: "10.91.0.1", end: "10.91.0.9" }] })], "carve");
  assert.match(String((await kube(env, "carve", "ippools", "carved")).body.status?.errorMessage), /child pools were carved/);
  assert.equal((await env.engine.listAllocations({ pool: "vms", space: "carve" }, { limit: 5 }, SERVER)).items[0]?.owner, "vm1");
  // the pool still serves (and releases) as it was while the change waits
  await apply(env, [claim("k2", "carved")], "carve");
  assert.equal((await addresses(env, "carve")).k2, "10.90.0.1");

  const url = "/apis/ipam.metal3.io/v1alpha1/namespaces/carve/ipclaims/k1";
  const kind = await env.inject({ method: "PATCH", url, headers: { "content-type": "application/json-patch+json" }, payload: JSON.stringify([{ op: "replace", path: "/kind", value: "IPPool" }]) });
  assert.equal(kind.statusCode, 400);
  const label = await env.inject({ method: "PATCH", url, headers: { "content-type": "application/merge-patch+json" }, payload: JSON.stringify({ metadata: { labels: { n: 1 } } }) });
  assert.equal(label.statusCode, 422);
  assert.match(label.json().message, /metadata\.labels: must map names to strings/);

  const t = await env.engine.createToken({ name: "importer", scope: "write" }, ctx);
  const empty = { format: "allot-namespace", version: 1, namespace: "nowhere", exportedAt: "", objects: [], pools: [] };
  const missing = await env.inject({ method: "POST", url: "/v1/kubernetes/namespaces/nowhere/import", payload: empty, headers: { authorization: `Bearer ${t.token}` } });
  assert.equal(missing.statusCode, 404, missing.body);
  assert.match(missing.json().detail, /namespaces "nowhere" not found: an admin creates it/);
  const badName = await env.inject({ method: "POST", url: "/v1/kubernetes/namespaces/Bad_NS/import", payload: { ...empty, namespace: "Bad_NS" } });
  assert.equal(badName.statusCode, 400);
  assert.match(badName.json().detail, /is not a DNS label/);
});

test("tombstones are pruned after a while; a watch from before them is told to list again (410 Expired)", async () => {
  const url = `/apis/${M3}/namespaces/prune/ippools`;
  assert.equal((await env.inject({ method: "POST", url, payload: pool("short-lived", { pools: [{ start: "10.95.0.10", end: "10.95.0.20" }], prefix: 24 }) })).statusCode, 201);
  const listed = (await env.inject({ method: "GET", url })).json().metadata.resourceVersion as string;
  assert.equal((await env.inject({ method: "DELETE", url: `${url}/short-lived` })).statusCode, 200);
  // while its tombstone is kept, a watch from before the deletion sees it go
  const before = await env.inject({ method: "GET", url: `${url}?watch=true&resourceVersion=${listed}&timeoutSeconds=1` });
  assert.equal(before.statusCode, 200);
  assert.deepEqual(before.body.trim().split("\n").map((l) => JSON.parse(l).type), ["DELETED"]);

  const removed = await env.store.transaction((sql) => pruneTombstones(sql, Date.now() + 1));
  assert.ok(removed >= 1);
  const expired = await env.inject({ method: "GET", url: `${url}?watch=true&resourceVersion=${listed}&timeoutSeconds=1` });
  assert.equal(expired.statusCode, 410, expired.body);
  assert.equal(expired.json().reason, "Expired");
  assert.match(expired.json().message, /too old resource version/);
  // listing again gives a version to watch from
  const again = (await env.inject({ method: "GET", url })).json().metadata.resourceVersion as string;
  assert.equal((await env.inject({ method: "GET", url: `${url}?watch=true&resourceVersion=${again}&timeoutSeconds=1` })).statusCode, 200);
});

test("a quiet watch is not ended by the pruning of other objects' tombstones, and resourceVersion 0 is never too old", async () => {
  const url = `/apis/${M3}/namespaces/quiet/ippools`;
  const other = `/apis/${M3}/namespaces/busy/ippools`;
  const listed = (await env.inject({ method: "GET", url })).json().metadata.resourceVersion as string;
  const watching = env.inject({ method: "GET", url: `${url}?watch=true&resourceVersion=${listed}&timeoutSeconds=3` });
  await new Promise((r) => setTimeout(r, 300));
  // elsewhere: an object made and deleted, its tombstone pruned, while the watch above sees nothing of its own
  assert.equal((await env.inject({ method: "POST", url: other, payload: pool("elsewhere", { pools: [{ start: "10.96.0.10", end: "10.96.0.20" }], prefix: 24 }) })).statusCode, 201);
  assert.equal((await env.inject({ method: "DELETE", url: `${other}/elsewhere` })).statusCode, 200);
  await new Promise((r) => setTimeout(r, 500));
  await env.store.transaction((sql) => pruneTombstones(sql, Date.now() + 1));
  const quiet = await watching;
  assert.equal(quiet.statusCode, 200);
  assert.doesNotMatch(quiet.body, /Expired/, "the quiet watch was told to start over");
  const zero = await env.inject({ method: "GET", url: `${url}?watch=true&resourceVersion=0&timeoutSeconds=1` });
  assert.equal(zero.statusCode, 200, zero.body);
});
