/**
 * The web UI at size: a pool holding 1,000,000 allocations (SQLite, filled in big transactions by
 * bench/fill.ts, then every 10th released so the free-space index is fragmented), a real `allot serve`,
 * and headless Chromium (Debian's). Measures first paint of the overview and the pool page, and how
 * long each interaction takes until its answer is on screen. Writes bench/ui-results.json.
 *
 *   node --import tsx bench/ui.ts        (BENCH_QUICK=1: 100,000 allocations)
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { Engine } from "../src/engine/engine.js";
import { SqliteStore } from "../src/store/sqlite/sqlite-store.js";
import { TEST_ADMIN_TOKEN } from "../test/helpers.js";
import { startServerProcess } from "../test/process-helpers.js";
import { fillPool, fragment } from "./fill.js";

const QUICK = process.env.BENCH_QUICK === "1";
const COUNT = QUICK ? 100_000 : 1_000_000;
const RUNS = 5;
const dir = mkdtempSync(join(tmpdir(), "allot-bench-ui-"));
const log = (m: string) => process.stderr.write(`[bench ui] ${m}\n`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function prepare(): Promise<string> {
  const store = new SqliteStore({ file: join(dir, "data", "allot.db"), synchronous: "normal" });
  const engine = await Engine.open(store);
  const ctx = { actor: "bench" };
  await engine.ensureAdminToken(TEST_ADMIN_TOKEN);
  const pool = await engine.createPool({ name: "big", cidr: "10.0.0.0/8", description: "a pool of a million allocations" }, ctx);
  const started = Date.now();
  const first = await fillPool(store, { pool: pool.id }, COUNT);
  await fragment(store, { pool: pool.id }, first, COUNT, 10);
  for (let i = 0; i < 20; i++) await engine.allocate({ pool: pool.id }, { owner: `vm-${i}`, mac: `02:00:00:00:00:${(16 + i).toString(16)}`, hostname: `web-${i}` }, ctx);
  log(`filled ${COUNT.toLocaleString("en")} allocations in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  await engine.close();
  return pool.id;
}

/** What to stop at the end, newest first, whether the bench finished or failed. */
const stops: (() => Promise<unknown>)[] = [];
try {
  const poolId = await prepare();
  // the same server process the tests start, stopped and waited for at the end
  const server = await startServerProcess(join(dir, "data"));
  stops.unshift(() => server.stop());
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  stops.unshift(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  // signed in already: the token is where the sign-in form puts it
  await context.addInitScript((t) => {
    if (location.protocol.startsWith("http")) sessionStorage.setItem("allot-token", t);
  }, TEST_ADMIN_TOKEN);
  const page = await context.newPage();
  page.on("pageerror", (e) => log(`page error: ${e.message}`));
  page.on("response", (r) => r.status() >= 400 && !r.url().endsWith("favicon.ico") && log(`HTTP ${r.status()} ${r.url()}`));
  const results: Record<string, { medianMs: number; runsMs: number[] }> = {};
  /** The action timed until its answer is on screen; `reset` (untimed) puts the page back. */
  const measure = async (name: string, action: () => Promise<void>, reset?: () => Promise<void>) => {
    const runs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t0 = Date.now();
      await action();
      runs.push(Date.now() - t0);
      await reset?.();
    }
    results[name] = { medianMs: median(runs), runsMs: runs };
    log(`${name}: ${median(runs)} ms (${runs.join(", ")})`);
  };
  const paint = async (url: string, selector: string) => {
    await page.goto("about:blank");
    await page.goto(url);
    await page.waitForSelector(selector);
  };
  await measure("first paint, overview (pool tree with usage)", () => paint(`${server.url}/ui/#/`, ".pool-row"));
  await measure("first paint, pool page (map, stats, first 50 allocations)", () => paint(`${server.url}/ui/#/pool/${poolId}`, "#allocations tbody tr"));
  // where a pool page's time goes: each API call it makes, as the browser timed it
  await paint(`${server.url}/ui/#/pool/${poolId}`, "#allocations tbody tr");
  await page.waitForTimeout(1500);
  /** Each API call since the page's timings were last cleared: when it started (after the first) and how long it took, as the browser timed them. */
  const apiTimings = () =>
    page.evaluate(() => {
      const calls = performance.getEntriesByType("resource").filter((e) => e.name.includes("/v1/"));
      const t0 = calls[0]?.startTime ?? 0;
      return calls.map((e) => ({ url: e.name.replace(/^https?:\/\/[^/]+/, "").replace(/[0-9a-f-]{36}/, "{id}"), atMs: Math.round(e.startTime - t0), ms: Math.round(e.duration) }));
    });
  const apiCalls = await apiTimings();
  for (const c of apiCalls) log(`  pool page calls ${c.url}: ${c.ms} ms`);
  const wholeMap = () => page.waitForFunction(() => document.querySelectorAll(".grid button").length > 0 && !document.querySelector("div.crumbs button"));
  const runs: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    await paint(`${server.url}/ui/#/pool/${poolId}`, "#allocations tbody tr");
    await wholeMap();
    const t0 = Date.now();
    await page.locator(".grid button").nth(3 + i).click();
    await page.waitForFunction(() => document.querySelector("div.crumbs button")?.textContent === "Whole pool");
    runs.push(Date.now() - t0);
  }
  results["zoom the map into a cell"] = { medianMs: median(runs), runsMs: runs };
  log(`zoom the map into a cell: ${median(runs)} ms (${runs.join(", ")})`);
  await measure("next page of allocations", async () => {
    const before = await page.locator("#allocations tbody tr td a").first().textContent();
    await page.click("button:has-text('Next')");
    await page.waitForFunction((b) => document.querySelector("#allocations tbody tr td a")?.textContent !== b, before);
  });
  await measure(
    "filter allocations by owner",
    async () => {
      await page.fill("#f-value", "vm-7");
      await page.click("button:has-text('Filter')");
      await page.waitForFunction(() => document.querySelectorAll("#allocations tbody tr").length === 1);
    },
    async () => {
      await page.fill("#f-value", "");
      await page.click("button:has-text('Filter')");
      await page.waitForFunction(() => document.querySelectorAll("#allocations tbody tr").length === 50);
    },
  );
  await measure(
    "search by host name from the header",
    async () => {
      await page.fill("#q", "web-1");
      await page.press("#q", "Enter");
      await page.waitForSelector("td:has-text('02:00:00:00:00:11')");
    },
    async () => {
      await page.goBack();
      await page.waitForSelector("#allocations tbody tr");
    },
  );
  await measure(
    "sort allocations newest first",
    async () => {
      await page.click("th button:has-text('Since')");
      await page.waitForSelector("#allocations th[aria-sort='descending']");
    },
    async () => {
      await page.click("th button:has-text('Address')");
      await page.waitForSelector("#allocations th[aria-sort='ascending']:has-text('Address')");
    },
  );
  // until the answer is shown and the map has redrawn with the new address in its cell
  await measure("allocate the next free address", async () => {
    const cell = await page.locator(".grid button").first().getAttribute("aria-label");
    await page.evaluate(() => performance.clearResourceTimings());
    await page.click("form.inline button:has-text('Allocate')");
    await page.waitForSelector("[role=status]:has-text('Allocated')");
    await page.waitForFunction((before) => document.querySelector(".grid button")?.getAttribute("aria-label") !== before, cell);
    await page.evaluate(() => document.querySelector("[role=status]")?.remove());
  });
  // what the last allocate waited for: its POST, then the page's reloads
  const allocateApiCalls = await apiTimings();
  for (const c of allocateApiCalls) log(`  allocate calls ${c.url}: at ${c.atMs} ms, ${c.ms} ms`);
  const fcp = await page.evaluate(() => performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? null);
  const out = { machine: `${process.platform} ${process.arch}`, allocations: COUNT, runs: RUNS, firstContentfulPaintMs: fcp, results, poolPageApiCalls: apiCalls, allocateApiCalls };
  const file = fileURLToPath(new URL(QUICK ? "./ui-results-quick.json" : "./ui-results.json", import.meta.url));
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
} finally {
  for (const stop of stops) await stop();
  rmSync(dir, { recursive: true, force: true });
}
