/**
 * DNS names Allot writes: zone names, the reverse zone of a prefix and back, PTR owner names, host
 * names made fully qualified, and names made from a pool's template. Names are kept lower-case and
 * without the trailing dot.
 */
import { type Address, type Family, type Prefix, formatAddress, parseAddress, parsePrefix, prefixContains, prefixLast } from "../addr/index.js";
import { AllotError } from "../engine/errors.js";

const LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** Lower-cases and drops one trailing dot; refuses what is not a DNS name of letters, digits, '-' and '_'. */
export function dnsName(text: string, field: string): string {
  const n = text.trim().toLowerCase().replace(/\.$/, "");
  const why = nameProblem(n);
  if (why) throw new AllotError("invalid-request", `${field}: ${JSON.stringify(text)} is not a valid DNS name (${why})`);
  return n;
}

export function nameProblem(n: string): string | null {
  if (n.length === 0) return "it is empty";
  if (n.length > 253) return "longer than 253 characters";
  for (const l of n.split(".")) {
    if (l.length === 0) return "an empty label (two dots in a row, or a leading dot)";
    if (l.length > 63) return `label ${l.slice(0, 20)}… is longer than 63 characters`;
    if (!LABEL.test(l)) return `label ${JSON.stringify(l)} may hold only letters, digits, '-' and '_', and not start or end with '-'`;
  }
  return null;
}

/** A reverse zone's address span: the whole prefix it covers. */
export interface ReverseSpan {
  prefix: Prefix;
  /** For RFC 2317 zones (IPv4 shorter than a /24): the label added below the /24's name, "0-25". */
  classless: string | null;
}

/**
 * The reverse zone for a prefix. IPv4 on octet boundaries (10.in-addr.arpa, 2.0.192.in-addr.arpa);
 * longer IPv4 prefixes (/25 to /32) in the RFC 2317 form `<first>-<length>.<c>.<b>.<a>.in-addr.arpa`
 * (0-25.2.0.192.in-addr.arpa), which the parent zone delegates with CNAMEs; IPv6 on nibble boundaries.
 */
export function reverseZoneOf(cidr: string): string {
  let p: Prefix;
  try {
    p = parsePrefix(cidr);
  } catch (err) {
    throw new AllotError("invalid-address", `prefix: ${(err as Error).message}`);
  }
  if (p.family === 4) {
    if (p.length === 0) throw new AllotError("invalid-request", "prefix: a reverse zone needs a prefix of /8 or longer");
    const octets = formatAddress({ family: 4, value: p.network }).split(".");
    if (p.length > 24) return `${octets[3]}-${p.length}.${octets.slice(0, 3).reverse().join(".")}.in-addr.arpa`;
    if (p.length % 8 !== 0) throw new AllotError("invalid-request", `prefix: IPv4 reverse zones are on octet boundaries (/8, /16, /24) or longer than /24 (RFC 2317); ${cidr} is neither`);
    return `${octets.slice(0, p.length / 8).reverse().join(".")}.in-addr.arpa`;
  }
  if (p.length === 0 || p.length % 4 !== 0) throw new AllotError("invalid-request", `prefix: IPv6 reverse zones are on nibble boundaries (a length divisible by 4); ${cidr} is not`);
  return `${nibbles(p.network).slice(0, p.length / 4).reverse().join(".")}.ip6.arpa`;
}

const nibbles = (v: bigint): string[] => v.toString(16).padStart(32, "0").split("");

/** The prefix a reverse zone's name stands for, or null for a forward zone; throws for malformed reverse names. */
export function reverseSpan(zone: string): ReverseSpan | null {
  if (zone.endsWith(".in-addr.arpa")) {
    const labels = zone.slice(0, -".in-addr.arpa".length).split(".").reverse();
    const bad = () => new AllotError("invalid-request", `name: ${zone} is not a reverse zone of IPv4 octets (such as 2.0.192.in-addr.arpa) or of RFC 2317 form (0-25.2.0.192.in-addr.arpa)`);
    const octet = (l: string) => (/^(0|[1-9]\d{0,2})$/.test(l) && Number(l) < 256 ? Number(l) : null);
    if (labels.length === 4 && labels.slice(0, 3).every((l) => octet(l) !== null)) {
      const m = /^(0|[1-9]\d{0,2})-(2[5-9]|3[0-2])$/.exec(labels[3]!);
      if (!m) throw bad();
      const cidr = `${labels.slice(0, 3).join(".")}.${m[1]}/${m[2]}`;
      let prefix: Prefix;
      try {
        prefix = parsePrefix(cidr);
      } catch {
        throw new AllotError("invalid-request", `name: ${zone} names ${cidr}, which has host bits set`);
      }
      return { prefix, classless: labels[3]! };
    }
    if (labels.length < 1 || labels.length > 3 || !labels.every((l) => octet(l) !== null)) throw bad();
    const octets = [...labels, "0", "0", "0"].slice(0, 4);
    return { prefix: parsePrefix(`${octets.join(".")}/${labels.length * 8}`), classless: null };
  }
  if (zone.endsWith(".ip6.arpa")) {
    const labels = zone.slice(0, -".ip6.arpa".length).split(".").reverse();
    if (labels.length < 1 || labels.length > 32 || !labels.every((l) => /^[0-9a-f]$/.test(l))) {
      throw new AllotError("invalid-request", `name: ${zone} is not a reverse zone of IPv6 nibbles (such as 0.0.0.0.0.0.d.f.ip6.arpa)`);
    }
    const network = BigInt(`0x${labels.join("").padEnd(32, "0")}`);
    return { prefix: { family: 6, network, length: labels.length * 4 }, classless: null };
  }
  if (zone === "in-addr.arpa" || zone === "ip6.arpa" || zone.endsWith(".arpa") || zone === "arpa") {
    throw new AllotError("invalid-request", `name: ${zone} is not a zone Allot can fill; give a forward zone or a reverse zone of a prefix`);
  }
  return null;
}

/** The PTR owner name of an address inside a reverse zone. */
export function ptrName(a: Address, span: ReverseSpan, zone: string): string {
  if (a.family === 4) {
    const o = formatAddress(a).split(".");
    if (span.classless) return `${o[3]}.${zone}`;
    return `${o.reverse().join(".")}.in-addr.arpa`;
  }
  return `${nibbles(a.value).reverse().join(".")}.ip6.arpa`;
}

export const inSpan = (a: Address, span: ReverseSpan): boolean => prefixContains(span.prefix, a);
export const spanLast = (span: ReverseSpan): bigint => prefixLast(span.prefix);

/** Whether `name` is the zone or below it. */
export const inZone = (name: string, zone: string): boolean => name === zone || name.endsWith(`.${zone}`);

/**
 * A host name as written in the forward zone: a name that already ends in the zone is kept, anything
 * else gets the zone appended. Null if the result is not a valid name.
 */
export function forwardName(hostname: string, zone: string): string | null {
  const h = hostname.trim().toLowerCase().replace(/\.$/, "");
  if (h.length === 0) return null;
  const n = inZone(h, zone) ? h : `${h}.${zone}`;
  return nameProblem(n) ? null : n;
}

/** The pool attribute holding a naming template. */
export const DNS_TEMPLATE = "dns.template";

/** The placeholders a template may use. */
export const TEMPLATE_FIELDS = ["a", "b", "c", "d", "ip", "owner"] as const;

/**
 * A pool's naming template (the attribute `dns.template`), checked: only known placeholders, and a
 * sample name that is a valid DNS label sequence.
 */
export function checkTemplate(template: unknown, family: Family, field = "attributes.dns.template"): string {
  if (typeof template !== "string" || template.length === 0 || template.length > 200) {
    throw new AllotError("invalid-request", `${field} must be a text such as "host-{a}-{b}-{c}-{d}" (up to 200 characters)`);
  }
  for (const m of template.matchAll(/\{([^}]*)\}/g)) {
    const f = m[1]!;
    if (!(TEMPLATE_FIELDS as readonly string[]).includes(f)) throw new AllotError("invalid-request", `${field}: unknown placeholder {${f}}; use ${TEMPLATE_FIELDS.map((x) => `{${x}}`).join(", ")}`);
    if (family === 6 && ["a", "b", "c", "d"].includes(f)) throw new AllotError("invalid-request", `${field}: {${f}} is an IPv4 octet; in an IPv6 pool use {ip}`);
  }
  const sample = renderTemplate(template, parseAddress(family === 4 ? "192.0.2.10" : "2001:db8::a"), "owner-1");
  const why = nameProblem(sample);
  if (why) throw new AllotError("invalid-request", `${field}: ${JSON.stringify(template)} makes names such as ${JSON.stringify(sample)}, which is not a valid DNS name (${why})`);
  return template;
}

export function renderTemplate(template: string, a: Address, owner: string | null): string {
  const text = formatAddress(a);
  const octets = a.family === 4 ? text.split(".") : [];
  const values: Record<string, string> = {
    a: octets[0] ?? "",
    b: octets[1] ?? "",
    c: octets[2] ?? "",
    d: octets[3] ?? "",
    ip: text.replace(/[.:]/g, "-"),
    owner: (owner ?? "").toLowerCase().replace(/[^a-z0-9-]/g, "-"),
  };
  return template.replace(/\{([a-z]+)\}/g, (_m, f: string) => values[f] ?? "").toLowerCase();
}
