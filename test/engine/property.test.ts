import assert from "node:assert/strict";
import { SERVER } from "../../src/engine/access.js";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import fc from "fast-check";
import { type Family, formatAddress, parseAddress } from "../../src/addr/index.js";
import type { Engine } from "../../src/engine/engine.js";
import { AllotError } from "../../src/engine/errors.js";
import type { Allocation, PoolInput, PoolRef, Strategy } from "../../src/engine/types.js";
import { ctx, manualClock, tempEngine } from "../helpers.js";

/**
 * Model-based test: long random sequences of allocations, releases and clock moves run against the
 * engine and against a reference model (a map of held addresses, owners and expiry times), and after
 * every step the engine's answer and everything the store shows must equal what the model says.
 * The pools are small, so exhaustion, fragmentation and range boundaries come up all the time.
 */

const parsed = new Map<string, bigint>();
/** Parses once per text: the checks below parse the same few dozen addresses thousands of times. */
function ip(text: string): bigint {
  let v = parsed.get(text);
  if (v === undefined) parsed.set(text, (v = parseAddress(text).value));
  return v;
}

interface Setup {
  label: string;
  family: Family;
  pool: Omit<PoolInput, "name" | "strategy">;
  /** The pool's ranges as the test expects them, in address order (written out by hand, not derived by the engine's code). */
  ranges: [string, string][];
  /** Addresses inside the ranges that are never handed out: network, broadcast, gateways, exclusions. */
  keptBack: string[];
  /** Specific-address requests and releases by address pick from here: the ranges and a few addresses around them. */
  window: [string, string];
}

const SETUPS: Setup[] = [
  {
    label: "IPv4 /27 with gateway and a CIDR exclusion",
    family: 4,
    pool: { cidr: "10.1.0.0/27", gateway: "10.1.0.1", exclusions: ["10.1.0.16/30"], allocateReserved: false },
    ranges: [["10.1.0.0", "10.1.0.31"]],
    keptBack: ["10.1.0.0", "10.1.0.1", "10.1.0.31", "10.1.0.16", "10.1.0.17", "10.1.0.18", "10.1.0.19"],
    window: ["10.0.255.248", "10.1.0.39"],
  },
  {
    label: "IPv4 /27 plus two adjacent start..end ranges",
    family: 4,
    pool: {
      ranges: [
        { cidr: "10.0.0.0/27", gateway: "10.0.0.1" },
        { start: "10.0.0.32", end: "10.0.0.39", prefixLength: 24 },
        { start: "10.0.0.40", end: "10.0.0.47", prefixLength: 24, gateway: "10.0.0.254" },
      ],
      exclusions: ["10.0.0.10-10.0.0.12", "10.0.0.44"],
      allocateReserved: false,
    },
    ranges: [
      ["10.0.0.0", "10.0.0.31"],
      ["10.0.0.32", "10.0.0.39"],
      ["10.0.0.40", "10.0.0.47"],
    ],
    keptBack: ["10.0.0.0", "10.0.0.1", "10.0.0.31", "10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.0.44"],
    window: ["9.255.255.250", "10.0.0.53"],
  },
  {
    label: "IPv6 /122 with gateway and an exclusion",
    family: 6,
    pool: { cidr: "2001:db8::/122", gateway: "2001:db8::1", exclusions: ["2001:db8::20-2001:db8::23"], allocateReserved: false },
    ranges: [["2001:db8::", "2001:db8::3f"]],
    // no broadcast in IPv6: only the subnet-router anycast (network) address and the gateway are kept back
    keptBack: ["2001:db8::", "2001:db8::1", "2001:db8::20", "2001:db8::21", "2001:db8::22", "2001:db8::23"],
    window: ["2001:db7:ffff:ffff:ffff:ffff:ffff:fff8", "2001:db8::47"],
  },
  {
    label: "IPv6 two adjacent start..end ranges inside a /64",
    family: 6,
    pool: {
      ranges: [
        { start: "2001:db8:0:1::100", end: "2001:db8:0:1::11f", prefixLength: 64, gateway: "2001:db8:0:1::1" },
        { start: "2001:db8:0:1::120", end: "2001:db8:0:1::12f", prefixLength: 64, gateway: "2001:db8:0:1::120" },
      ],
      exclusions: [{ start: "2001:db8:0:1::108" }],
      allocateReserved: false,
    },
    ranges: [
      ["2001:db8:0:1::100", "2001:db8:0:1::11f"],
      ["2001:db8:0:1::120", "2001:db8:0:1::12f"],
    ],
    keptBack: ["2001:db8:0:1::120", "2001:db8:0:1::108"],
    window: ["2001:db8:0:1::f8", "2001:db8:0:1::137"],
  },
];

// ---- the reference model

interface Held {
  id: string;
  first: bigint;
  last: bigint;
  owner: string | null;
  expiresAt: number | null;
}

interface Run {
  first: bigint;
  last: bigint;
}

class Model {
  readonly ranges: Run[];
  /** Every address the pool may hand out, ascending. */
  readonly allocatable: bigint[];
  private readonly allocatableSet: Set<bigint>;
  readonly held = new Map<string, Held>();
  /** address -> id of the allocation holding it */
  private readonly holder = new Map<bigint, string>();

  constructor(setup: Setup) {
    this.ranges = setup.ranges.map(([a, b]) => ({ first: ip(a), last: ip(b) }));
    const kept = new Set(setup.keptBack.map(ip));
    this.allocatable = [];
    for (const r of this.ranges) for (let a = r.first; a <= r.last; a++) if (!kept.has(a)) this.allocatable.push(a);
    this.allocatableSet = new Set(this.allocatable);
  }

  get total(): bigint {
    return BigInt(this.allocatable.length);
  }
  get used(): bigint {
    return BigInt(this.holder.size);
  }
  /** Every address of every range, allocatable or not: what a random pick is drawn over. */
  get span(): bigint {
    return this.ranges.reduce((n, r) => n + r.last - r.first + 1n, 0n);
  }

  isFree(a: bigint): boolean {
    return this.allocatableSet.has(a) && !this.holder.has(a);
  }
  rangeOf(a: bigint): Run | undefined {
    return this.ranges.find((r) => a >= r.first && a <= r.last);
  }
  holding(a: bigint): Held | undefined {
    const id = this.holder.get(a);
    return id === undefined ? undefined : this.held.get(id);
  }
  byOwner(owner: string): Held | undefined {
    for (const h of this.held.values()) if (h.owner === owner) return h;
    return undefined;
  }
  /** [first, first + n - 1] is wholly free and inside one range. */
  fits(first: bigint, n: bigint): boolean {
    const r = this.rangeOf(first);
    if (!r || first + n - 1n > r.last) return false;
    for (let a = first; a < first + n; a++) if (!this.isFree(a)) return false;
    return true;
  }
  lowestFree(): bigint | null {
    return this.allocatable.find((a) => !this.holder.has(a)) ?? null;
  }
  firstFit(n: bigint): bigint | null {
    return this.allocatable.find((a) => this.fits(a, n)) ?? null;
  }
  /** The random strategy: the drawn point if free, else the next free address after it, wrapping round. */
  randomPick(draw: bigint): bigint | null {
    let offset = draw;
    let point = 0n;
    for (const r of this.ranges) {
      const n = r.last - r.first + 1n;
      if (offset < n) {
        point = r.first + offset;
        break;
      }
      offset -= n;
    }
    if (this.isFree(point)) return point;
    return this.allocatable.find((a) => a > point && !this.holder.has(a)) ?? this.lowestFree();
  }

  add(h: Held): void {
    for (let a = h.first; a <= h.last; a++) {
      assert.ok(this.isFree(a), `model: ${a} handed out twice`);
      this.holder.set(a, h.id);
    }
    this.held.set(h.id, h);
  }
  remove(id: string): void {
    const h = this.held.get(id)!;
    for (let a = h.first; a <= h.last; a++) this.holder.delete(a);
    this.held.delete(id);
  }
  /** Drops what has expired by `now`; returns how many. */
  sweep(now: number): number {
    const due = [...this.held.values()].filter((h) => h.expiresAt !== null && h.expiresAt <= now);
    for (const h of due) this.remove(h.id);
    return due.length;
  }
  sortedHeld(): Held[] {
    return [...this.held.values()].sort((a, b) => (a.first < b.first ? -1 : 1));
  }
  /** Maximal runs of free allocatable addresses; a run never crosses from one range into the next. */
  freeRuns(): Run[] {
    const out: Run[] = [];
    for (const r of this.ranges) {
      let open: Run | null = null;
      for (let a = r.first; a <= r.last; a++) {
        if (this.isFree(a)) {
          if (open) open.last = a;
          else out.push((open = { first: a, last: a }));
        } else open = null;
      }
    }
    return out.sort((a, b) => (a.first < b.first ? -1 : 1));
  }
}

// ---- operations

const OWNERS = ["vm-a", "vm-b", "vm-c"] as const;
// half the requests name an owner (few owners, so retries are common); a third carry a time-to-live
const ownerArb = fc.oneof(fc.constant(undefined), fc.constantFrom(...OWNERS));
const ttlArb = fc.oneof({ weight: 2, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 4 }) });
const WINDOW_PICK = fc.nat({ max: 1000 });

type BaseOp =
  | { kind: "next"; owner: string | undefined; ttl: number | undefined; draw: number }
  /** Next-free requests without an owner until the pool is exhausted, each checked like a step of its own. */
  | { kind: "fill"; ttl: number | undefined; draw: number }
  /** `pick` says where the address comes from: anywhere in the window, the start of a held run, or the owner's own. */
  | { kind: "specific"; pick: "window" | "held" | "own"; resize: boolean; at: number; size: number | undefined; owner: string | undefined; ttl: number | undefined }
  /** `resize` false: an owner that holds something asks again for the size it holds (a retry). */
  | { kind: "block"; size: number; resize: boolean; owner: string | undefined; ttl: number | undefined; draw: number }
  | { kind: "releaseId"; pick: number }
  /** `inHeld`: some address inside a held run (not only its first), rather than anywhere in the window. */
  | { kind: "releaseAddress"; inHeld: boolean; at: number }
  | { kind: "releaseOwner"; owner: string }
  | { kind: "renew"; pick: number; ttl: number | null }
  | { kind: "expire" };
/** Moving the clock, then (before anything else looks at the pool) one more operation. */
type Op = BaseOp | { kind: "advance"; ms: number; then: BaseOp | null };

const baseOpArb: fc.Arbitrary<BaseOp> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant("next" as const), owner: ownerArb, ttl: ttlArb, draw: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("fill" as const), ttl: ttlArb, draw: fc.nat() }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("specific" as const),
      pick: fc.constantFrom("window" as const, "held" as const, "own" as const),
      resize: fc.boolean(),
      at: WINDOW_PICK,
      size: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
      owner: ownerArb,
      ttl: ttlArb,
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("block" as const),
      size: fc.integer({ min: 1, max: 16 }),
      resize: fc.boolean(),
      owner: ownerArb,
      ttl: ttlArb,
      draw: fc.nat(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("releaseId" as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("releaseAddress" as const), inHeld: fc.boolean(), at: WINDOW_PICK }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("releaseOwner" as const), owner: fc.constantFrom(...OWNERS) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("renew" as const), pick: fc.nat(), ttl: fc.option(fc.integer({ min: 1, max: 4 }), { nil: null }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("expire" as const) }) },
);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: baseOpArb },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("advance" as const),
      // half-second steps so an advance often lands exactly on an expiry time
      ms: fc.integer({ min: 0, max: 12 }).map((k) => k * 500),
      then: fc.oneof(
        { weight: 1, arbitrary: fc.constant(null) },
        { weight: 2, arbitrary: fc.constant({ kind: "expire" as const }) },
        { weight: 3, arbitrary: baseOpArb },
      ),
    }),
  },
);

const sequenceArb: fc.Arbitrary<Op[]> = fc.array(opArb, { minLength: 1, maxLength: 60, size: "max" });

type Outcome<T> = { ok: T } | { code: string };

async function outcome<T>(p: Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: await p };
  } catch (err) {
    if (err instanceof AllotError) return { code: err.code };
    throw err;
  }
}

/** What the model says an allocate request gives. */
type Expected = { code: string } | { existing: Held } | { first: bigint; last: bigint };

function expectAllocate(model: Model, strategy: Strategy, req: { address?: bigint; size?: number; owner?: string | undefined; draw: bigint }): Expected {
  const n = BigInt(req.size ?? 1);
  const mine = req.owner === undefined ? undefined : model.byOwner(req.owner);
  if (mine) {
    // a retry: the same allocation back, unless the request names a different address or size
    const differs = (req.address !== undefined && req.address !== mine.first) || (req.size !== undefined && mine.last - mine.first + 1n !== n);
    return differs ? { code: "owner-conflict" } : { existing: mine };
  }
  if (req.address !== undefined) {
    const a = req.address;
    if (model.fits(a, n)) return { first: a, last: a + n - 1n };
    const r = model.rangeOf(a);
    return { code: !r || a + n - 1n > r.last ? "address-outside-pool" : "address-unavailable" };
  }
  const first = n === 1n ? (strategy === "random" ? model.randomPick(req.draw % model.span) : model.lowestFree()) : model.firstFit(n);
  if (first === null) return { code: n === 1n || model.used === model.total ? "pool-exhausted" : "block-unavailable" };
  return { first, last: first + n - 1n };
}

// ---- the run

interface Harness {
  engine: Engine;
  ref: PoolRef;
  family: Family;
  model: Model;
  clock: ReturnType<typeof manualClock>;
  strategy: Strategy;
  ids: string[];
  setDraw: (d: bigint) => void;
  /** Outcomes met so far (across runs), to show the sequences reach every case. */
  seen: Map<string, number>;
}

function saw(h: Harness, what: string): void {
  h.seen.set(what, (h.seen.get(what) ?? 0) + 1);
}

const show = (h: Harness, v: bigint) => formatAddress({ family: h.family, value: v });

function windowAddress(setup: Setup, at: number): bigint {
  const lo = ip(setup.window[0]);
  const width = ip(setup.window[1]) - lo + 1n;
  return lo + (BigInt(at) % width);
}

type AllocOp = Extract<Op, { kind: "next" | "specific" | "block" }>;

/** The request an allocation op makes in the model's current state: some ops aim at what is held. */
function resolve(h: Harness, setup: Setup, op: AllocOp): { address?: bigint; size?: number; owner?: string; ttl?: number; draw: bigint } {
  const out = { ...(op.owner !== undefined ? { owner: op.owner } : {}), ...(op.ttl !== undefined ? { ttl: op.ttl } : {}) };
  if (op.kind === "next") return { ...out, draw: BigInt(op.draw) };
  if (op.kind === "block") {
    const mine = op.owner === undefined ? undefined : h.model.byOwner(op.owner);
    return { ...out, size: mine && !op.resize ? Number(mine.last - mine.first + 1n) : op.size, draw: BigInt(op.draw) };
  }
  const sized = { ...out, ...(op.size !== undefined ? { size: op.size } : {}), draw: 0n };
  const runs = h.model.sortedHeld();
  if (op.pick === "own") {
    // the owner asks again for the address it holds (any owner that holds one, if this one holds none)
    const owned = runs.filter((r) => r.owner !== null);
    const mine = (op.owner === undefined ? undefined : h.model.byOwner(op.owner)) ?? owned[op.at % Math.max(owned.length, 1)];
    if (mine) {
      const size = op.resize ? op.size : op.size === undefined ? undefined : Number(mine.last - mine.first + 1n);
      return { ...out, ...(size !== undefined ? { size } : {}), draw: 0n, owner: mine.owner!, address: mine.first };
    }
  }
  if (op.pick === "held" && runs.length > 0) return { ...sized, address: runs[op.at % runs.length]!.first };
  return { ...sized, address: windowAddress(setup, op.at) };
}

async function runOp(h: Harness, setup: Setup, op: Op): Promise<void> {
  if (op.kind === "advance") {
    h.clock.advance(op.ms);
    if (op.then) await runOp(h, setup, op.then);
    return;
  }
  const { engine, ref, model, clock } = h;
  if (op.kind === "expire") {
    const n = await engine.expire();
    assert.equal(n, model.sweep(clock.now()), "expire() count");
    saw(h, n > 0 ? "expire:some" : "expire:none");
    return;
  }
  const now = clock.now();
  // whatever the operation, an allocation past its time-to-live is gone
  if (model.sweep(now) > 0) saw(h, "after-expiry");

  if (op.kind === "fill") {
    for (let i = 0; ; i++) {
      assert.ok(i <= model.allocatable.length, "fill never ran out");
      const before = model.used;
      await runOp(h, setup, { kind: "next", owner: undefined, ttl: op.ttl, draw: op.draw + i });
      if (model.used === before) return; // pool-exhausted (the request itself checked that the engine said so)
    }
  }
  if (op.kind === "next" || op.kind === "specific" || op.kind === "block") {
    const req = resolve(h, setup, op);
    h.setDraw(req.draw);
    const want = expectAllocate(model, h.strategy, req);
    const got = await outcome(
      engine.allocate(
        ref,
        {
          ...(req.address !== undefined ? { address: show(h, req.address) } : {}),
          ...(req.size !== undefined ? { size: req.size } : {}),
          ...(req.owner !== undefined ? { owner: req.owner } : {}),
          ...(req.ttl !== undefined ? { ttl: req.ttl } : {}),
        },
        ctx,
      ),
    );
    saw(h, `${op.kind}:${"code" in want ? want.code : "existing" in want ? "retry" : "new"}`);
    if ("code" in want) {
      assert.deepEqual("code" in got ? got.code : `allocated ${got.ok.allocation.address}`, want.code);
      return;
    }
    assert.ok("ok" in got, `expected success, got ${"code" in got ? got.code : ""}`);
    const { allocation, created } = got.ok;
    if ("existing" in want) {
      assert.equal(created, false, "a retry by the same owner creates nothing");
      assert.equal(allocation.id, want.existing.id, "a retry by the same owner returns the same allocation");
      assert.equal(allocation.address, show(h, want.existing.first));
      return;
    }
    const expiresAt = req.ttl === undefined ? null : now + req.ttl * 1000;
    assert.equal(created, true);
    assert.equal(allocation.address, show(h, want.first), `${h.strategy} picks the address the model picks`);
    assert.equal(allocation.lastAddress, show(h, want.last));
    assert.equal(allocation.size, Number(want.last - want.first + 1n));
    assert.equal(allocation.owner, req.owner ?? null);
    assert.equal(allocation.expiresAt, expiresAt === null ? null : new Date(expiresAt).toISOString());
    model.add({ id: allocation.id, first: want.first, last: want.last, owner: req.owner ?? null, expiresAt });
    h.ids.push(allocation.id);
    return;
  }

  let target: Held | undefined;
  let got: Outcome<Allocation>;
  if (op.kind === "renew") {
    const id = h.ids[op.pick % (h.ids.length + 1)] ?? randomUUID();
    target = model.held.get(id);
    saw(h, `renew:${target ? "ok" : "not-found"}`);
    got = await outcome(engine.updateAllocation(id, { ttl: op.ttl }, ctx));
    if (!target) {
      assert.deepEqual("code" in got ? got.code : `renewed ${got.ok.address}`, "allocation-not-found");
      return;
    }
    assert.ok("ok" in got, `expected the renewal to succeed, got ${"code" in got ? got.code : ""}`);
    target.expiresAt = op.ttl === null ? null : now + op.ttl * 1000;
    assert.equal(got.ok.expiresAt, target.expiresAt === null ? null : new Date(target.expiresAt).toISOString());
    assert.equal(got.ok.address, show(h, target.first));
    return;
  }
  if (op.kind === "releaseId") {
    // mostly ids the engine handed out (held, released or expired), sometimes one it never did
    const id = h.ids[op.pick % (h.ids.length + 1)] ?? randomUUID();
    target = model.held.get(id);
    got = await outcome(engine.release({ id }, ctx));
  } else if (op.kind === "releaseAddress") {
    const runs = model.sortedHeld();
    const run = runs[op.at % Math.max(runs.length, 1)];
    const a = op.inHeld && run ? run.first + (BigInt(op.at) % (run.last - run.first + 1n)) : windowAddress(setup, op.at);
    target = model.holding(a);
    got = await outcome(engine.release({ pool: ref, address: show(h, a) }, ctx));
  } else {
    target = model.byOwner(op.owner);
    got = await outcome(engine.release({ pool: ref, owner: op.owner }, ctx));
  }
  saw(h, `${op.kind}:${target ? "ok" : "not-found"}`);
  if (!target) {
    assert.deepEqual("code" in got ? got.code : `released ${got.ok.address}`, "allocation-not-found");
    return;
  }
  assert.ok("ok" in got, `expected the release to succeed, got ${"code" in got ? got.code : ""}`);
  assert.equal(got.ok.id, target.id);
  assert.equal(got.ok.address, show(h, target.first));
  model.remove(target.id);
}

async function listAll(engine: Engine, ref: PoolRef): Promise<Allocation[]> {
  const out: Allocation[] = [];
  for (let after: string | undefined; ; ) {
    const page = await engine.listAllocations(ref, { limit: 4, ...(after !== undefined ? { after } : {}) }, SERVER);
    out.push(...page.items);
    if (page.next === null) return out;
    after = page.next;
  }
}

/** Everything the store shows must equal the model. */
async function checkStore(h: Harness): Promise<void> {
  const { engine, ref, model } = h;
  model.sweep(h.clock.now());
  // listing comes first, before usage() sweeps expired rows: paging must hide them by itself
  const listed = await listAll(engine, ref);
  type View = Pick<Allocation, "id" | "address" | "lastAddress" | "size" | "owner" | "expiresAt">;
  assert.deepEqual(
    listed.map((a): View => ({ id: a.id, address: a.address, lastAddress: a.lastAddress, size: a.size, owner: a.owner, expiresAt: a.expiresAt })),
    model.sortedHeld().map(
      (m): View => ({
        id: m.id,
        address: show(h, m.first),
        lastAddress: show(h, m.last),
        size: Number(m.last - m.first + 1n),
        owner: m.owner,
        expiresAt: m.expiresAt === null ? null : new Date(m.expiresAt).toISOString(),
      }),
    ),
    "listAllocations shows exactly the model's allocations",
  );
  for (let i = 1; i < listed.length; i++) {
    assert.ok(ip(listed[i]!.address) > ip(listed[i - 1]!.lastAddress), `${listed[i]!.address} is held twice`);
  }
  // the most recent ids still held and the most recent gone (released or expired): getAllocation agrees
  const recent = (held: boolean) => h.ids.filter((id) => model.held.has(id) === held).slice(-6);
  for (const id of [...recent(true), ...recent(false)]) {
    const got = await outcome(engine.getAllocation(id, SERVER));
    const m = model.held.get(id);
    assert.deepEqual("ok" in got ? got.ok.address : got.code, m ? show(h, m.first) : "allocation-not-found", `getAllocation(${id})`);
  }
  const u = await engine.usage(ref, SERVER);
  assert.deepEqual(
    { total: u.total, allocated: u.allocated, inChildPools: u.inChildPools, free: u.free },
    { total: String(model.total), allocated: String(model.used), inChildPools: "0", free: String(model.total - model.used) },
    "usage",
  );
  const runs = await engine.freeRuns(ref);
  assert.deepEqual(runs.map((r) => `${show(h, r.first)}-${show(h, r.last)}`), model.freeRuns().map((r) => `${show(h, r.first)}-${show(h, r.last)}`), "free runs");
}

/**
 * The sequences must actually reach the interesting cases, or passing proves little. Each case must
 * meet the common outcomes; the rarer ones (an owner retrying a block, say) are required across all
 * cases together, where they come up dozens of times, so the check does not flake.
 */
const EACH_CASE_SEES = [
  "next:new", "next:retry", "next:pool-exhausted", "block:new", "specific:address-unavailable",
  "releaseId:ok", "releaseAddress:ok", "releaseOwner:not-found",
];
const ALL_CASES_SEE = [
  ...EACH_CASE_SEES,
  "specific:new", "specific:retry", "specific:owner-conflict", "specific:address-outside-pool",
  "block:retry", "block:owner-conflict", "block:block-unavailable", "block:pool-exhausted",
  "releaseId:not-found", "releaseAddress:not-found", "releaseOwner:ok", "renew:ok", "renew:not-found",
  "expire:some", "expire:none", "after-expiry",
];
const seenInAll = new Map<string, number>();
let casesRun = 0;

const RUNS_PER_CASE = Number(process.env.PROPERTY_RUNS ?? 30);

for (const setup of SETUPS) {
  for (const strategy of ["lowest-free", "random"] as const) {
    test(`model-based: ${setup.label}, ${strategy}`, async () => {
      const seen = new Map<string, number>();
      await fc.assert(
        fc.asyncProperty(sequenceArb, async (ops) => {
          const clock = manualClock();
          let draw = 0n;
          let span: bigint | null = null;
          const env = await tempEngine({
            clock: clock.now,
            randomBelow: (n) => {
              span = n;
              return draw % n;
            },
          });
          try {
            const pool = await env.engine.createPool({ name: "p", strategy, ...setup.pool }, ctx);
            const h: Harness = {
              engine: env.engine,
              ref: { pool: pool.id },
              family: setup.family,
              model: new Model(setup),
              clock,
              strategy,
              ids: [],
              setDraw: (d) => (draw = d),
              seen,
            };
            await checkStore(h);
            for (const [i, op] of ops.entries()) {
              try {
                await runOp(h, setup, op);
                if (span !== null) assert.equal(span, h.model.span, "a random pick is drawn over every address of every range");
                span = null;
                await checkStore(h);
                if (i === ops.length - 1) assert.deepEqual(await h.engine.check(), [], "the engine's own consistency check");
              } catch (err) {
                // say which step of the sequence went wrong, keeping the assertion's own diff
                throw new Error(`step ${i} ${JSON.stringify(op)}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
              }
            }
          } finally {
            await env.cleanup();
          }
        }),
        { numRuns: RUNS_PER_CASE, includeErrorInReport: true },
      );
      if (process.env.PROPERTY_STATS) console.log(setup.label, strategy, Object.fromEntries([...seen].sort()));
      // with fewer runs than the default (the PostgreSQL pass uses 10), one case may by chance miss a
      // common outcome; those are then required of all cases together (below) instead
      if (RUNS_PER_CASE >= 30) {
        const missing = EACH_CASE_SEES.filter((k) => !seen.has(k));
        assert.deepEqual(missing, [], `never reached: ${missing.join(", ")}`);
      }
      for (const [k, n] of seen) seenInAll.set(k, (seenInAll.get(k) ?? 0) + n);
      casesRun++;
    });
  }
}

test("the sequences, all cases together, reached every outcome", (t) => {
  if (casesRun < SETUPS.length * 2) return t.skip("only when every case ran");
  const missing = [...ALL_CASES_SEE, ...(RUNS_PER_CASE < 30 ? EACH_CASE_SEES : [])].filter((k) => !seenInAll.has(k));
  assert.deepEqual(missing, [], `never reached: ${missing.join(", ")}`);
});
