import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { parse } from "yaml";
import { type ServerProcess, allot, startServerProcess } from "../process-helpers.js";

let server: ServerProcess;
let dir: string;
let env: Record<string, string>;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "allot-cli-"));
  server = await startServerProcess(join(dir, "data"));
  env = { ALLOT_URL: server.url };
});
after(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

const run = (...args: string[]) => allot(args, env);
const json = (...args: string[]) => {
  const r = run(...args, "-o", "json");
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
};

test("a complete session: space, pool, child, allocations, lookup, usage, release", () => {
  assert.equal(run("space", "create", "lab", "--description", "the lab").code, 0);
  const pool = json("pool", "create", "lab-net", "10.50.0.0/24", "--space", "lab", "-g", "10.50.0.1", "--dns", "10.50.0.53,10.50.0.54", "-x", "10.50.0.2-10.50.0.9", "--attr", "site=ams");
  assert.equal(pool.usage.total, "245");
  assert.deepEqual(pool.attributes, { site: "ams" });
  assert.deepEqual(pool.dns, ["10.50.0.53", "10.50.0.54"]);

  const a = json("allocate", "lab-net", "-s", "lab", "-O", "vm-1", "-m", "52:54:00:12:34:56", "--hostname", "vm1", "-l", "role=web");
  assert.equal(a.address, "10.50.0.10");
  assert.deepEqual(a.labels, { role: "web" });
  assert.equal(json("allocate", "lab-net", "-s", "lab", "-O", "vm-1").id, a.id, "same owner, same allocation");
  const block = json("alloc", "lab-net", "-s", "lab", "-n", "8");
  assert.equal(`${block.address}-${block.lastAddress}`, "10.50.0.11-10.50.0.18");

  const renewed = json("allocation", "update", a.id, "--ttl", "600", "--hostname", "vm1.lab");
  assert.equal(renewed.hostname, "vm1.lab");
  assert.ok(renewed.expiresAt);
  assert.equal(json("allocation", "update", a.id, "--no-ttl").expiresAt, null);

  const many = json("allocate", "lab-net", "-s", "lab", "--count", "3");
  assert.deepEqual(many.map((x: { address: string }) => x.address), ["10.50.0.19", "10.50.0.20", "10.50.0.21"]);
  for (const m of many) assert.equal(run("release", "--id", m.id).code, 0);
  assert.equal(run("allocate", "lab-net", "-s", "lab", "--count", "2", "--owner", "x").code, 2);

  const table = run("allocations", "lab-net", "-s", "lab");
  assert.equal(table.code, 0);
  assert.match(table.stdout, /^ADDRESS\s+POOL\s+OWNER/m);
  assert.match(table.stdout, /10\.50\.0\.10\s+lab-net\s+vm-1\s+52:54:00:12:34:56\s+vm1/);

  const look = parse(run("lookup", "10.50.0.12", "-o", "yaml").stdout);
  assert.equal(look[0].state, "allocated");
  assert.equal(look[0].allocation.id, block.id);

  const usage = json("usage", "lab-net", "-s", "lab");
  assert.equal(usage.allocated, "9");
  assert.equal(usage.free, "236");

  json("pool", "create", "v6", "2001:db8::/32", "--space", "lab", "--allocate-reserved");
  const child = json("pool", "child", "v6", "v6-a", "-s", "lab", "--prefix-length", "64");
  assert.equal(child.ranges[0].cidr, "2001:db8::/64");
  assert.equal(json("pool", "children", "v6", "-s", "lab")[0].name, "v6-a");

  const rel = run("release", "lab-net", "-s", "lab", "-O", "vm-1");
  assert.equal(rel.code, 0, rel.stderr);
  assert.match(rel.stdout, /released 10\.50\.0\.10 from pool lab-net/);
  assert.equal(json("lookup", "10.50.0.10", "-s", "lab")[0].state, "free");
  assert.equal(run("release", "--id", block.id).code, 0);

  const hist = json("history", "--pool", "lab-net", "-s", "lab");
  assert.deepEqual(hist.slice(0, 2).map((h: { action: string }) => h.action), ["release", "release"]);
});

test("a pool from a YAML file with per-range overrides", () => {
  const file = join(dir, "pool.yaml");
  writeFileSync(
    file,
    ["ranges:", "  - start: 192.168.7.10", "    end: 192.168.7.20", "    prefixLength: 24", "    gateway: 192.168.7.1", "  - cidr: 192.168.8.0/25", "    gateway: 192.168.8.1", "    dns: [192.168.8.53]", "attributes:", "  owner: team-a"].join("\n"),
  );
  const p = json("pool", "create", "from-file", "-f", file);
  assert.equal(p.ranges.length, 2);
  const first = json("allocate", "from-file", "-a", "192.168.8.5");
  assert.equal(first.gateway, "192.168.8.1");
  assert.deepEqual(first.dns, ["192.168.8.53"]);
  assert.equal(first.prefixLength, 25);
});

test("errors exit non-zero with the server's message", () => {
  json("pool", "create", "tiny", "10.60.0.0/30");
  assert.equal(run("alloc", "tiny").code, 0);
  assert.equal(run("alloc", "tiny").code, 0);
  const full = run("alloc", "tiny");
  assert.equal(full.code, 1);
  assert.match(full.stderr, /pool tiny is exhausted: 2 of 2 addresses allocated \(pool-exhausted\)/);

  const badCidr = run("pool", "create", "bad", "10.0.0.1/24");
  assert.equal(badCidr.code, 1);
  assert.match(badCidr.stderr, /did you mean 10\.0\.0\.0\/24/);

  const usage = run("release", "tiny");
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /exactly one of --address or --owner/);

  const unreachable = allot(["pool", "list"], { ALLOT_URL: "http://127.0.0.1:1" });
  assert.equal(unreachable.code, 1);
  assert.match(unreachable.stderr, /cannot reach Allot at http:\/\/127\.0\.0\.1:1/);

  const badFormat = run("pool", "list", "-o", "xml");
  assert.notEqual(badFormat.code, 0);
  assert.match(badFormat.stderr, /table, json or yaml/);
});

test("serve refuses a bad port with a clear message", () => {
  const r = allot(["serve", "--port", "99999", "--data-dir", join(dir, "x")]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /port "99999" is not a TCP port/);
});

test("--help lists the commands", () => {
  const r = run("--help");
  assert.equal(r.code, 0);
  for (const c of ["serve", "space", "pool", "allocate", "release", "allocations", "lookup", "usage", "history"]) assert.match(r.stdout, new RegExp(`\\b${c}\\b`));
});
