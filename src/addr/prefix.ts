import { AddressSyntaxError, BITS, type Address, type Family, formatAddress, parseAddress } from "./address.js";

/** A CIDR prefix: network address and length. */
export interface Prefix {
  readonly family: Family;
  /** The network address (host bits zero). */
  readonly network: bigint;
  readonly length: number;
}

export function prefixSize(p: Prefix): bigint {
  return 1n << BigInt(BITS[p.family] - p.length);
}

export function prefixFirst(p: Prefix): bigint {
  return p.network;
}

export function prefixLast(p: Prefix): bigint {
  return p.network + prefixSize(p) - 1n;
}

export function maskOf(family: Family, length: number): bigint {
  const bits = BigInt(BITS[family]);
  return ((1n << bits) - 1n) ^ ((1n << (bits - BigInt(length))) - 1n);
}

/** The prefix of the given length that contains the address. */
export function prefixContaining(a: Address, length: number): Prefix {
  return { family: a.family, network: a.value & maskOf(a.family, length), length };
}

export function prefixContains(p: Prefix, a: Address): boolean {
  return a.family === p.family && a.value >= p.network && a.value <= prefixLast(p);
}

export function parsePrefixLength(text: string | number, family: Family): number {
  const s = String(text).trim();
  const n = /^\d{1,3}$/.test(s) ? Number(s) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > BITS[family]) {
    throw new AddressSyntaxError(s, `a prefix length for IPv${family} (0 to ${BITS[family]})`);
  }
  return n;
}

/**
 * Parses "address/length". With `strict`, host bits must be zero (10.0.0.0/24, not 10.0.0.1/24),
 * because a pool or child written with host bits set is nearly always a typing mistake.
 */
export function parsePrefix(text: string, strict = true): Prefix {
  const s = typeof text === "string" ? text.trim() : "";
  const slash = s.indexOf("/");
  if (slash < 0) throw new AddressSyntaxError(String(text), "a CIDR prefix such as 10.0.0.0/24 or 2001:db8::/64");
  const a = parseAddress(s.slice(0, slash));
  let length: number;
  try {
    length = parsePrefixLength(s.slice(slash + 1), a.family);
  } catch {
    // named as the whole prefix the user typed, not the number alone
    throw new AddressSyntaxError(String(text), `a CIDR prefix: /${s.slice(slash + 1)} is not a prefix length for IPv${a.family} (0 to ${BITS[a.family]})`);
  }
  const p = prefixContaining(a, length);
  if (strict && p.network !== a.value) {
    throw new AddressSyntaxError(
      String(text),
      `a CIDR prefix with its host bits zero (did you mean ${formatPrefix(p)}?)`,
    );
  }
  return p;
}

export function formatPrefix(p: Prefix): string {
  return `${formatAddress({ family: p.family, value: p.network })}/${p.length}`;
}
