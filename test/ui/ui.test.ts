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
  // no search box before sign-in: a token typed there would end up in a URL
  assert.equal(await page.isVisible("#search"), false);
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
  // a /48 less its network address is nearer 2^80 than 2^79; utilisation rounds down, as the server's does
  assert.match((await page.locator(".pool-row:has-text('v6-lab') .num").textContent()) ?? "", /^0\.0% · 4,096 of ≈2\^80$/);
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
  await page.waitForFunction(() => document.querySelector('.grid button[aria-label^="10.20.0.1:"]')?.getAttribute("aria-label") === "10.20.0.1: allocated");
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

  // the table sorts on the server: newest first at the first press of "Since" (by keyboard), then oldest
  const firstOwner = () => page.locator("#allocations tbody tr").first().locator("td").nth(1).textContent();
  await page.locator("th button:has-text('Since')").focus();
  await page.keyboard.press("Enter");
  await page.waitForSelector("#allocations th[aria-sort='descending']:has-text('Since')");
  assert.equal(await firstOwner(), "lb-pool");
  // the redrawn table's header has the focus back, so the next press sorts again
  assert.match((await page.evaluate(() => document.activeElement?.textContent)) ?? "", /^Since/);
  await page.keyboard.press("Enter");
  await page.waitForSelector("#allocations th[aria-sort='ascending']:has-text('Since')");
  assert.equal(await firstOwner(), "vm-web-1");
  await page.locator("th button:has-text('Address')").click();
  await page.waitForSelector("#allocations th[aria-sort='ascending']:has-text('Address')");

  // keyboard: the map's cells are buttons, arrows move between them
  await cell("10.20.0.1").focus();
  await page.keyboard.press("ArrowRight");
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute("aria-label")), "10.20.0.2: allocated");
  await page.keyboard.press("ArrowDown");
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute("aria-label")), "10.20.0.18: free");
  // the map is one Tab stop: Tab leaves it for the allocate form
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement?.closest(".grid")), null);

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
  // release asks first; then says what it did, with the keyboard on that message
  page.once("dialog", (d) => {
    assert.match(d.message(), /^Release 10\.20\.0\.1 \(vm-web-1\)\?/);
    void d.accept();
  });
  await page.click("button[aria-label='release 10.20.0.1']");
  await page.waitForSelector("[role=status]:has-text('Released 10.20.0.1.')");
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Released 10.20.0.1.");
  await page.waitForFunction(() => document.querySelector('.grid button[aria-label^="10.20.0.1:"]')?.getAttribute("aria-label") === "10.20.0.1: free");
});

test("a large pool's map summarises blocks and zooms in; the page fits a phone", async () => {
  await page.goto(`${server.url}/ui/#/`);
  await page.click(".pool-row a:has-text('v6-lab')");
  await page.waitForSelector(".grid button");
  // (the block, and the network address the pool keeps back)
  const first = await page.locator(".grid button").first().getAttribute("aria-label");
  assert.match(first ?? "", /^2001:db8:100:: – 2001:db8:100:ff:ffff:ffff:ffff:ffff: 4,096 allocated, 1 network\/broadcast\/gateway, ≈2\^72 free$/);
  await page.locator(".grid button").first().click();
  await page.waitForSelector("text=Whole pool");
  assert.match((await page.locator(".grid button").first().getAttribute("aria-label")) ?? "", /^2001:db8:100:: – 2001:db8:100:0:ffff:ffff:ffff:ffff: 4,096 allocated, 1 network\/broadcast\/gateway, ≈2\^64 free$/);
  // an example address in the allocate form is one of this pool's
  assert.equal(await page.getAttribute("#a-address", "placeholder"), "2001:db8:100::5");
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${server.url}/ui/#/`);
  await page.waitForSelector("text=Space lab");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than a phone`);
  await page.screenshot({ path: join(shots, "phone.png"), fullPage: true });
});

/**
 * What a screen reader and a low-vision reader need on the page now: every visible piece of text
 * meets WCAG AA contrast against what is behind it (4.5:1, 3:1 for large text), and every link,
 * button and field has a name. Returns what falls short.
 */
async function audit(): Promise<string[]> {
  // the test runner's compiler names the helpers below through a function the page lacks
  await page.evaluate("window.__name = (f) => f");
  return page.evaluate(() => {
    const problems: string[] = [];
    const rgba = (css: string) => {
      const [r = 0, g = 0, b = 0, a = 1] = (css.match(/[\d.]+/g) ?? []).map(Number);
      return { r, g, b, a };
    };
    const luminance = (c: { r: number; g: number; b: number }) => {
      const f = (v: number) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
      return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
    };
    const background = (el: Element | null) => {
      for (let e = el; e; e = e.parentElement) {
        const c = rgba(getComputedStyle(e).backgroundColor);
        if (c.a > 0) return c;
      }
      return { r: 255, g: 255, b: 255, a: 1 };
    };
    const shown = (el: Element) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden" && !el.closest(".visually-hidden");
    for (const el of document.querySelectorAll("body *")) {
      const text = [...el.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE).map((n) => n.textContent ?? "").join("").trim();
      if (!text || !shown(el)) continue;
      const style = getComputedStyle(el);
      const fg = rgba(style.color);
      if (fg.a === 0) continue; // text drawn invisible on purpose (the map's cells speak through their labels)
      const [hi, lo] = [luminance(fg), luminance(background(el))].sort((x, y) => y - x) as [number, number];
      const ratio = (hi + 0.05) / (lo + 0.05);
      const size = parseFloat(style.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) problems.push(`"${text.slice(0, 40)}": contrast ${ratio.toFixed(2)}:1`);
    }
    for (const el of document.querySelectorAll<HTMLElement>("a, button, input, select, textarea")) {
      if (!shown(el)) continue;
      const labels = "labels" in el ? [...((el as HTMLInputElement).labels ?? [])].map((l) => l.textContent ?? "").join("") : "";
      const name = (el.getAttribute("aria-label") ?? "") || labels.trim() || (el.textContent ?? "").trim() || (el.getAttribute("title") ?? "");
      if (!name) problems.push(`${el.outerHTML.slice(0, 80)} has no name`);
    }
    return problems;
  });
}

test("every page meets AA contrast and names its controls; the keyboard reaches everything from the top", async () => {
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.goto(`${server.url}/ui/#/`);
  await page.waitForSelector("text=Space lab");
  assert.deepEqual(await audit(), [], "overview");
  // on a freshly loaded page the first Tab is the skip link, which lands on the page's content
  await page.reload();
  await page.waitForSelector("text=Space lab");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Skip to content");
  await page.keyboard.press("Enter");
  assert.equal(await page.evaluate(() => document.activeElement?.id), "main");
  // then on through the page's links to a pool, opened from the keyboard
  for (let i = 0; i < 40 && (await page.evaluate(() => document.activeElement?.textContent)) !== "rack-1"; i++) await page.keyboard.press("Tab");
  await page.keyboard.press("Enter");
  await page.waitForSelector("h1:has-text('rack-1')");
  await page.waitForSelector("#allocations tbody tr");
  await page.waitForSelector(".grid button");
  assert.deepEqual(await audit(), [], "pool page");
  await page.click("#allocations tbody tr a");
  await page.waitForSelector("text=History");
  assert.deepEqual(await audit(), [], "address page");
});

/** The API as the UI's user could call it, to set a pool up quickly. */
async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

/** The computed background colour of each map cell named, and of each legend entry's swatch, by their text. */
async function colours(addresses: string[]): Promise<{ cells: Record<string, string>; legend: Record<string, string> }> {
  return page.evaluate((addresses) => {
    const cells: Record<string, string> = {};
    for (const a of addresses) {
      const el = document.querySelector(`.grid button[aria-label^="${a}:"]`);
      if (el) cells[a] = getComputedStyle(el).backgroundColor;
    }
    const legend: Record<string, string> = {};
    for (const li of document.querySelectorAll(".legend li")) legend[li.textContent ?? ""] = getComputedStyle(li, "::before").backgroundColor;
    return { cells, legend };
  }, addresses);
}

test("the map gives each state its own colour, named in a legend; the form's example address is the pool's", async () => {
  await page.setViewportSize({ width: 1280, height: 900 });
  const pool = await call<{ id: string }>("POST", "/v1/pools", { name: "mixed", space: "lab", cidr: "10.40.0.0/24", gateway: "10.40.0.1", exclusions: ["10.40.0.200-10.40.0.209"] });
  await call("POST", `/v1/pools/${pool.id}/children`, { name: "mixed-child", cidr: "10.40.0.64/27" });
  await call("POST", `/v1/pools/${pool.id}/allocations`, { address: "10.40.0.10", owner: "vm-mixed" });
  await page.goto(`${server.url}/ui/#/pool/${pool.id}`);
  const label = (address: string) => page.locator(`.grid button[aria-label^="${address}:"]`).getAttribute("aria-label");
  await page.waitForSelector('.grid button[aria-label^="10.40.0.10:"]');
  assert.equal(await label("10.40.0.0"), "10.40.0.0: network address (kept back)");
  assert.equal(await label("10.40.0.1"), "10.40.0.1: gateway (kept back)");
  assert.equal(await label("10.40.0.255"), "10.40.0.255: broadcast address (kept back)");
  assert.equal(await label("10.40.0.10"), "10.40.0.10: allocated");
  assert.equal(await label("10.40.0.64"), "10.40.0.64: in a child pool");
  assert.equal(await label("10.40.0.200"), "10.40.0.200: excluded");
  assert.equal(await label("10.40.0.20"), "10.40.0.20: free");
  // a pool made just now has no history to forecast from, and says so, with the method on hover
  const forecast = page.locator(".stats .forecast");
  assert.equal(await forecast.textContent(), "–forecast: too little history");
  assert.match((await forecast.getAttribute("title")) ?? "", /least-squares line/);

  const legend = await page.$$eval(".legend li", (lis) => lis.map((li) => li.textContent));
  assert.deepEqual(legend, ["allocated", "in a child pool", "excluded", "network, broadcast or gateway", "free", "not in the pool"]);
  const { cells, legend: swatch } = await colours(["10.40.0.0", "10.40.0.1", "10.40.0.255", "10.40.0.10", "10.40.0.64", "10.40.0.200", "10.40.0.20"]);
  const byState = { allocated: cells["10.40.0.10"], "in a child pool": cells["10.40.0.64"], excluded: cells["10.40.0.200"], "network, broadcast or gateway": cells["10.40.0.0"], free: cells["10.40.0.20"] };
  // five colours, no two alike, each the one its legend entry shows
  assert.equal(new Set(Object.values(byState)).size, 5, JSON.stringify(byState));
  for (const [state, colour] of Object.entries(byState)) assert.equal(swatch[state], colour, state);
  assert.equal(cells["10.40.0.1"], byState["network, broadcast or gateway"]);
  assert.equal(cells["10.40.0.255"], byState["network, broadcast or gateway"]);

  // the allocate form's example address lies inside this pool, not in some other network
  assert.equal(await page.getAttribute("#a-address", "placeholder"), "10.40.0.5");
  // one page of allocations: nowhere to page to either way; a MAC and host name never given show a dash
  await page.waitForSelector("#allocations tbody tr");
  assert.equal(await page.isDisabled(".pager button:has-text('Previous')"), true);
  assert.equal(await page.isDisabled(".pager button:has-text('Next')"), true);
  const row = await page.locator("#allocations tbody tr").first().locator("td").allTextContents();
  assert.deepEqual(row.slice(0, 4), ["10.40.0.10", "vm-mixed", "–", "–"]);
  assert.deepEqual(await audit(), [], "pool page with every state");
  await page.locator(".grid").screenshot({ path: join(shots, "map-states.png") });
});

test("a block of cells says how many addresses of each state it holds", async () => {
  await page.goto(`${server.url}/ui/#/`);
  await page.click(".pool-row a:has-text('dc-10')");
  // rack-1 was carved from the start of dc-10, over dc-10's network address
  await page.waitForSelector('.grid button[aria-label^="10.10.0.0 – 10.10.0.255:"]');
  assert.equal(await page.locator(".grid button").first().getAttribute("aria-label"), "10.10.0.0 – 10.10.0.255: 255 in child pools, 1 network/broadcast/gateway");
  assert.equal(await page.locator(".grid button").nth(1).getAttribute("aria-label"), "10.10.1.0 – 10.10.1.255: 256 free");
});

test("the last page of a pool's allocations has no Next, even when it is full", async () => {
  // rack-1 holds 200 allocations: four full pages of 50
  await page.goto(`${server.url}/ui/#/`);
  await page.click(".pool-row a:has-text('rack-1')");
  await page.waitForSelector("#allocations tbody tr");
  assert.equal(await page.isDisabled(".pager button:has-text('Previous')"), true);
  for (let n = 2; n <= 4; n++) {
    await page.click(".pager button:has-text('Next')");
    await page.waitForSelector(`.pager span:has-text('page ${n}')`);
  }
  await page.waitForSelector("#allocations tbody tr");
  assert.equal(await page.locator("#allocations tbody tr").count(), 50);
  assert.equal(await page.isDisabled(".pager button:has-text('Next')"), true);
  assert.equal(await page.isDisabled(".pager button:has-text('Previous')"), false);
});

test("search finds a host name that was released, in its history", async () => {
  const pool = await call<{ id: string }>("GET", "/v1/pools/mixed?space=lab");
  const a = await call<{ id: string; address: string }>("POST", `/v1/pools/${pool.id}/allocations`, { owner: "vm-db-7", mac: "aa:bb:cc:00:40:07", hostname: "db-7" });
  await call("DELETE", `/v1/allocations/${a.id}`);
  await page.goto(`${server.url}/ui/#/`);
  await page.waitForSelector("text=Space lab");
  await page.fill("#q", "db-7");
  await page.press("#q", "Enter");
  await page.waitForSelector("h1:has-text('Search: db-7')");
  // nothing holds it now, but what it held is there
  await page.waitForSelector("text=Nothing allocated now by that MAC, owner or host name.");
  const rows = await page.locator("section[aria-label=history] tbody tr").evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll("td")].slice(1, 3).map((td) => td.textContent)));
  assert.deepEqual(rows, [
    [`release allocation ${a.address} (vm-db-7)`, "db-7"],
    [`allocate allocation ${a.address} (vm-db-7)`, "db-7"],
  ]);
  assert.deepEqual(await audit(), [], "search page");
});
