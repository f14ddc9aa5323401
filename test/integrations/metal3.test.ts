import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { type ServerProcess, allot, startServerProcess, writeKubeconfig } from "../process-helpers.js";

/**
 * Real kubectl against Allot (HTTPS with the certificate Allot made, an Allot token as bearer token):
 * manifests of Metal3 pools and claims and Cluster API claims are applied, addresses come out as
 * Metal3 would choose them, claims are deleted and their addresses freed, and the fixes for Metal3's
 * bugs hold.
 */

let dir: string;
let server: ServerProcess;
let kubeconfig: string;

function kubectl(args: string[], input?: string) {
  // a bounded wait: a kubectl that hangs (waiting for a deletion, say) fails the test instead of stalling it
  const r = spawnSync("kubectl", ["--kubeconfig", kubeconfig, "-n", "lab", "--request-timeout=20s", ...args], { input, encoding: "utf8", env: { ...process.env, HOME: dir }, timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const ok = (args: string[], input?: string) => {
  const r = kubectl(args, input);
  assert.equal(r.code, 0, `kubectl ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
};
interface Obj {
  metadata: { name: string };
  spec: Record<string, unknown>;
  status?: Record<string, unknown>;
}
const json = (args: string[]) => JSON.parse(ok([...args, "-o", "json"])) as Obj & { items: Obj[] };
const addresses = () =>
  Object.fromEntries(json(["get", "ipaddresses.ipam.metal3.io"]).items.map((a) => [(a.spec.claim as { name: string }).name, a.spec.address as string]));

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "allot-metal3-"));
  server = await startServerProcess(join(dir, "data"), { ALLOT_TLS: "1" });
  assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  kubeconfig = join(dir, "kubeconfig");
  writeKubeconfig(kubeconfig, server.url, join(dir, "data", "tls.crt"));
});
after(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

const POOL = `apiVersion: ipam.metal3.io/v1alpha1
kind: IPPool
metadata: {name: pool1}
spec:
  namePrefix: prov
  clusterName: c1
  prefix: 24
  gateway: 10.0.0.1
  dnsServers: [10.0.0.53]
  pools:
    - {start: 10.0.0.10, end: 10.0.0.11}
    - {subnet: 10.0.1.20/24, gateway: 10.0.1.1, prefix: 25}
  preAllocations:
    node-pre: 10.0.1.40
`;
const claim = (name: string, extra = "") => `---
apiVersion: ipam.metal3.io/v1alpha1
kind: IPClaim
metadata: {name: ${name}${extra}}
spec: {pool: {name: pool1}}
`;

test("kubectl discovers the resources and applies a multi-document manifest; addresses follow Metal3's rules", () => {
  const resources = ok(["api-resources"]);
  for (const r of ["ippools", "ipclaims", "ipaddresses", "ipaddressclaims"]) assert.match(resources, new RegExp(`^${r}\\s`, "m"));
  const applied = ok(["apply", "-f", "-"], POOL + claim("node-0") + claim("node-1") + claim("node-2") + claim("node-pre") +
    `---
apiVersion: ipam.cluster.x-k8s.io/v1beta1
kind: IPAddressClaim
metadata: {name: capi-0}
spec: {poolRef: {apiGroup: ipam.metal3.io, kind: IPPool, name: pool1}}
`);
  assert.match(applied, /ippool.ipam.metal3.io\/pool1 created/);
  // entries in declaration order: .10 and .11 first, then the subnet entry from its written host + 1 (.21)
  assert.deepEqual(addresses(), { "node-0": "10.0.0.10", "node-1": "10.0.0.11", "node-2": "10.0.1.21", "node-pre": "10.0.1.40" });
  const ip = json(["get", "ipaddress.ipam.metal3.io", "prov-10-0-1-21"]);
  // the entry's own prefix and gateway override the pool's; DNS comes from the pool
  assert.deepEqual([ip.spec.prefix, ip.spec.gateway, ip.spec.dnsServers], [25, "10.0.1.1", ["10.0.0.53"]]);
  const capi = json(["get", "ipaddressclaims", "capi-0"]);
  assert.equal((capi.status as { addressRef: { name: string } }).addressRef.name, "prov-10-0-1-22");
  assert.equal((capi.status as { conditions: { type: string; status: string }[] }).conditions[0]!.status, "True");
  const capiAddress = json(["get", "ipaddresses.ipam.cluster.x-k8s.io", "prov-10-0-1-22"]);
  assert.deepEqual(capiAddress.spec.poolRef, { name: "pool1", kind: "IPPool", apiGroup: "ipam.metal3.io" });
  const pool = json(["get", "ippool", "pool1"]);
  // the CRD's default, written as Metal3's defaulting does
  assert.equal(pool.spec.allocationStrategy, "sequential");
  assert.deepEqual((pool.status as { indexes: Record<string, string> }).indexes, { "capi-0": "10.0.1.22", "node-0": "10.0.0.10", "node-1": "10.0.0.11", "node-2": "10.0.1.21", "node-pre": "10.0.1.40" });
  const table = ok(["get", "ipclaims"]);
  assert.match(table, /^NAME\s+POOL\s+ADDRESS\s+ERROR\s+AGE$/m);
  assert.match(table, /^node-0\s+pool1\s+prov-10-0-0-10\s/m);
});

test("deleting a claim frees its address for the next claim; a pre-allocated address stays reserved", () => {
  ok(["delete", "ipclaim", "node-0"]);
  assert.equal(kubectl(["get", "ipaddress.ipam.metal3.io", "prov-10-0-0-10"]).code, 1);
  ok(["apply", "-f", "-"], claim("node-3"));
  assert.equal(addresses()["node-3"], "10.0.0.10");
  ok(["delete", "ipclaim", "node-pre"]);
  ok(["apply", "-f", "-"], claim("node-4"));
  assert.notEqual(addresses()["node-4"], "10.0.1.40");
  ok(["apply", "-f", "-"], claim("node-pre"));
  assert.equal(addresses()["node-pre"], "10.0.1.40");
  // kubectl patch --type=json and --type=merge
  ok(["patch", "ipclaim", "node-3", "--type=json", "-p", '[{"op":"add","path":"/metadata/labels","value":{"rack":"r1"}}]']);
  ok(["patch", "ipclaim", "node-3", "--type=merge", "-p", '{"metadata":{"annotations":{"note":"x"}}}']);
  const patched = json(["get", "ipclaim", "node-3"]) as unknown as { metadata: { labels: Record<string, string>; annotations: Record<string, string> } };
  assert.deepEqual([patched.metadata.labels, patched.metadata.annotations.note], [{ rack: "r1" }, "x"]);
  const refused = kubectl(["patch", "ipclaim", "node-3", "--type=json", "-p", '[{"op":"replace","path":"/spec/pool/name","value":"other"}]']);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /spec\.pool: is immutable/);
});

test("the ipAddress annotation, its errors, and a claim that failed on a full pool is retried when space frees up", () => {
  ok(["apply", "-f", "-"], `apiVersion: ipam.metal3.io/v1alpha1
kind: IPPool
metadata: {name: tiny}
spec: {namePrefix: tiny, pools: [{start: 10.9.0.1, end: 10.9.0.2}]}
` + claim("t-1").replace("pool1", "tiny") + claim("t-2", ", annotations: {ipAddress: 10.9.0.1}").replace("pool1", "tiny") + claim("t-3").replace("pool1", "tiny") + claim("t-4").replace("pool1", "tiny"));
  const status = (name: string) => json(["get", "ipclaim", name]).status as { errorMessage?: string; address?: { name: string } };
  assert.equal(status("t-1").address?.name, "tiny-10-9-0-1");
  assert.equal(status("t-2").errorMessage, "Requested IP not available");
  assert.equal(status("t-3").address?.name, "tiny-10-9-0-2");
  assert.equal(status("t-4").errorMessage, "Exhausted IP Pools");
  ok(["apply", "-f", "-"], claim("t-5", ", annotations: {ipAddress: not-an-ip}").replace("pool1", "tiny"));
  assert.equal(status("t-5").errorMessage, 'Invalid ipAddress annotation "not-an-ip": not a valid IP address');
  // Metal3 keeps t-4 failed for ever; here it gets the address t-3 frees
  ok(["delete", "ipclaim", "t-3"]);
  assert.equal(status("t-4").address?.name, "tiny-10-9-0-2");
  assert.equal(status("t-4").errorMessage, undefined);
});

test("IPv6 preAllocations are compared as addresses; duplicates and bad pools are refused with the field named", () => {
  ok(["apply", "-f", "-"], `apiVersion: ipam.metal3.io/v1alpha1
kind: IPPool
metadata: {name: v6}
spec: {namePrefix: v6, pools: [{start: "2001:db8::5", end: "2001:db8::6"}], preAllocations: {pre-6: "2001:db8::0005"}}
` + claim("six-a").replace("pool1", "v6") + claim("pre-6").replace("pool1", "v6"));
  const six = Object.fromEntries(json(["get", "ipaddresses.ipam.metal3.io"]).items.filter((a) => (a.spec.pool as { name: string }).name === "v6").map((a) => [(a.spec.claim as { name: string }).name, a.spec.address]));
  // Metal3 compares strings and would hand ::5 to six-a too
  assert.deepEqual(six, { "pre-6": "2001:db8::5", "six-a": "2001:db8::6" });

  const bad = (spec: string) => kubectl(["apply", "-f", "-"], `apiVersion: ipam.metal3.io/v1alpha1\nkind: IPPool\nmetadata: {name: bad}\nspec: ${spec}\n`);
  const cases: [string, RegExp][] = [
    ['{namePrefix: b, pools: [{start: 10.8.0.1}], preAllocations: {a: 10.8.0.9, b: "10.8.0.09"}}', /is not an IP address|already pre-allocated/],
    ['{namePrefix: b, pools: [{start: 10.8.0.1}], preAllocations: {a: 10.8.0.9, b: 10.8.0.9}}', /spec\.preAllocations\.b.*already pre-allocated to a/],
    ["{namePrefix: b, pools: [{start: 10.8.0.9, end: 10.8.0.1}]}", /spec\.pools\[0\]\.end.*before the entry's start/],
    ['{namePrefix: b, pools: [{start: 10.8.0.1, end: "2001:db8::1"}]}', /spec\.pools\[0\]\.end.*not the same family/],
    ["{namePrefix: b, pools: [{start: 10.8.0.1, end: 10.8.0.5}], preAllocations: {x: 10.8.1.1}}", /spec\.preAllocations\.x.*outside every entry/],
    ["{pools: [{start: 10.8.0.1}]}", /spec\.namePrefix.*required/],
    ["{namePrefix: b, pools: [{}]}", /spec\.pools\[0\]: has none of start, end and subnet/],
    ['{namePrefix: b, pools: [{start: 10.8.0.1, subnet: ""}]}', /spec\.pools\[0\]\.subnet: is empty; give a CIDR/],
    ["{namePrefix: b, allocationStrategy: random, pools: [{start: 10.8.0.1}]}", /spec\.pools\[0\]: cannot be used with allocationStrategy random: start alone runs to the end of the address space/],
  ];
  for (const [spec, expected] of cases) {
    const r = bad(spec);
    assert.equal(r.code, 1, spec);
    assert.match(r.stderr, expected, `${spec}: ${r.stderr}`);
  }
  assert.equal(kubectl(["get", "ippool", "bad"]).code, 1, "a refused pool was stored");
  // an entry with only end is accepted, as Metal3 accepts it; it yields nothing, and the ERROR column says so
  ok(["apply", "-f", "-"], "apiVersion: ipam.metal3.io/v1alpha1\nkind: IPPool\nmetadata: {name: end-only}\nspec: {namePrefix: e, pools: [{end: 10.8.0.1}]}\n");
  assert.match(ok(["get", "ippool", "end-only"]), /^end-only\s+\S*\s*0\s+spec\.pools\[0\] yields no addresses: it has only end \(give start or subnet\)\s/m);
  const noPool = kubectl(["apply", "-f", "-"], "apiVersion: ipam.metal3.io/v1alpha1\nkind: IPClaim\nmetadata: {name: lost}\nspec: {}\n");
  assert.match(noPool.stderr, /spec\.pool\.name.*required/);
  const unknown = kubectl(["apply", "-f", "-"], "apiVersion: ipam.metal3.io/v1alpha1\nkind: IPBanana\nmetadata: {name: x}\n");
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /IPBanana/);
});

test("kubectl get -w follows new IPAddress objects; a pool is not deleted while addresses reference it", async () => {
  const watcher: ChildProcess = spawn("kubectl", ["--kubeconfig", kubeconfig, "-n", "lab", "get", "ipaddresses.ipam.metal3.io", "-w", "-o", "name"], { env: { ...process.env, HOME: dir } });
  let seen = "";
  watcher.stdout!.on("data", (d: Buffer) => (seen += d));
  await new Promise((r) => setTimeout(r, 1500));
  ok(["apply", "-f", "-"], claim("watched"));
  const name = `prov-${addresses().watched!.replace(/\./g, "-")}`;
  // listed first, then the watch: the new object arrives as an event (it did not exist when the list was made)
  const expected = new RegExp(`ipaddress\\.ipam\\.metal3\\.io/${name}\\n`);
  for (let i = 0; i < 50 && !expected.test(seen); i++) await new Promise((r) => setTimeout(r, 100));
  watcher.kill();
  assert.match(seen, expected);

  ok(["delete", "ippool", "tiny", "--wait=false"]);
  assert.ok(json(["get", "ippool", "tiny"]).metadata, "deleted while its addresses are still claimed");
  for (const c of ["t-1", "t-2", "t-4", "t-5"]) ok(["delete", "ipclaim", c]);
  assert.equal(kubectl(["get", "ippool", "tiny"]).code, 1, "gone once nothing references it");
});

test("the allot CLI reaches the HTTPS server when told to trust its certificate, and says how when not", () => {
  const ca = join(dir, "data", "tls.crt");
  const ok = allot(["--url", server.url, "--ca-cert", ca, "get", "ippools", "-n", "lab"]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^pool1\s/m);
  const untrusted = allot(["--url", server.url, "get", "ippools", "-n", "lab"]);
  assert.equal(untrusted.code, 1);
  assert.match(untrusted.stderr, /certificate is not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT\); pass --ca-cert FILE or set ALLOT_CA_CERT/);
  const plain = allot(["--url", server.url.replace("https:", "http:"), "get", "ippools", "-n", "lab"]);
  assert.match(plain.stderr, /if it serves HTTPS \(allot serve --tls\), use --url https:/);
});

test("kubectl get namespaces lists the spaces the token may use, by its short name too", () => {
  const made = allot(["space", "create", "ns-listed"], { ALLOT_URL: server.url, ALLOT_CA_CERT: join(dir, "data", "tls.crt") });
  assert.equal(made.code, 0, made.stderr);
  const names = ok(["get", "namespaces", "-o", "name"]).trim().split("\n");
  assert.ok(names.includes("namespace/ns-listed") && names.includes("namespace/default"), names.join(" "));
  const one = JSON.parse(ok(["get", "ns", "ns-listed", "-o", "json"])) as { kind: string; metadata: { name: string; creationTimestamp: string } };
  assert.equal(one.kind, "Namespace");
  assert.equal(one.metadata.name, "ns-listed");
  assert.match(one.metadata.creationTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.match(ok(["get", "namespaces"]), /^NAME\s+AGE\n(.*\n)*ns-listed\s+\S+/m);
  assert.notEqual(kubectl(["get", "ns", "no-such-space"]).code, 0);
});
