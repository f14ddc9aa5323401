/**
 * Neutron's address rules: default gateways and allocation pools per family, the checks on pools a
 * user gives, and EUI-64 addresses from a MAC.
 */
import { type Address, type Family, type Prefix, formatAddress, parseAddress, parsePrefix, prefixLast } from "../../addr/index.js";
import { normalizeMac } from "../../engine/mac.js";
import { NeutronError, invalidInput } from "./errors.js";

export interface Range {
  start: string;
  end: string;
}

export function parseCidr(text: unknown): Prefix {
  try {
    // Neutron takes 10.0.0.5/24 and stores its network, 10.0.0.0/24
    return parsePrefix(String(text), false);
  } catch {
    throw new NeutronError(400, "InvalidInput", `Invalid input for cidr. Reason: '${String(text)}' is not a valid IP subnet.`);
  }
}

export function parseIp(text: unknown, field: string): Address {
  try {
    if (typeof text !== "string") throw new Error();
    return parseAddress(text);
  } catch {
    throw new NeutronError(400, "InvalidInput", `Invalid input for ${field}. Reason: '${String(text)}' is not a valid IP address.`);
  }
}

export function parseMac(text: unknown): string {
  try {
    if (typeof text !== "string") throw new Error();
    return normalizeMac(text);
  } catch {
    throw new NeutronError(400, "InvalidInput", `Invalid input for mac_address. Reason: '${String(text)}' is not a valid MAC address.`);
  }
}

const ip = (family: Family, value: bigint) => formatAddress({ family, value });

/** The first and last address a pool may use (Neutron's generate_pools bounds). */
export function usableBounds(p: Prefix): [bigint, bigint] {
  const last = prefixLast(p);
  if (p.family === 4) return p.length >= 31 ? [p.network, last] : [p.network + 1n, last - 1n];
  return p.length === 128 ? [p.network, last] : [p.network + 1n, last];
}

/** The gateway Neutron gives a subnet when none is asked for: network+1 (IPv4, a /32 its one address), the network address itself (IPv6). */
export function defaultGateway(p: Prefix): string {
  return p.family === 4 ? ip(4, p.length === 32 ? p.network : p.network + 1n) : ip(6, p.network);
}

/** The default allocation pools: the usable bounds with the gateway cut out (which may split them in two). */
export function defaultPools(p: Prefix, gateway: string | null): Range[] {
  const [lo, hi] = usableBounds(p);
  const g = gateway === null ? null : parseAddress(gateway);
  if (!g || g.family !== p.family || g.value < lo || g.value > hi) return [{ start: ip(p.family, lo), end: ip(p.family, hi) }];
  const out: Range[] = [];
  if (g.value > lo) out.push({ start: ip(p.family, lo), end: ip(p.family, g.value - 1n) });
  if (g.value < hi) out.push({ start: ip(p.family, g.value + 1n), end: ip(p.family, hi) });
  return out;
}

/** Checks user-given pools as Neutron does; returns them sorted, canonically written. */
export function checkPools(p: Prefix, pools: unknown, gateway: string | null): Range[] {
  if (!Array.isArray(pools)) throw invalidInput("allocation_pools must be a list of {start, end}");
  const [lo, hi] = usableBounds(p);
  const parsed = pools.map((r) => {
    const o = (r ?? {}) as { start?: unknown; end?: unknown };
    const what = `${String(o.start)}-${String(o.end)}`;
    let a: Address;
    let b: Address;
    try {
      a = parseAddress(String(o.start));
      b = parseAddress(String(o.end));
    } catch {
      throw new NeutronError(400, "InvalidAllocationPool", `The allocation pool ${what} is not valid.`);
    }
    if (a.family !== p.family || b.family !== p.family || a.value > b.value) throw new NeutronError(400, "InvalidAllocationPool", `The allocation pool ${what} is not valid.`);
    if (a.value < lo || b.value > hi) {
      throw new NeutronError(400, "OutOfBoundsAllocationPool", `The allocation pool ${what} spans beyond the subnet cidr ${ip(p.family, p.network)}/${p.length}.`);
    }
    return { a: a.value, b: b.value };
  });
  parsed.sort((x, y) => (x.a < y.a ? -1 : x.a > y.a ? 1 : 0));
  for (let i = 1; i < parsed.length; i++) {
    if (parsed[i]!.a <= parsed[i - 1]!.b) {
      const r = (x: { a: bigint; b: bigint }) => `${ip(p.family, x.a)}-${ip(p.family, x.b)}`;
      throw new NeutronError(409, "OverlappingAllocationPools", `Found overlapping allocation pools: ${r(parsed[i - 1]!)} and ${r(parsed[i]!)} for subnet ${ip(p.family, p.network)}/${p.length}.`);
    }
  }
  if (gateway !== null) {
    const g = parseAddress(gateway);
    const hit = parsed.find((x) => g.family === p.family && g.value >= x.a && g.value <= x.b);
    if (hit) throw new NeutronError(409, "GatewayConflictWithAllocationPools", `Gateway ip ${gateway} conflicts with allocation pool ${ip(p.family, hit.a)}-${ip(p.family, hit.b)}.`);
  }
  return parsed.map((x) => ({ start: ip(p.family, x.a), end: ip(p.family, x.b) }));
}

/**
 * The EUI-64 address of a MAC in a /64: the prefix's network bits with the interface identifier (the
 * MAC with its universal/local bit flipped and ff:fe in the middle). 2001:db8::/64 and aa:bb:cc:dd:ee:ff
 * give 2001:db8::a8bb:ccff:fedd:eeff.
 */
export function eui64(p: Prefix, mac: string): string {
  const b = normalizeMac(mac).split(":").map((h) => parseInt(h, 16));
  const id = [b[0]! ^ 0x02, b[1]!, b[2]!, 0xff, 0xfe, b[3]!, b[4]!, b[5]!].reduce((acc, x) => (acc << 8n) | BigInt(x), 0n);
  return ip(6, p.network | id);
}

/** A MAC in OpenStack's default base (fa:16:3e), the rest random. */
export function randomMac(random: () => number = Math.random): string {
  const tail = [0, 0, 0].map(() => Math.floor(random() * 256).toString(16).padStart(2, "0"));
  return ["fa", "16", "3e", ...tail].join(":");
}
