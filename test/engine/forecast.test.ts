import assert from "node:assert/strict";
import { test } from "node:test";
import { SERVER } from "../../src/engine/access.js";
import { type UsageChange, forecastFrom } from "../../src/engine/forecast.js";
import { ctx, manualClock, tempEngine } from "../helpers.js";

const DAY = 86_400_000;
const NOW = Date.parse("2026-06-30T00:00:00Z");

/** `perDay[i]` addresses taken (negative: given back) on day i of n, ending now, spread over the day. */
function history(perDay: number[]): UsageChange[] {
  const start = NOW - perDay.length * DAY;
  return perDay.flatMap((n, day) => Array.from({ length: Math.abs(n) }, (_, k) => ({ at: start + day * DAY + ((k + 0.5) * DAY) / Math.abs(n), delta: Math.sign(n) })));
}
const used = (perDay: number[]) => perDay.reduce((a, b) => a + b, 0);

test("steady growth: the pace and the days left follow it", () => {
  const days = Array<number>(20).fill(10);
  const f = forecastFrom(history(days), used(days), 54, NOW);
  assert.equal(f.note, null);
  assert.ok(Math.abs(f.growthPerDay! - 10) < 0.5, `growth ${f.growthPerDay}`);
  assert.ok(Math.abs(f.daysLeft! - 5.4) < 0.3, `days left ${f.daysLeft}`);
  assert.ok(Math.abs(Date.parse(f.exhaustedAt!) - (NOW + f.daysLeft! * DAY)) < DAY / 100, f.exhaustedAt!);
  assert.ok(f.days >= 19.9 && f.days <= 20);
});

test("a one-off burst moves the line by its share of the window, not by its count of entries", () => {
  const steady = Array<number>(30).fill(5);
  const burst = steady.map((n, i) => (i === 2 ? n + 300 : n)); // 300 at once, early on
  const f = forecastFrom(history(burst), used(burst), 1000, NOW);
  // by entries the month took 450 addresses (15 a day); the pace since the burst is 5 a day
  assert.ok(f.growthPerDay! > 5 && f.growthPerDay! < 15, `growth ${f.growthPerDay}`);
  const late = steady.map((n, i) => (i === 27 ? n + 300 : n)); // the same burst, just now
  const g = forecastFrom(history(late), used(late), 1000, NOW);
  assert.ok(g.growthPerDay! > f.growthPerDay!, "a recent jump weighs more than an old one");
});

test("shrinking or flat usage has no exhaustion date; too little history has no forecast", () => {
  // 200 held twenty days ago, 8 fewer each day since
  const s = forecastFrom(history(Array<number>(20).fill(-8)), 40, 214, NOW);
  assert.deepEqual([s.note, s.daysLeft, s.exhaustedAt], ["not growing", null, null]);
  assert.ok(Math.abs(s.growthPerDay! + 8) < 0.5, `growth ${s.growthPerDay}`);
  // churn: as many given back as taken each day
  const churn = history(Array<number>(20).fill(6)).map((c, i) => ({ ...c, delta: i % 2 === 0 ? 1 : -1 }));
  const flat = forecastFrom(churn, 100, 154, NOW);
  assert.equal(flat.note, "not growing");
  for (const [what, changes] of [["empty", []], ["four changes", history([4])], ["under a day", history([0, 0]).concat({ at: NOW - 3_600_000, delta: 50 })]] as const) {
    const f = forecastFrom([...changes], 50, 200, NOW);
    assert.deepEqual([f.note, f.growthPerDay, f.daysLeft], ["too little history", null, null], what);
  }
  assert.match(forecastFrom([], 0, 10, NOW).method, /least-squares line/);
});

test("the engine forecasts from a pool's own history: allocations, releases and carves count, other pools do not", async () => {
  const clock = manualClock(NOW - 12 * DAY);
  const env = await tempEngine({ clock: clock.now });
  try {
    const { engine } = env;
    await engine.createPool({ name: "grow", cidr: "10.90.0.0/22" }, ctx); // 1022 usable
    await engine.createPool({ name: "other", cidr: "10.91.0.0/24" }, ctx);
    assert.equal((await engine.forecast({ pool: "grow" }, SERVER)).note, "too little history");
    for (let day = 0; day < 12; day++) {
      for (let k = 0; k < 12; k++) {
        clock.advance(DAY / 12);
        await engine.allocate({ pool: "grow" }, {}, ctx);
        await engine.allocate({ pool: "other" }, {}, ctx);
      }
      // each day one is given back and a /30 carved: +12 - 1 + 4 = 15 a day
      const page = await engine.listAllocations({ pool: "grow" }, { limit: 1 }, SERVER);
      await engine.release({ id: page.items[0]!.id }, ctx);
      await engine.createChildPool({ pool: "grow" }, { name: `c-${day}`, prefixLength: 30 }, ctx);
    }
    const f = await engine.forecast({ pool: "grow" }, SERVER);
    assert.equal(f.note, null);
    assert.ok(Math.abs(f.growthPerDay! - 15) < 1.5, `growth ${f.growthPerDay}`);
    const u = await engine.usage({ pool: "grow" }, SERVER);
    assert.ok(Math.abs(f.daysLeft! - Number(u.free) / f.growthPerDay!) < 0.05);
    // a space-limited caller cannot ask about another space's pool
    await assert.rejects(engine.forecast({ pool: "grow" }, { access: { name: "t", spaces: ["lab"] } }), /limited to spaces lab/);
  } finally {
    await env.cleanup();
  }
});
