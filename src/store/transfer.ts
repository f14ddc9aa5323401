import type { Sql, SqlValue, Store } from "./store.js";

/**
 * Moving a whole database between stores (SQLite to PostgreSQL and back) as JSON lines: a header,
 * then one line per row, table by table, in an order that satisfies every reference. Rows are copied
 * as they are (ids, counters, free runs and history included), so an import is the same database,
 * not a replay; address keys travel as hex.
 */
export const FORMAT = "allot-export";
export const FORMAT_VERSION = 2;
/** Version 1 (before tokens, webhooks and address-indexed history) still imports. */
const READABLE_VERSIONS = [1, 2];

/** Tables in load order, each with the key that orders its rows and the columns that hold bytes. */
export const TABLES: readonly { name: string; order: string; bytes: readonly string[] }[] = [
  { name: "spaces", order: "id", bytes: [] },
  // parents before children: the depth of a pool is not stored, so load order is decided at import
  { name: "pools", order: "id", bytes: [] },
  { name: "pool_ranges", order: "pool_id, seq", bytes: ["first", "last"] },
  { name: "exclusions", order: "pool_id, first", bytes: ["first", "last"] },
  { name: "free_runs", order: "pool_id, first", bytes: ["first", "last"] },
  { name: "allocations", order: "id", bytes: ["first", "last"] },
  { name: "history", order: "seq", bytes: ["first", "last"] },
  { name: "tokens", order: "id", bytes: [] },
  { name: "webhooks", order: "id", bytes: [] },
  { name: "webhook_outbox", order: "webhook_id, seq", bytes: [] },
  // the fingerprint of the key that sealed the secrets: the target then needs that same key
  { name: "settings", order: "key", bytes: [] },
  { name: "kube_objects", order: "grp, resource, namespace, name", bytes: [] },
  { name: "kube_rv", order: "id", bytes: [] },
  { name: "neutron_objects", order: "id", bytes: [] },
  { name: "dhcp_networks", order: "name", bytes: [] },
  { name: "dhcp_agents", order: "name", bytes: [] },
  { name: "dhcp_assignments", order: "network, agent", bytes: [] },
  // after history: its trigger fills dns_outbox only for zones that exist when history rows arrive
  { name: "dns_zones", order: "id", bytes: [] },
  { name: "dns_outbox", order: "zone_id, seq", bytes: [] },
  { name: "dns_records", order: "zone_id, name, type", bytes: [] },
  { name: "dns_conflicts", order: "zone_id, name, type", bytes: [] },
];

export interface ExportHeader {
  format: typeof FORMAT;
  version: number;
  exportedAt: string;
  counts: Record<string, number>;
}

export type Row = Record<string, SqlValue>;

function encode(row: Record<string, unknown>, bytes: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(row).sort()) {
    const v = row[k];
    out[k] = bytes.includes(k) && Buffer.isBuffer(v) ? v.toString("hex") : v;
  }
  return out;
}

function decode(row: Record<string, unknown>, bytes: readonly string[]): Row {
  const out: Row = {};
  for (const [k, v] of Object.entries(row)) {
    if (bytes.includes(k) && v !== null) {
      // an address key is exactly 16 bytes; anything else would sort wrongly in the indexes
      if (typeof v !== "string" || !/^[0-9a-f]{32}$/.test(v)) throw new ImportError(`a ${k} value is not a 16-byte address key`);
      out[k] = Buffer.from(v, "hex");
    } else out[k] = v as SqlValue;
  }
  return out;
}

/** Writes the store's rows as JSON lines through `write`, from one consistent snapshot. */
export async function exportStore(store: Store, write: (line: string) => void | Promise<void>, now = new Date()): Promise<ExportHeader> {
  return store.read(async (sql) => {
    const counts: Record<string, number> = {};
    for (const t of TABLES) counts[t.name] = Number((await sql.get<{ n: number | string }>(`SELECT COUNT(*) AS n FROM ${t.name}`))?.n ?? 0);
    const header: ExportHeader = { format: FORMAT, version: FORMAT_VERSION, exportedAt: now.toISOString(), counts };
    await write(JSON.stringify(header));
    for (const t of TABLES) {
      // keyset pages keep memory flat on a database of millions of rows
      let last: Row | undefined;
      const keys = t.order.split(", ");
      for (;;) {
        const after = last ? ` WHERE (${keys.join(", ")}) > (${keys.map(() => "?").join(", ")})` : "";
        const rows = await sql.all<Row>(`SELECT * FROM ${t.name}${after} ORDER BY ${t.order} LIMIT 5000`, last ? keys.map((k) => last![k]!) : []);
        for (const r of rows) await write(JSON.stringify({ table: t.name, row: encode(r, t.bytes) }));
        if (rows.length < 5000) break;
        last = rows[rows.length - 1];
      }
    }
    return header;
  });
}

export class ImportError extends Error {}

/**
 * Loads an export into an empty store (no pools, no allocations) in one transaction: all of it or
 * none. `lines` yields the export's lines; `progress` is told after each row.
 */
export async function importStore(store: Store, lines: AsyncIterable<string>, progress: (done: number, total: number) => void = () => {}): Promise<ExportHeader> {
  const it = lines[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done) throw new ImportError("the export is empty");
  const header = parseLine(first.value, 1) as ExportHeader;
  if (header.format !== FORMAT) {
    const namespaceExport = (header as { format?: string }).format === "allot-namespace";
    throw new ImportError(
      namespaceExport
        ? "this is a namespace export: load it into a running server with allot import -n NAMESPACE -f FILE"
        : "this is not an Allot export (its first line has no format: allot-export)",
    );
  }
  if (!READABLE_VERSIONS.includes(header.version)) throw new ImportError(`export format version ${header.version} is not one this Allot reads (${READABLE_VERSIONS.join(", ")})`);
  const total = Object.values(header.counts).reduce((a, b) => a + b, 0);
  await store.transaction(async (sql) => {
    await assertEmpty(sql);
    // what the target made when it was first opened (its default space, its admin token, its key's
    // fingerprint) gives way to the exported database's own
    for (const t of ["webhook_outbox", "webhooks", "history", "tokens", "settings", "kube_rv", "spaces"]) await sql.run(`DELETE FROM ${t}`);
    const bytesOf = new Map(TABLES.map((t) => [t.name, t.bytes]));
    const pending: Row[] = []; // child pools whose parent is not loaded yet
    const loaded = new Set<string>();
    let n = 0;
    let lineNo = 1;
    for (let r = await it.next(); !r.done; r = await it.next()) {
      lineNo++;
      if (r.value.trim() === "") continue;
      const { table, row } = parseLine(r.value, lineNo) as { table: string; row: Record<string, unknown> };
      const bytes = bytesOf.get(table);
      if (!bytes) throw new ImportError(`line ${lineNo}: unknown table ${JSON.stringify(table)}`);
      const values = decode(row, bytes);
      // child pools wait for their parents; all pools are in before the first row that refers to one
      if (table !== "pools" && pending.length > 0) await flushPools(sql, pending, loaded);
      if (table === "pools" && values.parent_id !== null && !loaded.has(String(values.parent_id))) pending.push(values);
      else await insert(sql, table, values, loaded);
      progress(++n, total);
    }
    if (pending.length > 0) await flushPools(sql, pending, loaded);
    if (pending.length > 0) throw new ImportError(`${pending.length} child pools name parents that are not in the export`);
    if (n !== total) throw new ImportError(`the export holds ${n} rows but its header promised ${total}; it is truncated or altered`);
    await store.afterImport?.(sql);
  });
  return header;
}

async function flushPools(sql: Sql, pending: Row[], loaded: Set<string>): Promise<void> {
  for (let progressed = true; progressed && pending.length > 0; ) {
    progressed = false;
    for (let i = 0; i < pending.length; i++) {
      if (loaded.has(String(pending[i]!.parent_id))) {
        await insert(sql, "pools", pending.splice(i--, 1)[0]!, loaded);
        progressed = true;
      }
    }
  }
}

async function insert(sql: Sql, table: string, row: Row, loaded: Set<string>): Promise<void> {
  const cols = Object.keys(row);
  if (cols.some((c) => !/^[a-z_]+$/.test(c))) throw new ImportError(`a ${table} row has a column name that is not a column`);
  await sql.run(`INSERT INTO ${table} (${cols.join(", ")}) VALUES (${cols.map(() => "?").join(", ")})`, cols.map((c) => row[c]!));
  if (table === "pools") loaded.add(String(row.id));
}

async function assertEmpty(sql: Sql): Promise<void> {
  const pools = Number((await sql.get<{ n: number | string }>("SELECT COUNT(*) AS n FROM pools"))?.n ?? 0);
  const spaces = await sql.all<{ name: string }>("SELECT name FROM spaces");
  if (pools > 0 || spaces.some((s) => s.name !== "default")) {
    throw new ImportError(`the target already holds ${pools} pools and ${spaces.length} spaces; import only into an empty database`);
  }
}

function parseLine(line: string, n: number): unknown {
  try {
    return JSON.parse(line);
  } catch {
    throw new ImportError(`line ${n} is not JSON`);
  }
}
