/**
 * The five OpenNebula IPAM actions, backed by an Allot server. An address range (AR) becomes an Allot
 * pool whose id is echoed back to oned as ALLOT_POOL_ID; leases are single-address allocations (a
 * SIZE=n lease is n neighbouring ones, which oned frees one at a time). Each action makes one or two
 * API calls, so it answers in a fraction of a second.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import ipaddr from "ipaddr.js";
import { parse as parseYaml } from "yaml";
import { MAX, formatAddress, maskOf, parseAddress, prefixContaining, prefixContains } from "../../addr/index.js";
import { ApiError, Client, seg } from "../../cli/client.js";
import { type ActionData, DriverError, ONED_LOG_LINE, assertRepliable, decodeBase64, parseActionData, renderVector } from "./protocol.js";

export const ACTIONS = ["register_address_range", "unregister_address_range", "get_address", "allocate_address", "free_address"] as const;
export type Action = (typeof ACTIONS)[number];

export const CONFIG_FILE = "allot-ipam.yaml";

export interface DriverConfig {
  url: string;
  token: string;
  /** The Allot space that holds OpenNebula's ranges. */
  space: string;
  /** How long an action may take, in seconds: oned runs IPAM actions one at a time and waits 90 s. */
  timeout: number;
  /** The pool (name or id, in `space`) a range registered without IP gets its block from, unless the AR names one. */
  parent: string | null;
}

export const DEFAULT_TIMEOUT = 20;
/** Above this an action could outlast oned's own 90 s wait, and a hung server would block its IPAM. */
export const MAX_TIMEOUT = 80;

/** allot-ipam.yaml beside the scripts, then ALLOT_URL / ALLOT_TOKEN / ALLOT_SPACE, which win. */
export function loadConfig(scriptDir: string, env: NodeJS.ProcessEnv): DriverConfig {
  let file: Record<string, unknown> = {};
  const path = join(scriptDir, CONFIG_FILE);
  try {
    file = (parseYaml(readFileSync(path, "utf8")) as Record<string, unknown> | null) ?? {};
  } catch (err) {
    if ((err as { code?: string }).code !== "ENOENT") throw new DriverError(`${path} cannot be read: ${(err as Error).message.split("\n")[0]}`);
  }
  const url = env.ALLOT_URL || (file.url as string | undefined);
  const token = env.ALLOT_TOKEN || (file.token as string | undefined);
  if (!url) throw new DriverError(`no Allot URL: set url in ${path} or ALLOT_URL`);
  if (!token) throw new DriverError(`no Allot token: set token in ${path} or ALLOT_TOKEN`);
  const timeout = file.timeout ?? DEFAULT_TIMEOUT;
  if (typeof timeout !== "number" || !(timeout > 0 && timeout <= MAX_TIMEOUT)) {
    throw new DriverError(`timeout in ${path} must be a number of seconds above 0 and at most ${MAX_TIMEOUT} (oned waits 90 s), not ${JSON.stringify(timeout)}`);
  }
  const parent = file.parent ?? null;
  if (parent !== null && (typeof parent !== "string" || parent === "")) throw new DriverError(`parent in ${path} must be the name or id of an Allot pool, not ${JSON.stringify(parent)}`);
  return { url, token, space: env.ALLOT_SPACE || (file.space as string | undefined) || "default", timeout, parent };
}

interface Pool {
  id: string;
  allocateReserved: boolean;
  exclusions: { start: string; end: string }[];
  ranges: { start: string; end: string; prefixLength: number; gateway: string | null; dns: string[] }[];
  gateway: string | null;
  usage: { total: string };
}
interface Allocation {
  address: string;
}

/** Types whose IPv4 part Allot manages; the others oned computes alone (research: get_address never works for them). */
const IPV4_TYPES = ["IP4", "IP4_6", "IP4_6_STATIC"];
/** Attributes that carry credentials: used once at register, stored encrypted by Allot, never echoed back to oned. */
const SECRET_ATTRIBUTES = ["EQUINIX_TOKEN", "PACKET_TOKEN", "ALLOT_UPSTREAM_TOKEN"];

/** A dotted IPv4 address of the AR as a number (IPv6 is oned's to compute), or the reason it is not one. */
function ipv4(text: string, what: string): bigint {
  try {
    const a = parseAddress(text);
    if (a.family === 4) return a.value;
  } catch {
    // said below
  }
  throw new DriverError(`${what} "${text}" is not a dotted IPv4 address`);
}
const dotted = (value: bigint) => formatAddress({ family: 4, value });

function size(text: string | undefined, what: string): number {
  if (text === undefined) throw new DriverError(`${what} is missing`);
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new DriverError(`${what} must be a whole number of at least 1, not "${text}"`);
  return Number(text);
}

function poolId(ar: Record<string, string>): string {
  const id = ar.ALLOT_POOL_ID;
  if (!id) throw new DriverError("this address range has no ALLOT_POOL_ID: it was not registered through Allot (re-add it with onevnet addar)");
  return id;
}

/** The prefix length a dotted netmask gives. */
function maskLength(mask: string): number {
  if (!ipaddr.IPv4.isValidFourPartDecimal(mask)) throw new DriverError(`NETWORK_MASK "${mask}" is not a dotted IPv4 netmask`);
  const length = ipaddr.IPv4.parse(mask).prefixLengthFromSubnetMask();
  if (length === null) throw new DriverError(`NETWORK_MASK "${mask}" is not a contiguous netmask`);
  return length;
}

/** The longest prefix holding every one of these addresses. */
function coveringLength(addresses: bigint[]): number {
  let p = 32;
  while (p > 0 && new Set(addresses.map((a) => prefixContaining({ family: 4, value: a }, p).network)).size > 1) p--;
  return p;
}

async function register(c: Client, cfg: DriverConfig, data: ActionData): Promise<string> {
  const ar = data.ar;
  if (!ar.IPAM_MAD) throw new DriverError("the address range has no IPAM_MAD");
  const type = ar.TYPE;
  if (!type) throw new DriverError('the address range has no TYPE: give TYPE = "IP4" (or "IP4_6") in the AR');
  if (!IPV4_TYPES.includes(type)) {
    throw new DriverError(`TYPE ${type} ranges are computed by OpenNebula itself and cannot be leased by an IPAM; use TYPE IP4, IP4_6 or IP4_6_STATIC with Allot, or leave IPAM_MAD out`);
  }
  // the reply replaces the whole range in oned: it echoes every attribute the user gave (credentials
  // excepted) exactly, so one that cannot be echoed is refused before anything is made
  const echoed = Object.fromEntries(Object.entries(ar).filter(([k]) => !SECRET_ATTRIBUTES.includes(k)));
  assertRepliable(echoed);
  const name = `one-${randomBytes(4).toString("hex")}`;
  const provider = ar.ALLOT_PROVIDER;
  const parent = ar.ALLOT_PARENT ?? cfg.parent;
  // Allot chooses the network (a provider's block, or a block of a parent pool) only when the AR gives no IP
  const chosen = provider !== undefined || ar.IP === undefined;
  let pool: Pool;
  if (provider) {
    const n = size(ar.SIZE, "SIZE");
    const body = { name, space: cfg.space, ...providerRequest(provider, ar, n) };
    pool = await c.request<Pool>("POST", "v1/pools", body);
  } else if (ar.IP === undefined) {
    if (!parent) {
      throw new DriverError(
        'the address range has no IP: give its first address (IP = "10.0.0.10") and SIZE, ALLOT_PROVIDER to obtain one, or a parent pool for Allot to choose a block from (ALLOT_PARENT in the AR, or parent in allot-ipam.yaml)',
      );
    }
    pool = await carve(c, cfg, parent, name, size(ar.SIZE, "SIZE"), type);
  } else {
    const ip = ar.IP;
    const first = ipv4(ip, "IP");
    const n = size(ar.SIZE, "SIZE");
    const last = first + BigInt(n) - 1n;
    if (last > MAX[4]) throw new DriverError(`IP ${ip} with SIZE ${n} runs past 255.255.255.255`);
    const gateway = ar.GATEWAY;
    const gw = gateway !== undefined ? ipv4(gateway, "GATEWAY") : undefined;
    // The network is oned's: a mask set on the virtual network never reaches the driver, and oned hands out
    // whatever the AR says. So nothing is guessed for oned. Allot's pool needs a prefix: NETWORK_MASK's when
    // given, else the narrowest holding the range and its gateway; a gateway outside a given mask (a routed
    // /32, say) is oned's business, so Allot just does not record it.
    const prefixLength = ar.NETWORK_MASK !== undefined ? maskLength(ar.NETWORK_MASK) : coveringLength([first, last, ...(gw !== undefined ? [gw] : [])]);
    const net = prefixContaining({ family: 4, value: first }, prefixLength);
    const inPrefix = (value: bigint) => prefixContains(net, { family: 4, value });
    if (!inPrefix(last)) throw new DriverError(`IP ${ip} with SIZE ${n} (up to ${dotted(last)}) does not fit inside NETWORK_MASK ${ar.NETWORK_MASK}; shorten the range or widen the mask`);
    const dns = ar.DNS ? ar.DNS.split(/[\s,]+/).filter(Boolean) : undefined;
    pool = await c.request<Pool>("POST", "v1/pools", {
      name,
      space: cfg.space,
      // every address of the range is oned's to lease, network and broadcast included if it spans them
      allocateReserved: true,
      ranges: [{ start: ip, end: dotted(last), prefixLength, ...(gw !== undefined && inPrefix(gw) ? { gateway } : {}) }],
      ...(dns ? { dns } : {}),
      description: `OpenNebula address range (${type})`,
    });
  }
  // besides the user's own, only Allot's key and, where Allot chose the network, that network
  return renderVector("AR", { ...echoed, ...(chosen ? chosenNetwork(pool, ar) : {}), ALLOT_POOL_ID: pool.id });
}

/**
 * A block for the range, carved from the parent pool as a child pool of its own: the smallest aligned
 * block whose addresses, less its network and broadcast address and room for the parent's router,
 * hold SIZE. The range is then every one of those addresses the child hands out, so SIZE may come
 * back larger than asked (a SIZE of 7 gets a /28: 14, or 13 where the block holds the parent's router).
 */
async function carve(c: Client, cfg: DriverConfig, parent: string, name: string, n: number, type: string): Promise<Pool> {
  const MOST = 2 ** 24 - 3;
  if (n > MOST) throw new DriverError(`SIZE ${n} is more than a block carved for one range may hold (at most ${MOST})`);
  // room for SIZE besides the block's network and broadcast and, should the block hold it, the parent's router
  let bits = 2;
  while (2 ** bits - 3 < n) bits++;
  try {
    return await c.request<Pool>("POST", `v1/pools/${seg(parent)}/children`, { name, prefixLength: 32 - bits, description: `OpenNebula address range (${type}), a block Allot chose` }, { space: cfg.space });
  } catch (err) {
    if (err instanceof ApiError && err.code === "block-unavailable") throw new DriverError(`parent pool ${parent} has no free /${32 - bits} left for SIZE ${n}: free some of it, or name another parent (ALLOT_PARENT)`);
    if (err instanceof ApiError && (err.code === "pool-not-found" || err.code === "space-not-found")) throw new DriverError(`parent pool ${parent} does not exist in space ${cfg.space}: ${err.message}`);
    throw err;
  }
}

/** The network of a block Allot chose, for the attributes the user left to it. */
function chosenNetwork(pool: Pool, ar: Record<string, string>): Record<string, string> {
  const range = pool.ranges[0]!;
  const start = parseAddress(range.start);
  const end = parseAddress(range.end);
  // a carved subnet keeps its network and broadcast addresses back, and the parent's router where the
  // block holds it (at either end of what is left); a provider's block is leased whole
  const inner = !pool.allocateReserved && end.value - start.value >= 3n ? 1n : 0n;
  const excluded = (v: bigint) => pool.exclusions.some((e) => parseAddress(e.start).value <= v && v <= parseAddress(e.end).value);
  let lo = start.value + inner;
  let hi = end.value - inner;
  while (lo < hi && excluded(lo)) lo++;
  while (hi > lo && excluded(hi)) hi--;
  const network: Record<string, string> = {
    IP: dotted(lo),
    SIZE: String(hi - lo + 1n),
    NETWORK_ADDRESS: dotted(prefixContaining(start, range.prefixLength).network),
    NETWORK_MASK: dotted(maskOf(4, range.prefixLength)),
    ...(range.gateway ? { GATEWAY: range.gateway } : {}),
    ...(range.dns.length > 0 ? { DNS: range.dns.join(" ") } : {}),
  };
  // IP and SIZE are the block's own; the rest only where the user gave none
  return Object.fromEntries(Object.entries(network).filter(([k]) => k === "IP" || k === "SIZE" || ar[k] === undefined));
}

/** A pool's provider request from AR attributes (the Packet/Equinix names OpenNebula's own driver used, too). */
function providerRequest(provider: string, ar: Record<string, string>, n: number): Record<string, unknown> {
  if (provider === "equinix" || provider === "packet") {
    const token = ar.EQUINIX_TOKEN ?? ar.PACKET_TOKEN;
    if (!token) throw new DriverError("ALLOT_PROVIDER equinix needs EQUINIX_TOKEN (the API token) in the address range");
    const url = ar.EQUINIX_API_URL ?? (provider === "packet" ? "https://api.packet.net" : undefined);
    const metro = ar.EQUINIX_METRO;
    const facility = ar.EQUINIX_FACILITY ?? ar.FACILITY;
    return {
      provider: {
        type: "equinix",
        size: n,
        project: ar.EQUINIX_PROJECT ?? ar.PACKET_PROJECT,
        ipType: ar.EQUINIX_IP_TYPE ?? ar.PACKET_IP_TYPE ?? "public_ipv4",
        ...(metro ? { metro } : {}),
        ...(facility ? { facility } : {}),
        ...(url ? { url } : {}),
      },
      secrets: { token },
    };
  }
  if (provider === "allot") {
    const token = ar.ALLOT_UPSTREAM_TOKEN;
    if (!token) throw new DriverError("ALLOT_PROVIDER allot needs ALLOT_UPSTREAM_TOKEN (a token of the upstream Allot) in the address range");
    return {
      provider: { type: "allot", size: n, url: ar.ALLOT_UPSTREAM_URL, pool: ar.ALLOT_UPSTREAM_POOL, ...(ar.ALLOT_UPSTREAM_SPACE ? { space: ar.ALLOT_UPSTREAM_SPACE } : {}) },
      secrets: { token },
    };
  }
  throw new DriverError(`ALLOT_PROVIDER must be equinix, packet or allot, not "${provider}"`);
}

async function getAddress(c: Client, data: ActionData): Promise<string> {
  const id = poolId(data.ar);
  const n = size(data.address.SIZE ?? "1", "ADDRESS/SIZE");
  const first =
    n === 1
      ? (await c.request<Allocation>("POST", `v1/pools/${seg(id)}/allocations`, {})).address
      : (await c.request<{ items: Allocation[] }>("POST", `v1/pools/${seg(id)}/allocations/bulk`, { count: n, contiguous: true })).items[0]!.address;
  return renderVector("ADDRESS", { IP: first, SIZE: String(n) });
}

async function allocateAddress(c: Client, data: ActionData): Promise<void> {
  const id = poolId(data.ar);
  const ip = data.address.IP;
  if (!ip) throw new DriverError("allocate_address needs ADDRESS/IP (Allot leases IPv4; this range sent none)");
  const n = size(data.address.SIZE ?? "1", "ADDRESS/SIZE");
  if (n === 1) await c.request("POST", `v1/pools/${seg(id)}/allocations`, { address: ip });
  else await c.request("POST", `v1/pools/${seg(id)}/allocations/bulk`, { count: n, contiguous: true, address: ip });
}

async function freeAddress(c: Client, data: ActionData): Promise<void> {
  const id = poolId(data.ar);
  const ip = data.address.IP;
  if (!ip) throw new DriverError("free_address needs ADDRESS/IP");
  try {
    await c.request("DELETE", `v1/pools/${seg(id)}/allocations`, undefined, { address: ip });
  } catch (err) {
    // already free (or the range already gone): the outcome oned wants
    if (err instanceof ApiError && (err.code === "allocation-not-found" || err.code === "pool-not-found")) return;
    throw err;
  }
}

async function unregister(c: Client, data: ActionData): Promise<void> {
  const id = poolId(data.ar);
  try {
    await c.request("DELETE", `v1/pools/${seg(id)}`, undefined, { force: "true" });
  } catch (err) {
    if (err instanceof ApiError && err.code === "pool-not-found") return;
    throw err;
  }
}

export interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs one action: `args` as oned passes them (the request id; in OpenNebula 5.8 and older the base64
 * itself), `stdin` the base64 request. Never throws: failures become exit 1 and one line on stderr.
 */
export async function runAction(action: Action, args: string[], stdin: string, scriptDir: string, env: NodeJS.ProcessEnv): Promise<Outcome> {
  try {
    // 5.8 and older: no stdin, the request is argv[1]
    const raw = stdin.trim() !== "" ? stdin : args.find((a) => a.length > 16 && /^[A-Za-z0-9+/=]+$/.test(a)) ?? "";
    const data = parseActionData(decodeBase64(raw));
    const cfg = loadConfig(scriptDir, env);
    const c = new Client(cfg.url, cfg.token, undefined, cfg.timeout * 1000);
    let stdout = "";
    if (action === "register_address_range") stdout = await register(c, cfg, data);
    else if (action === "get_address") stdout = await getAddress(c, data);
    else if (action === "allocate_address") await allocateAddress(c, data);
    else if (action === "free_address") await freeAddress(c, data);
    else await unregister(c, data);
    return { code: 0, stdout, stderr: "" };
  } catch (err) {
    let message = err instanceof DriverError || err instanceof ApiError ? err.message : `unexpected failure: ${(err as Error).message}`;
    if (err instanceof ApiError && err.code === "timeout") message += ` (timeout in ${join(scriptDir, CONFIG_FILE)})`;
    // one line, and never one oned would take for its own log line and drop
    let line = `allot ${action}: ${message}`.replace(/\s+/g, " ").trim();
    if (ONED_LOG_LINE.test(line)) line = `allot: ${line}`;
    return { code: 1, stdout: "", stderr: `${line}\n` };
  }
}

/** Entry point of an installed action script. */
export async function main(action: Action): Promise<void> {
  const scriptDir = dirname(process.argv[1]!);
  // oned waits for one action at a time: whatever else stalls (stdin left open, say), end within the limit
  let limit = DEFAULT_TIMEOUT;
  try {
    limit = loadConfig(scriptDir, process.env).timeout;
  } catch {
    // runAction reports the config's problem
  }
  setTimeout(() => {
    process.stderr.write(`allot ${action}: did not finish within ${limit} s (timeout in ${join(scriptDir, CONFIG_FILE)})\n`);
    process.exit(1);
  }, limit * 1000 + 1000).unref();
  const stdin = process.stdin.isTTY ? "" : await readAll(process.stdin);
  const out = await runAction(action, process.argv.slice(2), stdin, scriptDir, process.env);
  process.stdout.write(out.stdout);
  process.stderr.write(out.stderr);
  process.exitCode = out.code;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  return Buffer.concat(chunks).toString("utf8");
}
