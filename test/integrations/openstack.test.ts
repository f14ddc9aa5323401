import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { TEST_ADMIN_TOKEN } from "../helpers.js";
import { type ServerProcess, allot, startServerProcess } from "../process-helpers.js";

/**
 * The stock `openstack` CLI (Debian's python3-openstackclient) against a running Allot, with password
 * authentication through Allot's Keystone: networks, subnet pools, subnets by CIDR and from a pool,
 * IPv6 SLAAC, ports with and without fixed IPs, show, delete, and the errors it prints.
 */

let dir: string;
let server: ServerProcess;

function openstack(args: string[], extraEnv: Record<string, string> = {}, bare = false) {
  const r = spawnSync("openstack", args, {
    encoding: "utf8",
    timeout: 60_000,
    env: bare ? { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir } : {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: dir, // no clouds.yaml or cache of the user's
      OS_AUTH_URL: `${server.url}/identity/v3`,
      OS_USERNAME: "admin",
      OS_PASSWORD: TEST_ADMIN_TOKEN,
      OS_PROJECT_NAME: "lab",
      OS_USER_DOMAIN_NAME: "Default",
      OS_PROJECT_DOMAIN_NAME: "Default",
      OS_IDENTITY_API_VERSION: "3",
      ...extraEnv,
    },
  });
  if (r.error) throw new Error(`openstack could not run (${r.error.message}); install Debian's python3-openstackclient`);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const ok = (args: string[], extraEnv: Record<string, string> = {}) => {
  const r = openstack([...args, "-f", "json"], extraEnv);
  assert.equal(r.code, 0, `openstack ${args.join(" ")}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
};
const fails = (args: string[]) => {
  const r = openstack(args);
  assert.equal(r.code, 1, `openstack ${args.join(" ")} should fail: ${r.stdout}`);
  return r.stderr;
};
const ips = (port: Record<string, unknown>) => (port.fixed_ips as { ip_address: string }[]).map((f) => f.ip_address);

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "allot-openstack-"));
  server = await startServerProcess(join(dir, "data"));
  assert.equal(allot(["--url", server.url, "space", "create", "lab"]).code, 0);
});
after(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("networks, subnet pools and subnets: by CIDR, from a pool by prefix length, and IPv6 SLAAC", () => {
  const token = ok(["token", "issue"]);
  assert.ok(String(token.id).startsWith("allot-ks."));
  const net = ok(["network", "create", "n1"]);
  assert.equal(net.name, "n1");
  const pool = ok(["subnet", "pool", "create", "--pool-prefix", "10.100.0.0/16", "--default-prefix-length", "24", "--max-prefix-length", "28", "sp1"]);
  assert.deepEqual([pool.prefixes, pool.default_prefixlen, pool.max_prefixlen], [["10.100.0.0/16"], 24, 28]);
  const s1 = ok(["subnet", "create", "--network", "n1", "--subnet-range", "192.168.1.0/24", "--dns-nameserver", "192.168.1.53", "s1"]);
  assert.deepEqual([s1.cidr, s1.gateway_ip, s1.allocation_pools, s1.dns_nameservers], ["192.168.1.0/24", "192.168.1.1", [{ start: "192.168.1.2", end: "192.168.1.254" }], ["192.168.1.53"]]);
  const s2 = ok(["subnet", "create", "--network", "n1", "--subnet-pool", "sp1", "--prefix-length", "26", "s2"]);
  assert.deepEqual([s2.cidr, s2.gateway_ip, s2.subnetpool_id], ["10.100.0.0/26", "10.100.0.1", pool.id]);
  const s3 = ok(["subnet", "create", "--network", "n1", "--subnet-pool", "sp1", "s3"]);
  assert.equal(s3.cidr, "10.100.1.0/24", "the pool's default prefix length, in the next free block");
  const s6 = ok(["subnet", "create", "--network", "n1", "--ip-version", "6", "--ipv6-ra-mode", "slaac", "--ipv6-address-mode", "slaac", "--subnet-range", "2001:db8::/64", "s6"]);
  assert.deepEqual([s6.cidr, s6.ipv6_address_mode, s6.gateway_ip], ["2001:db8::/64", "slaac", "2001:db8::"]);
  const limited = ok(["subnet", "create", "--network", "n1", "--subnet-range", "192.168.2.0/24", "--gateway", "none", "--allocation-pool", "start=192.168.2.100,end=192.168.2.109", "s7"]);
  assert.deepEqual([limited.gateway_ip, limited.allocation_pools], [null, [{ start: "192.168.2.100", end: "192.168.2.109" }]]);
  const list = openstack(["subnet", "list", "-f", "value", "-c", "Name", "-c", "Subnet"]).stdout;
  assert.match(list, /^s2 10\.100\.0\.0\/26$/m);
});

test("ports: a fixed IP, any address, EUI-64 from the MAC; show, list and delete", () => {
  // the address asked for, and (as Neutron does for every port) its EUI-64 address on the SLAAC subnet
  const p1 = ok(["port", "create", "--network", "n1", "--fixed-ip", "subnet=s1,ip-address=192.168.1.10", "p1"]);
  assert.equal(ips(p1)[0], "192.168.1.10");
  assert.match(ips(p1)[1]!, /^2001:db8::[0-9a-f:]+$/);
  // no fixed IP asked: the first IPv4 subnet's lowest free address, and the EUI-64 address on the SLAAC subnet
  const p2 = ok(["port", "create", "--network", "n1", "--mac-address", "aa:bb:cc:dd:ee:ff", "p2"]);
  assert.equal(p2.mac_address, "aa:bb:cc:dd:ee:ff", JSON.stringify(p2));
  assert.deepEqual(ips(p2), ["192.168.1.2", "2001:db8::a8bb:ccff:fedd:eeff"]);
  assert.equal(p2.mac_address, "aa:bb:cc:dd:ee:ff");
  const bySubnet = ok(["port", "create", "--network", "n1", "--fixed-ip", "subnet=s2", "p3"]);
  assert.equal(ips(bySubnet)[0], "10.100.0.2");
  // as oVirt makes them: device_owner oVirt, the vNIC's id and MAC
  const vnic = ok(["port", "create", "--network", "n1", "--device-owner", "oVirt", "--device", "4a7e3c1e-vnic", "--mac-address", "56:6f:1a:2b:00:01", "vm-nic"]);
  assert.deepEqual([vnic.device_owner, vnic.device_id, ips(vnic)[0]], ["oVirt", "4a7e3c1e-vnic", "192.168.1.3"]);
  const shown = ok(["port", "show", "p1"]);
  assert.deepEqual(ips(shown), ips(p1));
  const listed = openstack(["port", "list", "-f", "value", "-c", "Name"]).stdout.split("\n").filter(Boolean).sort();
  assert.deepEqual(listed, ["p1", "p2", "p3", "vm-nic"]);
  assert.equal(openstack(["port", "delete", "p1"]).code, 0);
  assert.match(fails(["port", "show", "p1"]), /No Port found for p1/);
  // its address is free again: the next port asking for it gets it
  assert.equal(ips(ok(["port", "create", "--network", "n1", "--fixed-ip", "subnet=s1,ip-address=192.168.1.10", "p1b"]))[0], "192.168.1.10");
  // Allot's own API shows the same reservation with its MAC
  const held = (JSON.parse(allot(["--url", server.url, "lookup", "192.168.1.3", "--space", "lab", "-o", "json"]).stdout) as { items: { allocation: { mac: string } }[] }).items;
  assert.equal(held[0]!.allocation.mac, "56:6f:1a:2b:00:01");
});

test("errors come back as the CLI expects them: 409 for an address in use, 400 for bad input, and nothing is made", () => {
  assert.match(fails(["port", "create", "--network", "n1", "--fixed-ip", "subnet=s1,ip-address=192.168.1.10", "dup"]), /ConflictException: 409: .*IP address 192\.168\.1\.10 already allocated in subnet/);
  assert.match(fails(["port", "create", "--network", "n1", "--fixed-ip", "subnet=s1,ip-address=10.9.9.9", "wrong"]), /BadRequestException: 400: .*not a valid IP for the specified subnet/);
  assert.match(fails(["port", "create", "--network", "n1", "--mac-address", "aa:bb:cc:dd:ee:ff", "samemac"]), /ConflictException: 409: .*mac address aa:bb:cc:dd:ee:ff is in use/);
  assert.match(fails(["subnet", "create", "--network", "n1", "--subnet-pool", "sp1", "--prefix-length", "30", "toolong"]), /BadRequestException: 400: .*maximum allowed prefix is 28/);
  assert.match(fails(["subnet", "create", "--network", "n1", "--subnet-range", "192.168.3.0/24", "--gateway", "10.0.0.1", "--allocation-pool", "start=192.168.3.1,end=192.168.3.300", "badpool"]), /BadRequestException: 400: .*allocation pool 192\.168\.3\.1-192\.168\.3\.300 is not valid/);
  assert.match(fails(["subnet", "create", "--network", "n1", "--subnet-range", "192.168.1.128/25", "overlap"]), /BadRequestException: 400: .*overlaps with subnet [0-9a-f-]+ in project lab/);
  assert.match(fails(["network", "show", "nope"]), /No Network found for nope/);
  const names = openstack(["port", "list", "-f", "value", "-c", "Name"]).stdout;
  assert.doesNotMatch(names, /dup|wrong|samemac/);
  const wrongPassword = openstack(["network", "list"], { OS_PASSWORD: "allot_wrong-secret-0000000000000" });
  assert.equal(wrongPassword.code, 1);
  assert.match(wrongPassword.stderr, /requires authentication.*\(HTTP 401\)/);
});

test("the admin_token auth type: an Allot token straight to the network endpoint, no Keystone", () => {
  const r = openstack(["--os-auth-type", "admin_token", "--os-endpoint", `${server.url}/network`, "--os-token", TEST_ADMIN_TOKEN, "network", "list", "-f", "value", "-c", "Name"], {}, true);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "n1\n");
});

test("subnet pools through the CLI: grown by another prefix, a quota per project, and what Neutron refuses", () => {
  ok(["network", "create", "n2"]);
  ok(["subnet", "pool", "create", "--pool-prefix", "10.110.0.0/24", "--default-prefix-length", "26", "--default-quota", "128", "sp2"]);
  for (const n of ["a", "b"]) ok(["subnet", "create", "--network", "n2", "--subnet-pool", "sp2", `q-${n}`]);
  assert.match(fails(["subnet", "create", "--network", "n2", "--subnet-pool", "sp2", "q-c"]), /ConflictException: 409: .*Per-tenant subnet pool prefix quota exceeded/);
  assert.equal(openstack(["subnet", "pool", "set", "--default-quota", "512", "sp2"]).code, 0);
  // as the CLI does it: the old prefixes are sent again with the new one
  assert.equal(openstack(["subnet", "pool", "set", "--pool-prefix", "10.111.0.0/24", "sp2"]).code, 0);
  assert.deepEqual(ok(["subnet", "pool", "show", "sp2"]).prefixes, ["10.110.0.0/24", "10.111.0.0/24"]);
  for (const n of ["c", "d"]) ok(["subnet", "create", "--network", "n2", "--subnet-pool", "sp2", `q-${n}`]);
  assert.equal(ok(["subnet", "create", "--network", "n2", "--subnet-pool", "sp2", "q-e"]).cidr, "10.111.0.0/26", "the fifth /26 comes from the prefix added");
  assert.match(fails(["subnet", "create", "--network", "n2", "--subnet-pool", "sp2", "--subnet-range", "10.112.0.0/26", "outside"]), /ConflictException: 409: .*Failed to allocate subnet/);
});
