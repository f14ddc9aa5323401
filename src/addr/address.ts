import ipaddr from "ipaddr.js";

/** Address family: 4 or 6. */
export type Family = 4 | 6;

/** An IP address as a family and an unsigned integer (32 or 128 bits). */
export interface Address {
  readonly family: Family;
  readonly value: bigint;
}

export const BITS: Record<Family, number> = { 4: 32, 6: 128 };
export const MAX: Record<Family, bigint> = { 4: (1n << 32n) - 1n, 6: (1n << 128n) - 1n };

/** Thrown for text that is not an address or prefix; callers turn it into a 400. */
export class AddressSyntaxError extends Error {
  constructor(
    readonly input: string,
    readonly expected: string,
  ) {
    super(`"${input}" is not ${expected}`);
  }
}

function bytesToBigInt(bytes: number[]): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

function bigIntToBytes(value: bigint, length: number): number[] {
  const out = new Array<number>(length);
  for (let i = length - 1; i >= 0; i--) {
    out[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return out;
}

/**
 * Parses any valid text form of an IPv4 or IPv6 address. IPv4 must be four decimal parts
 * ("10.1" or "010.0.0.1" are accepted by some parsers with surprising meanings, so they are refused);
 * IPv6 zone ids are refused because an address plan has no interfaces.
 */
export function parseAddress(text: string): Address {
  const s = typeof text === "string" ? text.trim() : "";
  if (s.includes("%")) throw new AddressSyntaxError(String(text), "an IP address (zone ids such as %eth0 are not allowed)");
  if (ipaddr.IPv4.isValidFourPartDecimal(s)) {
    return { family: 4, value: bytesToBigInt(ipaddr.IPv4.parse(s).toByteArray()) };
  }
  if (s.includes(":") && ipaddr.IPv6.isValid(s)) {
    return { family: 6, value: bytesToBigInt(ipaddr.IPv6.parse(s).toByteArray()) };
  }
  throw new AddressSyntaxError(String(text), "a valid IPv4 or IPv6 address");
}

/** Canonical text: dotted quad for IPv4, RFC 5952 for IPv6 (IPv4-mapped in mixed notation). */
export function formatAddress(a: Address): string {
  if (a.family === 4) return ipaddr.fromByteArray(bigIntToBytes(a.value, 4)).toString();
  const v6 = ipaddr.fromByteArray(bigIntToBytes(a.value, 16)) as ipaddr.IPv6;
  if (v6.isIPv4MappedAddress()) return `::ffff:${v6.toIPv4Address().toString()}`;
  return v6.toRFC5952String();
}

/** Canonical form of any valid address text. */
export function canonicalAddress(text: string): string {
  return formatAddress(parseAddress(text));
}

/** Fixed-width big-endian bytes, so that byte order equals numeric order in the store's indexes. */
export function toKey(value: bigint): Buffer {
  const buf = Buffer.alloc(16);
  let v = value;
  for (let i = 15; i >= 0; i--) {
    buf[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return buf;
}

export function fromKey(buf: Uint8Array): bigint {
  let v = 0n;
  for (const b of buf) v = (v << 8n) | BigInt(b);
  return v;
}
