import assert from "node:assert/strict";
import { SERVER } from "../../src/engine/access.js";
import { after, before, test } from "node:test";
import { TEST_ADMIN_TOKEN, ctx, tempApp } from "../helpers.js";

/**
 * The Neutron v2.0 subset and its Keystone, on each store: Neutron's subnet, pool, gateway and port
 * rules, EUI-64, subnet pools, NeutronError answers, projects as spaces, and that nothing refused
 * changes anything.
 */

type Env = Awaited<ReturnType<typeof tempApp>>;
let env: Env;
let token: string;

interface Answer {
  status: number;
  body: Record<string, Record<string, unknown> & { message?: string; type?: string }>;
}

async function keystone(name: string, password: string, project?: string) {
  return env.inject({
    method: "POST",
    url: "/identity/v3/auth/tokens",
    headers: { authorization: undefined },
    payload: { auth: { identity: { methods: ["password"], password: { user: { name, password, domain: { name: "Default" } } } }, ...(project ? { scope: { project: { name: project, domain: { name: "Default" } } } } : {}) } },
  });
}

async function call(method: "GET" | "POST" | "PUT" | "DELETE", path: string, payload?: unknown, as = token): Promise<Answer> {
  const r = await env.inject({ method, url: `/network/v2.0/${path}`, headers: { authorization: undefined, "x-auth-token": as }, ...(payload ? { payload: payload as object } : {}) });
  return { status: r.statusCode, body: r.body ? (r.json() as Answer["body"]) : {} };
}
const made = async (path: string, kind: string, body: Record<string, unknown>) => {
  const r = await call("POST", path, { [kind]: body });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body[kind]!;
};
const error = (r: Answer) => r.body.NeutronError!;
/** Allocations and Neutron documents: a refused request must leave both as they were. */
const snapshot = () => env.store.read(async (sql) => JSON.stringify([await sql.all("SELECT id, body FROM neutron_objects ORDER BY id"), await sql.all("SELECT id, pool_id FROM allocations ORDER BY id"), await sql.all("SELECT id FROM pools ORDER BY id")]));

before(async () => {
  env = await tempApp();
  await env.engine.createSpace({ name: "demo" }, ctx);
  const r = await keystone("admin", TEST_ADMIN_TOKEN, "demo");
  assert.equal(r.statusCode, 201, r.body);
  token = String(r.headers["x-subject-token"]);
});
after(async () => env.cleanup());

test("Keystone: a password is an Allot token, a project a space; the catalog points at this server's network service", async () => {
  const r = await keystone("admin", TEST_ADMIN_TOKEN, "demo");
  const body = r.json().token;
  assert.equal(body.project.name, "demo");
  assert.equal(body.project.id, (await env.engine.getSpace("demo", SERVER)).id);
  assert.ok(Date.parse(body.expires_at) > Date.now() + 50 * 60_000);
  const network = body.catalog.find((s: { type: string }) => s.type === "network");
  assert.equal(network.endpoints.find((e: { interface: string }) => e.interface === "public").url, "http://localhost:80/network");
  const wrong = await keystone("admin", "allot_not-the-secret-000000000000", "demo");
  assert.equal(wrong.statusCode, 401);
  assert.equal(wrong.json().error.code, 401);
  assert.equal((await keystone("somebody-else", TEST_ADMIN_TOKEN, "demo")).statusCode, 401);
  assert.match((await keystone("admin", TEST_ADMIN_TOKEN, "no-such")).json().error.message, /Could not find project: no-such.*allot space create no-such/);
  // a token limited to a space has no role on other projects
  const limited = await env.engine.createToken({ name: "demo-only", scope: "write", spaces: ["demo"] }, ctx);
  assert.equal((await keystone("demo-only", limited.token, "default")).statusCode, 401);
  assert.equal((await keystone("demo-only", limited.token)).json().token.project.name, "demo", "unscoped: the token's only space");
  // v2.0, as older clients ask (oVirt's, given an authentication URL ending in /, asks for …/v2.0//tokens)
  const v2 = await env.inject({ method: "POST", url: "/identity/v2.0//tokens", headers: { authorization: undefined }, payload: { auth: { passwordCredentials: { username: "admin", password: TEST_ADMIN_TOKEN }, tenantName: "demo" } } });
  assert.equal(v2.statusCode, 200);
  const access = v2.json().access;
  assert.equal(access.serviceCatalog[0].endpoints[0].publicURL, "http://localhost:80/network");
  assert.equal((await call("GET", "networks", undefined, access.token.id)).status, 200);
  // a revoked Allot token's Keystone tokens stop working at once
  const temp = await env.engine.createToken({ name: "temp", scope: "read" }, ctx);
  const issued = String((await keystone("temp", temp.token, "demo")).headers["x-subject-token"]);
  assert.equal((await call("GET", "networks", undefined, issued)).status, 200);
  await env.engine.revokeToken("temp", ctx);
  assert.equal((await call("GET", "networks", undefined, issued)).status, 401);
  assert.equal((await call("GET", "networks", undefined, `${issued.slice(0, -3)}abc`)).status, 401, "a forged signature");
  assert.equal((await call("GET", "networks", undefined, "")).status, 401);
});

test("subnets: Neutron's default gateway and pools per family; given pools are checked; overlaps refused", async () => {
  const net = await made("networks", "network", { name: "n1" });
  const v4 = await made("subnets", "subnet", { network_id: net.id, cidr: "192.168.10.7/24", ip_version: 4, name: "s4" });
  assert.deepEqual([v4.cidr, v4.gateway_ip, v4.allocation_pools], ["192.168.10.0/24", "192.168.10.1", [{ start: "192.168.10.2", end: "192.168.10.254" }]]);
  const mid = await made("subnets", "subnet", { network_id: net.id, cidr: "10.5.0.0/29", gateway_ip: "10.5.0.3" });
  assert.deepEqual(mid.allocation_pools, [{ start: "10.5.0.1", end: "10.5.0.2" }, { start: "10.5.0.4", end: "10.5.0.6" }]);
  const none = await made("subnets", "subnet", { network_id: net.id, cidr: "10.6.0.0/30", gateway_ip: null });
  assert.deepEqual([none.gateway_ip, none.allocation_pools], [null, [{ start: "10.6.0.1", end: "10.6.0.2" }]]);
  const v6 = await made("subnets", "subnet", { network_id: net.id, cidr: "2001:db8:1::/64", ip_version: 6 });
  assert.deepEqual([v6.gateway_ip, v6.allocation_pools], ["2001:db8:1::", [{ start: "2001:db8:1::1", end: "2001:db8:1:0:ffff:ffff:ffff:ffff" }]]);

  const before = await snapshot();
  const bad: [Record<string, unknown>, number, string, RegExp][] = [
    [{ cidr: "10.7.0.0/33" }, 400, "InvalidInput", /'10\.7\.0\.0\/33' is not a valid IP subnet/],
    [{ cidr: "10.7.0.0/24", gateway_ip: "10.7.0.0" }, 400, "InvalidInput", /Gateway is not valid on subnet/],
    [{ cidr: "10.7.0.0/24", gateway_ip: "2001:db8::1" }, 400, "InvalidInput", /not an IPv4 address/],
    [{ cidr: "10.7.0.0/24", allocation_pools: [{ start: "10.7.0.0", end: "10.7.0.10" }] }, 400, "OutOfBoundsAllocationPool", /spans beyond the subnet cidr/],
    [{ cidr: "10.7.0.0/24", allocation_pools: [{ start: "10.7.0.20", end: "10.7.0.10" }] }, 400, "InvalidAllocationPool", /is not valid/],
    [{ cidr: "10.7.0.0/24", allocation_pools: [{ start: "10.7.0.2", end: "10.7.0.20" }, { start: "10.7.0.15", end: "10.7.0.30" }] }, 409, "OverlappingAllocationPools", /overlapping allocation pools/],
    [{ cidr: "10.7.0.0/24", allocation_pools: [{ start: "10.7.0.1", end: "10.7.0.20" }] }, 409, "GatewayConflictWithAllocationPools", /Gateway ip 10\.7\.0\.1 conflicts/],
    [{ cidr: "10.7.0.0/24", allocation_pools: [{ start: "2001:db8::2", end: "2001:db8::9" }] }, 400, "InvalidAllocationPool", /is not valid/],
    [{ cidr: "192.168.10.128/25" }, 400, "InvalidInput", /overlaps with subnet [0-9a-f-]+ in project demo/],
    [{ cidr: "2001:db8:2::/80", ip_version: 6, ipv6_address_mode: "slaac" }, 400, "InvalidInput", /requires the prefix to be \/64/],
    [{ cidr: "10.7.0.0/24", ipv6_address_mode: "slaac" }, 400, "InvalidInput", /on an IPv4 subnet/],
    [{ cidr: "10.7.0.0/24", ip_version: 6 }, 400, "InvalidInput", /not an IPv6 subnet/],
    [{}, 400, "BadRequest", /a cidr must be specified in the absence of a subnet pool/],
  ];
  for (const [body, status, type, message] of bad) {
    const r = await call("POST", "subnets", { subnet: { network_id: net.id, ...body } });
    assert.equal(r.status, status, `${JSON.stringify(body)}: ${JSON.stringify(r.body)}`);
    assert.equal(error(r).type, type, JSON.stringify(body));
    assert.match(String(error(r).message), message);
  }
  const missing = await call("POST", "subnets", { subnet: { network_id: "nope", cidr: "10.9.0.0/24" } });
  assert.deepEqual([missing.status, error(missing).type], [404, "NetworkNotFound"]);
  assert.equal(await snapshot(), before);
});

test("ports: specific, any, by subnet; EUI-64 on SLAAC; addresses kept across updates; MAC unique; rollback on failure", async () => {
  const net = await made("networks", "network", { name: "n2" });
  const s4 = await made("subnets", "subnet", { network_id: net.id, cidr: "172.16.0.0/28", name: "s4" });
  const s6 = await made("subnets", "subnet", { network_id: net.id, cidr: "2001:db8:9::/64", ip_version: 6, ipv6_ra_mode: "slaac", ipv6_address_mode: "slaac" });
  const auto = await made("ports", "port", { network_id: net.id, mac_address: "AA:BB:CC:DD:EE:FF" });
  assert.equal(auto.mac_address, "aa:bb:cc:dd:ee:ff");
  assert.deepEqual(auto.fixed_ips, [
    { subnet_id: s4.id, ip_address: "172.16.0.2" },
    { subnet_id: s6.id, ip_address: "2001:db8:9:0:a8bb:ccff:fedd:eeff" },
  ]);
  const specific = await made("ports", "port", { network_id: net.id, fixed_ips: [{ subnet_id: s4.id, ip_address: "172.16.0.9" }], device_owner: "oVirt", device_id: "vnic-1" });
  assert.equal((specific.fixed_ips as { ip_address: string }[])[0]!.ip_address, "172.16.0.9");
  // the gateway itself may be asked for by address, as in Neutron
  const gw = await made("ports", "port", { network_id: net.id, fixed_ips: [{ ip_address: "172.16.0.1" }] });
  assert.equal((gw.fixed_ips as { subnet_id: string }[])[0]!.subnet_id, s4.id);
  const bySubnet = await made("ports", "port", { network_id: net.id, fixed_ips: [{ subnet_id: s4.id }] });
  assert.equal((bySubnet.fixed_ips as { ip_address: string }[])[0]!.ip_address, "172.16.0.3");
  const empty = await made("ports", "port", { network_id: net.id, fixed_ips: [] });
  assert.deepEqual(empty.fixed_ips, []);

  // the allocation carries the port's MAC and who it is for
  const [holder] = await env.engine.lookup("172.16.0.9", "demo", SERVER);
  assert.equal(holder?.allocation?.mac, specific.mac_address);
  assert.equal(holder?.allocation?.owner, `port:${String(specific.id)}`);
  assert.equal(holder?.allocation?.labels["device-owner"], "oVirt");
  // oVirt finds its port by device_owner and device_id
  const found = await call("GET", `ports?device_owner=oVirt&device_id=vnic-1&fields=id&fields=fixed_ips`);
  assert.deepEqual(found.body.ports, [{ id: specific.id, fixed_ips: specific.fixed_ips }] as unknown as Record<string, unknown>);
  assert.equal(((await call("GET", "ports?fixed_ips=ip_address%3D172.16.0.9")).body.ports as unknown as unknown[]).length, 1);

  // updates that touch only binding, security groups or an unchanged MAC keep the address
  const kept = await call("PUT", `ports/${specific.id}`, { port: { "binding:host_id": "host-2", security_groups: ["sg"], mac_address: specific.mac_address, name: "renamed" } });
  assert.equal(kept.status, 200);
  assert.deepEqual(kept.body.port!.fixed_ips, specific.fixed_ips);
  // a new list of fixed IPs: the kept one stays, a new one is taken, a dropped one freed
  const moved = await call("PUT", `ports/${bySubnet.id}`, { port: { fixed_ips: [{ ip_address: "172.16.0.12" }] } });
  assert.equal(moved.status, 200, JSON.stringify(moved.body));
  // (its EUI-64 address on the SLAAC subnet stays with it while the MAC does)
  const movedIps = moved.body.port!.fixed_ips as { subnet_id: string; ip_address: string }[];
  assert.deepEqual(movedIps.filter((f) => f.subnet_id === s4.id), [{ subnet_id: s4.id, ip_address: "172.16.0.12" }]);
  assert.deepEqual(movedIps.filter((f) => f.subnet_id === s6.id), (bySubnet.fixed_ips as { subnet_id: string }[]).filter((f) => f.subnet_id === s6.id));
  assert.equal((await env.engine.lookup("172.16.0.3", "demo", SERVER))[0]?.allocation, null);
  // a new MAC moves the EUI-64 address with it
  const remac = await call("PUT", `ports/${auto.id}`, { port: { mac_address: "02:00:00:00:00:01" } });
  assert.deepEqual(remac.body.port!.fixed_ips, [
    { subnet_id: s4.id, ip_address: "172.16.0.2" },
    { subnet_id: s6.id, ip_address: "2001:db8:9::ff:fe00:1" },
  ]);

  const before = await snapshot();
  const bad: [Record<string, unknown>, number, string, RegExp][] = [
    [{ fixed_ips: [{ ip_address: "172.16.0.9" }] }, 409, "IpAddressAlreadyAllocated", /IP address 172\.16\.0\.9 already allocated in subnet/],
    [{ fixed_ips: [{ ip_address: "10.99.0.1" }] }, 400, "InvalidIpForNetwork", /not a valid IP for any of the subnets/],
    [{ fixed_ips: [{ subnet_id: s4.id, ip_address: "172.16.0.15" }] }, 400, "InvalidIpForSubnet", /not a valid IP for the specified subnet/],
    [{ fixed_ips: [{ subnet_id: s6.id, ip_address: "2001:db8:9::5" }] }, 400, "AllocationOnAutoAddressSubnet", /configured for automatic addresses/],
    [{ fixed_ips: [{ subnet_id: "nope" }] }, 400, "InvalidInput", /invalid subnet nope/],
    [{ mac_address: "not-a-mac" }, 400, "InvalidInput", /'not-a-mac' is not a valid MAC address/],
    [{ mac_address: specific.mac_address }, 409, "MacAddressInUse", /The mac address .* is in use/],
    // the second address fails: the first, already taken in this request, is given back
    [{ fixed_ips: [{ ip_address: "172.16.0.13" }, { ip_address: "172.16.0.9" }] }, 409, "IpAddressAlreadyAllocated", /172\.16\.0\.9/],
  ];
  for (const [body, status, type, message] of bad) {
    const r = await call("POST", "ports", { port: { network_id: net.id, ...body } });
    assert.equal(r.status, status, `${JSON.stringify(body)}: ${JSON.stringify(r.body)}`);
    assert.equal(error(r).type, type, JSON.stringify(body));
    assert.match(String(error(r).message), message);
  }
  assert.equal(await snapshot(), before);

  // a full subnet: 409 with Neutron's message (not a 500)
  const tiny = await made("networks", "network", { name: "tiny" });
  await made("subnets", "subnet", { network_id: tiny.id, cidr: "10.200.0.0/30" });
  await made("ports", "port", { network_id: tiny.id });
  await made("ports", "port", { network_id: tiny.id, fixed_ips: [{ ip_address: "10.200.0.1" }] });
  const full = await call("POST", "ports", { port: { network_id: tiny.id } });
  assert.deepEqual([full.status, error(full).type, error(full).message], [409, "IpAddressGenerationFailure", `No more IP addresses available on network ${tiny.id}.`]);

  // in use: a subnet or network with ports is not deleted; a deleted port frees its addresses
  assert.equal(error(await call("DELETE", `subnets/${s4.id}`)).type, "SubnetInUse");
  assert.equal(error(await call("DELETE", `networks/${net.id}`)).type, "NetworkInUse");
  assert.equal((await call("DELETE", `ports/${specific.id}`)).status, 204);
  assert.equal((await env.engine.lookup("172.16.0.9", "demo", SERVER))[0]?.allocation, null);
  assert.equal((await call("GET", `ports/${specific.id}`)).status, 404);
});

test("subnet pools: prefix-length bounds, subnets by length or exact CIDR, exhaustion and deletion rules", async () => {
  const net = await made("networks", "network", { name: "n3" });
  const sp = await made("subnetpools", "subnetpool", { name: "sp", prefixes: ["10.40.0.0/22"], default_prefixlen: 24, min_prefixlen: 23, max_prefixlen: 26 });
  assert.deepEqual([sp.ip_version, sp.min_prefixlen, sp.default_prefixlen, sp.max_prefixlen], [4, 23, 24, 26]);
  const a = await made("subnets", "subnet", { network_id: net.id, subnetpool_id: sp.id, ip_version: 4 });
  assert.deepEqual([a.cidr, a.gateway_ip, a.subnetpool_id], ["10.40.0.0/24", "10.40.0.1", sp.id]);
  const b = await made("subnets", "subnet", { network_id: net.id, subnetpool_id: sp.id, prefixlen: "26" });
  assert.equal(b.cidr, "10.40.1.0/26");
  const c = await made("subnets", "subnet", { network_id: net.id, subnetpool_id: sp.id, cidr: "10.40.3.0/24" });
  assert.equal(c.cidr, "10.40.3.0/24");
  const before = await snapshot();
  const bad: [Record<string, unknown>, number, string, RegExp][] = [
    [{ prefixlen: 27 }, 400, "MaxPrefixSubnetAllocationError", /maximum allowed prefix is 26/],
    [{ prefixlen: 22 }, 400, "MinPrefixSubnetAllocationError", /minimum allowed prefix is 23/],
    [{ cidr: "10.40.0.128/25" }, 409, "SubnetAllocationError", /10\.40\.0\.128\/25 is not free in subnet pool/],
    [{ cidr: "10.40.0.0/27" }, 400, "MaxPrefixSubnetAllocationError", /maximum allowed prefix is 26/],
    [{ cidr: "10.60.0.0/24" }, 409, "SubnetAllocationError", /Failed to allocate subnet: 10\.60\.0\.0\/24 is not inside one of the prefixes of subnet pool .* \(10\.40\.0\.0\/22\)/],
    [{ cidr: "10.40.2.0/24", prefixlen: 26 }, 400, "BadRequest", /cidr 10\.40\.2\.0\/24 is a \/24 but prefixlen is 26/],
    [{ prefixlen: 23 }, 409, "SubnetAllocationError", /no free \/23 left in subnet pool/],
  ];
  for (const [body, status, type, message] of bad) {
    const r = await call("POST", "subnets", { subnet: { network_id: net.id, subnetpool_id: sp.id, ...body } });
    assert.equal(r.status, status, `${JSON.stringify(body)}: ${JSON.stringify(r.body)}`);
    assert.equal(error(r).type, type);
    assert.match(String(error(r).message), message);
  }
  const bounds = await call("POST", "subnetpools", { subnetpool: { name: "x", prefixes: ["10.50.0.0/16"], min_prefixlen: 24, default_prefixlen: 20 } });
  assert.deepEqual([bounds.status, error(bounds).type], [400, "IllegalSubnetPoolPrefixBounds"]);
  const mixed = await call("POST", "subnetpools", { subnetpool: { name: "x", prefixes: ["10.50.0.0/16", "2001:db8::/48"] } });
  assert.equal(mixed.status, 400);
  // the overlap is named, whichever of the prefixes it is
  const second = await call("POST", "subnetpools", { subnetpool: { name: "x", prefixes: ["10.60.0.0/16", "10.40.0.0/16"] } });
  assert.equal(second.status, 400);
  assert.match(String(error(second).message), new RegExp(`overlap subnet pool ${String(sp.id)}`));
  assert.equal(await snapshot(), before);
  assert.equal(error(await call("DELETE", `subnetpools/${sp.id}`)).type, "SubnetPoolInUse");
  for (const s of [a, b, c]) assert.equal((await call("DELETE", `subnets/${s.id}`)).status, 204);
  assert.equal((await call("DELETE", `subnetpools/${sp.id}`)).status, 204);
  assert.deepEqual((await env.engine.listPools({ space: "demo" }, SERVER)).filter((p) => p.name.includes(String(sp.id))), []);
});

test("projects are spaces: a project sees only its own; read tokens cannot write; lists filter and pick fields", async () => {
  await env.engine.createSpace({ name: "other" }, ctx);
  const t = await env.engine.createToken({ name: "other-writer", scope: "write", spaces: ["other"] }, ctx);
  const otherToken = String((await keystone("other-writer", t.token, "other")).headers["x-subject-token"]);
  const mine = await call("GET", "networks");
  const theirs = await call("POST", "networks", { network: { name: "theirs" } }, otherToken);
  assert.equal(theirs.status, 201);
  assert.equal((theirs.body.network!.project_id as string), (await env.engine.getSpace("other", SERVER)).id);
  const listed = (await call("GET", "networks", undefined, otherToken)).body.networks as unknown as { name: string }[];
  assert.deepEqual(listed.map((n) => n.name), ["theirs"]);
  assert.equal((await call("GET", `networks/${(mine.body.networks as unknown as { id: string }[])[0]!.id}`, undefined, otherToken)).status, 404);
  const r = await env.engine.createToken({ name: "reader", scope: "read", spaces: ["demo"] }, ctx);
  const readToken = String((await keystone("reader", r.token, "demo")).headers["x-subject-token"]);
  const refused = await call("POST", "networks", { network: { name: "x" } }, readToken);
  assert.deepEqual([refused.status, error(refused).type], [403, "PolicyNotAuthorized"]);
  const byName = (await call("GET", "networks?name=n1&fields=name&fields=subnets")).body.networks as unknown as Record<string, unknown>[];
  assert.equal(byName.length, 1);
  assert.deepEqual(Object.keys(byName[0]!).sort(), ["name", "subnets"]);
  assert.equal((byName[0]!.subnets as string[]).length, 4);
  const page = await call("GET", "networks?limit=1");
  assert.equal((page.body.networks as unknown as unknown[]).length, 1);
  assert.match(String((page.body.networks_links as unknown as { href: string }[])[0]!.href), /marker=/);
  // a project's space is not deleted from under its networks
  const gone = await env.inject({ method: "DELETE", url: "/v1/spaces/other" });
  assert.equal(gone.statusCode, 409);
  assert.match(gone.json().detail, /OpenStack project still holding 1 networks/);
});

test("oVirt's engine, as it calls: connection test, a v2.0 token, a VLAN network, a DHCP subnet, a vNIC's port kept across host moves", async () => {
  const probe = await env.inject({ method: "GET", url: "/network/v2.0/", headers: { authorization: undefined } });
  assert.equal(probe.statusCode, 200);
  assert.ok(probe.json().resources.some((r: { collection: string }) => r.collection === "ports"));
  // oVirt's dialog makes its authentication URL from scheme, host, port and version: https://host:port/v2.0
  const v2 = await env.inject({ method: "POST", url: "/v2.0/tokens", headers: { authorization: undefined }, payload: { auth: { passwordCredentials: { username: "admin", password: TEST_ADMIN_TOKEN }, tenantName: "demo" } } });
  assert.equal(v2.statusCode, 200, v2.body);
  const ovirt = String(v2.json().access.token.id);
  const as = (method: "GET" | "POST" | "PUT" | "DELETE", path: string, payload?: unknown) => call(method, path, payload, ovirt);
  const net = await as("POST", "networks", { network: { name: "ovirtmgmt-ext", admin_state_up: true, mtu: 1400, "provider:physical_network": "phys0", "provider:network_type": "vlan", "provider:segmentation_id": 120, port_security_enabled: false, tenant_id: "oVirt" } });
  assert.equal(net.status, 201);
  assert.deepEqual([net.body.network!.mtu, net.body.network!["provider:segmentation_id"], net.body.network!.port_security_enabled], [1400, 120, false]);
  const sub = await as("POST", "subnets", { subnet: { name: "ext", network_id: net.body.network!.id, cidr: "10.77.0.0/24", ip_version: 4, enable_dhcp: true, gateway_ip: "10.77.0.254", dns_nameservers: ["10.77.0.53"], tenant_id: "oVirt" } });
  assert.equal(sub.status, 201);
  assert.deepEqual(sub.body.subnet!.allocation_pools, [{ start: "10.77.0.1", end: "10.77.0.253" }]);
  const vnic = "2b9f6b0c-4c1e-4b39-9d5e-1f1e0d7c0a11";
  const port = await as("POST", "ports", { port: { name: "nic1", network_id: net.body.network!.id, mac_address: "56:6f:1a:2b:00:07", device_owner: "oVirt", device_id: vnic, security_groups: [], "binding:host_id": "host-a", admin_state_up: true, tenant_id: "oVirt" } });
  assert.equal(port.status, 201);
  const address = (port.body.port!.fixed_ips as { ip_address: string }[])[0]!.ip_address;
  assert.equal(address, "10.77.0.1");
  // the engine lists every port and picks its vNIC's by device_owner and device_id
  const all = (await as("GET", "ports")).body.ports as unknown as { id: string; device_owner: string; device_id: string }[];
  assert.equal(all.filter((p) => p.device_owner === "oVirt" && p.device_id === vnic).length, 1);
  // a migration re-sends the same MAC with a new host: the address stays
  const moved = await as("PUT", `ports/${port.body.port!.id}`, { port: { security_groups: ["sg-1"], "binding:host_id": "host-b", mac_address: "56:6f:1a:2b:00:07" } });
  assert.equal(moved.status, 200);
  assert.deepEqual([moved.body.port!["binding:host_id"], (moved.body.port!.fixed_ips as { ip_address: string }[])[0]!.ip_address], ["host-b", address]);
  // the reservation Allot keeps for DHCP delivery: this MAC, this address
  const [held] = await env.engine.lookup(address, "demo", SERVER);
  assert.equal(held?.allocation?.mac, "56:6f:1a:2b:00:07");
  assert.equal((await as("DELETE", `ports/${port.body.port!.id}`)).status, 204);
  assert.equal((await env.engine.lookup(address, "demo", SERVER))[0]?.allocation, null);
});

test("races and edges: concurrent updates of one port, an update racing a delete, tokens of several spaces, a null cidr", async () => {
  const net = await made("networks", "network", { name: "race" });
  const s4 = await made("subnets", "subnet", { network_id: net.id, cidr: "172.30.0.0/24" });
  const s6 = await made("subnets", "subnet", { network_id: net.id, cidr: "2001:db8:30::/64", ip_version: 6, ipv6_address_mode: "slaac" });
  const port = await made("ports", "port", { network_id: net.id, fixed_ips: [{ subnet_id: s4.id, ip_address: "172.30.0.10" }] });
  const eui = (port.fixed_ips as { subnet_id: string; ip_address: string }[]).find((f) => f.subnet_id === s6.id)!;
  // an entry naming only the subnet keeps the address the port has there; [] keeps the EUI-64 one
  const same = await call("PUT", `ports/${port.id}`, { port: { fixed_ips: [{ subnet_id: s4.id }] } });
  assert.deepEqual((same.body.port!.fixed_ips as { ip_address: string }[]).map((f) => f.ip_address).sort(), ["172.30.0.10", eui.ip_address].sort());
  const emptied = await call("PUT", `ports/${port.id}`, { port: { fixed_ips: [] } });
  assert.deepEqual(emptied.body.port!.fixed_ips, [eui]);
  const held = async () => (await env.engine.listAllocations({ pool: `neutron-subnet-${String(s4.id)}`, space: "demo" }, { limit: 100 }, SERVER)).items.map((a) => a.address);
  assert.deepEqual(await held(), []);

  // two updates at once, each adding an address: one wins, the other is refused and takes nothing
  const [a, b] = await Promise.all([
    call("PUT", `ports/${port.id}`, { port: { fixed_ips: [{ ip_address: "172.30.0.20" }] } }),
    call("PUT", `ports/${port.id}`, { port: { fixed_ips: [{ ip_address: "172.30.0.30" }] } }),
  ]);
  // (one after the other, both apply; overlapping, the second to save is refused) — either way every
  // address held in the subnet is one the port lists: none leaked
  assert.ok([a.status, b.status].every((x) => x === 200 || x === 409) && [a.status, b.status].includes(200), `${a.status} ${b.status}`);
  const listed = ((await call("GET", `ports/${port.id}`)).body.port!.fixed_ips as { subnet_id: string; ip_address: string }[]).filter((f) => f.subnet_id === s4.id).map((f) => f.ip_address);
  assert.equal(listed.length, 1);
  assert.deepEqual(await held(), listed, "an address is held that the port does not list");
  // an update and a delete at once: whichever order, no address is left held by no port
  await Promise.all([call("PUT", `ports/${port.id}`, { port: { fixed_ips: [{ ip_address: "172.30.0.40" }] } }), call("DELETE", `ports/${port.id}`)]);
  assert.equal((await call("GET", `ports/${port.id}`)).status, 404);
  assert.deepEqual(await held(), []);

  // a token of several spaces must pick its project through Keystone
  const multi = await env.engine.createToken({ name: "multi", scope: "write", spaces: ["demo", "other"] }, ctx);
  const direct = await call("GET", "networks", undefined, multi.token);
  assert.equal(direct.status, 401);
  assert.match(String((direct.body as unknown as { error: { message: string } }).error.message), /limited to several spaces/);
  const nullCidr = await call("POST", "subnets", { subnet: { network_id: net.id, cidr: null, ip_version: 4 } });
  assert.deepEqual([nullCidr.status, error(nullCidr).type], [400, "BadRequest"]);
});

test("Keystone: validating a token is for the token's own user or an admin, as Keystone's policy has it", async () => {
  const w = await env.engine.createToken({ name: "validator-writer", scope: "write", spaces: ["demo"] }, ctx);
  const writer = String((await keystone("validator-writer", w.token, "demo")).headers["x-subject-token"]);
  const validate = (as: string, subject: string) =>
    env.inject({ method: "GET", url: "/identity/v3/auth/tokens", headers: { authorization: undefined, "x-auth-token": as, "x-subject-token": subject } });
  const own = await validate(writer, writer);
  assert.equal(own.statusCode, 200);
  assert.equal(own.json().token.user.name, "validator-writer");
  const others = await validate(writer, token);
  assert.equal(others.statusCode, 403, "a member cannot read the admin's token");
  assert.match(others.json().error.message, /only an admin or the token's own user/);
  const byAdmin = await validate(token, writer);
  assert.equal(byAdmin.statusCode, 200);
  assert.equal(byAdmin.json().token.project.name, "demo");
  assert.equal((await validate(token, `${writer.slice(0, -3)}abc`)).statusCode, 404);
});

/** What a client can list and what Allot holds: a bulk create that fails must leave both as they were. */
const everything = async () => JSON.stringify([(await call("GET", "networks")).body, (await call("GET", "subnets")).body, (await call("GET", "subnetpools")).body, (await call("GET", "ports")).body, await snapshot()]);

test("bulk create: networks, subnets, subnet pools and ports made in request order, or none of them (pools and addresses of earlier elements given back)", async () => {
  const nets = await call("POST", "networks", { networks: [{ name: "bulk-a" }, { name: "bulk-b", mtu: 1400 }] });
  assert.equal(nets.status, 201, JSON.stringify(nets.body));
  const [na, nb] = nets.body.networks as unknown as Record<string, unknown>[];
  assert.deepEqual([na!.name, nb!.name, nb!.mtu, na!.subnets], ["bulk-a", "bulk-b", 1400, []]);
  for (const n of [na!, nb!]) assert.equal((await call("GET", `networks/${String(n.id)}`)).body.network!.name, n.name);
  const sp = await made("subnetpools", "subnetpool", { name: "bulk-sp", prefixes: ["10.111.0.0/16"], default_prefixlen: 24 });

  const subs = await call("POST", "subnets", { subnets: [{ network_id: na!.id, cidr: "10.110.0.0/24" }, { network_id: na!.id, subnetpool_id: sp.id }, { network_id: nb!.id, cidr: "2001:db8:110::/64", ip_version: 6 }] });
  assert.equal(subs.status, 201, JSON.stringify(subs.body));
  const [s1, s2, s3] = subs.body.subnets as unknown as Record<string, unknown>[];
  assert.deepEqual([s1!.cidr, s2!.cidr, s2!.subnetpool_id, s3!.cidr], ["10.110.0.0/24", "10.111.0.0/24", sp.id, "2001:db8:110::/64"]);
  for (const s of [s1!, s2!, s3!]) assert.equal((await env.engine.getPool({ pool: `neutron-subnet-${String(s.id)}`, space: "demo" }, SERVER)).attributes["neutron.subnet"], s.id);

  const ports = await call("POST", "ports", { ports: [{ network_id: na!.id, name: "p0" }, { network_id: na!.id, name: "p1", fixed_ips: [{ ip_address: "10.110.0.50" }] }, { network_id: nb!.id, name: "p2" }] });
  assert.equal(ports.status, 201, JSON.stringify(ports.body));
  const listed = ports.body.ports as unknown as { id: string; name: string; mac_address: string; fixed_ips: { ip_address: string }[] }[];
  assert.deepEqual(listed.map((p) => p.name), ["p0", "p1", "p2"]);
  assert.equal(listed[1]!.fixed_ips.find((f) => f.ip_address.startsWith("10.110."))?.ip_address, "10.110.0.50");
  for (const p of listed) {
    for (const f of p.fixed_ips) assert.equal((await env.engine.lookup(f.ip_address, "demo", SERVER))[0]?.allocation?.mac, p.mac_address, `${p.name} holds ${f.ip_address}`);
  }

  // a failing element: its error, as the single create answers it, and nothing of the request stays
  const before = await everything();
  const failing: [string, Record<string, unknown>[], Record<string, unknown>][] = [
    ["networks", [{ name: "bulk-c" }, { name: "bulk-d" }], { name: "bulk-e", mtu: "big" }],
    // the second element carves a block from the subnet pool; the third overlaps the first
    ["subnets", [{ network_id: nb!.id, cidr: "10.112.0.0/24" }, { network_id: nb!.id, subnetpool_id: sp.id }], { network_id: nb!.id, cidr: "10.112.0.128/25" }],
    ["ports", [{ network_id: na!.id }, { network_id: na!.id, fixed_ips: [{ ip_address: "10.110.0.60" }] }], { network_id: na!.id, fixed_ips: [{ ip_address: "10.110.0.50" }] }],
    ["ports", [{ network_id: na!.id, mac_address: "02:00:00:00:11:01" }], { network_id: na!.id, mac_address: "02:00:00:00:11:01" }],
    ["subnetpools", [{ name: "bulk-sp1", prefixes: ["10.114.0.0/16"] }], { name: "bulk-sp2", prefixes: ["10.114.0.0/24"] }],
  ];
  for (const [path, good, bad] of failing) {
    const one = path.slice(0, -1);
    const r = await call("POST", path, { [path]: [...good, bad] });
    // the last element alone, after the earlier ones were undone, fails the same way (unless it clashes with them)
    const single = await call("POST", path, { [one]: bad });
    const clash = path === "subnets" || path === "subnetpools" || good.some((g) => g.mac_address !== undefined);
    assert.ok(r.status >= 400 && r.status < 500, `${path}: ${JSON.stringify(r.body)}`);
    if (!clash) assert.deepEqual([r.status, error(r).type, error(r).message], [single.status, error(single).type, error(single).message], path);
    else if (single.status === 201) assert.equal((await call("DELETE", `${path}/${String(single.body[one]!.id)}`)).status, 204);
    assert.match(String(error(r).detail), new RegExp(`^${path}\\[${good.length}\\] failed; nothing of the request was kept`));
    assert.equal(await everything(), before, `${path}: something of the refused request stayed`);
  }
  const mac = await call("POST", "ports", { ports: [{ network_id: na!.id, mac_address: "02:00:00:00:11:02" }, { network_id: na!.id, mac_address: "02:00:00:00:11:02" }] });
  assert.deepEqual([mac.status, error(mac).type], [409, "MacAddressInUse"]);
  const overlap = await call("POST", "subnets", { subnets: [{ network_id: nb!.id, cidr: "10.113.0.0/24" }, { network_id: nb!.id, cidr: "10.113.0.0/25" }] });
  assert.deepEqual([overlap.status, error(overlap).type], [400, "InvalidInput"]);
  assert.match(String(error(overlap).message), /overlaps with subnet [0-9a-f-]+ in project demo/);

  // malformed lists create nothing
  for (const body of [{ ports: [] }, { ports: [{ network_id: na!.id }, "x"] }, { ports: [{ network_id: na!.id }, null] }]) {
    const r = await call("POST", "ports", body);
    assert.deepEqual([r.status, error(r).type], [400, "BadRequest"], JSON.stringify(body));
  }
  assert.equal(await everything(), before);
});

test("subnet pools: prefixes may not lose addresses, the old ones resent are kept; added ones grow the pool; nothing changes when refused", async () => {
  const sp = await made("subnetpools", "subnetpool", { name: "grow", prefixes: ["10.120.0.0/24", "10.121.0.0/24"], default_prefixlen: 26 });
  await env.engine.createPool({ name: "taken-123", space: "demo", cidr: "10.123.0.0/24" }, ctx);
  const before = await snapshot();
  const refused: [unknown, string, RegExp][] = [
    [["10.120.0.0/24"], "IllegalSubnetPoolPrefixUpdate", /^Illegal update to prefixes: Existing prefixes must be a subset of the new prefixes \(10\.121\.0\.0\/24 would be removed\)\. Send every current prefix/],
    [["10.120.0.0/24", "10.121.0.0/25"], "IllegalSubnetPoolPrefixUpdate", /10\.121\.0\.128\/25 would be removed/],
    // growing into addresses another pool of the project holds
    [["10.120.0.0/24", "10.121.0.0/24", "10.123.0.0/24"], "IllegalSubnetPoolPrefixUpdate", /^Illegal update to prefixes: 10\.123\.0\.0-10\.123\.0\.255 overlaps pool taken-123/],
    [["10.120.0.0/24", "10.121.0.0/24", "2001:db8::/64"], "PrefixVersionMismatch", /Cannot mix IPv4 and IPv6/],
    [[], "InvalidInput", /at least one prefix/],
    ["10.120.0.0/24", "InvalidInput", /at least one prefix/],
  ];
  for (const [prefixes, type, message] of refused) {
    const r = await call("PUT", `subnetpools/${sp.id}`, { subnetpool: { prefixes, name: "renamed" } });
    assert.deepEqual([r.status, error(r).type], [400, type], JSON.stringify(prefixes));
    assert.match(String(error(r).message), message);
  }
  assert.equal(await snapshot(), before);
  // the openstack CLI sends the old prefixes with the new: the same addresses, written any way, are kept
  const same = await call("PUT", `subnetpools/${sp.id}`, { subnetpool: { prefixes: ["10.121.0.0/24", "10.120.0.0/24", "10.120.0.0/25"], name: "kept" } });
  assert.equal(same.status, 200, JSON.stringify(same.body));
  assert.deepEqual([same.body.subnetpool!.name, same.body.subnetpool!.prefixes], ["kept", ["10.120.0.0/24", "10.121.0.0/24"]]);
  const pool = (await env.engine.listPools({ space: "demo" }, SERVER)).find((p) => p.attributes["neutron.subnetpool"] === sp.id)!;
  assert.deepEqual(pool.ranges.map((r) => `${r.start}-${r.end}`), ["10.120.0.0-10.120.0.255", "10.121.0.0-10.121.0.255"]);

  // growing: the new prefix joins the pool, and subnets come from it once the old ones are full
  const grown = await call("PUT", `subnetpools/${sp.id}`, { subnetpool: { prefixes: ["10.120.0.0/24", "10.121.0.0/24", "10.122.0.0/24"] } });
  assert.equal(grown.status, 200, JSON.stringify(grown.body));
  assert.deepEqual(grown.body.subnetpool!.prefixes, ["10.120.0.0/24", "10.121.0.0/24", "10.122.0.0/24"]);
  assert.deepEqual((await env.engine.getPool({ pool: pool.id }, SERVER)).ranges.map((r) => r.cidr), ["10.120.0.0/24", "10.121.0.0/24", "10.122.0.0/24"]);
  const net = await made("networks", "network", { name: "grown" });
  const cidrs: string[] = [];
  for (let i = 0; i < 9; i++) {
    const r = await call("POST", "subnets", { subnet: { network_id: net.id, subnetpool_id: sp.id } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    cidrs.push(String(r.body.subnet!.cidr));
  }
  assert.equal(cidrs[8], "10.122.0.0/26", "the ninth /26 comes from the prefix added");
  // a growth whose document update was lost (the Allot pool grew, the subnet pool did not) is finished by a retry
  await env.engine.addRanges({ pool: pool.id }, [{ cidr: "10.124.0.0/24" }], ctx);
  const retried = await call("PUT", `subnetpools/${sp.id}`, { subnetpool: { prefixes: ["10.120.0.0/24", "10.121.0.0/24", "10.122.0.0/24", "10.124.0.0/24"] } });
  assert.equal(retried.status, 200, JSON.stringify(retried.body));
  assert.deepEqual(retried.body.subnetpool!.prefixes, ["10.120.0.0/24", "10.121.0.0/24", "10.122.0.0/24", "10.124.0.0/24"]);
});

test("subnet pools: default_quota counts a project's subnets in addresses (IPv4) or /64s (IPv6), checked when the subnet is stored", async () => {
  const net = await made("networks", "network", { name: "quota" });
  const none = await made("subnetpools", "subnetpool", { name: "q0", prefixes: ["10.139.0.0/16"] });
  assert.equal(none.default_quota, null);
  const sp = await made("subnetpools", "subnetpool", { name: "q4", prefixes: ["10.130.0.0/16"], default_prefixlen: 24, max_prefixlen: 30, default_quota: 512 });
  assert.equal(sp.default_quota, 512);
  assert.equal((await call("GET", `subnetpools/${sp.id}`)).body.subnetpool!.default_quota, 512);
  const take = (body: Record<string, unknown> = {}) => call("POST", "subnets", { subnet: { network_id: net.id, subnetpool_id: sp.id, ...body } });
  for (let i = 0; i < 2; i++) assert.equal((await take()).status, 201);
  const before = await snapshot();
  for (const body of [{}, { prefixlen: 30 }, { cidr: "10.130.200.0/30" }]) {
    const r = await take(body);
    assert.deepEqual([r.status, error(r).type], [409, "SubnetPoolQuotaExceeded"], JSON.stringify(body));
    assert.match(String(error(r).message), /^Per-tenant subnet pool prefix quota exceeded\. The project holds 512 addresses of subnet pool .*, whose default_quota is 512 addresses; a \/\d+ is \d+ addresses more\. .*raise the pool's default_quota/);
  }
  // bulk: the second subnet would pass the quota, so neither is kept
  const bulk = await call("POST", "subnets", { subnets: [{ network_id: net.id, cidr: "10.138.0.0/24" }, { network_id: net.id, subnetpool_id: sp.id, prefixlen: 28 }] });
  assert.deepEqual([bulk.status, error(bulk).type], [409, "SubnetPoolQuotaExceeded"]);
  assert.equal(await snapshot(), before);

  for (const bad of [-1, "many", 1.5]) {
    const r = await call("PUT", `subnetpools/${sp.id}`, { subnetpool: { default_quota: bad } });
    assert.deepEqual([r.status, error(r).type], [400, "InvalidInput"], String(bad));
  }
  assert.equal((await call("POST", "subnetpools", { subnetpool: { name: "qx", prefixes: ["10.137.0.0/16"], default_quota: -5 } })).status, 400);
  assert.equal(await snapshot(), before);

  // raised to 600: a /26 (64) fits, a second does not, a /28 (16) does
  assert.equal((await call("PUT", `subnetpools/${sp.id}`, { subnetpool: { default_quota: 600 } })).body.subnetpool!.default_quota, 600);
  assert.equal((await take({ prefixlen: 26 })).status, 201);
  assert.equal(error(await take({ prefixlen: 26 })).type, "SubnetPoolQuotaExceeded");
  assert.equal((await take({ prefixlen: 28 })).status, 201);
  // two at once with room for one: the subnet pool is locked while each is stored, so exactly one is made
  assert.equal((await call("PUT", `subnetpools/${sp.id}`, { subnetpool: { default_quota: 592 + 16 } })).status, 200);
  const race = await Promise.all([take({ prefixlen: 28 }), take({ prefixlen: 28 })]);
  assert.deepEqual(race.map((r) => r.status).sort(), [201, 409], JSON.stringify(race.map((r) => r.body)));
  const mine = ((await call("GET", "subnets")).body.subnets as unknown as { subnetpool_id: string | null; cidr: string }[]).filter((s) => s.subnetpool_id === sp.id);
  assert.equal(mine.reduce((n, s) => n + 2 ** (32 - Number(s.cidr.split("/")[1])), 0), 608);
  // 0 allows nothing; no quota, no limit
  assert.equal((await call("PUT", `subnetpools/${sp.id}`, { subnetpool: { default_quota: 0 } })).body.subnetpool!.default_quota, 0);
  assert.equal(error(await take({ prefixlen: 30 })).type, "SubnetPoolQuotaExceeded");
  assert.equal((await call("PUT", `subnetpools/${sp.id}`, { subnetpool: { default_quota: null } })).body.subnetpool!.default_quota, null);
  assert.equal((await take()).status, 201);

  // IPv6: counted in /64s, a longer prefix a fraction of one
  const v6 = await made("subnetpools", "subnetpool", { name: "q6", prefixes: ["2001:db8:130::/48"], min_prefixlen: 56, default_prefixlen: 64, default_quota: 2 });
  const take6 = (prefixlen: number) => call("POST", "subnets", { subnet: { network_id: net.id, subnetpool_id: v6.id, ip_version: 6, prefixlen } });
  assert.equal((await take6(64)).status, 201);
  const wide = await take6(63);
  assert.deepEqual([wide.status, error(wide).type], [409, "SubnetPoolQuotaExceeded"]);
  assert.match(String(error(wide).message), /holds 1 \/64s .* default_quota is 2 \/64s; a \/63 is 2 \/64s more/);
  assert.equal((await take6(65)).status, 201);
  assert.equal((await take6(65)).status, 201);
  assert.equal(error(await take6(128)).type, "SubnetPoolQuotaExceeded");
});
