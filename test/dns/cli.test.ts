import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Rfc2136Backend } from "../../src/dns/rfc2136.js";
import { allot, startServerProcess } from "../process-helpers.js";
import { hasBind, startNamed, until } from "./servers.js";

test("allot serve publishes; allot dns zone create/list, check, check --fix", { skip: hasBind ? false : "named and dig are not installed" }, async () => {
  const named = await startNamed(["cli.test", "40.10.in-addr.arpa"]);
  const dir = mkdtempSync(join(tmpdir(), "allot-dns-cli-"));
  const server = await startServerProcess(join(dir, "data"));
  try {
    const env = { ALLOT_URL: server.url };
    const keyFile = join(dir, "allot.key");
    // as tsig-keygen writes it
    writeFileSync(keyFile, `key "${named.keyName}" {\n\talgorithm hmac-sha256;\n\tsecret "${named.secret}";\n};\n`);
    const run = (args: string[]) => {
      const r = allot(args, env);
      return r;
    };
    let r = run(["pool", "create", "lan", "10.40.0.0/24"]);
    assert.equal(r.code, 0, r.stderr);
    r = run(["dns", "zone", "create", "cli.test", "--rfc2136", named.server, "--key-file", keyFile, "--ttl", "60"]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stdout.includes(named.secret));
    r = run(["dns", "zone", "create", "--prefix", "10.40.0.0/16", "--rfc2136", named.server, "--key-name", named.keyName, "--secret", named.secret]);
    assert.equal(r.code, 0, r.stderr);
    r = run(["allocate", "lan", "--address", "10.40.0.9", "--hostname", "box"]);
    assert.equal(r.code, 0, r.stderr);
    await until(named.port, "box.cli.test", "A", ["10.40.0.9"]);
    await until(named.port, "9.0.40.10.in-addr.arpa", "PTR", ["box.cli.test."]);
    r = run(["dns", "zone", "list"]);
    assert.match(r.stdout, /cli\.test\s+default\s+\(all\)\s+rfc2136/);
    assert.match(r.stdout, /40\.10\.in-addr\.arpa/);
    r = run(["dns", "check"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /zone cli\.test: in step/);

    const direct = new Rfc2136Backend("cli.test", named.server, { name: named.keyName, algorithm: "hmac-sha256", secret: Buffer.from(named.secret, "base64") });
    await direct.apply([{ name: "box.cli.test", type: "A", ttl: 60, data: [] }]);
    r = run(["dns", "check", "--zone", "cli.test"]);
    assert.equal(r.code, 3, r.stdout + r.stderr);
    assert.match(r.stdout, /1 missing, 0 stale, 0 foreign/);
    assert.match(r.stdout, /missing\s+box\.cli\.test\s+A\s+10\.40\.0\.9/);
    r = run(["dns", "check", "--zone", "cli.test", "--fix"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /1 record changes sent/);
    await until(named.port, "box.cli.test", "A", ["10.40.0.9"]);
  } finally {
    await server.stop();
    await named.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});
