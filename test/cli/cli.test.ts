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

  const a = json("allocate", "lab-net", "-s", "lab", "-O", "vm-1", "-m", "52:54:00:12:34:56", "--hostname", "vm1", "--label", "role=web");
  assert.equal(a.address, "10.50.0.10");
  assert.deepEqual(a.labels, { role: "web" });
  assert.equal(json("allocate", "lab-net", "-s", "lab", "-O", "vm-1").id, a.id, "same owner, same allocation");
  const block = json("alloc", "lab-net", "-s", "lab", "--size", "8");
  assert.equal(`${block.address}-${block.lastAddress}`, "10.50.0.11-10.50.0.18");

  const renewed = json("allocation", "update", a.id, "--ttl", "600", "--hostname", "vm1.lab");
  assert.equal(renewed.hostname, "vm1.lab");
  assert.ok(renewed.expiresAt);
  assert.equal(json("allocation", "update", a.id, "--no-ttl").expiresAt, null);

  const many = json("allocate", "lab-net", "-s", "lab", "--count", "3");
  assert.deepEqual(many.items.map((x: { address: string }) => x.address), ["10.50.0.19", "10.50.0.20", "10.50.0.21"]);
  for (const m of many.items) assert.equal(run("release", "--id", m.id).code, 0);
  assert.equal(run("allocate", "lab-net", "-s", "lab", "--count", "2", "--owner", "x").code, 2);

  const table = run("allocations", "lab-net", "-s", "lab");
  assert.equal(table.code, 0);
  assert.match(table.stdout, /^ADDRESS\s+POOL\s+OWNER/m);
  assert.match(table.stdout, /10\.50\.0\.10\s+lab-net\s+vm-1\s+52:54:00:12:34:56\s+vm1/);

  const look = parse(run("lookup", "10.50.0.12", "-o", "yaml").stdout).items;
  assert.equal(look[0].state, "allocated");
  assert.equal(look[0].allocation.id, block.id);

  const usage = json("usage", "lab-net", "-s", "lab");
  assert.equal(usage.allocated, "9");
  assert.equal(usage.free, "236");

  json("pool", "create", "v6", "2001:db8::/32", "--space", "lab", "--allocate-reserved");
  const child = json("pool", "child", "v6", "v6-a", "-s", "lab", "--prefix-length", "64");
  assert.equal(child.ranges[0].cidr, "2001:db8::/64");
  assert.equal(json("pool", "children", "v6", "-s", "lab").items[0].name, "v6-a");

  const rel = run("release", "lab-net", "-s", "lab", "-O", "vm-1");
  assert.equal(rel.code, 0, rel.stderr);
  assert.match(rel.stdout, /released 10\.50\.0\.10 from pool lab-net/);
  assert.equal(json("lookup", "10.50.0.10", "-s", "lab").items[0].state, "free");
  assert.equal(run("release", "--id", block.id).code, 0);

  const hist = json("history", "--pool", "lab-net", "-s", "lab");
  assert.deepEqual(hist.items.slice(0, 2).map((h: { action: string }) => h.action), ["release", "release"]);
});

test("every list answers one shape, and paged ones say how to get the next page", () => {
  json("pool", "create", "paged", "10.70.0.0/24");
  for (let i = 0; i < 3; i++) json("allocate", "paged");
  for (const args of [["pool", "list"], ["token", "list"], ["history"], ["lookup", "10.70.0.1"], ["dhcp", "network", "list"]]) {
    const out = json(...args);
    assert.ok(Array.isArray(out.items) && "next" in out, `${args.join(" ")}: ${JSON.stringify(out).slice(0, 80)}`);
  }
  assert.deepEqual(Object.keys(parse(run("space", "list", "-o", "yaml").stdout)), ["items", "next"], "the same shape in YAML");
  const page = json("allocations", "paged", "--limit", "2");
  assert.equal(page.next, "10.70.0.2");
  assert.match(run("allocations", "paged", "--limit", "2").stderr, /^more: --after 10\.70\.0\.2$/m);
  // history pages by sequence number, its table naming each entry's space and pool, and a block's whole run
  json("allocate", "paged", "--size", "4");
  const hist = run("history", "--pool", "paged", "--limit", "2");
  assert.match(hist.stdout, /^SEQ\s+AT\s+ACTOR\s+ACTION\s+ENTITY\s+SPACE\s+POOL\s+WHAT$/m);
  assert.match(hist.stdout, /allocate\s+allocation\s+default\s+paged\s+10\.70\.0\.4-10\.70\.0\.7$/m);
  const older = json("history", "--pool", "paged", "--limit", "2");
  assert.match(hist.stderr, new RegExp(`^more: --before ${older.next}$`, "m"));
  assert.equal(json("history", "--pool", "paged", "--limit", "2", "--before", String(older.next)).items[0].seq, older.next - 1);
});

test("pool update, thresholds and search from the command line", () => {
  const made = json("pool", "create", "editable", "10.71.0.0/24", "--threshold", "80", "--threshold", "95%");
  assert.deepEqual(made.thresholds, [80, 95]);
  const changed = json("pool", "update", "editable", "--name", "edited", "--description", "rack 7", "--attr", "site=ams", "--strategy", "random", "--threshold", "70");
  assert.deepEqual([changed.name, changed.description, changed.attributes, changed.strategy, changed.thresholds], ["edited", "rack 7", { site: "ams" }, "random", [70]]);
  // --attr sets one attribute and keeps the others; an empty value removes it
  assert.deepEqual(json("pool", "update", "edited", "--attr", "rack=7").attributes, { site: "ams", rack: "7" });
  assert.deepEqual(json("pool", "update", "edited", "--attr", "site=").attributes, { rack: "7" });
  assert.deepEqual(json("pool", "update", "edited", "--no-thresholds", "--no-attrs").thresholds, []);
  const nothing = run("pool", "update", "edited");
  assert.equal(nothing.code, 2);
  assert.match(nothing.stderr, /nothing to change/);
  assert.match(run("pool", "create", "x", "10.72.0.0/24", "--threshold", "150").stderr, /percentage above 0 and at most 100/);

  const a = json("allocate", "edited", "-O", "web-7", "-m", "52:54:00:aa:bb:07", "--hostname", "web-7");
  const found = json("search", "52-54-00-AA-BB-07");
  assert.deepEqual(found.allocations.map((x: { id: string }) => x.id), [a.id]);
  assert.match(run("search", "web-").stdout, /edited\s+web-7\s+52:54:00:aa:bb:07\s+web-7/);
  assert.equal(json("search", a.address).addresses[0].allocation.id, a.id);
});

test("errors in the user's terms: flags for fields, JSON with -o json, a short line for a typo", () => {
  json("pool", "create", "terms", "10.73.0.0/24");
  const size = run("allocate", "terms", "--size", "0");
  assert.equal(size.code, 1);
  assert.match(size.stderr, /^error: --size: must be at least 1 \(invalid-request\)$/m);
  const asJson = run("allocate", "terms", "--size", "0", "-o", "json");
  const problem = JSON.parse(asJson.stderr);
  assert.deepEqual([problem.code, problem.status, problem.detail], ["invalid-request", 400, "--size: must be at least 1"]);
  const cidr = run("pool", "create", "bad33", "10.0.0.0/33");
  assert.match(cidr.stderr, /^error: "10\.0\.0\.0\/33" is not a CIDR prefix: \/33 is not a prefix length for IPv4 \(0 to 32\)/m);
  const usage = run("release", "terms", "-o", "json");
  assert.equal(usage.code, 2);
  assert.equal(JSON.parse(usage.stderr).code, "usage");
  const typo = run("alocate", "terms");
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /unknown command 'alocate'/);
  assert.match(typo.stderr, /Did you mean allocate\?/);
  assert.doesNotMatch(typo.stderr, /Usage:|Commands:/, "the one line, not the whole help");
  // one meaning per short flag: -n is a namespace, so allocate has none
  assert.match(run("allocate", "terms", "-n", "2").stderr, /unknown option '-n'/);
  assert.match(run("pool", "create", "bad name", "10.74.0.0/24").stderr, /ASCII letters/);
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
