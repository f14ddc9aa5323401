import assert from "node:assert/strict";
import { SERVER } from "../../src/engine/access.js";
import { after, before, test } from "node:test";
import { Engine } from "../../src/engine/engine.js";
import { AllotError } from "../../src/engine/errors.js";
import { createNetwork, DhcpNetworkInput } from "../../src/dhcp/networks.js";
import type { Store } from "../../src/store/store.js";
import { TEST_ADMIN_TOKEN, ctx, tempApp } from "../helpers.js";

/**
 * One MAC, one address per DHCP network, kept inside the transaction that writes: concurrent
 * allocations of one MAC through two servers (two stores on one database), and through an
 * integration (a Neutron port) beside the API, end with exactly one holder.
 */

type Env = Awaited<ReturnType<typeof tempApp>>;
let env: Env;
let otherStore: Store;
let other: Engine;

before(async () => {
  env = await tempApp();
  otherStore = await env.openAgain();
  other = await Engine.open(otherStore);
  await env.engine.createSpace({ name: "lab" }, ctx);
  for (const [name, cidr] of [["rack-a", "10.60.0.0/24"], ["rack-b", "10.61.0.0/24"], ["rack-c", "10.62.0.0/24"]] as const) {
    await env.engine.createPool({ name, space: "lab", cidr }, ctx);
  }
  // rack-a and rack-b on one DHCP network; rack-c on none
  await createNetwork(env.engine, DhcpNetworkInput.parse({ name: "lan", space: "lab", pools: ["rack-a", "rack-b"] }), SERVER);
});
after(async () => {
  await other.close();
  await env.cleanup();
});

const macConflict = (r: PromiseSettledResult<unknown>) =>
  r.status === "rejected" && r.reason instanceof AllotError && r.reason.code === "conflict" && /MAC .* is already reserved on DHCP network lan/.test(r.reason.message);

test("concurrent allocations of one MAC through two servers, into two pools of one DHCP network: exactly one wins", async () => {
  const mac = "52:54:00:aa:00:01";
  const attempts = Array.from({ length: 16 }, (_, i) =>
    (i % 2 === 0 ? env.engine : other).allocate({ pool: i % 4 < 2 ? "rack-a" : "rack-b", space: "lab" }, { mac, owner: `vm-${i}` }, ctx),
  );
  const settled = await Promise.allSettled(attempts);
  const won = settled.filter((r) => r.status === "fulfilled");
  assert.equal(won.length, 1, settled.map((r) => (r.status === "rejected" ? String(r.reason) : "ok")).join("\n"));
  assert.ok(settled.filter((r) => r.status === "rejected").every(macConflict), "every loser is told which MAC and network");
  const holders = await env.store.read((sql) => sql.all("SELECT id FROM allocations WHERE mac = ?", [mac]));
  assert.equal(holders.length, 1);

  // the same MAC in a pool no DHCP network serves is another matter
  await env.engine.allocate({ pool: "rack-c", space: "lab" }, { mac }, ctx);
  // a retry by the winner's owner is answered with what it holds, not refused
  const winner = (won[0] as PromiseFulfilledResult<Awaited<(typeof attempts)[number]>>).value.allocation;
  const again = await other.allocate({ pool: winner.pool, space: "lab" }, { mac, owner: winner.owner! }, ctx);
  assert.equal(again.allocation.id, winner.id);
  assert.equal(again.created, false);
});

test("changing an allocation's MAC to one held on the network is refused inside the write, through either server", async () => {
  const held = await env.engine.allocate({ pool: "rack-a", space: "lab" }, { mac: "52:54:00:aa:00:02" }, ctx);
  const free = await other.allocate({ pool: "rack-b", space: "lab" }, { mac: "52:54:00:aa:00:03" }, ctx);
  await assert.rejects(other.updateAllocation(free.allocation.id, { mac: "52-54-00-AA-00-02" }, ctx), (e) => macConflict({ status: "rejected", reason: e }));
  assert.equal((await env.engine.getAllocation(free.allocation.id, SERVER)).mac, "52:54:00:aa:00:03", "nothing changed");
  // its own MAC, set again, is no conflict
  await env.engine.updateAllocation(held.allocation.id, { mac: "52:54:00:aa:00:02", hostname: "h2" }, ctx);
});

test("a Neutron port and an API allocation racing for one MAC on a DHCP network: exactly one wins", async () => {
  const keystone = await env.inject({
    method: "POST",
    url: "/identity/v3/auth/tokens",
    headers: { authorization: undefined },
    payload: { auth: { identity: { methods: ["password"], password: { user: { name: "admin", password: TEST_ADMIN_TOKEN, domain: { name: "Default" } } } }, scope: { project: { name: "lab", domain: { name: "Default" } } } } },
  });
  assert.equal(keystone.statusCode, 201, keystone.body);
  const token = String(keystone.headers["x-subject-token"]);
  const neutron = (method: "POST", path: string, payload: unknown) =>
    env.inject({ method, url: `/network/v2.0/${path}`, headers: { authorization: undefined, "x-auth-token": token }, payload: payload as object });
  const net = await neutron("POST", "networks", { network: { name: "ovirt-lan" } });
  assert.equal(net.statusCode, 201, net.body);
  const subnet = await neutron("POST", "subnets", { subnet: { network_id: net.json().network.id, cidr: "10.63.0.0/24", ip_version: 4 } });
  assert.equal(subnet.statusCode, 201, subnet.body);
  const poolName = String((await env.engine.listPools({ space: "lab" }, SERVER)).find((p) => p.ranges[0]?.cidr === "10.63.0.0/24")!.name);
  await createNetwork(env.engine, DhcpNetworkInput.parse({ name: "ovirt", space: "lab", pools: [poolName, "rack-c"] }), SERVER);

  const mac = "52:54:00:aa:00:04";
  const [port, api] = await Promise.allSettled([
    neutron("POST", "ports", { port: { network_id: net.json().network.id, mac_address: mac } }).then((r) => {
      if (r.statusCode !== 201) throw new Error(`${r.statusCode} ${r.body}`);
      return r;
    }),
    other.allocate({ pool: "rack-c", space: "lab" }, { mac: "52:54:00:aa:00:05", owner: "warm-up" }, ctx).then(() =>
      other.allocate({ pool: "rack-c", space: "lab" }, { mac, owner: "api" }, ctx),
    ),
  ]);
  const outcomes = [port, api].map((r) => r.status);
  assert.deepEqual(outcomes.filter((s) => s === "fulfilled").length, 1, `${String((port as PromiseRejectedResult).reason ?? "")} ${String((api as PromiseRejectedResult).reason ?? "")}`);
  const loser = port.status === "rejected" ? String(port.reason) : String((api as PromiseRejectedResult).reason);
  assert.match(loser, /MAC 52:54:00:aa:00:04 is already reserved on DHCP network ovirt/);
  const holders = await env.store.read((sql) => sql.all("SELECT id FROM allocations WHERE mac = ?", [mac]));
  assert.equal(holders.length, 1);
});
