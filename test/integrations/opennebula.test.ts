import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { type IncomingMessage, type ServerResponse, createServer } from "node:http";
import { type AddressInfo, type Server, type Socket, createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { AUTH } from "../helpers.js";
import { type ServerProcess, allot, startServerProcess } from "../process-helpers.js";
import { readReply } from "./oned-template.js";
import { renderVector } from "../../src/integrations/opennebula/protocol.js";

/**
 * A harness that plays oned: it writes each request exactly as oned does (XML with every AR value in
 * CDATA and keys in byte order, an empty ADDRESS skeleton on register, base64 with no newline on stdin,
 * the request id as the only argument), runs the installed driver scripts as their own processes
 * against a running Allot, and reads the answers the way oned does (the template grammar for stdout,
 * stderr minus the lines oned takes for log lines, success only on exit 0).
 */

const cdata = (attrs: Record<string, string>) =>
  Object.keys(attrs)
    .sort()
    .map((k) => `<${k}><![CDATA[${attrs[k]}]]></${k}>`)
    .join("");
const SKELETON = "<ADDRESS><MAC/><IP/><IP6_GLOBAL/><IP6_ULA/><IP6/><SIZE/></ADDRESS>";
const plain = (fields: [string, string][]) => `<ADDRESS>${fields.map(([k, v]) => `<${k}>${v}</${k}>`).join("")}</ADDRESS>`;
const request = (ar: Record<string, string>, address: string) => `<IPAM_DRIVER_ACTION_DATA><AR>${cdata(ar)}</AR>${address}</IPAM_DRIVER_ACTION_DATA>`;

/** oned's failure message: stderr lines that are not log lines, joined. */
const onedMessage = (stderr: string) =>
  stderr
    .split("\n")
    .filter((l) => l !== "" && !/^(ERROR|INFO|WARN|DEBUG):\s+(\d+)?\s*(.*)$/.test(l))
    .join("");

interface Run {
  code: number | null;
  stdout: string;
  message: string;
  ms: number;
}

let dir: string;
let driverDir: string;
let server: ServerProcess;
let reqId = 0;

/** Runs an installed action as one_ipam.rb does. `legacy`: OpenNebula 5.8, the base64 as argv[1] and nothing on stdin. */
function run(action: string, xml: string, opts: { env?: Record<string, string>; raw?: string; legacy?: boolean; dir?: string; holdStdin?: boolean } = {}): Promise<Run> {
  const b64 = opts.raw ?? Buffer.from(xml).toString("base64");
  const t0 = Date.now();
  const proc = spawn(join(opts.dir ?? driverDir, action), opts.legacy ? [b64] : [String(++reqId)], { env: { ...process.env, ALLOT_URL: "", ALLOT_TOKEN: "", ...opts.env } });
  let stdout = "";
  let stderr = "";
  proc.stdout.on("data", (d: Buffer) => (stdout += d));
  proc.stderr.on("data", (d: Buffer) => (stderr += d));
  if (opts.holdStdin) proc.stdin.write(b64);
  else proc.stdin.end(opts.legacy ? "" : b64);
  return new Promise((resolve) => proc.on("close", (code) => resolve({ code, stdout, message: onedMessage(stderr), ms: Date.now() - t0 })));
}

/** What oned keeps of a registered AR and sends back on later actions (sorted, with its own extras). */
function storedAr(reply: Record<string, string>, used: number): Record<string, string> {
  const ip = reply.IP!;
  const size = Number(reply.SIZE);
  const last = ip.split(".").map(Number);
  last[3]! += size - 1;
  return { ...reply, AR_ID: "0", MAC: "02:00:0a:0a:00:0a", NEXT_INDEX: "0", SHARED: "NO", MAC_END: "02:00:0a:0a:00:11", IP_END: last.join("."), USED_LEASES: String(used) };
}

async function api(path: string, init: RequestInit = {}) {
  const res = await fetch(new URL(path, server.url), { ...init, headers: { ...AUTH, "content-type": "application/json", ...(init.headers ?? {}) } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> & { items?: Record<string, unknown>[] } };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "allot-one-"));
  server = await startServerProcess(join(dir, "data"));
  driverDir = join(dir, "remotes", "ipam", "allot");
  const installed = allot(["opennebula", "install", "--dir", driverDir, "--driver-token", AUTH.authorization.slice(7)], { ALLOT_URL: server.url });
  assert.equal(installed.code, 0, installed.stderr);
  assert.match(installed.stdout, /ARGUMENTS = "-t 1 -i dummy,allot"/);
  assert.match(readFileSync(join(driverDir, "allot-ipam.yaml"), "utf8"), new RegExp(`url: ${server.url}`));
});
after(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("a whole address range lifecycle, as oned drives it", () => {
  const times: number[] = [];
  let ar: Record<string, string>;

  test("register: the reply replaces the AR, so it echoes every attribute given and adds Allot's key", async () => {
    const user = { IPAM_MAD: "allot", TYPE: "IP4", IP: "10.10.0.10", SIZE: "8", GATEWAY: "10.10.0.1", DNS: "10.10.0.53 10.10.0.54", VLAN_NOTE: "rack 7 \"east\"" };
    const r = await run("register_address_range", request(user, SKELETON));
    times.push(r.ms);
    assert.equal(r.code, 0, r.message);
    const reply = readReply(r.stdout, "AR");
    assert.ok(reply, r.stdout);
    for (const [k, v] of Object.entries(user)) assert.equal(reply[k], v, k);
    assert.match(reply.ALLOT_POOL_ID!, /^[0-9a-f-]{36}$/);
    // nothing the user did not give: a guessed network would win over the virtual network's own in oned
    assert.deepEqual(Object.keys(reply).sort(), [...Object.keys(user), "ALLOT_POOL_ID"].sort());
    const pool = await api(`/v1/pools/${reply.ALLOT_POOL_ID}`);
    assert.equal((pool.body.usage as { total: string }).total, "8");
    assert.deepEqual(pool.body.dns, ["10.10.0.53", "10.10.0.54"]);
    ar = reply;
  });

  test("get, allocate a specific address, contiguous leases, free one at a time, exhaustion, unregister", async () => {
    const get = async (size: number, used: number) => {
      const r = await run("get_address", request(storedAr(ar, used), plain([["SIZE", String(size)]])));
      times.push(r.ms);
      return r;
    };
    const first = await get(1, 0);
    assert.equal(first.code, 0, first.message);
    assert.deepEqual(readReply(first.stdout, "ADDRESS"), { IP: "10.10.0.10", SIZE: "1" });

    const specific = await run("allocate_address", request(storedAr(ar, 1), plain([["MAC", "02:00:0a:0a:00:11"], ["IP", "10.10.0.17"], ["SIZE", "1"]])));
    times.push(specific.ms);
    assert.equal(specific.code, 0, specific.message);
    const again = await run("allocate_address", request(storedAr(ar, 2), plain([["MAC", "02:00:0a:0a:00:11"], ["IP", "10.10.0.17"], ["SIZE", "1"]])));
    assert.equal(again.code, 1);
    assert.match(again.message, /10\.10\.0\.17 .*already held/);

    // SIZE 3: three neighbours .11-.13, each its own lease
    const three = await get(3, 2);
    assert.deepEqual(readReply(three.stdout, "ADDRESS"), { IP: "10.10.0.11", SIZE: "3" });
    const reserve = await run("allocate_address", request(storedAr(ar, 5), plain([["MAC", "02:00:0a:0a:00:0e"], ["IP", "10.10.0.14"], ["SIZE", "2"]])));
    assert.equal(reserve.code, 0, reserve.message);
    const leases = (await api(`/v1/pools/${ar.ALLOT_POOL_ID}/allocations`)).body.items!.map((a) => a.address);
    assert.deepEqual(leases, ["10.10.0.10", "10.10.0.11", "10.10.0.12", "10.10.0.13", "10.10.0.14", "10.10.0.15", "10.10.0.17"]);

    // one free address (.16) left: 2 is more than there is, 1 fits, then the range is exhausted
    const tooMany = await get(2, 7);
    assert.equal(tooMany.code, 1);
    assert.match(tooMany.message, /has 1 free addresses, fewer than the 2 asked for/);
    assert.deepEqual(readReply((await get(1, 7)).stdout, "ADDRESS"), { IP: "10.10.0.16", SIZE: "1" });
    const full = await get(1, 8);
    assert.equal(full.code, 1);
    assert.match(full.message, /exhausted/);

    // free: one call per address, SIZE 1, idempotent
    for (const ip of ["10.10.0.12", "10.10.0.12"]) {
      const f = await run("free_address", request(storedAr(ar, 8), plain([["MAC", "02:00:0a:0a:00:0c"], ["IP", ip], ["SIZE", "1"]])));
      times.push(f.ms);
      assert.equal(f.code, 0, f.message);
    }
    assert.deepEqual(readReply((await get(1, 7)).stdout, "ADDRESS"), { IP: "10.10.0.12", SIZE: "1" });

    // an address outside the range
    const outside = await run("allocate_address", request(storedAr(ar, 8), plain([["MAC", "02:00:0a:0a:00:0c"], ["IP", "10.99.0.1"], ["SIZE", "1"]])));
    assert.equal(outside.code, 1);
    assert.match(outside.message, /10\.99\.0\.1 is not inside one range of pool/);

    const un = await run("unregister_address_range", request(storedAr(ar, 0), SKELETON));
    times.push(un.ms);
    assert.equal(un.code, 0, un.message);
    assert.equal((await api(`/v1/pools/${ar.ALLOT_POOL_ID}`)).status, 404);
    // already gone: still fine (oned may retry), and freeing into a gone range is too
    assert.equal((await run("unregister_address_range", request(storedAr(ar, 0), SKELETON))).code, 0);
    assert.equal((await run("free_address", request(storedAr(ar, 0), plain([["IP", "10.10.0.10"], ["SIZE", "1"]])))).code, 0);
    process.stdout.write(`# action wall times (ms, process start included): ${times.join(" ")}\n`);
  });
});

describe("replies oned reads back unchanged", () => {
  const unusual = { NOTE: 'C:\\temp and "q"', AMP: "a & b <c> d", INNER: "two  blanks", PATH: "\\\\share\\x", HASH: "# not a comment, [x] = y" };

  /** Registers the AR, then registers again the AR oned stored from the reply (as `onevnet addar` of it would). */
  async function roundTrip(extra: Record<string, string>) {
    const user = { IPAM_MAD: "allot", TYPE: "IP4", IP: "10.50.0.1", SIZE: "2", ...extra };
    const first = await run("register_address_range", request(user, SKELETON));
    assert.equal(first.code, 0, first.message);
    const stored = readReply(first.stdout, "AR")!;
    // the range is removed and added again (onevnet rmar, then addar of the AR as oned kept it)
    assert.equal((await run("unregister_address_range", request(storedAr(stored, 0), SKELETON))).code, 0);
    const second = await run("register_address_range", request(stored, SKELETON));
    assert.equal(second.code, 0, second.message);
    const again = readReply(second.stdout, "AR")!;
    assert.equal((await run("unregister_address_range", request(storedAr(again, 0), SKELETON))).code, 0);
    for (const [k, v] of Object.entries(user)) {
      assert.equal(stored[k], v, `${k} after one register`);
      assert.equal(again[k], v, `${k} after a second register of the stored AR`);
    }
    return [first.stdout, second.stdout];
  }

  test("backslashes, quotes, & and blanks come back exactly in oned's template text", async () => {
    for (const stdout of await roundTrip(unusual)) assert.match(stdout, /^AR = \[/, "plain template text when it can carry every value");
  });

  test("a trailing backslash or surrounding blanks, which the text cannot carry, come back exactly as XML", async () => {
    for (const stdout of await roundTrip({ ...unusual, TAIL: "ends with \\", PADDED: "  both ends  ", LINES: "two\nlines" })) {
      assert.match(stdout, /^<TEMPLATE><AR>/);
    }
  });

  test("a value no reply can carry is refused with its name, and nothing is made", async () => {
    const before = (await api("/v1/pools")).body.items!.length;
    // whatever form the other attributes would need
    for (const extra of [{}, { TAIL: "x\\" }] as Record<string, string>[]) {
      const r = await run("register_address_range", request({ IPAM_MAD: "allot", TYPE: "IP4", IP: "10.50.0.1", SIZE: "2", BELL: "ring \u0007", ...extra }, SKELETON));
      assert.equal(r.code, 1);
      assert.match(r.message, /BELL holds a control character that oned cannot be given back/);
    }
    assert.equal((await api("/v1/pools")).body.items!.length, before);
  });

  test("the harness reads replies as oned does: a value ending in a backslash written as text runs on into the next", () => {
    assert.throws(() => readReply('AR = [\n  TAIL = "ends with \\",\n  IP = "10.0.0.1" ]\n', "AR"), /syntax error|lexer/);
    assert.deepEqual(readReply('AR = [ A = "x\\"y", B = bare ]', "AR"), { A: 'x"y', B: "bare" });
    assert.deepEqual(readReply("<T><AR><A>x &amp; y</A><B><![CDATA[z]]></B></AR></T>", "AR"), { A: "x & y", B: "z" });
  });

  test("every value that reaches the driver is carried: text when it can, XML when not", () => {
    const values = ["plain", 'q"uote', "back\\slash", "\\", 'x\\"', "a ]]> b", "<&>", " lead", "trail ", "cr\r\nlf", "tab\there", "=,[]#", "ünïcödé"];
    for (const v of values) assert.deepEqual(readReply(renderVector("AR", { V: v, IP: "10.0.0.1" }), "AR"), { V: v, IP: "10.0.0.1" }, JSON.stringify(v));
    assert.deepEqual(readReply(renderVector("AR", Object.fromEntries(values.map((v, i) => [`V${i}`, v]))), "AR"), Object.fromEntries(values.map((v, i) => [`V${i}`, v])));
  });
});

describe("the network is the user's: nothing guessed, nothing imposed", () => {
  const pool = async (reply: Record<string, string>) =>
    (await api(`/v1/pools/${reply.ALLOT_POOL_ID}`)).body.ranges as { prefixLength: number; gateway: string | null }[];

  test("a gateway outside the range's covering prefix is taken, and no network is added to the AR", async () => {
    const r = await run("register_address_range", request({ IPAM_MAD: "allot", TYPE: "IP4", IP: "10.80.0.10", SIZE: "8", GATEWAY: "10.80.0.254" }, SKELETON));
    assert.equal(r.code, 0, r.message);
    const reply = readReply(r.stdout, "AR")!;
    assert.equal(reply.GATEWAY, "10.80.0.254");
    assert.equal(reply.NETWORK_MASK, undefined);
    assert.equal(reply.NETWORK_ADDRESS, undefined);
    // Allot's own record spans the range and its gateway
    assert.deepEqual((await pool(reply)).map((x) => [x.prefixLength, x.gateway]), [[24, "10.80.0.254"]]);
  });

  test("with NETWORK_MASK: the mask given is the one kept, a gateway outside it too, a range across it refused", async () => {
    const inside = await run("register_address_range", request({ IPAM_MAD: "allot", TYPE: "IP4", IP: "10.81.0.10", SIZE: "8", GATEWAY: "10.81.0.254", NETWORK_MASK: "255.255.255.0" }, SKELETON));
    assert.equal(inside.code, 0, inside.message);
    const a = readReply(inside.stdout, "AR")!;
    assert.equal(a.NETWORK_MASK, "255.255.255.0");
    assert.equal(a.NETWORK_ADDRESS, undefined);
    assert.deepEqual((await pool(a)).map((x) => [x.prefixLength, x.gateway]), [[24, "10.81.0.254"]]);

    // a routed range whose gateway lies outside its own mask: oned's business, Allot records no gateway
    const routed = await run("register_address_range", request({ IPAM_MAD: "allot", TYPE: "IP4", IP: "10.82.0.16", SIZE: "8", GATEWAY: "10.82.0.1", NETWORK_MASK: "255.255.255.248" }, SKELETON));
    assert.equal(routed.code, 0, routed.message);
    const b = readReply(routed.stdout, "AR")!;
    assert.equal(b.GATEWAY, "10.82.0.1");
    assert.deepEqual((await pool(b)).map((x) => [x.prefixLength, x.gateway]), [[29, null]]);

    const across = await run("register_address_range", request({ IPAM_MAD: "allot", TYPE: "IP4", IP: "10.83.0.250", SIZE: "10", NETWORK_MASK: "255.255.255.0" }, SKELETON));
    assert.equal(across.code, 1);
    assert.match(across.message, /IP 10\.83\.0\.250 with SIZE 10 \(up to 10\.83\.1\.3\) does not fit inside NETWORK_MASK 255\.255\.255\.0/);
  });
});

describe("an Allot server that never answers does not hold oned's IPAM", () => {
  let hung: Server;
  let hungUrl: string;
  let slowDir: string;
  const sockets: Socket[] = [];
  before(async () => {
    // accepts connections, reads the requests, never answers
    hung = createNetServer((s) => sockets.push(s.on("error", () => {})));
    await new Promise<void>((r) => hung.listen(0, "127.0.0.1", r));
    hungUrl = `http://127.0.0.1:${(hung.address() as AddressInfo).port}`;
    slowDir = join(dir, "remotes", "ipam", "allot2");
    const installed = allot(["opennebula", "install", "--dir", slowDir, "--driver-token", AUTH.authorization.slice(7), "--timeout", "2"], { ALLOT_URL: hungUrl });
    assert.equal(installed.code, 0, installed.stderr);
  });
  after(() => {
    for (const s of sockets) s.destroy();
    hung.close();
  });

  test("the installed config says 20 s unless told otherwise", () => {
    assert.match(readFileSync(join(driverDir, "allot-ipam.yaml"), "utf8"), /^timeout: 20$/m);
    assert.match(readFileSync(join(slowDir, "allot-ipam.yaml"), "utf8"), /^timeout: 2$/m);
  });

  test("each action fails within its timeout, with the reason", async () => {
    const ar = { IPAM_MAD: "allot", TYPE: "IP4", IP: "10.90.0.1", SIZE: "4", ALLOT_POOL_ID: "00000000-0000-4000-8000-000000000000" };
    for (const [action, address] of [["register_address_range", SKELETON], ["get_address", plain([["SIZE", "1"]])]] as const) {
      const r = await run(action, request(ar, address), { dir: slowDir });
      assert.equal(r.code, 1, action);
      assert.match(r.message, new RegExp(`allot ${action}: Allot at ${hungUrl} did not answer within 2 s \\(timeout in .*allot2/allot-ipam\\.yaml\\)`));
      assert.ok(r.ms >= 2000 && r.ms < 12000, `${action} took ${r.ms} ms`);
    }
  });

  test("an action whose stdin is never closed still ends, with the reason", async () => {
    const r = await run("get_address", "", { dir: slowDir, holdStdin: true });
    assert.equal(r.code, 1);
    assert.match(r.message, /allot get_address: did not finish within 2 s/);
    assert.ok(r.ms < 12000, `took ${r.ms} ms`);
  });

  test("a timeout oned could not wait for is refused in the config", async () => {
    assert.notEqual(allot(["opennebula", "install", "--dir", join(dir, "x"), "--timeout", "120"]).code, 0);
  });
});

test("dual-stack types are leased for their IPv4 part; the types oned computes itself are refused clearly", async () => {
  const dual = await run("register_address_range", request({ IPAM_MAD: "allot", TYPE: "IP4_6", IP: "10.20.0.1", SIZE: "4", GLOBAL_PREFIX: "2001:db8:1::" }, SKELETON));
  assert.equal(dual.code, 0, dual.message);
  assert.equal(readReply(dual.stdout, "AR")!.GLOBAL_PREFIX, "2001:db8:1::");
  for (const type of ["IP6", "IP6_STATIC", "ETHER"]) {
    const r = await run("register_address_range", request({ IPAM_MAD: "allot", TYPE: type, SIZE: "4" }, SKELETON));
    assert.equal(r.code, 1);
    assert.match(r.message, new RegExp(`TYPE ${type} ranges are computed by OpenNebula itself`));
  }
});

test("a range without IP: Allot carves a block from the parent pool, answers the whole AR, and takes the block back on unregister", async () => {
  const parent = await api("/v1/pools", { method: "POST", body: JSON.stringify({ name: "one-parent", cidr: "10.60.0.0/24", dns: ["10.60.0.53"] }) });
  assert.equal(parent.status, 201, JSON.stringify(parent.body));
  // values oned's template parser needs quoted, and an ampersand that XML needs escaped
  const user = { IPAM_MAD: "allot", TYPE: "IP4", SIZE: "7", ALLOT_PARENT: "one-parent", NOTE: 'rack 9 & "west"', OWNER_TEAM: "net ops" };
  const r = await run("register_address_range", request(user, SKELETON));
  assert.equal(r.code, 0, r.message);
  const reply = readReply(r.stdout, "AR")!;
  for (const [k, v] of Object.entries(user)) if (k !== "SIZE") assert.equal(reply[k], v, k);
  // SIZE 7 needs a /28 (14 addresses besides its network and broadcast); the AR is all of them
  assert.deepEqual(
    { IP: reply.IP, SIZE: reply.SIZE, NETWORK_ADDRESS: reply.NETWORK_ADDRESS, NETWORK_MASK: reply.NETWORK_MASK, DNS: reply.DNS },
    { IP: "10.60.0.1", SIZE: "14", NETWORK_ADDRESS: "10.60.0.0", NETWORK_MASK: "255.255.255.240", DNS: "10.60.0.53" },
  );
  const child = (await api(`/v1/pools/${reply.ALLOT_POOL_ID}`)).body;
  assert.equal(child.parent, "one-parent");
  assert.equal((child.usage as { total: string }).total, "14");
  // oned leases from it as from any range
  const lease = await run("get_address", request(storedAr(reply, 0), plain([["SIZE", "1"]])));
  assert.deepEqual(readReply(lease.stdout, "ADDRESS"), { IP: "10.60.0.1", SIZE: "1" });

  // dual stack: the IPv4 part is carved, the IPv6 part stays oned's; the default parent comes from allot-ipam.yaml
  const withParent = join(dir, "remotes-parent");
  const installed = allot(["opennebula", "install", "--dir", withParent, "--driver-token", AUTH.authorization.slice(7), "--parent", "one-parent"], { ALLOT_URL: server.url });
  assert.equal(installed.code, 0, installed.stderr);
  const dual = await run("register_address_range", request({ IPAM_MAD: "allot", TYPE: "IP4_6", SIZE: "2", GLOBAL_PREFIX: "2001:db8:60::" }, SKELETON), { dir: withParent });
  assert.equal(dual.code, 0, dual.message);
  const dualReply = readReply(dual.stdout, "AR")!;
  assert.deepEqual([dualReply.IP, dualReply.SIZE, dualReply.NETWORK_MASK, dualReply.GLOBAL_PREFIX], ["10.60.0.17", "6", "255.255.255.248", "2001:db8:60::"]);

  // a parent with a router: the block that holds it keeps it back, and the AR starts after it
  assert.equal((await api("/v1/pools", { method: "POST", body: JSON.stringify({ name: "one-routed", cidr: "10.61.0.0/24", gateway: "10.61.0.1" }) })).status, 201);
  const routed = await run("register_address_range", request({ IPAM_MAD: "allot", TYPE: "IP4", SIZE: "7", ALLOT_PARENT: "one-routed", GATEWAY: "10.61.0.1" }, SKELETON));
  assert.equal(routed.code, 0, routed.message);
  const routedReply = readReply(routed.stdout, "AR")!;
  assert.deepEqual([routedReply.IP, routedReply.SIZE, routedReply.GATEWAY], ["10.61.0.2", "13", "10.61.0.1"]);
  const routedPool = (await api(`/v1/pools/${routedReply.ALLOT_POOL_ID}`)).body;
  assert.deepEqual([routedPool.exclusions, (routedPool.usage as { total: string }).total], [[{ start: "10.61.0.1", end: "10.61.0.1" }], "13"], "the router is never leased");

  // exhausted: a clear line, nothing made
  const pools = (await api("/v1/pools")).body.items!.length;
  const big = await run("register_address_range", request({ IPAM_MAD: "allot", TYPE: "IP4", SIZE: "200" }, SKELETON), { dir: withParent });
  assert.equal(big.code, 1);
  assert.match(big.message, /^allot register_address_range: parent pool one-parent has no free \/24 left for SIZE 200: free some of it, or name another parent \(ALLOT_PARENT\)$/);
  assert.equal((await api("/v1/pools")).body.items!.length, pools);
  const none = await run("register_address_range", request({ IPAM_MAD: "allot", TYPE: "IP4", SIZE: "4" }, SKELETON));
  assert.equal(none.code, 1);
  assert.match(none.message, /has no IP: .*a parent pool for Allot to choose a block from \(ALLOT_PARENT in the AR, or parent in allot-ipam.yaml\)/);

  // unregister gives both blocks back: the parent's /24 is whole again
  for (const ar of [reply, dualReply]) {
    const u = await run("unregister_address_range", request(storedAr(ar, 0), SKELETON));
    assert.equal(u.code, 0, u.message);
  }
  const usage = (await api("/v1/pools/one-parent/usage")).body;
  assert.equal(usage.inChildPools, "0");
  const again = await run("register_address_range", request({ IPAM_MAD: "allot", TYPE: "IP4", SIZE: "200" }, SKELETON), { dir: withParent });
  assert.equal(again.code, 0, again.message);
  assert.equal(readReply(again.stdout, "AR")!.SIZE, "254");
});

test("OpenNebula 5.8 and older: the request as the first argument, nothing on stdin", async () => {
  const r = await run("register_address_range", request({ IPAM_MAD: "allot", TYPE: "IP4", IP: "10.30.0.1", SIZE: "2" }, SKELETON), { legacy: true });
  assert.equal(r.code, 0, r.message);
  assert.equal(readReply(r.stdout, "AR")!.SIZE, "2");
});

test("bad input: one actionable line on stderr that survives oned's filtering, a non-zero exit, nothing half-made", async () => {
  const before = (await api("/v1/pools")).body.items!.length;
  const cases: [string, Promise<Run>, RegExp][] = [
    ["truncated base64", run("get_address", "", { raw: Buffer.from(request({ IPAM_MAD: "allot" }, SKELETON)).toString("base64").slice(0, 41) }), /not valid base64/],
    ["not XML", run("get_address", "<IPAM_DRIVER_ACTION_DATA><AR><IP>1</AR>"), /not well-formed XML/],
    ["empty stdin", run("get_address", "", { raw: "" }), /no request on stdin/],
    ["no IPAM_MAD", run("register_address_range", request({ TYPE: "IP4", IP: "10.40.0.1", SIZE: "4" }, SKELETON)), /no IPAM_MAD/],
    ["no SIZE", run("register_address_range", request({ IPAM_MAD: "allot", TYPE: "IP4", IP: "10.40.0.1" }, SKELETON)), /SIZE is missing/],
    ["SIZE 0", run("register_address_range", request({ IPAM_MAD: "allot", TYPE: "IP4", IP: "10.40.0.1", SIZE: "0" }, SKELETON)), /SIZE must be a whole number of at least 1/],
    ["no TYPE", run("register_address_range", request({ IPAM_MAD: "allot", IP: "10.40.0.1", SIZE: "4" }, SKELETON)), /no TYPE/],
    ["bad IP", run("register_address_range", request({ IPAM_MAD: "allot", TYPE: "IP4", IP: "10.40.0", SIZE: "4" }, SKELETON)), /not a dotted IPv4 address/],
    ["unregistered AR", run("get_address", request({ IPAM_MAD: "allot", AR_ID: "3" }, plain([["SIZE", "1"]]))), /no ALLOT_POOL_ID/],
    ["server down", run("register_address_range", request({ IPAM_MAD: "allot", TYPE: "IP4", IP: "10.40.0.1", SIZE: "4" }, SKELETON), { env: { ALLOT_URL: "http://127.0.0.1:1" } }), /cannot reach Allot at http:\/\/127\.0\.0\.1:1/],
    ["wrong token", run("register_address_range", request({ IPAM_MAD: "allot", TYPE: "IP4", IP: "10.40.0.1", SIZE: "4" }, SKELETON), { env: { ALLOT_TOKEN: "allot_wrong-wrong-wrong-wrong-wrong" } }), /unknown, revoked or expired/],
  ];
  for (const [what, p, expected] of cases) {
    const r = await p;
    assert.equal(r.code, 1, what);
    assert.equal(r.stdout, "", what);
    assert.match(r.message, expected, `${what}: ${r.message}`);
    assert.doesNotMatch(r.message, /\n/, what);
  }
  assert.equal((await api("/v1/pools")).body.items!.length, before, "a failed action created a pool");
});

describe("address ranges from upstream providers", () => {
  test("Equinix Metal: a reservation is requested on register and released on unregister; the token is kept sealed", async () => {
    const calls: { method: string; url: string; token: string | undefined; body: Record<string, unknown> | null }[] = [];
    let failNext = false;
    const mock = createServer((req: IncomingMessage, res: ServerResponse) => {
      let text = "";
      req.on("data", (d) => (text += d));
      req.on("end", () => {
        const body = text ? (JSON.parse(text) as Record<string, unknown>) : null;
        calls.push({ method: req.method!, url: req.url!, token: req.headers["x-auth-token"] as string | undefined, body });
        const json = (status: number, o: unknown) => res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(o));
        if (req.headers["x-auth-token"] !== "eq-token-0123456789") return json(401, { errors: ["Invalid authentication token"] });
        const m = /^\/metal\/v1\/projects\/([^/]+)\/ips$/.exec(req.url!);
        if (req.method === "POST" && m) {
          if (failNext) return json(422, { errors: ["Quantity exceeds the project's IP quota"] });
          return json(201, {
            id: "f1b3c5d7-0000-4000-8000-00000000abcd", address_family: 4, netmask: "255.255.255.248", created_at: "2026-11-22T09:00:00Z",
            public: true, cidr: 29, management: false, manageable: true, enabled: true, global_ip: false, customdata: {},
            network: "147.75.100.8", address: "147.75.100.9", gateway: "147.75.100.9", href: "/metal/v1/ips/f1b3c5d7-0000-4000-8000-00000000abcd",
            project: { href: `/metal/v1/projects/${m[1]}` }, type: "public_ipv4", metro: { code: "am" }, tags: [], details: body?.comments,
          });
        }
        if (req.method === "DELETE" && req.url === "/metal/v1/ips/f1b3c5d7-0000-4000-8000-00000000abcd") return res.writeHead(204).end();
        json(404, { errors: ["Not found"] });
      });
    });
    await new Promise<void>((r) => mock.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(mock.address() as AddressInfo).port}/metal/v1`;
    try {
      const user = { IPAM_MAD: "allot", TYPE: "IP4", SIZE: "8", ALLOT_PROVIDER: "equinix", EQUINIX_PROJECT: "p-42", EQUINIX_METRO: "am", EQUINIX_TOKEN: "eq-token-0123456789", EQUINIX_API_URL: url };
      const r = await run("register_address_range", request(user, SKELETON));
      assert.equal(r.code, 0, r.message);
      const reply = readReply(r.stdout, "AR")!;
      assert.equal(reply.IP, "147.75.100.8");
      assert.equal(reply.SIZE, "8");
      assert.equal(reply.EQUINIX_PROJECT, "p-42");
      assert.equal(reply.EQUINIX_TOKEN, undefined, "the token is not echoed: Allot keeps it, sealed");
      assert.deepEqual(calls[0]!.body, { type: "public_ipv4", quantity: 8, metro: "am", fail_on_approval_required: true, comments: calls[0]!.body!.comments });
      const pool = await api(`/v1/pools/${reply.ALLOT_POOL_ID}`);
      assert.deepEqual(pool.body.secrets, { token: "…6789" });
      assert.equal((pool.body.provider as { blockId: string }).blockId, "f1b3c5d7-0000-4000-8000-00000000abcd");
      assert.ok(!JSON.stringify(pool.body).includes("eq-token-0123456789"));
      // every address of the block is leasable
      assert.equal((pool.body.usage as { total: string }).total, "8");

      const un = await run("unregister_address_range", request(storedAr(reply, 0), SKELETON));
      assert.equal(un.code, 0, un.message);
      assert.deepEqual(calls.at(-1), { method: "DELETE", url: "/metal/v1/ips/f1b3c5d7-0000-4000-8000-00000000abcd", token: "eq-token-0123456789", body: null });

      // the provider refuses: its reason reaches oned, and no pool is left behind
      failNext = true;
      const pools = (await api("/v1/pools")).body.items!.length;
      const refused = await run("register_address_range", request(user, SKELETON));
      assert.equal(refused.code, 1);
      assert.match(refused.message, /Equinix Metal answered 422: Quantity exceeds the project's IP quota/);
      const badToken = await run("register_address_range", request({ ...user, EQUINIX_TOKEN: "nope-nope-nope" }, SKELETON));
      assert.match(badToken.message, /answered 401: Invalid authentication token/);
      assert.equal((await api("/v1/pools")).body.items!.length, pools);
    } finally {
      mock.close();
    }
  });

  test("another Allot upstream: a regional range is a block of a global pool there, given back on unregister", async () => {
    const upstream = await startServerProcess(join(dir, "upstream"));
    try {
      const post = (path: string, body: unknown) =>
        fetch(new URL(path, upstream.url), { method: "POST", headers: { ...AUTH, "content-type": "application/json" }, body: JSON.stringify(body) });
      assert.equal((await post("/v1/pools", { name: "global", cidr: "100.64.0.0/16", allocateReserved: true })).status, 201);
      const user = { IPAM_MAD: "allot", TYPE: "IP4", SIZE: "16", ALLOT_PROVIDER: "allot", ALLOT_UPSTREAM_URL: upstream.url, ALLOT_UPSTREAM_POOL: "global", ALLOT_UPSTREAM_TOKEN: AUTH.authorization.slice(7) };
      const r = await run("register_address_range", request(user, SKELETON));
      assert.equal(r.code, 0, r.message);
      const reply = readReply(r.stdout, "AR")!;
      assert.equal(reply.IP, "100.64.0.0");
      assert.equal(reply.SIZE, "16");
      assert.equal(reply.ALLOT_UPSTREAM_TOKEN, undefined);
      const held = async () => ((await (await fetch(new URL("/v1/pools/global/allocations", upstream.url), { headers: AUTH })).json()) as { items: { size: number }[] }).items;
      assert.deepEqual((await held()).map((a) => a.size), [16]);
      const lease = await run("get_address", request(storedAr(reply, 0), plain([["SIZE", "1"]])));
      assert.deepEqual(readReply(lease.stdout, "ADDRESS"), { IP: "100.64.0.0", SIZE: "1" });
      assert.equal((await run("unregister_address_range", request(storedAr(reply, 1), SKELETON))).code, 0);
      assert.deepEqual(await held(), []);
    } finally {
      await upstream.stop();
    }
  });
});
