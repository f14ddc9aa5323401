import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { listAgents, recordAgent, schedule } from "../../src/dhcp/agents.js";
import { ctx, tempApp } from "../helpers.js";

/**
 * DHCP delivery through the API, on each store: networks and their options, the rendered dnsmasq and
 * Kea configurations, one MAC per network, and how agents are assigned, replaced and told of changes.
 */

type Env = Awaited<ReturnType<typeof tempApp>>;
let env: Env;
before(async () => {
  env = await tempApp();
  await env.engine.createSpace({ name: "lab" }, ctx);
  await env.engine.createPool({ name: "lab-net", space: "lab", cidr: "10.77.0.0/24", gateway: "10.77.0.1", dns: ["10.77.0.53"] }, ctx);
  await env.engine.createPool({ name: "lab-v6", space: "lab", cidr: "2001:db8:77::/64" }, ctx);
  await env.engine.allocate({ pool: "lab-net", space: "lab" }, { address: "10.77.0.50", mac: "AA:BB:CC:00:00:01", hostname: "host1", owner: "host1" }, ctx);
  await env.engine.allocate({ pool: "lab-net", space: "lab" }, { address: "10.77.0.60", owner: "no-mac" }, ctx);
});
after(async () => env.cleanup());

const api = (method: "GET" | "POST" | "PATCH" | "DELETE", url: string, payload?: unknown) => env.inject({ method, url, ...(payload ? { payload: payload as object } : {}) });
const options = { domainName: "lab.example", searchDomains: ["lab.example", "example.test"], ntpServers: ["10.77.0.123"], mtu: 1450, leaseSeconds: 600 };

test("a DHCP network renders for dnsmasq and Kea in restricted mode: reserved MACs only, with every option", async () => {
  const made = await api("POST", "/v1/dhcp/networks", { name: "lan", space: "lab", options });
  assert.equal(made.statusCode, 201, made.body);
  const dnsmasq = (await api("GET", "/v1/dhcp/networks/lan/config?format=dnsmasq&interface=veth0&dir=/run/lan")).json();
  const conf = dnsmasq.files[dnsmasq.main] as string;
  for (const line of [
    "port=0",
    "interface=veth0",
    "dhcp-range=set:s0,10.77.0.0,static,255.255.255.0,600s",
    "dhcp-option=tag:s0,option:router,10.77.0.1",
    "dhcp-option=tag:s0,option:dns-server,10.77.0.53",
    "dhcp-option=tag:s0,option:domain-name,lab.example",
    "dhcp-option-force=tag:s0,option:domain-search,lab.example,example.test",
    "dhcp-option=tag:s0,option:ntp-server,10.77.0.123",
    "dhcp-option-force=tag:s0,option:mtu,1450",
    "dhcp-host=aa:bb:cc:00:00:01,10.77.0.50,host1",
    "dhcp-leasefile=/run/lan/dnsmasq.leases",
  ]) {
    assert.ok(conf.split("\n").includes(line), `missing ${line} in\n${conf}`);
  }
  assert.doesNotMatch(conf, /10\.77\.0\.60/, "an allocation without a MAC is not a reservation");
  assert.doesNotMatch(conf, /2001:db8/, "IPv6 pools are not served");
  const kea = JSON.parse((await api("GET", "/v1/dhcp/networks/lan/config?format=kea&interface=veth0&dir=/run/lan")).json().files["kea-dhcp4.json"]);
  assert.deepEqual([kea.Dhcp4["shared-networks"][0].name, kea.Dhcp4["shared-networks"][0].interface], ["lan", "veth0"]);
  const subnet = kea.Dhcp4["shared-networks"][0].subnet4[0];
  assert.deepEqual([subnet.subnet, subnet.pools, subnet.reservations], ["10.77.0.0/24", [{ pool: "10.77.0.1 - 10.77.0.254", "client-class": "KNOWN" }], [{ "hw-address": "aa:bb:cc:00:00:01", "ip-address": "10.77.0.50", hostname: "host1" }]]);
  assert.deepEqual(subnet["option-data"].find((o: { name: string }) => o.name === "interface-mtu"), { name: "interface-mtu", data: "1450", "always-send": true });
  assert.equal(kea.Dhcp4["valid-lifetime"], 600);
});

test("bad networks and a second reservation of one MAC on a network are refused, changing nothing", async () => {
  const bad: [unknown, number, RegExp][] = [
    [{ name: "x1", space: "lab", options: { mtu: "big" } }, 400, /mtu/],
    [{ name: "x2", space: "lab", options: { router: "2001:db8::1" } }, 400, /router: must be an IPv4 address/],
    [{ name: "x3", space: "lab", options: { searchDomains: ["not a domain"] } }, 400, /must be a domain name/],
    [{ name: "x4", space: "lab", pools: ["nope"] }, 404, /nope/],
    [{ name: "x5", space: "lab", pools: ["lab-v6"] }, 400, /IPv6; DHCP delivery serves IPv4 pools/],
    [{ name: "x6", space: "nowhere" }, 404, /nowhere/],
    [{ name: "lan", space: "lab" }, 409, /already exists/],
    [{ name: "Bad Name", space: "lab" }, 400, /lower-case/],
  ];
  for (const [body, status, message] of bad) {
    const r = await api("POST", "/v1/dhcp/networks", body);
    assert.equal(r.statusCode, status, `${JSON.stringify(body)}: ${r.body}`);
    assert.match(r.json().detail, message);
  }
  assert.deepEqual((await api("GET", "/v1/dhcp/networks")).json().items.map((n: { name: string }) => n.name), ["lan"]);
  const dup = await api("POST", "/v1/pools/lab-net/allocations?space=lab", { mac: "aa-bb-cc-00-00-01" });
  assert.equal(dup.statusCode, 409);
  assert.match(dup.json().detail, /MAC aa:bb:cc:00:00:01 is already reserved on DHCP network lan \(10\.77\.0\.50 in pool lab-net\)/);
  const id = (await env.engine.allocate({ pool: "lab-net", space: "lab" }, { owner: "other" }, ctx)).allocation.id;
  const patched = await api("PATCH", `/v1/allocations/${id}`, { mac: "aa:bb:cc:00:00:01" });
  assert.equal(patched.statusCode, 409);
  await env.engine.release({ id }, ctx);
});

test("agents: the configured number serve each network; a silent one is replaced; the assignment is kept in the store", async () => {
  const report = (server: "dnsmasq" | "kea" = "dnsmasq") => ({ networks: [{ network: "lan", interface: "veth0" }], server, health: {} });
  const sync = (name: string, body: Record<string, unknown> = {}) => api("POST", `/v1/dhcp/agents/${name}/sync`, { ...report(), ...body });
  const a = await sync("host-a");
  assert.equal(a.statusCode, 200, a.body);
  assert.deepEqual(a.json().assignments.map((x: { network: string }) => x.network), ["lan"]);
  assert.equal(a.json().assignments[0].config.reservations[0].mac, "aa:bb:cc:00:00:01");
  assert.deepEqual((await sync("host-b")).json().assignments, [], "one server is asked for: the second waits");
  assert.equal((await api("PATCH", "/v1/dhcp/networks/lan", { servers: 2 })).statusCode, 200);
  assert.equal((await sync("host-b")).json().assignments.length, 1);
  await api("PATCH", "/v1/dhcp/networks/lan", { servers: 1 });
  await schedule(env.engine);
  let agents = await listAgents(env.engine);
  assert.deepEqual(agents.map((x) => x.assignments.length), [1, 0], "the extra assignment is dropped");

  // host-a falls silent: later, host-b reports and takes over
  const later = Date.now() + 60_000;
  await recordAgent(env.engine, "host-b", report(), later);
  await schedule(env.engine, later);
  agents = await listAgents(env.engine, later);
  assert.deepEqual(agents.map((x) => [x.name, x.alive, x.assignments]), [["host-a", false, []], ["host-b", true, ["lan"]]]);

  const shown = (await api("GET", "/v1/dhcp/networks/lan")).json();
  assert.equal(shown.reservations, 1);
  assert.deepEqual(shown.agents.map((x: { name: string }) => x.name), ["host-b"]);
  // an agent whose server binary is missing says so, and is not given networks, though one more is wanted
  await api("PATCH", "/v1/dhcp/networks/lan", { servers: 3 });
  await sync("host-c", { health: { lan: { state: "failed", error: "dnsmasq is not installed (Debian: dnsmasq-base)", since: new Date().toISOString() } } });
  const listed = (await api("GET", "/v1/dhcp/agents")).json().items.find((x: { name: string }) => x.name === "host-c");
  assert.equal(listed.health.lan.error, "dnsmasq is not installed (Debian: dnsmasq-base)");
  assert.deepEqual(listed.assignments, []);
});

test("a held sync answers as soon as a reservation changes (a push, not a poll)", async () => {
  const first = (await api("POST", "/v1/dhcp/agents/host-b/sync", { networks: [{ network: "lan", interface: "veth0" }], server: "dnsmasq", health: {} })).json();
  const known = Object.fromEntries(first.assignments.map((x: { network: string; hash: string }) => [x.network, x.hash]));
  const started = Date.now();
  const waiting = api("POST", "/v1/dhcp/agents/host-b/sync", { networks: [{ network: "lan", interface: "veth0" }], server: "dnsmasq", health: {}, known, waitSeconds: 20 });
  await new Promise((r) => setTimeout(r, 500));
  await env.engine.allocate({ pool: "lab-net", space: "lab" }, { address: "10.77.0.51", mac: "aa:bb:cc:00:00:02" }, ctx);
  const answer = (await waiting).json();
  const took = Date.now() - started;
  // (well before the hold's limit, half the agent timeout: 3 s)
  assert.ok(took < 2000, `answered after ${took} ms`);
  assert.deepEqual(answer.assignments[0].config.reservations.map((r: { ip: string }) => r.ip), ["10.77.0.50", "10.77.0.51"]);
  assert.notEqual(answer.assignments[0].hash, known.lan);
});

test("what is served: ranges by their own prefix, child pools instead of their parent, one subnet per prefix, host names DHCP servers can read", async () => {
  await env.engine.createSpace({ name: "mix" }, ctx);
  // a range with its own prefix length and gateway, and two pools in one /24
  await env.engine.createPool({ name: "ranged", space: "mix", ranges: [{ start: "10.1.0.100", end: "10.1.0.120", prefixLength: 24, gateway: "10.1.0.1" }] }, ctx);
  await env.engine.createPool({ name: "low", space: "mix", ranges: [{ start: "10.9.0.10", end: "10.9.0.99", prefixLength: 24 }], gateway: "10.9.0.1" }, ctx);
  await env.engine.createPool({ name: "high", space: "mix", ranges: [{ start: "10.9.0.100", end: "10.9.0.199", prefixLength: 24 }], gateway: "10.9.0.1" }, ctx);
  // a parent carved into a child (as a Neutron subnet pool and its subnet are)
  await env.engine.createPool({ name: "parent", space: "mix", cidr: "10.50.0.0/16" }, ctx);
  await env.engine.createChildPool({ pool: "parent", space: "mix" }, { name: "child", cidr: "10.50.5.0/24", gateway: "10.50.5.1" }, ctx);
  await env.engine.allocate({ pool: "child", space: "mix" }, { address: "10.50.5.10", mac: "02:00:00:00:05:10", hostname: "web-1" }, ctx);
  for (const [i, hostname] of ["ignore", "1h", "-dash", "ok-name"].entries()) {
    await env.engine.allocate({ pool: "low", space: "mix" }, { address: `10.9.0.${20 + i}`, mac: `02:00:00:00:09:${20 + i}`, hostname }, ctx);
  }
  assert.equal((await api("POST", "/v1/dhcp/networks", { name: "mix", space: "mix" })).statusCode, 201);
  const kea = JSON.parse((await api("GET", "/v1/dhcp/networks/mix/config?format=kea")).json().files["kea-dhcp4.json"]);
  const subnets = kea.Dhcp4["shared-networks"][0].subnet4 as { subnet: string; "option-data": { name: string; data: string }[]; reservations: { "ip-address": string; hostname?: string }[] }[];
  assert.deepEqual(subnets.map((x) => x.subnet).sort(), ["10.1.0.0/24", "10.50.5.0/24", "10.9.0.0/24"]);
  assert.equal(subnets.find((x) => x.subnet === "10.1.0.0/24")!["option-data"].find((o) => o.name === "routers")?.data, "10.1.0.1");
  assert.deepEqual(subnets.find((x) => x.subnet === "10.50.5.0/24")!.reservations, [{ "hw-address": "02:00:00:00:05:10", "ip-address": "10.50.5.10", hostname: "web-1" }]);
  const names = subnets.find((x) => x.subnet === "10.9.0.0/24")!.reservations.map((r) => r.hostname ?? null);
  assert.deepEqual(names, [null, null, null, "ok-name"]);
  const shown = (await api("GET", "/v1/dhcp/networks/mix")).json();
  assert.equal(shown.problems.filter((p: string) => /host name .* is not sent/.test(p)).length, 3);
  // a reservation's MAC is checked against the child pool's network too
  const dup = await api("POST", "/v1/pools/high/allocations?space=mix", { mac: "02:00:00:00:05:10" });
  assert.equal(dup.statusCode, 409);
});

test("agents: one whose server failed gives its network to a healthy one; a space-limited token's agent cannot hold other spaces' networks or another token's name", async () => {
  const now = Date.now();
  const reach = [{ network: "mix", interface: "eth0" }];
  await recordAgent(env.engine, "mix-1", { networks: reach, server: "dnsmasq", health: {} }, now);
  await schedule(env.engine, now);
  await recordAgent(env.engine, "mix-2", { networks: reach, server: "dnsmasq", health: {} }, now);
  await recordAgent(env.engine, "mix-1", { networks: reach, server: "dnsmasq", health: { mix: { state: "failed", error: "dnsmasq exited (code 2)", since: new Date(now).toISOString() } } }, now);
  await schedule(env.engine, now);
  const held = (await listAgents(env.engine, now)).filter((a) => a.assignments.includes("mix")).map((a) => a.name);
  assert.deepEqual(held, ["mix-2"]);

  const limited = await env.engine.createToken({ name: "lab-agent", scope: "write", spaces: ["lab"] }, ctx);
  const as = { authorization: `Bearer ${limited.token}` };
  const r = await env.inject({ method: "POST", url: "/v1/dhcp/agents/sneaky/sync", headers: as, payload: { networks: [{ network: "mix", interface: "eth0" }, { network: "lan", interface: "eth0" }], server: "dnsmasq", health: {} } });
  assert.equal(r.statusCode, 200);
  const sneaky = (await listAgents(env.engine)).find((a) => a.name === "sneaky")!;
  assert.deepEqual(sneaky.networks.map((n) => n.network), ["lan"], "it claimed a network of a space its token cannot see");
  const taken = await env.inject({ method: "POST", url: "/v1/dhcp/agents/mix-2/sync", headers: as, payload: { networks: [], server: "dnsmasq", health: {} } });
  assert.equal(taken.statusCode, 200, "mix-2 was recorded without a token: anyone may adopt it");
  const again = await env.inject({ method: "POST", url: "/v1/dhcp/agents/sneaky/sync", payload: { networks: [], server: "dnsmasq", health: {} } });
  assert.equal(again.statusCode, 409);
  assert.match(again.json().detail, /agent name sneaky is used by another token's agent/);
});
