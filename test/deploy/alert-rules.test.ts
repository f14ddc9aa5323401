import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { test } from "node:test";

/** The example alerting rules, checked and unit-tested by Prometheus' own promtool (Debian's prometheus package). */
const dir = fileURLToPath(new URL("../../deploy/prometheus/", import.meta.url));
const promtool = (...args: string[]) => {
  const r = spawnSync("promtool", args, { cwd: dir, encoding: "utf8" });
  if (r.error) throw new Error(`promtool could not run (${r.error.message}); install Debian's prometheus package`);
  return r;
};

test("the example alert rules are valid and fire on thresholds and on a forecast under two weeks", () => {
  const check = promtool("check", "rules", "allot-alerts.yml");
  assert.equal(check.status, 0, check.stdout + check.stderr);
  assert.match(check.stdout, /SUCCESS: 3 rules found/);
  const unit = promtool("test", "rules", "allot-alerts.test.yml");
  assert.equal(unit.status, 0, unit.stdout + unit.stderr);
});

test("the rules ask only for series the server exports", () => {
  const rules = readFileSync(`${dir}allot-alerts.yml`, "utf8");
  const exported = readFileSync(fileURLToPath(new URL("../../src/api/metrics.ts", import.meta.url)), "utf8");
  const names = new Set([...rules.matchAll(/expr:.*?\b(allot_[a-z_]+)/g)].map((m) => m[1]!));
  assert.equal(names.size, 3);
  for (const n of names) assert.match(exported, new RegExp(`name: "${n}"`), n);
});
