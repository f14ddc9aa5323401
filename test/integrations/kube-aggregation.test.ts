import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import forge from "node-forge";
import { ConfigError, resolveServeConfig } from "../../src/server/config.js";
import { AUTH } from "../helpers.js";
import { type ServerProcess, startServerProcess } from "../process-helpers.js";

/**
 * Allot as a Kubernetes aggregated API server: kube-apiserver proxies a user's request with its
 * front-proxy client certificate and the user in X-Remote-User. A server started with that
 * certificate's CA trusts exactly such requests, for the Kubernetes paths only.
 */

let dir: string;
let server: ServerProcess;
interface Pem {
  cert: string;
  key: string;
}
/** A certificate for `cn`, signed by `issuer` (or by itself, as a CA), SHA-256 over RSA-2048. */
function certificate(cn: string, issuer?: { cert: forge.pki.Certificate; key: forge.pki.rsa.PrivateKey }) {
  const keys = forge.pki.rsa.generateKeyPair(2048);
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = String(Math.floor(Math.random() * 1e9) + 1);
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 86_400_000);
  cert.setSubject([{ name: "commonName", value: cn }]);
  cert.setIssuer((issuer?.cert ?? cert).subject.attributes);
  cert.setExtensions(issuer ? [{ name: "extKeyUsage", clientAuth: true }] : [{ name: "basicConstraints", cA: true }, { name: "keyUsage", keyCertSign: true, digitalSignature: true }]);
  cert.sign(issuer?.key ?? keys.privateKey, forge.md.sha256.create());
  return { cert, key: keys.privateKey, pem: { cert: forge.pki.certificateToPem(cert), key: forge.pki.privateKeyToPem(keys.privateKey) } as Pem };
}
// as kubeadm makes them: front-proxy-ca, and front-proxy-client signed by it
const proxyCa = certificate("front-proxy-ca");
const proxy = certificate("front-proxy-client", proxyCa).pem;
const wrongName = certificate("someone-else", proxyCa).pem;
const otherCa = certificate("front-proxy-client", certificate("another-ca")).pem;

interface Answer {
  status: number;
  body: Record<string, unknown>;
}
function call(method: string, path: string, opts: { cert?: Pem; headers?: Record<string, string>; body?: unknown } = {}): Promise<Answer> {
  const url = new URL(path, server.url);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        ca: readFileSync(join(dir, "data", "tls.crt")),
        ...(opts.cert ? { cert: opts.cert.cert, key: opts.cert.key } : {}),
        headers: { ...(opts.body ? { "content-type": "application/json" } : {}), ...opts.headers },
      },
      (res) => {
        let text = "";
        res.on("data", (d: Buffer) => (text += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} }));
      },
    );
    req.on("error", reject);
    req.end(opts.body ? JSON.stringify(opts.body) : undefined);
  });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "allot-aggregation-"));
  writeFileSync(join(dir, "front-proxy-ca.crt"), proxyCa.pem.cert);
  server = await startServerProcess(join(dir, "data"), { ALLOT_TLS: "1", ALLOT_KUBE_PROXY_CA: join(dir, "front-proxy-ca.crt"), ALLOT_KUBE_PROXY_NAMES: "front-proxy-client" });
});
after(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

const claims = "/apis/ipam.metal3.io/v1alpha1/namespaces/metal3/ipclaims";

test("a request proxied by kube-apiserver acts for its X-Remote-User; the change is recorded under that user", async () => {
  const asAlice = { cert: proxy, headers: { "x-remote-user": "alice", "x-remote-group": "system:authenticated" } };
  const discovery = await call("GET", "/apis/ipam.metal3.io/v1alpha1", { cert: proxy, headers: { "x-remote-user": "system:kube-aggregator" } });
  assert.equal(discovery.status, 200);
  const pool = await call("POST", "/apis/ipam.metal3.io/v1alpha1/namespaces/metal3/ippools", {
    ...asAlice,
    body: { apiVersion: "ipam.metal3.io/v1alpha1", kind: "IPPool", metadata: { name: "prov" }, spec: { namePrefix: "prov", pools: [{ start: "10.0.0.1", end: "10.0.0.9" }] } },
  });
  assert.equal(pool.status, 201, JSON.stringify(pool.body));
  const claim = await call("POST", claims, { ...asAlice, body: { apiVersion: "ipam.metal3.io/v1alpha1", kind: "IPClaim", metadata: { name: "node-0" }, spec: { pool: { name: "prov" } } } });
  assert.equal(claim.status, 201);
  assert.deepEqual((claim.body.status as { address: { name: string } }).address.name, "prov-10-0-0-1");
  const history = await call("GET", "/v1/history?space=metal3&owner=node-0", { headers: AUTH });
  assert.equal(((history.body.items as { actor: string }[])[0])!.actor, "token:kube:alice");
});

test("without the front-proxy certificate, with another CA's, with a name not allowed, or without a user: 401", async () => {
  const user = { "x-remote-user": "mallory" };
  assert.equal((await call("GET", claims, { headers: user })).status, 401);
  const foreign = await call("GET", claims, { cert: otherCa, headers: user });
  assert.equal(foreign.status, 401);
  assert.match(String(foreign.body.message), /not signed by the front-proxy CA/);
  const named = await call("GET", claims, { cert: wrongName, headers: user });
  assert.equal(named.status, 401);
  assert.match(String(named.body.message), /name someone-else is not one of --kube-proxy-names \(front-proxy-client\)/);
  const nobody = await call("GET", claims, { cert: proxy });
  assert.equal(nobody.status, 401);
  assert.match(String(nobody.body.message), /X-Remote-User/);
  // the certificate opens only the Kubernetes paths: /v1 still wants an Allot token
  assert.equal((await call("GET", "/v1/spaces", { cert: proxy, headers: user })).status, 401);
  // and Allot tokens keep working beside it
  assert.equal((await call("GET", claims, { headers: AUTH })).status, 200);
});

test("the front-proxy CA needs HTTPS, and allowed names need the CA", () => {
  assert.throws(() => resolveServeConfig({ kubeProxyCa: "ca.crt" }, {}), (e: Error) => e instanceof ConfigError && /needs HTTPS: add --tls/.test(e.message));
  assert.throws(() => resolveServeConfig({ tls: true, kubeProxyNames: "front-proxy-client" }, {}), /needs --kube-proxy-ca/);
  assert.deepEqual(resolveServeConfig({ tls: true, kubeProxyCa: "ca.crt", kubeProxyNames: "a, b" }, {}).kubeProxy?.names, ["a", "b"]);
});
