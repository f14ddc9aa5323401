import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { type ServerProcess, allot, startServerProcess } from "../process-helpers.js";

/**
 * Metal3 manifests without kubectl, as a user runs them: `allot apply`, `get`, `delete`, and a
 * namespace moved from one running server to another with `allot export -n` / `allot import -n`.
 */

let dir: string;
let source: ServerProcess;
let target: ServerProcess;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "allot-kube-cli-"));
  [source, target] = await Promise.all([startServerProcess(join(dir, "a")), startServerProcess(join(dir, "b"))]);
});
after(async () => {
  await Promise.all([source.stop(), target.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

const MANIFEST = `apiVersion: ipam.metal3.io/v1alpha1
kind: IPPool
metadata: {name: prov}
spec:
  namePrefix: prov
  gateway: 192.168.111.1
  prefix: 24
  pools: [{start: 192.168.111.100, end: 192.168.111.199}]
  preAllocations: {node-0: 192.168.111.150}
---
apiVersion: ipam.metal3.io/v1alpha1
kind: IPClaim
metadata: {name: node-0}
spec: {pool: {name: prov}}
---
apiVersion: ipam.metal3.io/v1alpha1
kind: IPClaim
metadata: {name: node-1, labels: {role: worker}}
spec: {pool: {name: prov}}
---
apiVersion: ipam.cluster.x-k8s.io/v1beta1
kind: IPAddressClaim
metadata: {name: machine-a}
spec: {poolRef: {apiGroup: ipam.metal3.io, kind: IPPool, name: prov}}
`;

test("allot apply, get and delete drive the same objects kubectl would", () => {
  const file = join(dir, "metal3.yaml");
  writeFileSync(file, MANIFEST);
  const at = ["--url", source.url];
  const applied = allot([...at, "apply", "-f", file, "-n", "lab"]);
  assert.equal(applied.code, 0, applied.stderr);
  assert.equal(applied.stdout, "ippool.ipam.metal3.io/prov created\nipclaim.ipam.metal3.io/node-0 created\nipclaim.ipam.metal3.io/node-1 created\nipaddressclaim.ipam.cluster.x-k8s.io/machine-a created\n");
  assert.match(allot([...at, "apply", "-f", file, "-n", "lab"]).stdout, /ippool.ipam.metal3.io\/prov unchanged/);

  const table = allot([...at, "get", "ipaddresses", "-n", "lab"]).stdout;
  assert.match(table, /^NAME\s+ADDRESS\s+PREFIX\s+GATEWAY\s+POOL\s+CLAIM\s+AGE$/m);
  assert.match(table, /^prov-192-168-111-150\s+192\.168\.111\.150\s+24\s+192\.168\.111\.1\s+prov\s+node-0\s/m);
  assert.match(table, /^prov-192-168-111-100\s+192\.168\.111\.100\s+24\s+192\.168\.111\.1\s+prov\s+node-1\s/m);
  const one = JSON.parse(allot([...at, "get", "ipclaim", "node-1", "-n", "lab", "-o", "json"]).stdout);
  assert.equal(one.status.address.name, "prov-192-168-111-100");
  const selected = JSON.parse(allot([...at, "get", "ipclaims", "-n", "lab", "-l", "role=worker", "-o", "json"]).stdout);
  assert.deepEqual(selected.items.map((c: { metadata: { name: string } }) => c.metadata.name), ["node-1"]);
  assert.match(allot([...at, "get", "ipaddresses.ipam.cluster.x-k8s.io", "-A"]).stdout, /^lab\s+prov-192-168-111-101\s+192\.168\.111\.101\s/m);
  assert.match(allot([...at, "get", "ippool", "prov", "-n", "lab", "-o", "yaml"]).stdout, /^ {4}machine-a: 192\.168\.111\.101$/m);

  const deleted = allot([...at, "delete", "ipclaim", "node-1", "-n", "lab"]);
  assert.equal(deleted.code, 0, deleted.stderr);
  assert.equal(allot([...at, "get", "ipaddress", "prov-192-168-111-100", "-n", "lab"]).code, 1);
});

test("bad manifests and arguments: a clear message, a non-zero exit, nothing applied", () => {
  const at = ["--url", source.url];
  const empty = allot([...at, "apply", "-f", "-", "-n", "lab"]); // nothing on stdin
  assert.equal(empty.code, 2);
  assert.match(empty.stderr, /stdin holds no objects/);
  const withBad = join(dir, "bad.yaml");
  writeFileSync(withBad, `${MANIFEST.replace(/node-1/g, "node-9")}---\napiVersion: ipam.metal3.io/v1alpha1\nkind: IPPool\nmetadata: {name: wrong}\nspec: {namePrefix: w, pools: [{start: 10.0.0.9, end: 10.0.0.1}]}\n`);
  const refused = allot([...at, "apply", "-f", withBad, "-n", "lab"]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /document 5 \(IPPool "wrong" in namespace [a-z0-9-]+\): spec\.pools\[0\]\.end: 10\.0\.0\.1 is before the entry's start/);
  assert.equal(allot([...at, "get", "ipclaim", "node-9", "-n", "lab"]).code, 1, "a document before the bad one was applied");
  const broken = join(dir, "broken.yaml");
  writeFileSync(broken, "kind: IPPool\nmetadata: {name: [unclosed\n");
  const syntax = allot([...at, "apply", "-f", broken]);
  assert.equal(syntax.code, 2);
  assert.match(syntax.stderr, /document 1 is not valid YAML/);
  const kind = allot([...at, "get", "machines"]);
  assert.equal(kind.code, 2);
  assert.match(kind.stderr, /machines is not a kind Allot serves/);
  assert.match(allot([...at, "apply", "-f", join(dir, "missing.yaml")]).stderr, /cannot read .*missing\.yaml: no such file/);
});

test("a namespace moves to another server with export -n and import -n, addresses and all", () => {
  const file = join(dir, "lab.json");
  const exported = allot(["--url", source.url, "export", "-n", "lab", "-f", file]);
  assert.equal(exported.code, 0, exported.stderr);
  assert.match(exported.stderr, /exported namespace lab: \d+ objects, 1 pool, 2 allocations/);
  const imported = allot(["--url", target.url, "import", "-n", "lab", "-f", file]);
  assert.equal(imported.code, 0, imported.stderr);
  const show = (url: string) => JSON.parse(allot(["--url", url, "get", "ippool", "prov", "-n", "lab", "-o", "json"]).stdout);
  assert.deepEqual(show(target.url).status.indexes, show(source.url).status.indexes);
  assert.equal(show(target.url).metadata.uid, show(source.url).metadata.uid);
  const again = allot(["--url", target.url, "import", "-n", "lab", "-f", file]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /import refused, nothing was changed: namespace lab already has IPPool prov/);
  // a whole-database import of a namespace export says what to do instead
  const wrongKind = allot(["import", "-f", file, "--data-dir", join(dir, "fresh")]);
  assert.equal(wrongKind.code, 2);
  assert.match(wrongKind.stderr, /this is a namespace export: load it into a running server with allot import -n/);
  assert.ok(readFileSync(file, "utf8").startsWith('{"format":"allot-namespace"'));
});
