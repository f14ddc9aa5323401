/**
 * The store contract. The engine speaks portable SQL (`?` placeholders, 16-byte big-endian BLOB/bytea
 * address keys, JSON as text) through these few calls, so every backend runs the same queries and
 * behaves the same. A backend supplies connections, transactions, migrations and error mapping.
 */
export type SqlValue = string | number | bigint | Buffer | null;

export interface RunResult {
  changes: number;
}

export interface Sql {
  /**
   * The clause that row-locks the selected rows of table alias `alias` until commit, for stores whose
   * transactions run side by side (PostgreSQL's " FOR UPDATE OF p"); empty where transactions are
   * already serial (SQLite).
   */
  lock(alias: string): string;
  all<T = Record<string, unknown>>(sql: string, params?: readonly SqlValue[]): Promise<T[]>;
  get<T = Record<string, unknown>>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined>;
  run(sql: string, params?: readonly SqlValue[]): Promise<RunResult>;
  /**
   * A write whose outcome the caller does not read. A store whose statements cost a round trip
   * (PostgreSQL) holds it and sends it with the next statement or the commit, so a change's writes
   * travel together and its locks are held for fewer round trips. The next statement in the
   * transaction sees it; a failure shows there or at the commit, failing the transaction either way.
   */
  queue(sql: string, params?: readonly SqlValue[]): Promise<void>;
  /**
   * Takes the row locks of `lock` (a SELECT ending in {@link lock}) and then runs `read`, which sees
   * every change committed before the locks were granted. A single statement that locked and read at
   * once would read from before any wait for the lock; this is still one round trip on PostgreSQL
   * (and on stores whose transactions are already serial, just the read).
   */
  lockAndRead<T = Record<string, unknown>>(lock: string, lockParams: readonly SqlValue[], read: string, readParams: readonly SqlValue[]): Promise<T[]>;
}

/** Rows per multi-row INSERT: per-statement overhead, not the rows, dominates bulk writes on both stores. */
const ROWS_PER_INSERT = 500;

/**
 * Inserts many rows into `table`, each a list of values in `columns` order, a few hundred per
 * statement (well under both stores' parameter limits). Table and column names are the caller's own
 * constants, never user input.
 */
export async function insertRows(sql: Sql, table: string, columns: readonly string[], rows: readonly (readonly SqlValue[])[]): Promise<void> {
  const tuple = `(${columns.map(() => "?").join(", ")})`;
  for (let i = 0; i < rows.length; i += ROWS_PER_INSERT) {
    const chunk = rows.slice(i, i + ROWS_PER_INSERT);
    await sql.queue(`INSERT INTO ${table} (${columns.join(", ")}) VALUES ${chunk.map(() => tuple).join(", ")}`, chunk.flat());
  }
}

/** @see FOLLOWED_TABLES in schema.ts */
export interface Store {
  /** "sqlite" or "postgres"; informational only: the engine never branches on it. */
  readonly kind: string;
  /** Where the data lives, for logs (never includes a password). */
  readonly location: string;
  /**
   * Runs `fn` in one serialisable unit: every statement commits together or none does.
   * A uniqueness or overlap violation inside surfaces as {@link ConstraintError}. `key` names what
   * the change locks (its pool): changes with the same key may share a transaction and its commit.
   */
  transaction<T>(fn: (sql: Sql) => Promise<T>, key?: string): Promise<T>;
  /** Runs read-only queries against a consistent view. */
  read<T>(fn: (sql: Sql) => Promise<T>): Promise<T>;
  /**
   * Null if a write would succeed now, else why not, in words an operator can act on (disk full,
   * read-only, unreachable). Cheap enough to answer every readiness probe.
   */
  writable(): Promise<string | null>;
  /**
   * Calls `changed` soon after a change to a followed table ({@link FOLLOWED_TABLES}) commits: at once
   * for this process's own commits, and for other processes' as soon as the database can tell (PostgreSQL
   * notifies every listener; SQLite is checked every second). Returns what stops it.
   */
  follow(changed: () => void): () => Promise<void>;
  /** Called inside an import's transaction after rows were loaded with their own keys (to move sequences on). */
  afterImport?(sql: Sql): Promise<void>;
  close(): Promise<void>;
}

/**
 * The store cannot serve the request just now: the database is unreachable, read-only or full. The
 * change was not made; the message says why in terms an operator can act on.
 */
export class StoreUnavailableError extends Error {}

/** The database cannot store or compare a value as given (PostgreSQL refuses NUL characters in text, say). */
export class InvalidValueError extends Error {}

/** A database constraint refused a write: the promise that an address is never held twice, kept by the store. */
export class ConstraintError extends Error {
  constructor(
    message: string,
    /** Which constraint: "unique", "overlap" or "foreign-key". */
    /** "retry" is a serialization failure or deadlock: nothing was wrong but the timing. */
    readonly constraint: "unique" | "overlap" | "foreign-key" | "check" | "retry",
  ) {
    super(message);
  }
}
