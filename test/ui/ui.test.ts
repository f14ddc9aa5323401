import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { type Browser, type Page, chromium } from "playwright-core";
import { TEST_ADMIN_TOKEN } from "../helpers.js";
import { type ServerProcess, allot, startServerProcess } from "../process-helpers.js";

/**
 * The web UI in a real headless Chromium (Debian's), against a real server: sign in, make a pool,
 * allocate, see the map change, search, release, move around by keyboard, at laptop and phone widths.
 * The screenshots it takes are the README's.
 */

let dir: string;
/** Screenshots go to a temporary directory, or to ALLOT_SCREENSHOTS_DIR (docs/screenshots for the README's). */
let shots: string;
let server: ServerProcess;
let browser: Browser;
let page: Page;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "allot-ui-"));
  shots = process.env.ALLOT_SCREENSHOTS_DIR ?? join(dir, "screenshots");
  mkdirSync(shots, { recursive: true });
  server = await startServerProcess(join(dir, "data"));
  // something to look at: a space with a nested pool, partly used, with an alert threshold
  const run = (args: string[]) => assert.equal(allot(["--url", server.url, ...args]).code, 0, args.join(" "));
  run(["space", "create", "lab"]);
  run(["pool", "create", "dc-10", "10.10.0.0/16", "--space", "lab"]);
  run(["pool", "child", "dc-10", "rack-1", "--prefix-length", "24", "--space", "lab"]);
  run(["allocate", "rack-1", "--space", "lab", "--count", "200"]);
  run(["pool", "create", "v6-lab", "2001:db8:100::/48", "--space", "lab"]);
  run(["allocate", "v6-lab", "--space", "lab", "--size", "4096", "--owner", "k8s-nodes"]);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
});

after(async () => {
  await browser?.close();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("sign in with a token; a wrong one is refused with a message", async () => {
  await page.goto(server.url);
  await page.waitForSelector("form.signin");
  assert.match(page.url(), /\/ui\/$/);
  await page.fill("#token", "allot_not-a-real-token-00000000000");
  await page.click("form.signin button[type=submit]");
  await page.waitForSelector("form.signin [role=alert]");
  assert.match(await page.textContent("form.signin [role=alert]") ?? "", /unknown, revoked or expired/);
  await page.fill("#token", TEST_ADMIN_TOKEN);
  await page.click("form.signin button[type=submit]");
  await page.waitForSelector("text=Space lab");
  assert.match((await page.textContent("#who")) ?? "", /admin \(admin\)/);
  // a tree, fullest first: rack-1 under dc-10 (0.3% used) before v6-lab (almost nothing)
  const rows = await page.$$eval(".pool-row a", (as) => as.map((a) => a.textContent));
  assert.deepEqual(rows, ["dc-10", "rack-1", "v6-lab"]);
  assert.equal(await page.locator("li li .pool-row a").textContent(), "rack-1");
  await page.screenshot({ path: join(shots, "overview.png"), fullPage: true });
});

test("make a pool, allocate from it and watch the map; search finds it; release frees the cell", async () => {
  await page.fill("#np-name", "web-net");
  await page.fill("#np-cidr", "10.20.0.0/24");
  await page.selectOption("#np-space", "lab");
  await page.click("text=Create pool");
  await page.waitForSelector("h1:has-text('web-net')");
  const cell = (address: string) => page.locator(`.grid button[aria-label^="${address}:"]`);
  await cell("10.20.0.1").waitFor();
  assert.equal(await cell("10.20.0.1").getAttribute("aria-label"), "10.20.0.1: free");

  await page.fill("#a-owner", "vm-web-1");
  await page.fill("#a-mac", "aa:bb:cc:00:20:01");
  await page.fill("#a-hostname", "web-1");
  await page.click("form.inline button:has-text('Allocate')");
  await page.waitForSelector("text=Allocated 10.20.0.1.");
  await page.waitForFunction(() => document.querySelector('.grid button[aria-label^="10.20.0.1:"]')?.getAttribute("aria-label") === "10.20.0.1: in use");
  await page.waitForSelector("td:has-text('vm-web-1')");
  // a block of 4, then a specific address
  await page.selectOption("#a-mode", "block");
  await page.fill("#a-size", "4");
  await page.fill("#a-owner", "lb-pool");
  await page.fill("#a-mac", "");
  await page.fill("#a-hostname", "");
  await page.click("form.inline button:has-text('Allocate')");
  // the lowest first fit: right after 10.20.0.1
  await page.waitForSelector("text=Allocated 10.20.0.2 – 10.20.0.5.");
  await page.screenshot({ path: join(shots, "pool.png"), fullPage: true });

  // keyboard: the map's cells are buttons, arrows move between them
  await cell("10.20.0.1").focus();
  await page.keyboard.press("ArrowRight");
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute("aria-label")), "10.20.0.2: in use");
  await page.keyboard.press("ArrowDown");
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute("aria-label")), "10.20.0.18: free");

  await page.fill("#q", "web-1");
  await page.press("#q", "Enter");
  await page.waitForSelector("h1:has-text('Search: web-1')");
  await page.waitForSelector("td:has-text('aa:bb:cc:00:20:01')");
  await page.click("a:has-text('10.20.0.1')");
  await page.waitForSelector("dd:has-text('vm-web-1')");
  const text = (await page.textContent("main")) ?? "";
  assert.ok(text.includes("allocate allocation 10.20.0.1 (vm-web-1)"), text);
  await page.screenshot({ path: join(shots, "address.png"), fullPage: true });

  await page.click("dd a:has-text('web-net')");
  await page.waitForSelector("td:has-text('vm-web-1')");
  await page.click("button[aria-label='release 10.20.0.1']");
  await page.waitForFunction(() => document.querySelector('.grid button[aria-label^="10.20.0.1:"]')?.getAttribute("aria-label") === "10.20.0.1: free");
});

test("a large pool's map summarises blocks and zooms in; the page fits a phone", async () => {
  await page.goto(`${server.url}/ui/#/`);
  await page.click(".pool-row a:has-text('v6-lab')");
  await page.waitForSelector(".grid button");
  // (the block, and the network address the pool keeps back)
  const first = await page.locator(".grid button").first().getAttribute("aria-label");
  assert.match(first ?? "", /^2001:db8:100:: – 2001:db8:100:ff:ffff:ffff:ffff:ffff: 4,097 of 2\^72 in use$/);
  await page.locator(".grid button").first().click();
  await page.waitForSelector("text=Whole pool");
  assert.match((await page.locator(".grid button").first().getAttribute("aria-label")) ?? "", /^2001:db8:100:: – 2001:db8:100:0:ffff:ffff:ffff:ffff: 4,097 of 2\^64 in use$/);
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${server.url}/ui/#/`);
  await page.waitForSelector("text=Space lab");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than a phone`);
  await page.screenshot({ path: join(shots, "phone.png"), fullPage: true });
});
