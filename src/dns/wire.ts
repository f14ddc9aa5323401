/**
 * The DNS wire format, as far as Allot needs it: RFC 2136 update messages, plain queries and AXFR,
 * signed with TSIG (RFC 8945), and decoding of the answers. No npm package signs TSIG or writes the
 * class NONE / empty-rdata records that deletions need, hence this small module.
 */
import { createHmac, randomInt, timingSafeEqual } from "node:crypto";
import { isIPv4, isIPv6 } from "node:net";
import ipaddr from "ipaddr.js";

export const TYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, AAAA: 28, TSIG: 250, AXFR: 252, ANY: 255 } as const;
export const CLASS = { IN: 1, NONE: 254, ANY: 255 } as const;
export const RCODE_NAMES = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE"];
const TSIG_ERRORS: Record<number, string> = { 16: "BADSIG", 17: "BADKEY", 18: "BADTIME", 22: "BADTRUNC" };

/** TSIG algorithms accepted, by their names in configuration (the wire name adds a dot). */
export const TSIG_ALGORITHMS = { "hmac-sha1": "sha1", "hmac-sha224": "sha224", "hmac-sha256": "sha256", "hmac-sha384": "sha384", "hmac-sha512": "sha512" } as const;
export type TsigAlgorithm = keyof typeof TSIG_ALGORITHMS;

export interface TsigKey {
  name: string;
  algorithm: TsigAlgorithm;
  /** The shared secret's bytes (configured as base64). */
  secret: Buffer;
}

/** One record as Allot models it: owner name and content without trailing dots, lower-case names. */
export interface Rr {
  name: string;
  type: string;
  ttl: number;
  /** An address for A/AAAA, a name for PTR/CNAME/NS, hex for anything else. */
  data: string;
}

const TYPE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(TYPE).map(([k, v]) => [v, k]));
export const typeCode = (t: string): number => {
  const c = (TYPE as Record<string, number>)[t];
  if (c === undefined) throw new Error(`unsupported record type ${t}`);
  return c;
};

export function encodeName(name: string): Buffer {
  const labels = name.replace(/\.$/, "").split(".").filter((l) => l.length > 0);
  const parts: Buffer[] = [];
  for (const l of labels) {
    const b = Buffer.from(l, "ascii");
    if (b.length > 63) throw new Error(`DNS label ${l} is longer than 63 bytes`);
    parts.push(Buffer.from([b.length]), b);
  }
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

const u16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
};
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

function rdataOf(type: string, data: string): Buffer {
  if (type === "A") {
    if (!isIPv4(data)) throw new Error(`A record content ${data} is not an IPv4 address`);
    return Buffer.from(ipaddr.parse(data).toByteArray());
  }
  if (type === "AAAA") {
    if (!isIPv6(data)) throw new Error(`AAAA record content ${data} is not an IPv6 address`);
    return Buffer.from(ipaddr.parse(data).toByteArray());
  }
  if (type === "PTR" || type === "CNAME" || type === "NS") return encodeName(data);
  throw new Error(`unsupported record type ${type}`);
}

function rr(name: string, type: number, cls: number, ttl: number, rdata: Buffer): Buffer {
  return Buffer.concat([encodeName(name), u16(type), u16(cls), u32(ttl), u16(rdata.length), rdata]);
}

function header(id: number, flags: number, counts: [number, number, number, number]): Buffer {
  return Buffer.concat([u16(id), u16(flags), ...counts.map(u16)]);
}

/** One name and type: its records become exactly `data` (none: the RRset is deleted). */
export interface RrsetChange {
  name: string;
  type: "A" | "AAAA" | "PTR";
  ttl: number;
  data: string[];
}

/**
 * An RFC 2136 update for `zone`: per RRset, "delete the name's records of that type" and then "add
 * these", so sending it twice leaves the same zone.
 */
export function updateMessage(id: number, zone: string, changes: readonly RrsetChange[]): Buffer {
  const updates: Buffer[] = [];
  for (const c of changes) {
    updates.push(rr(c.name, typeCode(c.type), CLASS.ANY, 0, Buffer.alloc(0)));
    for (const d of c.data) updates.push(rr(c.name, typeCode(c.type), CLASS.IN, c.ttl, rdataOf(c.type, d)));
  }
  return Buffer.concat([header(id, 5 << 11, [1, 0, updates.length, 0]), encodeName(zone), u16(TYPE.SOA), u16(CLASS.IN), ...updates]);
}

export function queryMessage(id: number, name: string, type: number): Buffer {
  return Buffer.concat([header(id, 0, [1, 0, 0, 0]), encodeName(name), u16(type), u16(CLASS.IN)]);
}

const algName = (a: TsigAlgorithm) => `${a}.`;

function tsigVariables(key: TsigKey, time: number, fudge: number, error: number, other: Buffer): Buffer {
  const t = Buffer.alloc(6);
  t.writeUIntBE(time, 0, 6);
  return Buffer.concat([encodeName(key.name.toLowerCase()), u16(CLASS.ANY), u32(0), encodeName(algName(key.algorithm)), t, u16(fudge), u16(error), u16(other.length), other]);
}

function hmac(key: TsigKey, ...parts: Buffer[]): Buffer {
  const h = createHmac(TSIG_ALGORITHMS[key.algorithm], key.secret);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Appends a TSIG record to a message; returns the signed message and its MAC (to check the reply with). */
export function sign(message: Buffer, key: TsigKey, now = Date.now()): { message: Buffer; mac: Buffer } {
  const time = Math.floor(now / 1000);
  const fudge = 300;
  const mac = hmac(key, message, tsigVariables(key, time, fudge, 0, Buffer.alloc(0)));
  const t = Buffer.alloc(6);
  t.writeUIntBE(time, 0, 6);
  const rdata = Buffer.concat([encodeName(algName(key.algorithm)), t, u16(fudge), u16(mac.length), mac, message.subarray(0, 2), u16(0), u16(0)]);
  const signed = Buffer.concat([message, rr(key.name.toLowerCase(), TYPE.TSIG, CLASS.ANY, 0, rdata)]);
  signed.writeUInt16BE(message.readUInt16BE(10) + 1, 10);
  return { message: signed, mac };
}

export interface Decoded {
  id: number;
  flags: number;
  rcode: number;
  questions: number;
  answers: Rr[];
  /** The TSIG record, if the message carries one, and where it starts. */
  tsig: { offset: number; algorithm: string; time: number; fudge: number; mac: Buffer; error: number; other: Buffer } | null;
}

function readName(buf: Buffer, start: number): { name: string; end: number } {
  const labels: string[] = [];
  let off = start;
  let end = -1;
  for (let jumps = 0; ; ) {
    if (off >= buf.length) throw new Error("truncated DNS name");
    const len = buf[off]!;
    if (len === 0) {
      if (end < 0) end = off + 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      if (++jumps > 64) throw new Error("DNS name compression loop");
      if (end < 0) end = off + 2;
      off = ((len & 0x3f) << 8) | buf[off + 1]!;
      continue;
    }
    labels.push(buf.toString("ascii", off + 1, off + 1 + len));
    off += 1 + len;
  }
  return { name: labels.join(".").toLowerCase(), end };
}

/** Decodes a reply: header, answer records (A, AAAA, PTR and other names decoded), and its TSIG. */
export function decode(buf: Buffer): Decoded {
  if (buf.length < 12) throw new Error("DNS message shorter than its header");
  const id = buf.readUInt16BE(0);
  const flags = buf.readUInt16BE(2);
  const [qd, an, ns, ar] = [4, 6, 8, 10].map((o) => buf.readUInt16BE(o)) as [number, number, number, number];
  let off = 12;
  for (let i = 0; i < qd; i++) off = readName(buf, off).end + 4;
  const answers: Rr[] = [];
  let tsig: Decoded["tsig"] = null;
  for (let i = 0; i < an + ns + ar; i++) {
    const start = off;
    const n = readName(buf, off);
    off = n.end;
    const type = buf.readUInt16BE(off);
    const ttl = buf.readUInt32BE(off + 4);
    const len = buf.readUInt16BE(off + 8);
    const rd = off + 10;
    off = rd + len;
    if (type === TYPE.TSIG) {
      const alg = readName(buf, rd);
      let p = alg.end;
      const time = buf.readUIntBE(p, 6);
      const fudge = buf.readUInt16BE(p + 6);
      const macLen = buf.readUInt16BE(p + 8);
      const mac = buf.subarray(p + 10, p + 10 + macLen);
      p += 10 + macLen + 2;
      const error = buf.readUInt16BE(p);
      const otherLen = buf.readUInt16BE(p + 2);
      tsig = { offset: start, algorithm: alg.name, time, fudge, mac: Buffer.from(mac), error, other: buf.subarray(p + 4, p + 4 + otherLen) };
      continue;
    }
    if (i >= an) continue;
    const typeName = TYPE_NAMES[type] ?? `TYPE${type}`;
    let data: string;
    if (type === TYPE.A && len === 4) data = ipaddr.fromByteArray([...buf.subarray(rd, rd + 4)]).toString();
    else if (type === TYPE.AAAA && len === 16) data = ipaddr.fromByteArray([...buf.subarray(rd, rd + 16)]).toString();
    else if (type === TYPE.PTR || type === TYPE.CNAME || type === TYPE.NS) data = readName(buf, rd).name;
    else if (type === TYPE.SOA) data = `${readName(buf, rd).name} serial`;
    else data = buf.subarray(rd, rd + len).toString("hex");
    answers.push({ name: n.name, type: typeName, ttl, data });
  }
  return { id, flags, rcode: flags & 0xf, questions: qd, answers, tsig };
}

/**
 * Checks a reply's TSIG against the request's MAC (RFC 8945 5.3). Throws with the server's words
 * (BADSIG, BADKEY, BADTIME: the key or clock is wrong) or when the reply's MAC does not verify.
 */
export function verifyReply(reply: Buffer, d: Decoded, key: TsigKey, requestMac: Buffer): void {
  const t = d.tsig;
  if (!t) throw new Error("the reply is not signed (the server does not know the key, or it is not a DNS server with TSIG)");
  if (t.error !== 0) throw new Error(`the server refused the TSIG signature: ${TSIG_ERRORS[t.error] ?? `TSIG error ${t.error}`}`);
  const body = Buffer.from(reply.subarray(0, t.offset));
  body.writeUInt16BE(reply.readUInt16BE(10) - 1, 10);
  const want = hmac(key, u16(requestMac.length), requestMac, body, tsigVariables(key, t.time, t.fudge, t.error, t.other));
  if (want.length !== t.mac.length || !timingSafeEqual(want, t.mac)) throw new Error("the reply's TSIG signature does not verify: check the key's secret and algorithm");
}

export const newId = () => randomInt(0, 0x10000);

/** The rcode's name, with TSIG errors (carried in the TSIG record) spelt out. */
export function rcodeText(d: Decoded): string {
  const base = RCODE_NAMES[d.rcode] ?? `RCODE ${d.rcode}`;
  if (d.tsig && d.tsig.error !== 0) return `${base} (${TSIG_ERRORS[d.tsig.error] ?? `TSIG error ${d.tsig.error}`})`;
  return base;
}
