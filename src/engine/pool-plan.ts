import {
  AddressSyntaxError,
  BITS,
  type Family,
  formatAddress,
  formatPrefix,
  parseAddress,
  parsePrefix,
  prefixContaining,
  prefixFirst,
  prefixLast,
} from "../addr/index.js";
import { AllotError } from "./errors.js";
import { type Interval, intervalSize, normalize, overlaps, subtract, within } from "./intervals.js";
import type { PoolInput, RangeInput } from "./types.js";

export interface PlannedRange extends Interval {
  seq: number;
  family: Family;
  isCidr: boolean;
  prefixLength: number;
  gateway: string | null;
  dns: string[] | null;
}

/** A pool's address plan, checked and reduced to intervals: what the store persists. */
export interface PoolPlan {
  family: Family;
  ranges: PlannedRange[];
  exclusions: Interval[];
  /** Allocatable runs: ranges minus exclusions and (unless allowed) network, broadcast and gateway. */
  free: Interval[];
  total: bigint;
}

/** Parses with the engine's error for bad syntax, naming the field that held it. */
export function address(text: string, field: string): { family: Family; value: bigint } {
  try {
    return parseAddress(text);
  } catch (err) {
    if (err instanceof AddressSyntaxError) throw new AllotError("invalid-address", `${field}: ${err.message}`);
    throw err;
  }
}

export function prefix(text: string, field: string) {
  try {
    return parsePrefix(text);
  } catch (err) {
    if (err instanceof AddressSyntaxError) throw new AllotError("invalid-address", `${field}: ${err.message}`);
    throw err;
  }
}

export function dnsList(list: readonly string[] | undefined, field: string): string[] | null {
  if (list === undefined) return null;
  return list.map((d, i) => formatAddress(address(d, `${field}[${i}]`)));
}

export const fmt = (family: Family, v: bigint): string => formatAddress({ family, value: v });
export const fmtSpan = (family: Family, i: Interval): string =>
  i.first === i.last ? fmt(family, i.first) : `${fmt(family, i.first)}-${fmt(family, i.last)}`;

function planRange(input: RangeInput, seq: number, pool: PoolInput, familyHint: Family | null): PlannedRange {
  const field = `ranges[${seq}]`;
  let first: bigint;
  let last: bigint;
  let family: Family;
  let length: number | undefined = input.prefixLength ?? undefined;
  let isCidr = false;
  if (input.cidr !== undefined) {
    if (input.start !== undefined || input.end !== undefined) {
      throw new AllotError("invalid-request", `${field}: give either cidr or start and end, not both`);
    }
    const p = prefix(input.cidr, `${field}.cidr`);
    family = p.family;
    first = prefixFirst(p);
    last = prefixLast(p);
    length ??= p.length;
    isCidr = true;
  } else {
    if (input.start === undefined || input.end === undefined) {
      throw new AllotError("invalid-request", `${field}: give a cidr, or both start and end`);
    }
    const s = address(input.start, `${field}.start`);
    const e = address(input.end, `${field}.end`);
    if (s.family !== e.family) throw new AllotError("invalid-range", `${field}: start and end are of different families`);
    if (e.value < s.value) {
      throw new AllotError("invalid-range", `${field}: end ${input.end} is before start ${input.start}`);
    }
    family = s.family;
    first = s.value;
    last = e.value;
    length ??= pool.prefixLength;
    if (length === undefined) {
      throw new AllotError(
        "invalid-range",
        `${field}: a start..end range needs a prefixLength (on the range or the pool) to say which prefix it lies in`,
      );
    }
  }
  if (familyHint !== null && family !== familyHint) {
    throw new AllotError("invalid-range", `${field}: all ranges of a pool must be of one family (IPv${familyHint})`);
  }
  if (!Number.isInteger(length) || length < 0 || length > BITS[family]) {
    throw new AllotError("invalid-range", `${field}: prefixLength ${length} is out of range for IPv${family} (0 to ${BITS[family]})`);
  }
  const net = prefixContaining({ family, value: first }, length);
  if (last > prefixLast(net)) {
    throw new AllotError(
      "invalid-range",
      `${field}: ${fmtSpan(family, { first, last })} is not inside its prefix ${formatPrefix(net)}; widen prefixLength or shorten the range`,
    );
  }
  const gwText = input.gateway ?? pool.gateway;
  let gateway: string | null = null;
  if (gwText !== undefined) {
    const gw = address(gwText, input.gateway !== undefined ? `${field}.gateway` : "gateway");
    if (gw.family !== family || gw.value < prefixFirst(net) || gw.value > prefixLast(net)) {
      throw new AllotError("invalid-range", `${field}: gateway ${gwText} is not inside ${formatPrefix(net)}`);
    }
    gateway = formatAddress(gw);
  }
  return { seq, family, first, last, isCidr: isCidr && length === net.length && first === net.network, prefixLength: length, gateway, dns: dnsList(input.dns, `${field}.dns`) };
}

function parseExclusion(e: string | { start: string; end?: string }, i: number, family: Family): Interval {
  const field = `exclusions[${i}]`;
  if (typeof e === "string") {
    if (e.includes("/")) {
      const p = prefix(e, field);
      return check({ first: prefixFirst(p), last: prefixLast(p) }, p.family);
    }
    const dash = e.indexOf("-");
    if (dash > 0) {
      const a = address(e.slice(0, dash), field);
      const b = address(e.slice(dash + 1), field);
      if (a.family !== b.family) throw new AllotError("invalid-range", `${field}: ${e} mixes families`);
      return check({ first: a.value, last: b.value }, a.family);
    }
    const a = address(e, field);
    return check({ first: a.value, last: a.value }, a.family);
  }
  const a = address(e.start, `${field}.start`);
  const b = e.end !== undefined ? address(e.end, `${field}.end`) : a;
  if (a.family !== b.family) throw new AllotError("invalid-range", `${field}: start and end are of different families`);
  return check({ first: a.value, last: b.value }, a.family);

  function check(iv: Interval, f: Family): Interval {
    if (f !== family) throw new AllotError("invalid-range", `${field}: an IPv${f} exclusion in an IPv${family} pool`);
    if (iv.last < iv.first) throw new AllotError("invalid-range", `${field}: end is before start`);
    return iv;
  }
}

/** The addresses of a range kept back unless the pool allows them: network, broadcast, gateway. */
export function reservedIn(family: Family, r: Interval & { prefixLength: number; gateway: string | null }): Interval[] {
  const net = prefixContaining({ family, value: r.first }, r.prefixLength);
  const out: Interval[] = [];
  const hostBits = BITS[family] - r.prefixLength;
  // /31 and /32 (RFC 3021), /127 and /128 (RFC 6164) have no network or broadcast address.
  if (hostBits >= 2) {
    out.push({ first: prefixFirst(net), last: prefixFirst(net) });
    if (family === 4) out.push({ first: prefixLast(net), last: prefixLast(net) });
  }
  if (r.gateway !== null) {
    const g = parseAddress(r.gateway).value;
    out.push({ first: g, last: g });
  }
  return out.filter((x) => x.first >= r.first && x.last <= r.last);
}

/** Checks a pool's ranges, exclusions and gateway, and works out its free runs and capacity. */
export function planPool(input: PoolInput): PoolPlan {
  const rangeInputs: RangeInput[] = [...(input.ranges ?? [])];
  if (input.cidr !== undefined) rangeInputs.unshift({ cidr: input.cidr });
  if (rangeInputs.length === 0) {
    throw new AllotError("invalid-request", `pool ${input.name} needs at least one range: a CIDR, or a start-end range with its prefix length`);
  }
  if (input.prefixLength !== undefined && input.ranges === undefined && input.cidr !== undefined) {
    // prefixLength beside a bare cidr overrides the netmask handed out with its addresses
    rangeInputs[0] = { cidr: input.cidr, prefixLength: input.prefixLength };
  }
  const ranges: PlannedRange[] = [];
  for (const [i, r] of rangeInputs.entries()) ranges.push(planRange(r, i, input, ranges[0]?.family ?? null));
  const family = ranges[0]!.family;
  const sorted = [...ranges].sort((a, b) => (a.first < b.first ? -1 : 1));
  for (let i = 1; i < sorted.length; i++) {
    if (overlaps(sorted[i - 1]!, sorted[i]!)) {
      throw new AllotError(
        "invalid-range",
        `ranges ${fmtSpan(family, sorted[i - 1]!)} and ${fmtSpan(family, sorted[i]!)} overlap; a pool's ranges must be disjoint`,
      );
    }
  }
  const exclusions = normalize((input.exclusions ?? []).map((e, i) => parseExclusion(e, i, family)));
  for (const e of exclusions) {
    if (!ranges.some((r) => within(e, r))) {
      throw new AllotError("invalid-range", `exclusion ${fmtSpan(family, e)} is not inside any one range of the pool`);
    }
  }
  const free: Interval[] = [];
  for (const r of sorted) {
    const remove = [...exclusions, ...(input.allocateReserved ? [] : reservedIn(family, r))];
    free.push(...subtract(r, remove));
  }
  const total = free.reduce((n, i) => n + intervalSize(i), 0n);
  return { family, ranges, exclusions, free, total };
}
