import { stringify } from "yaml";

export type Format = "table" | "json" | "yaml";

/** A column of a table: its heading and how to read the cell from a row. */
export type Column<T> = [heading: string, cell: (row: T) => unknown];

function text(v: unknown): string {
  if (v === null || v === undefined || v === "") return "-";
  if (Array.isArray(v)) return v.length ? v.join(",") : "-";
  if (typeof v === "object") {
    const entries = Object.entries(v as Record<string, unknown>);
    return entries.length ? entries.map(([k, x]) => `${k}=${typeof x === "string" ? x : JSON.stringify(x)}`).join(",") : "-";
  }
  return String(v);
}

/** Prints rows as aligned columns (table), or the raw data as JSON or YAML for scripts. */
export function print<T>(format: Format, data: T | T[], columns: Column<T>[], raw: unknown = data): void {
  if (format === "json") {
    process.stdout.write(`${JSON.stringify(raw, null, 2)}\n`);
    return;
  }
  if (format === "yaml") {
    process.stdout.write(stringify(raw));
    return;
  }
  const rows = Array.isArray(data) ? data : [data];
  const cells = [columns.map(([h]) => h), ...rows.map((r) => columns.map(([, f]) => text(f(r))))];
  const widths = columns.map((_, i) => Math.max(...cells.map((c) => c[i]!.length)));
  for (const c of cells) process.stdout.write(`${c.map((x, i) => (i === c.length - 1 ? x : x.padEnd(widths[i]!))).join("  ")}\n`);
}

/** Prints one object as "key: value" lines (table), or as JSON or YAML. */
export function printObject(format: Format, obj: Record<string, unknown>, fields?: string[]): void {
  if (format !== "table") return print(format, obj, [], obj);
  const keys = fields ?? Object.keys(obj);
  const width = Math.max(...keys.map((k) => k.length));
  for (const k of keys) process.stdout.write(`${`${k}:`.padEnd(width + 2)}${text(obj[k])}\n`);
}

/**
 * Prints one page of a list: rows as a table (with a "more:" line on stderr naming the flag that gets
 * the next page), or `{ items, next }` as JSON or YAML, the same shape for every list.
 */
export function printList<T>(format: Format, items: T[], columns: Column<T>[], next: { cursor: string | number; flag: string } | null = null): void {
  if (format !== "table") return print(format, items, columns, { items, next: next?.cursor ?? null });
  print(format, items, columns);
  if (next) process.stderr.write(`more: ${next.flag} ${next.cursor}\n`);
}
