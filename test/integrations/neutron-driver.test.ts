/**
 * Allot as the IPAM driver of a real neutron-server (Debian's python3-neutron): Neutron's own DB plugin
 * tests with `ipam_driver = allot`, then neutron-server itself driven by the stock openstack CLI, with
 * Allot compared against Neutron after every step.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { AUTH, TEST_ADMIN_TOKEN } from "../helpers.js";
import { type ServerProcess, allot as runAllot, startServerProcess } from "../process-helpers.js";
import { type NeutronServer, PYTHON, installDriver, openstack, startNeutron } from "./neutron-server.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
let dir: string;
let allot: ServerProcess;
let site: string;

async function api<T = Record<string, unknown>>(path: string, init: RequestInit = {}): Promise<{ status: number; body: T }> {
  const res = await fetch(new URL(path, allot.url), { ...init, headers: { ...AUTH, ...(init.body ? { "content-type": "application/json" } : {}), ...(init.headers ?? {}) } });
  return { status: res.status, body: (await res.json()) as T };
}

/** Neutron's addresses (subnet id and address of every fixed IP) and Allot's in `space`, which must be the same. */
async function assertSame(neutronUrl: string, space: string, step: string) {
  const ports = ((await (await fetch(`${neutronUrl}/v2.0/ports`)).json()) as { ports: { fixed_ips: { subnet_id: string; ip_address: string }[] }[] }).ports;
  const inNeutron = ports.flatMap((p) => p.fixed_ips.map((f) => `${f.subnet_id} ${f.ip_address}`)).sort();
  const subnets = ((await (await fetch(`${neutronUrl}/v2.0/subnets`)).json()) as { subnets: { id: string; cidr: string }[] }).subnets;
  const pools = (await api<{ items: { id: string; name: string; ranges: { cidr: string }[] }[] }>(`/v1/pools?space=${space}`)).body.items.filter((p) => p.name.startsWith("neutron-subnet-"));
  assert.deepEqual(pools.map((p) => `${p.name.slice(15)} ${p.ranges[0]!.cidr}`).sort(), subnets.map((s) => `${s.id} ${s.cidr}`).sort(), `${step}: a pool for each subnet`);
  const inAllot: string[] = [];
  for (const p of pools) {
    const list = await api<{ items: { address: string }[] }>(`/v1/pools/${p.id}/allocations?limit=1000`);
    inAllot.push(...list.body.items.map((a) => `${p.name.slice(15)} ${a.address}`));
  }
  assert.deepEqual(inAllot.sort(), inNeutron, `${step}: Allot holds exactly Neutron's addresses`);
}

const cli = (args: string[]) => runAllot(args, { ALLOT_URL: allot.url });

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "allot-neutron-"));
  allot = await startServerProcess(join(dir, "allot"));
  site = installDriver(dir, ["neutron-driver/tests/failmech"]);
});
after(async () => {
  await allot.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("Neutron's own DB plugin tests pass with ipam_driver = allot (but those listed with their reasons), and a replayed allocation gets its address back", { timeout: 900_000 }, () => {
  // tests/conftest.py marks those in tests/known-failures.txt as expected to fail (strictly: one that
  // passes fails the run, so the list stays true)
  const r = spawnSync(
    PYTHON,
    ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore", "-rfEX", "tests/"],
    { cwd: join(root, "neutron-driver"), encoding: "utf8", env: { ...process.env, PYTHONPATH: site, ALLOT_URL: allot.url, ALLOT_TOKEN: TEST_ADMIN_TOKEN }, maxBuffer: 64 * 1024 * 1024 },
  );
  const summary = r.stdout.trim().split("\n").at(-1) ?? "";
  process.stdout.write(`# Neutron DB plugin and driver tests: ${summary}\n`);
  assert.equal(r.status, 0, r.stdout.slice(-6000) + r.stderr.slice(-2000));
  assert.match(summary, /\d+ passed/);
});

describe("a real neutron-server with ipam_driver = allot, driven by the openstack CLI", () => {
  let neutron: NeutronServer;
  const space = "neutron";
  before(async () => {
    assert.equal((await api("/v1/spaces", { method: "POST", body: JSON.stringify({ name: space }) })).status, 201);
    // with a mechanism driver that fails the pre-commit of a port named fail-precommit
    neutron = await startNeutron({
      dir: join(dir, "neutron"),
      ipamDriver: "allot",
      pythonPath: site,
      allot: { url: allot.url, token: TEST_ADMIN_TOKEN, space },
      mechanismDrivers: ["allot_test_fail_precommit"],
    });
  });
  after(async () => {
    await neutron?.stop();
  });

  const os = (...args: string[]) => {
    const r = openstack(neutron.url, args);
    assert.equal(r.code, 0, `openstack ${args.join(" ")}: ${r.stderr}`);
    return r.json as Record<string, unknown>;
  };

  const same = (step: string) => assertSame(neutron.url, space, step);

  test("networks, subnets (v4, v6 SLAAC, from a subnet pool), ports, updates and deletes", async () => {
    const net = os("network", "create", "n1");
    await same("network");
    const s1 = os("subnet", "create", "--network", "n1", "--subnet-range", "10.60.0.0/24", "s1");
    assert.equal(s1.gateway_ip, "10.60.0.1");
    const p1 = os("port", "create", "--network", "n1", "p1");
    assert.deepEqual((p1.fixed_ips as { ip_address: string }[]).map((f) => f.ip_address), ["10.60.0.2"]);
    const p2 = os("port", "create", "--network", "n1", "--fixed-ip", "subnet=s1,ip-address=10.60.0.50", "p2");
    assert.equal((p2.fixed_ips as { ip_address: string }[])[0]!.ip_address, "10.60.0.50");
    await same("ports");

    // the same address again: Neutron's conflict, and nothing changes
    const taken = openstack(neutron.url, ["port", "create", "--network", "n1", "--fixed-ip", "subnet=s1,ip-address=10.60.0.50", "p3"]);
    assert.notEqual(taken.code, 0);
    assert.match(taken.stderr, /10\.60\.0\.50 already allocated/);
    await same("taken");

    // a subnet pool: the subnet is carved by Allot from the pool behind it
    // (Neutron wants one network's subnets of a version all from one subnet pool, or none: a network of its own)
    os("subnet", "pool", "create", "--pool-prefix", "10.70.0.0/16", "--default-prefix-length", "24", "sp1");
    const net3 = os("network", "create", "n3");
    const s2 = os("subnet", "create", "--network", "n3", "--subnet-pool", "sp1", "--prefix-length", "26", "s2");
    assert.equal(s2.cidr, "10.70.0.0/26");
    const behind = (await api<{ items: { name: string; parent: string | null; id: string }[] }>(`/v1/pools?space=${space}`)).body.items;
    const child = behind.find((p) => p.name === `neutron-subnet-${String(s2.id)}`)!;
    assert.ok(child.parent, "the subnet's pool is a child of the subnet pool's");
    assert.match(behind.find((p) => p.id === child.parent || p.name === child.parent)?.name ?? "", /^neutron-subnetpool-/);

    // IPv6 SLAAC: every port already on the network gets its EUI-64 address
    const s6 = os("subnet", "create", "--network", "n1", "--ip-version", "6", "--ipv6-ra-mode", "slaac", "--ipv6-address-mode", "slaac", "--subnet-range", "2001:db8:60::/64", "s6");
    assert.equal(s6.cidr, "2001:db8:60::/64");
    await same("slaac");
    const p3 = os("port", "create", "--network", "n3", "--fixed-ip", "subnet=s2", "p3");
    assert.deepEqual((p3.fixed_ips as { ip_address: string }[]).map((f) => f.ip_address), ["10.70.0.2"], "the gateway, .1, is not handed out");
    const p5 = os("port", "create", "--network", "n1", "p5");
    assert.match((p5.fixed_ips as { ip_address: string }[]).map((f) => f.ip_address).join(" "), /^10\.60\.0\.\d+ 2001:db8:60:0:[0-9a-f:]+$/, "and an EUI-64 address on the SLAAC subnet");
    await same("subnet pool port");

    // update: add an address, drop another
    os("port", "set", "--fixed-ip", "subnet=s1,ip-address=10.60.0.60", "p1");
    await same("port add");
    os("port", "unset", "--fixed-ip", "subnet=s1,ip-address=10.60.0.2", "p1");
    await same("port drop");
    os("subnet", "set", "--allocation-pool", "start=10.60.0.100,end=10.60.0.110", "--no-allocation-pool", "s1");
    const p4 = os("port", "create", "--network", "n1", "--fixed-ip", "subnet=s1", "p4");
    assert.equal((p4.fixed_ips as { ip_address: string }[])[0]!.ip_address, "10.60.0.100", "the new allocation pool is used");
    await same("allocation pool update");

    for (const p of ["p1", "p2", "p3", "p4", "p5"]) os("port", "delete", p);
    await same("ports deleted");
    os("subnet", "delete", "s2");
    await same("subnet deleted");
    os("network", "delete", String(net.id));
    os("network", "delete", String(net3.id));
    await same("network deleted");
    assert.deepEqual((await api<{ items: { name: string }[] }>(`/v1/pools?space=${space}`)).body.items.map((p) => p.name).filter((n) => n.startsWith("neutron-subnet-")), []);
  });

  test("a subnet pool mapped to an Allot pool of the operator's, by attribute or by name: its subnets are carved there", async () => {
    const make = async (body: Record<string, unknown>) => assert.equal((await api("/v1/pools", { method: "POST", body: JSON.stringify({ space, ...body }) })).status, 201);
    await make({ name: "plan-east", cidr: "10.75.0.0/16", attributes: { "neutron-subnetpool": "east" } });
    await make({ name: "west", cidr: "10.76.0.0/16" });
    // shared subnet pools are the operator's: only those are mapped by name
    os("subnet", "pool", "create", "--share", "--pool-prefix", "10.75.0.0/16", "--default-prefix-length", "24", "east");
    os("subnet", "pool", "create", "--share", "--pool-prefix", "10.76.0.0/16", "--default-prefix-length", "24", "west");
    const made = async () => (await api<{ items: { name: string }[] }>(`/v1/pools?space=${space}`)).body.items.map((p) => p.name).filter((n) => n.startsWith("neutron-subnetpool-"));
    const madeBefore = await made();
    os("network", "create", "n5");
    os("network", "create", "n6");
    const east = os("subnet", "create", "--network", "n5", "--subnet-pool", "east", "se");
    const west = os("subnet", "create", "--network", "n6", "--subnet-pool", "west", "sw");
    assert.equal(east.cidr, "10.75.0.0/24");
    assert.equal(west.cidr, "10.76.0.0/24");
    const children = async (pool: string) => (await api<{ items: { name: string }[] }>(`/v1/pools/${pool}/children?space=${space}`)).body.items.map((p) => p.name);
    assert.deepEqual(await children("plan-east"), [`neutron-subnet-${String(east.id)}`]);
    assert.deepEqual(await children("west"), [`neutron-subnet-${String(west.id)}`]);
    assert.deepEqual(await made(), madeBefore, "no pool was made for these subnet pools");
    for (const n of ["se", "sw"]) os("subnet", "delete", n);
    assert.deepEqual(await children("plan-east"), [], "the subnet's block goes back to the operator's pool");

    // a project's own (unshared) subnet pool named like an operator's pool does not reach into it
    await make({ name: "guarded", cidr: "10.77.0.0/16" });
    os("subnet", "pool", "create", "--pool-prefix", "10.77.0.0/16", "--default-prefix-length", "24", "guarded");
    os("network", "create", "n7");
    const refused = openstack(neutron.url, ["subnet", "create", "--network", "n7", "--subnet-pool", "guarded", "sg"]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /Allot cannot hold this subnet pool's prefixes/);
    assert.deepEqual(await children("guarded"), []);
    await same("mapped subnet pools");
  });

  test("an ML2 pre-commit failure leaves an address held in Allot; reconcile frees it once past the grace period", async () => {
    os("network", "create", "n4");
    const s4 = os("subnet", "create", "--network", "n4", "--subnet-range", "10.62.0.0/24", "s4");
    const failed = openstack(neutron.url, ["port", "create", "--network", "n4", "fail-precommit"]);
    assert.notEqual(failed.code, 0);
    assert.match(failed.stderr, /pre-commit refused/);
    const held = async () => (await api<{ items: { address: string }[] }>(`/v1/pools/neutron-subnet-${String(s4.id)}/allocations?space=${space}`)).body.items.map((a) => a.address);
    assert.deepEqual(await held(), ["10.62.0.2"], "Neutron made no port, yet the address stays held: the leak");

    const young = cli(["neutron", "reconcile", "--neutron-url", neutron.url, "--grace", "3600", "-o", "json"]);
    assert.equal(young.code, 0, young.stderr);
    assert.deepEqual(
      (JSON.parse(young.stdout) as { items: { address: string; action: string }[] }).items.map((i) => [i.address, i.action]),
      [["10.62.0.2", "kept: younger than the grace period"]],
    );
    assert.deepEqual(await held(), ["10.62.0.2"]);

    // an operator's own reservation in the subnet's pool is not Neutron's to free
    assert.equal((await api(`/v1/pools/neutron-subnet-${String(s4.id)}/allocations?space=${space}`, { method: "POST", body: JSON.stringify({ address: "10.62.0.200", owner: "operator" }) })).status, 201);
    const pass = cli(["neutron", "reconcile", "--neutron-url", neutron.url, "--grace", "0"]);
    assert.equal(pass.code, 0, pass.stderr);
    assert.match(pass.stdout, /address\s+\S+\s+10\.62\.0\.2\s+\S+\s+\d+s\s+freed/);
    assert.deepEqual(await held(), ["10.62.0.200"]);
    await api(`/v1/pools/neutron-subnet-${String(s4.id)}/allocations?space=${space}&address=10.62.0.200`, { method: "DELETE" });
    await same("after reconcile");
    const again = cli(["neutron", "reconcile", "--neutron-url", neutron.url, "--grace", "0"]);
    assert.match(again.stderr, /0 freed, 0 kept or reported: Allot and Neutron agree/);
    // the next port gets the freed address
    const p = os("port", "create", "--network", "n4", "p41");
    assert.equal((p.fixed_ips as { ip_address: string }[])[0]!.ip_address, "10.62.0.2");
    await same("a port after reconcile");
  });

  test("Allot stopped: Neutron's request fails with an error naming Allot, nothing half done; it works again once Allot is back", async () => {
    const n2 = os("network", "create", "n2");
    os("subnet", "create", "--network", "n2", "--subnet-range", "10.61.0.0/24", "s21");
    const port = Number(new URL(allot.url).port);
    await allot.stop();
    const down = openstack(neutron.url, ["port", "create", "--network", "n2", "p21"]);
    assert.notEqual(down.code, 0);
    assert.match(down.stderr, /The IPAM service Allot is unavailable \(cannot connect\); try again later/);
    assert.match(neutron.log(), new RegExp(`Allot at ${allot.url} cannot be reached`), "the operator's log says where and why");
    allot = await startServerProcess(join(dir, "allot"), {}, port);
    const ports = ((await (await fetch(`${neutron.url}/v2.0/ports?network_id=${String(n2.id)}`)).json()) as { ports: unknown[] }).ports;
    assert.equal(ports.length, 0, "no port was made");
    await same("after the outage");
    os("port", "create", "--network", "n2", "p21");
    await same("after recovery");
  });
});

describe("migrating a Neutron that ran ipam_driver = internal", () => {
  test("import, switch the driver, make more ports: every address kept, none twice; again changes nothing; conflicts reported", async () => {
    const space = "migrated";
    assert.equal((await api("/v1/spaces", { method: "POST", body: JSON.stringify({ name: space }) })).status, 201);
    const db = join(dir, "migrated.db");
    let neutron = await startNeutron({ dir: join(dir, "internal"), ipamDriver: "internal", database: db });
    const os = (...args: string[]) => {
      const r = openstack(neutron.url, args);
      assert.equal(r.code, 0, `openstack ${args.join(" ")}: ${r.stderr}`);
      return r.json as Record<string, unknown>;
    };
    const ips = async () =>
      Object.fromEntries(
        ((await (await fetch(`${neutron.url}/v2.0/ports`)).json()) as { ports: { id: string; fixed_ips: { ip_address: string }[] }[] }).ports.map((p) => [p.id, p.fixed_ips.map((f) => f.ip_address).sort()]),
      );
    try {
      os("network", "create", "m1");
      os("subnet", "create", "--network", "m1", "--subnet-range", "10.81.0.0/24", "ms1");
      os("subnet", "create", "--network", "m1", "--ip-version", "6", "--ipv6-ra-mode", "slaac", "--ipv6-address-mode", "slaac", "--subnet-range", "2001:db8:81::/64", "ms6");
      os("subnet", "pool", "create", "--pool-prefix", "10.82.0.0/16", "--default-prefix-length", "24", "msp");
      os("network", "create", "m2");
      os("subnet", "create", "--network", "m2", "--subnet-pool", "msp", "ms2");
      for (const name of ["a", "b", "c"]) os("port", "create", "--network", "m1", name);
      os("port", "create", "--network", "m1", "--fixed-ip", "subnet=ms1,ip-address=10.81.0.77", "d");
      os("port", "create", "--network", "m2", "e");
      const before = await ips();

      const imported = cli(["neutron", "import", "--space", space, "--neutron-url", neutron.url, "-o", "json"]);
      assert.equal(imported.code, 0, imported.stderr);
      const { items } = JSON.parse(imported.stdout) as { items: { kind: string; result: string }[] };
      assert.deepEqual([...new Set(items.map((i) => i.result))], ["imported"]);
      assert.equal(items.filter((i) => i.kind === "address").length, 9, "4 ports with an IPv4 and an IPv6 address, one with an IPv4 only");
      await assertSame(neutron.url, space, "imported");

      // an address Allot already gives to someone else is reported, and left as it is
      type Lookup = { items: { allocation: { id: string; owner: string | null } | null }[] };
      const d = (await api<Lookup>(`/v1/lookup?address=10.81.0.77&space=${space}`)).body.items[0]?.allocation;
      assert.ok(d, "the imported address can be looked up");
      await api(`/v1/allocations/${d.id}`, { method: "DELETE" });
      const pool = (await api<{ items: { name: string; ranges: { cidr: string }[] }[] }>(`/v1/pools?space=${space}`)).body.items.find((p) => p.ranges[0]?.cidr === "10.81.0.0/24")!;
      assert.equal((await api(`/v1/pools/${pool.name}/allocations?space=${space}`, { method: "POST", body: JSON.stringify({ address: "10.81.0.77", owner: "someone-else" }) })).status, 201);
      const clash = cli(["neutron", "import", "--space", space, "--neutron-url", neutron.url]);
      assert.equal(clash.code, 1);
      assert.match(clash.stdout, /address\s+\S+\s+10\.81\.0\.77\s+conflict: .*10\.81\.0\.77/);
      assert.match(clash.stderr, /0 imported, \d+ already there, 1 conflicts/);
      assert.equal((await api<Lookup>(`/v1/lookup?address=10.81.0.77&space=${space}`)).body.items[0]?.allocation?.owner, "someone-else", "not overwritten");
      await api(`/v1/pools/${pool.name}/allocations?space=${space}&address=10.81.0.77`, { method: "DELETE" });
      assert.equal(cli(["neutron", "import", "--space", space, "--neutron-url", neutron.url]).code, 0);
      const rerun = cli(["neutron", "import", "--space", space, "--neutron-url", neutron.url, "-o", "json"]);
      assert.deepEqual([...new Set((JSON.parse(rerun.stdout) as { items: { result: string }[] }).items.map((i) => i.result))], ["unchanged"], "a second run changes nothing");

      // the switch: same database, ipam_driver = allot
      await neutron.stop();
      neutron = await startNeutron({ dir: join(dir, "switched"), ipamDriver: "allot", pythonPath: site, database: db, allot: { url: allot.url, token: TEST_ADMIN_TOKEN, space } });
      assert.deepEqual(await ips(), before, "no address changed");
      const more = [os("port", "create", "--network", "m1", "f"), os("port", "create", "--network", "m1", "g"), os("port", "create", "--network", "m2", "h")];
      const all = Object.values(await ips()).flat();
      assert.equal(new Set(all).size, all.length, "no address twice");
      // the internal driver picked random addresses; Allot now gives the lowest ones still free
      const taken = new Set(Object.values(before).flat());
      for (const p of more) {
        const v4 = (p.fixed_ips as { ip_address: string }[]).map((f) => f.ip_address).filter((a) => !a.includes(":"));
        assert.equal(v4.length, 1);
        assert.ok(!taken.has(v4[0]!), `${v4[0]} was free`);
      }
      await assertSame(neutron.url, space, "after the switch");
    } finally {
      await neutron.stop();
    }
  });
});
