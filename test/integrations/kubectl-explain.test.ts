import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { AUTH } from "../helpers.js";
import { type ServerProcess, startServerProcess, writeKubeconfig } from "../process-helpers.js";

/**
 * Real `kubectl explain` against Allot: kubectl reads /openapi/v3 (an index of group/versions), then
 * the document of the resource's group/version, and prints the kind's schema from it.
 */

let dir: string;
let server: ServerProcess;
let kubeconfig: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "allot-explain-"));
  server = await startServerProcess(join(dir, "data"), { ALLOT_TLS: "1" });
  kubeconfig = join(dir, "kubeconfig");
  writeKubeconfig(kubeconfig, server.url, join(dir, "data", "tls.crt"));
});
after(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** `kubectl explain …`, which must succeed; its output. */
function explain(...args: string[]): string {
  const r = spawnSync("kubectl", ["--kubeconfig", kubeconfig, "--request-timeout=20s", "explain", ...args], { encoding: "utf8", env: { ...process.env, HOME: dir }, timeout: 60_000 });
  assert.equal(r.status, 0, `kubectl explain ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

test("kubectl explain ippool: the kind, its version, and what spec and status are", () => {
  const out = explain("ippool");
  assert.match(out, /^GROUP:\s+ipam\.metal3\.io$/m);
  assert.match(out, /^KIND:\s+IPPool$/m);
  assert.match(out, /^VERSION:\s+v1alpha1$/m);
  assert.match(out, /^ {2}metadata\t<ObjectMeta>$/m);
  assert.match(out, /^ {2}spec\t<Object>\n {4}IPPoolSpec defines the desired state of IPPool\.$/m);
  assert.match(out, /^ {2}status\t<Object>$/m);

  const spec = explain("ippool.spec");
  assert.match(spec, /^ {2}namePrefix\t<string> -required-$/m);
  assert.match(spec, /^ {2}allocationStrategy\t<string>\n {2}enum: sequential, random$/m);
  for (const field of ["clusterName", "pools", "prefix", "gateway", "dnsServers", "preAllocations"]) assert.match(spec, new RegExp(`^ {2}${field}\\t<`, "m"), field);
  assert.match(explain("ippool.status"), /^ {2}indexes\t<map\[string\]string>$/m);
  // metadata is ObjectMeta, by reference
  const metadata = explain("ippool.metadata");
  for (const field of ["name", "namespace", "labels", "annotations", "uid", "resourceVersion", "finalizers", "deletionTimestamp"]) assert.match(metadata, new RegExp(`^ {2}${field}\\t<`, "m"), field);
});

test("kubectl explain ippool.spec.pools lists an entry's fields", () => {
  const out = explain("ippool.spec.pools");
  assert.match(out, /^FIELD: pools <\[\]Object>$/m);
  assert.match(out, /Pools contains the list of IP addresses pools/);
  for (const field of ["start", "end", "subnet", "gateway", "dnsServers"]) assert.match(out, new RegExp(`^ {2}${field}\\t<`, "m"), field);
  assert.match(out, /^ {2}prefix\t<integer>$/m);
  assert.match(explain("ippool.spec.pools.subnet"), /derived from the subnet ip incremented by 1/);
});

test("kubectl explain ipaddressclaim.spec.poolRef: Cluster API's preferred version, and the others by --api-version", () => {
  const out = explain("ipaddressclaim.spec.poolRef");
  assert.match(out, /^KIND:\s+IPAddressClaim$/m);
  assert.match(out, /^VERSION:\s+v1beta2$/m);
  assert.match(out, /^FIELD: poolRef <Object>$/m);
  assert.match(out, /poolRef is a reference to the pool from which an IP address should be\s+created/);
  assert.match(out, /^ {2}name\t<string> -required-$/m);
  assert.match(out, /^ {2}apiGroup\t<string>$/m);
  assert.match(out, /^ {2}kind\t<string>$/m);
  assert.match(explain("ipaddressclaim.status", "--api-version=ipam.cluster.x-k8s.io/v1beta1"), /^VERSION:\s+v1beta1$[\s\S]*^ {2}addressRef\t<Object>$[\s\S]*^ {2}conditions\t<\[\]Object>$/m);
  const address = explain("ipaddresses.spec", "--api-version=ipam.cluster.x-k8s.io/v1beta1");
  for (const field of ["address", "claimRef", "poolRef", "prefix"]) assert.match(address, new RegExp(`^ {2}${field}\\t<[^>]+> -required-$`, "m"), field);
});

test("kubectl explain ipclaim --api-version=ipam.metal3.io/v1alpha1, and Metal3's IPAddress", () => {
  const out = explain("ipclaim", "--api-version=ipam.metal3.io/v1alpha1");
  assert.match(out, /^KIND:\s+IPClaim$/m);
  assert.match(out, /^VERSION:\s+v1alpha1$/m);
  assert.match(out, /IPClaimSpec defines the desired state of IPClaim/);
  const spec = explain("ipclaim.spec.pool");
  assert.match(spec, /Pool is the IPPool this was generated from/);
  assert.match(spec, /^ {2}name\t<string> -required-$/m);
  assert.match(explain("ipclaim.status"), /^ {2}address\t<Object>$[\s\S]*^ {2}errorMessage\t<string>$/m);
  const address = explain("ipaddress.spec");
  for (const field of ["address", "claim", "pool", "prefix", "gateway", "dnsServers"]) assert.match(address, new RegExp(`^ {2}${field}\\t<`, "m"), field);
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}
function get(path: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, server.url), { ca: readFileSync(join(dir, "data", "tls.crt")), headers }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.on("error", reject);
    req.end();
  });
}

test("/openapi/v3 as kube-apiserver serves it: hashed URLs, JSON or 406, a token needed", async () => {
  const index = await get("/openapi/v3", AUTH);
  assert.equal(index.status, 200);
  const paths = (JSON.parse(index.text) as { paths: Record<string, { serverRelativeURL: string }> }).paths;
  assert.deepEqual(Object.keys(paths).sort(), ["apis/ipam.cluster.x-k8s.io/v1beta1", "apis/ipam.cluster.x-k8s.io/v1beta2", "apis/ipam.metal3.io/v1alpha1"]);
  const url = paths["apis/ipam.metal3.io/v1alpha1"]!.serverRelativeURL;
  assert.match(url, /^\/openapi\/v3\/apis\/ipam\.metal3\.io\/v1alpha1\?hash=[0-9A-F]{128}$/);

  const doc = await get(url, { ...AUTH, accept: "application/json" });
  assert.equal(doc.status, 200);
  assert.match(String(doc.headers["cache-control"]), /immutable/);
  type Doc = { components: { schemas: Record<string, Record<string, unknown>> } };
  const schemas = (JSON.parse(doc.text) as Doc).components.schemas;
  assert.deepEqual(schemas["io.metal3.ipam.v1alpha1.IPPool"]!["x-kubernetes-group-version-kind"], [{ group: "ipam.metal3.io", kind: "IPPool", version: "v1alpha1" }]);
  assert.ok(schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]);
  const capi = JSON.parse((await get(paths["apis/ipam.cluster.x-k8s.io/v1beta2"]!.serverRelativeURL, AUTH)).text) as Doc;
  assert.ok(capi.components.schemas["io.x-k8s.cluster.ipam.v1beta2.IPAddressClaim"]);

  // protobuf only: 406, so the client asks again for JSON; protobuf preferred but JSON taken: JSON
  assert.equal((await get(url, { ...AUTH, accept: "application/com.github.proto-openapi.spec.v3@v1.0+protobuf" })).status, 406);
  assert.equal((await get(url, { ...AUTH, accept: "application/com.github.proto-openapi.spec.v3@v1.0+protobuf, application/json;q=0.9" })).status, 200);
  // an outdated hash is sent to the current document; an unchanged one is not sent again
  const moved = await get("/openapi/v3/apis/ipam.metal3.io/v1alpha1?hash=0123", AUTH);
  assert.equal(moved.status, 301);
  assert.equal(moved.headers.location, url);
  assert.equal((await get(url, { ...AUTH, "if-none-match": String(doc.headers.etag) })).status, 304);
  assert.equal((await get("/openapi/v3/apis/ipam.metal3.io/v9", AUTH)).status, 404);
  assert.equal((await get("/openapi/v3")).status, 401);
  assert.equal((await get(url)).status, 401);
});
