/**
 * Allot's web UI: sign in with an API token, see spaces and pools as a tree (fullest first), a pool's
 * address map (zoomable, from the server's cell counts, so a pool of any size costs the same), its
 * allocations page by page, allocate and release, history, and search from anywhere. Everything is
 * read through the /v1 API with the token, so its scope and spaces decide what shows and what can be done.
 */

// ---------- the API, with the token of this browser tab

const TOKEN_KEY = "allot-token";
let token = sessionStorage.getItem(TOKEN_KEY);

class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  const data = text ? (JSON.parse(text) as unknown) : undefined;
  if (!res.ok) {
    if (res.status === 401) signOut();
    throw new ApiError((data as { detail?: string } | undefined)?.detail ?? `${res.status} ${res.statusText}`, res.status);
  }
  return data as T;
}

interface Me {
  name: string;
  scope: "read" | "write" | "admin";
  spaces: string[] | null;
}
interface Usage {
  total: string;
  allocated: string;
  free: string;
  inChildPools: string;
  utilization: number;
}
interface Forecast {
  method: string;
  days: number;
  growthPerDay: number | null;
  daysLeft: number | null;
  exhaustedAt: string | null;
  note: string | null;
}
interface Pool {
  id: string;
  name: string;
  space: string;
  family: 4 | 6;
  parent: string | null;
  ranges: { start: string; end: string; cidr?: string; prefixLength: number; gateway: string | null }[];
  thresholds: number[];
  usage: Usage;
  description: string;
}
interface Allocation {
  id: string;
  address: string;
  lastAddress: string;
  size: number;
  owner: string | null;
  mac: string | null;
  hostname: string | null;
  createdAt: string;
  expiresAt: string | null;
  pool: string;
  poolId: string;
  space: string;
}
interface MapCell {
  first: string;
  last: string;
  total: string;
  free: string;
  allocated: string;
  inChildPools: string;
  excluded: string;
  reserved: string;
}
/** One history entry (named apart from the DOM's History, which an interface of that name would merge with). */
interface HistoryEntry {
  seq: number;
  at: string;
  actor: string;
  action: string;
  entity: string;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
}

let me: Me | null = null;
const canWrite = () => me !== null && me.scope !== "read";

// ---------- small DOM helpers (text is always set as text)

type Child = Node | string | null | undefined | false;
function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string | boolean | ((e: Event) => void)> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === "function") el.addEventListener(k.replace(/^on/, ""), v);
    else if (v === true) el.setAttribute(k, "");
    else if (v !== false) el.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(typeof c === "string" ? document.createTextNode(c) : c);
  return el;
}
const main = () => document.getElementById("main")!;
function show(...nodes: Child[]): void {
  main().replaceChildren(...nodes.filter((n): n is Node | string => n !== null && n !== undefined && n !== false));
}
const errorBox = (err: unknown) => h("p", { class: "error", role: "alert" }, (err as Error).message);

/** replaceChildren, skipping what is not there. */
function fill(el: Element, ...nodes: Child[]): void {
  el.replaceChildren(...nodes.filter((n): n is Node | string => n !== null && n !== undefined && n !== false));
}

/** Big counts (IPv6) as text with thousands separators, or powers of two when huge. */
function count(text: string): string {
  const n = BigInt(text);
  if (n >= 10n ** 15n) {
    const below = n.toString(2).length - 1;
    if (n === 1n << BigInt(below)) return `2^${below}`;
    // the nearer power: a /32 less its network address is ≈2^96, not ≈2^95
    return `≈2^${n - (1n << BigInt(below)) > (1n << BigInt(below + 1)) - n ? below + 1 : below}`;
  }
  return n.toLocaleString("en");
}
/** A stored time (ISO 8601, UTC) as people read it, saying it is UTC. */
const when = (iso: string) => `${iso.replace("T", " ").slice(0, 19)} UTC`;
/** How each order of the allocations table reads to a screen reader. */
const SORT_NAMES: Record<string, string> = { address: "by address", "-address": "by address, highest first", created: "oldest first", "-created": "newest first" };
/**
 * Every percentage on every page: one decimal, rounded down as the server does, so a pool shows
 * 100.0% only when it is full (the small nudge keeps 0.7 × 10 = 7.000…1 and 2.3 × 10 = 22.999… right).
 */
const pct = (u: number) => `${(Math.floor(u * 10 + 1e-6) / 10).toFixed(1)}%`;
/** What an empty table cell shows. */
const NONE = "–";
const orNone = (v: string | null | undefined) => (v === null || v === undefined || v === "" ? NONE : v);

/** An address as a number, and back (IPv6 written the short way, RFC 5952), for examples drawn from a pool. */
function addressValue(text: string): bigint {
  if (!text.includes(":")) return text.split(".").reduce((n, o) => (n << 8n) + BigInt(o), 0n);
  let groups = text;
  // an IPv4 tail (::ffff:10.0.0.1) as its two groups
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const n = addressValue(v4[1]!);
    groups = `${text.slice(0, v4.index)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head = "", tail] = groups.split("::");
  const hs = head ? head.split(":") : [];
  const ts = tail ? tail.split(":") : [];
  const all = tail === undefined ? hs : [...hs, ...Array<string>(8 - hs.length - ts.length).fill("0"), ...ts];
  return all.reduce((n, g) => (n << 16n) + BigInt(`0x${g}`), 0n);
}
function addressText(value: bigint, family: 4 | 6): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => ((value >> s) & 255n).toString()).join(".");
  const groups = [112n, 96n, 80n, 64n, 48n, 32n, 16n, 0n].map((s) => ((value >> s) & 0xffffn).toString(16));
  // the longest run of two or more zero groups becomes ::
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
  }
  return best < 0 ? groups.join(":") : `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLen).join(":")}`;
}
/** An example address for a field: a few in from the start of the pool's first range, and never past its end. */
function exampleAddress(p: Pool): string {
  const r = p.ranges[0]!;
  const start = addressValue(r.start);
  const end = addressValue(r.end);
  return addressText(start + 5n <= end ? start + 5n : end, p.family);
}

function bar(p: Pool): HTMLElement {
  const u = p.usage.utilization;
  const hot = p.thresholds.some((t) => u >= t);
  return h(
    "div",
    { class: "bar", role: "img", "aria-label": `${pct(u)} used${p.thresholds.length ? `, alert at ${p.thresholds.map(pct).join(", ")}` : ""}` },
    h("div", { class: hot ? "fill hot" : "fill", style: `width:${Math.min(100, u)}%` }),
    ...p.thresholds.map((t) => h("div", { class: "mark", style: `left:${t}%`, title: `alert at ${pct(t)}` })),
  );
}

// ---------- pages

function signInPage(message?: string): void {
  const input = h("input", { id: "token", type: "password", autocomplete: "off", required: true, placeholder: "allot_…" });
  show(
    h(
      "form",
      {
        class: "signin",
        onsubmit: (e: Event) => {
          e.preventDefault();
          token = input.value.trim();
          sessionStorage.setItem(TOKEN_KEY, token);
          void start(true);
        },
      },
      h("h1", {}, "Sign in"),
      h("label", { for: "token" }, "API token"),
      input,
      h("p", { class: "muted" }, "The token the server printed at first start, or one from allot token create. It is kept in this tab only."),
      message ? h("p", { class: "error", role: "alert" }, message) : null,
      h("button", { class: "primary", type: "submit" }, "Sign in"),
    ),
  );
  input.focus();
}

function signOut(): void {
  token = null;
  me = null;
  sessionStorage.removeItem(TOKEN_KEY);
  document.getElementById("search")!.hidden = true;
  document.getElementById("who")!.replaceChildren();
}

async function overviewPage(): Promise<void> {
  const [{ items: spaces }, { items: pools }] = await Promise.all([api<{ items: { name: string }[] }>("GET", "/v1/spaces"), api<{ items: Pool[] }>("GET", "/v1/pools")]);
  // a pool's parent is named within its space
  const byParent = new Map<string | null, Pool[]>();
  for (const p of pools) byParent.set(p.parent, [...(byParent.get(p.parent) ?? []), p]);
  // fullest first, at every level
  for (const list of byParent.values()) list.sort((a, b) => b.usage.utilization - a.usage.utilization || a.name.localeCompare(b.name));
  const tree = (parent: string | null, space: string): HTMLElement | null => {
    const kids = (byParent.get(parent) ?? []).filter((p) => p.space === space);
    if (kids.length === 0) return null;
    return h(
      "ul",
      {},
      ...kids.map((p) =>
        h(
          "li",
          {},
          h(
            "div",
            { class: "pool-row" },
            h("a", { href: `#/pool/${p.id}` }, p.name),
            bar(p),
            // used is what the percentage counts: allocated, and carved into child pools
            h("span", { class: "num" }, `${pct(p.usage.utilization)} · ${count((BigInt(p.usage.allocated) + BigInt(p.usage.inChildPools)).toString())} of ${count(p.usage.total)}${p.usage.inChildPools !== "0" ? ` (${count(p.usage.inChildPools)} in child pools)` : ""}`),
          ),
          tree(p.name, space),
        ),
      ),
    );
  };
  show(
    h("h1", {}, "Address space"),
    ...spaces.map((s) => h("section", { class: "tree", "aria-label": `space ${s.name}` }, h("h2", {}, `Space ${s.name}`), tree(null, s.name) ?? h("p", { class: "muted" }, "No pools."))),
    canWrite() ? newPoolForm(spaces.map((s) => s.name)) : null,
  );
}

function newPoolForm(spaces: string[]): HTMLElement {
  const name = h("input", { id: "np-name", required: true, placeholder: "lab-net" });
  const cidr = h("input", { id: "np-cidr", required: true, placeholder: "10.0.0.0/24" });
  const space = h("select", { id: "np-space" }, ...spaces.map((s) => h("option", { value: s }, s)));
  const out = h("div", { "aria-live": "polite" });
  return answered(
    "New pool",
    h(
      "form",
      {
        class: "inline",
        onsubmit: async (e: Event) => {
          e.preventDefault();
          try {
            const p = await api<Pool>("POST", "/v1/pools", { name: name.value.trim(), cidr: cidr.value.trim(), space: space.value });
            location.hash = `#/pool/${p.id}`;
          } catch (err) {
            out.replaceChildren(errorBox(err));
          }
        },
      },
      h("label", { for: "np-name" }, "Name", name),
      h("label", { for: "np-cidr" }, "CIDR", cidr),
      h("label", { for: "np-space" }, "Space", space),
      h("button", { class: "primary", type: "submit" }, "Create pool"),
    ),
    out,
  );
}

/** A titled form with the place its answers go; a field the browser refuses clears the last answer, which no longer applies. */
function answered(title: string, form: HTMLFormElement, out: HTMLElement): HTMLElement {
  form.addEventListener("invalid", () => out.replaceChildren(), true);
  return h("section", {}, h("h2", {}, title), form, out);
}

/** The address map: up to 256 cells of the stretch [start, end]; a cell of many addresses zooms in. */
let mapRequest = 0;
const OUTSIDE = "repeating-linear-gradient(45deg, #f2f2f2 0 4px, #9a9a9a 4px 5px)";
/**
 * What an address in the pool can be, each with its colour (app.css) and the words for it: one address
 * is named by its state, a cell of many by its count in each. Held states first, so they stack from
 * the bottom of a mixed cell.
 */
const STATES = [
  { key: "allocated", colour: "var(--allocated)", legend: "allocated", one: "allocated", many: "allocated" },
  { key: "inChildPools", colour: "var(--child)", legend: "in a child pool", one: "in a child pool", many: "in child pools" },
  { key: "excluded", colour: "var(--excluded)", legend: "excluded", one: "excluded", many: "excluded" },
  { key: "reserved", colour: "var(--reserved)", legend: "network, broadcast or gateway", one: "kept back", many: "network/broadcast/gateway" },
  { key: "free", colour: "var(--free)", legend: "free", one: "free", many: "free" },
] as const;
/** A mixed cell gives each state it holds at least this share of its height, so one address in 256 still shows. */
const MIN_SHARE = 0.15;

/** The colour of a cell: one state's colour, or bands in proportion to each state's count. */
function cellColour(c: MapCell): string {
  const total = BigInt(c.total);
  if (total === 0n) return OUTSIDE;
  const held = STATES.filter((s) => c[s.key] !== "0");
  if (held.length === 1) return held[0]!.colour;
  const weights = held.map((s) => Math.max(MIN_SHARE, Number((BigInt(c[s.key]) * 10000n) / total) / 10000));
  const sum = weights.reduce((a, b) => a + b, 0);
  let at = 0;
  const stops = held.map((s, i) => {
    const from = at;
    at += (weights[i]! / sum) * 100;
    return `${s.colour} ${from.toFixed(2)}% ${at.toFixed(2)}%`;
  });
  return `linear-gradient(to top, ${stops.join(", ")})`;
}

/** What a cell holds, in words: the state of one address, or the count in each state of many. */
function cellState(p: Pool, c: MapCell, single: boolean): string {
  if (c.total === "0") return "not in the pool";
  if (single) {
    const s = STATES.find((x) => c[x.key] !== "0")!;
    if (s.key !== "reserved") return s.one;
    // which of the three, from the range it is in
    const r = p.ranges.find((x) => addressValue(x.start) <= addressValue(c.first) && addressValue(c.first) <= addressValue(x.end));
    return r?.gateway === c.first ? "gateway (kept back)" : p.family === 4 && r?.end === c.first ? "broadcast address (kept back)" : "network address (kept back)";
  }
  return STATES.filter((s) => c[s.key] !== "0").map((s) => `${count(c[s.key])} ${s.many}`).join(", ");
}
/**
 * The map is one Tab stop (the cells move with the arrow keys). `focus` puts the keyboard on its first
 * cell once drawn, after a zoom in or out.
 */
async function drawMap(p: Pool, into: HTMLElement, zoom: { start?: string; end?: string }, onChange: () => void, focus = false): Promise<void> {
  const q = new URLSearchParams({ cells: "256", ...(zoom.start ? { start: zoom.start } : {}), ...(zoom.end ? { end: zoom.end } : {}) });
  // only the latest request draws: an earlier answer arriving late must not undo a zoom
  const mine = ++mapRequest;
  const map = await api<{ first: string; last: string; cellSize: string; cells: MapCell[] }>("GET", `/v1/pools/${p.id}/map?${q.toString()}`);
  if (mine !== mapRequest) return;
  const single = map.cellSize === "1";
  // cells come with their first and last addresses written out by the server
  const label = (c: { first: string; last: string }) => (c.first === c.last ? c.first : `${c.first} – ${c.last}`);
  const cells = map.cells.map((c, i) => {
    const state = cellState(p, c, single);
    const colour = cellColour(c);
    return h(
      "button",
      {
        type: "button",
        tabindex: i === 0 ? "0" : "-1",
        style: `background:${colour}`,
        "aria-label": `${label(c)}: ${state}`,
        title: `${label(c)}: ${state}`,
        "data-index": String(i),
        onclick: () => {
          if (single) location.hash = `#/address/${encodeURIComponent(p.space)}/${encodeURIComponent(c.first)}`;
          else void drawMap(p, into, { start: c.first, end: c.last }, onChange, true);
        },
        onkeydown: (e: Event) => {
          const k = (e as KeyboardEvent).key;
          const step = k === "ArrowRight" ? 1 : k === "ArrowLeft" ? -1 : k === "ArrowDown" ? 16 : k === "ArrowUp" ? -16 : k === "Home" ? -i : k === "End" ? cells.length - 1 - i : 0;
          const next = into.querySelector<HTMLElement>(`[data-index="${i + step}"]`);
          if (!step || !next) return;
          e.preventDefault();
          // the cell with the keyboard is the map's one Tab stop
          for (const b of into.querySelectorAll(".grid button")) b.setAttribute("tabindex", "-1");
          next.setAttribute("tabindex", "0");
          next.focus();
        },
      },
      single ? c.first.split(/[.:]/).pop()! : "",
    );
  });
  into.replaceChildren(
    h(
      "div",
      { class: "crumbs" },
      zoom.start ? h("button", { type: "button", onclick: () => void drawMap(p, into, {}, onChange, true) }, "Whole pool") : null,
      ` ${label(map)}: ${map.cells.length} cells of ${count(map.cellSize)} address${map.cellSize === "1" ? "" : "es"}`,
      single ? "" : " (select a cell to zoom in)",
    ),
    h("div", { class: "grid", role: "group", "aria-label": "address map" }, ...cells),
    h(
      "ul",
      { class: "legend", "aria-label": "map legend" },
      ...STATES.map((s) => h("li", { style: `--c: ${s.colour}` }, s.legend)),
      h("li", { style: `--c: ${OUTSIDE}` }, "not in the pool"),
    ),
  );
  if (focus) into.querySelector<HTMLElement>(".grid button")?.focus();
  onChange();
}

async function poolPage(id: string): Promise<void> {
  const p = await api<Pool>("GET", `/v1/pools/${id}`);
  const mapBox = h("div", {});
  const table = h("div", {});
  /** What the last release did. */
  const released = h("div", {});
  const history = h("div", {});
  const stats = h("div", { class: "stats" });
  const refreshStats = async () => {
    const fresh = await api<Pool>("GET", `/v1/pools/${id}`);
    const f = await api<Forecast>("GET", `/v1/pools/${id}/forecast`);
    fill(
      stats,
      h("div", {}, h("b", {}, pct(fresh.usage.utilization)), "used"),
      h("div", {}, h("b", {}, count(fresh.usage.allocated)), "allocated"),
      fresh.usage.inChildPools !== "0" ? h("div", {}, h("b", {}, count(fresh.usage.inChildPools)), "in child pools") : null,
      h("div", {}, h("b", {}, count(fresh.usage.free)), "free"),
      h("div", {}, h("b", {}, count(fresh.usage.total)), "addresses"),
      fresh.thresholds.length ? h("div", {}, h("b", {}, fresh.thresholds.map(pct).join(", ")), "alerts") : null,
      // the method is the tooltip: a forecast should say how it was made
      h(
        "div",
        { class: "forecast", title: `${f.method}${f.growthPerDay !== null ? `: ${f.growthPerDay} a day over ${f.days} days` : ""}` },
        h("b", {}, f.daysLeft !== null ? `${f.daysLeft} days` : f.note === "not growing" ? "not growing" : "–"),
        f.daysLeft !== null ? "until full" : f.note === "not growing" ? "forecast" : "forecast: too little history",
      ),
    );
  };
  const refreshAll = () => {
    void refreshStats();
    void drawMap(p, mapBox, {}, () => {});
    void loadTable();
    void loadHistory();
  };

  // the allocations, a page at a time (keyset pages from the server), filtered and sorted server-side
  let after: string | null = null;
  let sort = "address";
  const pages: (string | null)[] = [];
  /** The latest table request: an older answer arriving after it is dropped. */
  let asked = 0;
  /** The control (its data-focus) that redrew the table, which gets the focus back in the new one. */
  let refocus: string | null = null;
  const restart = () => {
    after = null;
    pages.length = 0;
    void loadTable();
  };
  /** A column header that sorts by its column: `first` on the first press, then `second`, and back. */
  const sortHeader = (label: string, first: string, second: string, cls?: string) => {
    const on = sort === first || sort === second;
    const state = !on ? "none" : sort.startsWith("-") ? "descending" : "ascending";
    return h(
      "th",
      { scope: "col", "aria-sort": state, ...(cls ? { class: cls } : {}) },
      h("button", { type: "button", class: "sort", "data-focus": `sort-${first}`, onclick: () => { sort = sort === first ? second : first; refocus = `sort-${first}`; restart(); } }, label, h("span", { "aria-hidden": "true" }, state === "ascending" ? " ▲" : state === "descending" ? " ▼" : "")),
    );
  };
  const field = h("select", { id: "f-field", "aria-label": "filter by" }, h("option", { value: "owner" }, "owner"), h("option", { value: "mac" }, "MAC"), h("option", { value: "hostname" }, "host name"));
  const value = h("input", { id: "f-value", type: "search", placeholder: "filter", "aria-label": "filter value" });
  const loadTable = async (): Promise<void> => {
    const q = new URLSearchParams({ limit: "50", sort, ...(after ? { after } : {}), ...(value.value.trim() ? { [field.value]: value.value.trim() } : {}) });
    const n = ++asked;
    try {
      const res = await api<{ items: Allocation[]; next: string | null }>("GET", `/v1/pools/${id}/allocations?${q.toString()}`);
      if (n !== asked) return;
      // the server hands out a cursor whenever a page is full, also when nothing follows: look one row ahead
      let more = res.next !== null;
      if (res.next !== null) {
        q.set("after", res.next);
        q.set("limit", "1");
        more = (await api<{ items: Allocation[]; next: string | null }>("GET", `/v1/pools/${id}/allocations?${q.toString()}`)).items.length > 0;
        if (n !== asked) return;
      }
      fill(
        table,
        h(
          "table",
          { id: "allocations" },
          h("caption", { class: "visually-hidden" }, `Allocations, ${SORT_NAMES[sort]}`),
          h("thead", {}, h("tr", {}, sortHeader("Address", "address", "-address"), h("th", { scope: "col" }, "Owner"), h("th", { scope: "col", class: "hide-narrow" }, "MAC"), h("th", { scope: "col", class: "hide-narrow" }, "Host name"), sortHeader("Since", "-created", "created", "hide-narrow"), canWrite() ? h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")) : null)),
          h(
            "tbody",
            {},
            ...res.items.map((a) =>
              h(
                "tr",
                {},
                h("td", {}, h("a", { href: `#/address/${encodeURIComponent(a.space)}/${encodeURIComponent(a.address)}` }, a.size > 1 ? `${a.address} (+${a.size - 1})` : a.address)),
                h("td", {}, orNone(a.owner)),
                h("td", { class: "hide-narrow" }, orNone(a.mac)),
                h("td", { class: "hide-narrow" }, orNone(a.hostname)),
                h("td", { class: "hide-narrow" }, when(a.createdAt)),
                canWrite()
                  ? h("td", {}, h("button", { type: "button", class: "danger", "aria-label": `release ${a.address}`, onclick: async () => {
                      const what = a.size > 1 ? `${a.address} – ${a.lastAddress}` : a.address;
                      if (!confirm(`Release ${what}${a.owner ? ` (${a.owner})` : ""}? Its addresses go back to the pool.`)) return;
                      try {
                        await api("DELETE", `/v1/allocations/${a.id}`);
                        // the button is gone with its row: the keyboard lands on what happened
                        const said = h("p", { role: "status", tabindex: "-1" }, `Released ${what}.`);
                        released.replaceChildren(said);
                        said.focus();
                        refreshAll();
                      } catch (err) {
                        released.replaceChildren(errorBox(err));
                      }
                    } }, "Release"))
                  : null,
              ),
            ),
          ),
        ),
        res.items.length === 0 ? h("p", { class: "muted" }, "No allocations here.") : null,
        h(
          "div",
          { class: "pager" },
          h("button", { type: "button", "data-focus": "previous", disabled: pages.length === 0, onclick: () => { after = pages.pop() ?? null; refocus = "previous"; void loadTable(); } }, "Previous"),
          h("button", { type: "button", "data-focus": "next", disabled: !more, onclick: () => { pages.push(after); after = res.next; refocus = "next"; void loadTable(); } }, "Next"),
          h("span", { class: "muted" }, `page ${pages.length + 1}`),
        ),
      );
      // (on the first or last page the other pager button takes it)
      if (refocus) (table.querySelector<HTMLButtonElement>(`[data-focus="${refocus}"]:not([disabled])`) ?? table.querySelector<HTMLButtonElement>(".pager button:not([disabled])"))?.focus();
      refocus = null;
    } catch (err) {
      if (n === asked) table.replaceChildren(errorBox(err));
    }
  };
  const loadHistory = async () => {
    const res = await api<{ items: HistoryEntry[] }>("GET", `/v1/pools/${id}/history?limit=15`);
    history.replaceChildren(historyTable(res.items));
  };

  show(
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Address space"), ` › ${p.space}`),
    h("h1", {}, p.name, " ", h("span", { class: "muted" }, p.ranges.map((r) => r.cidr ?? `${r.start}–${r.end}`).join(", "))),
    p.description ? h("p", {}, p.description) : null,
    stats,
    h("h2", {}, "Address map"),
    mapBox,
    canWrite() ? allocateForm(p, refreshAll) : null,
    h("h2", {}, "Allocations"),
    h("form", { class: "inline", role: "search", onsubmit: (e: Event) => { e.preventDefault(); restart(); } }, field, value, h("button", { type: "submit" }, "Filter")),
    released,
    table,
    h("h2", {}, "History"),
    history,
  );
  refreshAll();
}

/** History, newest first; `hostnames` adds the host name each change was about (for search, which finds by it). */
function historyTable(items: HistoryEntry[], hostnames = false): HTMLElement {
  const hostname = (e: HistoryEntry) => orNone(((e.after ?? e.before ?? {}) as { hostname?: string | null }).hostname);
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, h("th", {}, "When"), h("th", {}, "What"), hostnames ? h("th", {}, "Host name") : null, h("th", {}, "Who"))),
    h("tbody", {}, ...items.map((e) => h("tr", {}, h("td", {}, when(e.at)), h("td", {}, describe(e)), hostnames ? h("td", {}, hostname(e)) : null, h("td", {}, e.actor)))),
  );
}

function describe(e: HistoryEntry): string {
  const v = (e.after ?? e.before ?? {}) as { address?: string; name?: string; owner?: string | null };
  return `${e.action} ${e.entity}${v.address ? ` ${v.address}` : v.name ? ` ${v.name}` : ""}${v.owner ? ` (${v.owner})` : ""}`;
}

function allocateForm(p: Pool, done: () => void): HTMLElement {
  const mode = h("select", { id: "a-mode" }, h("option", { value: "next" }, "next free"), h("option", { value: "specific" }, "specific address"), h("option", { value: "block" }, "block"));
  const addr = h("input", { id: "a-address", placeholder: exampleAddress(p) });
  const size = h("input", { id: "a-size", type: "number", min: "1", value: "4" });
  const owner = h("input", { id: "a-owner", placeholder: "vm-42" });
  const mac = h("input", { id: "a-mac", placeholder: "aa:bb:cc:dd:ee:ff" });
  const hostname = h("input", { id: "a-hostname", placeholder: "web-1" });
  const out = h("div", { "aria-live": "polite" });
  // the browser checks what each mode needs before anything is sent
  const needs = () => {
    addr.required = mode.value === "specific";
    size.required = mode.value === "block";
  };
  mode.addEventListener("change", needs);
  needs();
  const form = h(
      "form",
      {
        class: "inline",
        onsubmit: async (e: Event) => {
          e.preventDefault();
          const body: Record<string, unknown> = {};
          if (mode.value === "specific") body.address = addr.value.trim();
          if (mode.value === "block") body.size = Number(size.value);
          for (const [k, input] of [["owner", owner], ["mac", mac], ["hostname", hostname]] as const) if (input.value.trim()) body[k] = input.value.trim();
          try {
            const a = await api<Allocation>("POST", `/v1/pools/${p.id}/allocations`, body);
            out.replaceChildren(h("p", { role: "status" }, `Allocated ${a.address}${a.size > 1 ? ` – ${a.lastAddress}` : ""}.`));
            done();
          } catch (err) {
            out.replaceChildren(errorBox(err));
          }
        },
      },
      h("label", { for: "a-mode" }, "Take", mode),
      h("label", { for: "a-address" }, "Address", addr),
      h("label", { for: "a-size" }, "Block size", size),
      h("label", { for: "a-owner" }, "Owner", owner),
      h("label", { for: "a-mac" }, "MAC", mac),
      h("label", { for: "a-hostname" }, "Host name", hostname),
      h("button", { class: "primary", type: "submit" }, "Allocate"),
    );
  return answered("Allocate", form, out);
}

/** Allocation changes looked through for host names and MACs no longer held: /v1/history filters by owner, not by those. */
const SCAN_PAGES = 5;
const SCAN_PAGE = 1000;

/**
 * Past allocations found the way search finds live ones: the owner or MAC itself, or a host name that
 * begins with the text. Owners come from all of history; host names and MACs from the latest changes.
 */
async function pastAllocations(q: string): Promise<HistoryEntry[]> {
  const hex = (t: string) => t.replace(/[^0-9a-f]/gi, "").toLowerCase();
  const mac = /^[0-9a-f]{2}([-:.]?[0-9a-f]{2}){5}$/i.test(q) || /^([0-9a-f]{4}\.){2}[0-9a-f]{4}$/i.test(q) ? hex(q) : null;
  const matches = (e: HistoryEntry) =>
    [e.before, e.after].some((v) => {
      const a = (v ?? {}) as { owner?: string | null; mac?: string | null; hostname?: string | null };
      return a.owner === q || (a.hostname ?? "").startsWith(q) || (mac !== null && !!a.mac && hex(a.mac) === mac);
    });
  const found = new Map<number, HistoryEntry>();
  const byOwner = api<{ items: HistoryEntry[] }>("GET", `/v1/history?entity=allocation&owner=${encodeURIComponent(q)}&limit=100`);
  let before: number | null = null;
  for (let page = 0; page < SCAN_PAGES; page++) {
    const res: { items: HistoryEntry[] } = await api<{ items: HistoryEntry[] }>("GET", `/v1/history?entity=allocation&limit=${SCAN_PAGE}${before === null ? "" : `&before=${before}`}`);
    for (const e of res.items) if (matches(e)) found.set(e.seq, e);
    if (res.items.length < SCAN_PAGE) break;
    before = res.items[res.items.length - 1]!.seq;
  }
  for (const e of (await byOwner).items) found.set(e.seq, e);
  return [...found.values()].sort((a, b) => b.seq - a.seq).slice(0, 100);
}

async function searchPage(q: string): Promise<void> {
  (document.getElementById("q") as HTMLInputElement).value = q;
  const [res, past] = await Promise.all([
    api<{ addresses: { space: string; address: string; pool: string; poolId: string; state: string; allocation: Allocation | null }[]; allocations: Allocation[] }>("GET", `/v1/search?q=${encodeURIComponent(q)}`),
    pastAllocations(q),
  ]);
  const link = (space: string, address: string) => h("a", { href: `#/address/${encodeURIComponent(space)}/${encodeURIComponent(address)}` }, address);
  show(
    h("h1", {}, `Search: ${q}`),
    res.addresses.length
      ? h("section", {}, h("h2", {}, "Address"), h("ul", {}, ...res.addresses.map((r) => h("li", {}, link(r.space, r.address), ` in ${r.space} / ${r.pool}: ${r.state}${r.allocation?.owner ? `, held by ${r.allocation.owner}` : ""}`))))
      : null,
    h("section", {}, h("h2", {}, "Allocations"), res.allocations.length ? h("div", { class: "scroll" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Address"), h("th", {}, "Pool"), h("th", {}, "Owner"), h("th", {}, "MAC"), h("th", {}, "Host name"))), h("tbody", {}, ...res.allocations.map((a) => h("tr", {}, h("td", {}, link(a.space, a.address)), h("td", {}, h("a", { href: `#/pool/${a.poolId}` }, `${a.space} / ${a.pool}`)), h("td", {}, orNone(a.owner)), h("td", {}, orNone(a.mac)), h("td", {}, orNone(a.hostname))))))) : h("p", { class: "muted" }, "Nothing allocated now by that MAC, owner or host name.")),
    h(
      "section",
      { "aria-label": "history" },
      h("h2", {}, "History"),
      past.length ? h("div", { class: "scroll" }, historyTable(past, true)) : h("p", { class: "muted" }, "No changes found by that MAC, owner or host name."),
      h("p", { class: "muted" }, `Owners are looked for in all of history; host names and MACs in the latest ${count(String(SCAN_PAGES * SCAN_PAGE))} allocation changes.`),
    ),
  );
}

async function addressPage(space: string, address: string): Promise<void> {
  const [found, history] = await Promise.all([
    api<{ items: { pool: string; poolId: string; state: string; allocation: Allocation | null }[] }>("GET", `/v1/lookup?address=${encodeURIComponent(address)}&space=${encodeURIComponent(space)}`),
    api<{ items: HistoryEntry[] }>("GET", `/v1/history?address=${encodeURIComponent(address)}&space=${encodeURIComponent(space)}&limit=100`),
  ]);
  const r = found.items[0];
  const a = r?.allocation;
  show(
    h("h1", {}, address, " ", h("span", { class: "muted" }, `in ${space}`)),
    r
      ? h(
          "dl",
          {},
          h("dt", {}, "Pool"),
          h("dd", {}, h("a", { href: `#/pool/${r.poolId}` }, r.pool)),
          h("dt", {}, "State"),
          h("dd", {}, r.state),
          ...(a ? [h("dt", {}, "Held by"), h("dd", {}, orNone(a.owner)), h("dt", {}, "Since"), h("dd", {}, when(a.createdAt)), h("dt", {}, "MAC"), h("dd", {}, orNone(a.mac)), h("dt", {}, "Host name"), h("dd", {}, orNone(a.hostname))] : []),
        )
      : h("p", {}, "No pool in this space holds this address."),
    h("h2", {}, "History"),
    history.items.length
      ? historyTable(history.items)
      : h("p", { class: "muted" }, "Nothing has happened to this address."),
  );
}

// ---------- routing

/** Shows the page the address names; after a move within the app, focus goes to the new content. */
async function route(moved = true): Promise<void> {
  if (!me) return;
  const [, page, a, b] = location.hash.split("/");
  try {
    if (page === "pool" && a) await poolPage(decodeURIComponent(a));
    else if (page === "address" && a && b) await addressPage(decodeURIComponent(a), decodeURIComponent(b));
    else if (page?.startsWith("search")) await searchPage(new URLSearchParams(location.hash.split("?")[1] ?? "").get("q") ?? "");
    else await overviewPage();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return signInPage("That token is not valid (any more). Sign in again.");
    show(errorBox(err), h("p", {}, h("a", { href: "#/" }, "Back to the address space")));
  }
  // (on first load it stays at the top, where the skip link and the search come first)
  if (moved) main().focus();
}

async function start(signedIn = false): Promise<void> {
  if (!token) return signInPage();
  try {
    me = await api<Me>("GET", "/v1/whoami");
  } catch {
    return signInPage("That token is unknown, revoked or expired.");
  }
  document.getElementById("who")!.replaceChildren(
    `${me.name} (${me.scope}${me.spaces ? ` in ${me.spaces.join(", ")}` : ""}) `,
    h("button", { type: "button", onclick: () => { signOut(); signInPage(); } }, "Sign out"),
  );
  const form = document.getElementById("search") as HTMLFormElement;
  form.hidden = false;
  form.onsubmit = (e) => {
    e.preventDefault();
    const q = (document.getElementById("q") as HTMLInputElement).value.trim();
    if (q) location.hash = `#/search?q=${encodeURIComponent(q)}`;
  };
  await route(signedIn);
}

window.addEventListener("hashchange", () => void route());
void start();
