import pg from "pg";
import { GroupCommit, type TxSession } from "../group-commit.js";
import { ConstraintError, InvalidValueError, type RunResult, type Sql, type SqlValue, type Store, StoreUnavailableError } from "../store.js";
import { migrations } from "./schema.js";

export interface PostgresStoreOptions {
  /** postgres://user:password@host:port/database */
  url: string;
  /** Connections in the pool (default 10). */
  maxConnections?: number;
}

/**
 * The engine's statement as a named prepared statement: `?` placeholders become PostgreSQL's `$1, $2, …`
 * (the engine's SQL has no `?` in literals), and the name lets each connection parse and plan it once
 * instead of on every call, which costs more than running most of these single-row statements.
 */
const prepared = new Map<string, { name: string; text: string }>();
function toPg(q: string): { name: string; text: string } {
  let out = prepared.get(q);
  if (out === undefined) {
    let n = 0;
    out = { name: `allot_${prepared.size}`, text: q.replace(/\?/g, () => `$${++n}`) };
    prepared.set(q, out);
  }
  return out;
}

/** Queued writes are sent once they add up to this much text. */
const QUEUED_CHARS_SENT = 1 << 20;
/** A statement with more values than this (a bulk insert) is sent on its own, with parameters. */
const INLINE_MAX_VALUES = 64;

/** A transaction on one connection, for group commit; `broken` once the connection is no longer usable. */
interface PgSession extends TxSession {
  readonly broken: boolean;
}

/**
 * The statement as SQL that runs it with its values written in as literals, for a multi-statement query
 * (which cannot carry parameters). It runs as a prepared statement of the connection's (planned once,
 * not on every call: `prepare` collects what the connection still has to prepare), and every value is
 * quoted, so the database types it exactly as it types a parameter; bytes go as hex.
 */
function inlineOn(client: pg.PoolClient, text: string, params: readonly SqlValue[], prepare: Map<string, string>): string {
  const { name, text: pgText } = toPg(text);
  const count = (pgText.match(/\$\d+/g) ?? []).length;
  if (count !== params.length) throw new Error(`statement has ${count} placeholders but ${params.length} values: ${text}`);
  const args = params.map(literal);
  // only these can be prepared (a CREATE, say, cannot): anything else is sent as written
  if (!/^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|VALUES)\b/i.test(text)) {
    let i = 0;
    return text.replace(/\?/g, () => args[i++]!);
  }
  const statement = `${name}_x`;
  if (!preparedOn.get(client)?.has(statement)) prepare.set(statement, `PREPARE ${statement} AS ${pgText}`);
  return `EXECUTE ${statement}${args.length ? `(${args.join(", ")})` : ""}`;
}

function literal(v: SqlValue): string {
  if (v === null || v === undefined) return "NULL";
  if (Buffer.isBuffer(v)) return `decode('${v.toString("hex")}', 'hex')`;
  const s = String(v);
  // the message that carries a query ends at its first NUL: refuse it here, as the database refuses one in a parameter
  if (s.includes("\0")) throw new InvalidValueError(`invalid byte sequence for encoding "UTF8": 0x00 (text may not contain NUL characters)`);
  return pg.escapeLiteral(s);
}

/**
 * The SQL-level prepared statements each connection has (a name prefix of their own, apart from the
 * driver's protocol-level ones, which share the namespace). Forgotten with the connection.
 */
const preparedOn = new WeakMap<pg.PoolClient, Set<string>>();

// bigint columns (history.seq, allocations.expires_at) hold values far below 2^53: read them as numbers,
// exactly as better-sqlite3 returns SQLite integers.
const types = {
  getTypeParser(oid: number, format?: "text" | "binary") {
    if (oid === pg.types.builtins.INT8) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format);
  },
};

/** A stable key for the advisory lock that lets only one server at a time run migrations. */
const MIGRATION_LOCK = 7_787_001;

/** How long a readiness probe waits for the database before calling it unreachable. */
const PROBE_TIMEOUT_MS = 5000;
/**
 * How long a write's failure for lack of disk or resources is reported after it happened, unless a
 * write succeeds first: long enough for a readiness probe to see it, short enough that a load balancer
 * sends writes again soon after the database recovers (nothing cheap can ask whether its disk has room).
 */
const FAILURE_REMEMBERED_MS = 30_000;

/**
 * The scale-out store: a pool of connections to one PostgreSQL database, shared by any number of Allot
 * servers. Transactions run side by side (READ COMMITTED); the engine locks the rows of the pools it
 * changes, so changes to one pool queue while others proceed, and the schema's unique indexes and
 * triggers refuse anything that would hold an address twice.
 */
export class PostgresStore implements Store {
  readonly kind = "postgres";
  readonly location: string;
  private readonly pool: pg.Pool;
  /** The last write's failure for lack of disk or resources, until a write succeeds or it is old. */
  private failure: { reason: string; at: number } | null = null;
  private readonly commits: GroupCommit;

  private readonly url: string;

  private constructor(options: PostgresStoreOptions) {
    this.location = redact(options.url);
    this.url = options.url;
    // A database that drops packets silently (a failed-over host, a partition) would hold a request
    // for as long as TCP retries: connecting gives up after 10 s, and keepalives find a dead peer.
    const connections = options.maxConnections ?? 10;
    // A server that stops between two statements of a transaction (frozen, partitioned) would hold its
    // pool's lock against every other server: the database ends such a transaction after a minute.
    this.pool = new pg.Pool({
      connectionString: options.url,
      max: connections,
      types,
      connectionTimeoutMillis: 10_000,
      keepAlive: true,
      idle_in_transaction_session_timeout: 60_000,
    });
    this.commits = new GroupCommit({
      withSession: (work) => this.withConnection("BEGIN", work),
      runners: connections,
      // a busy pool's changes share its lock and one commit; a few dozen keep each batch's wait short
      maxBatch: 32,
      keyed: true,
      isUnavailable: (err) => err instanceof StoreUnavailableError,
    });
    // A connection that breaks (restart, failover, pg_terminate_backend) emits "error" on its client. The
    // pool listens only while the client is idle; one that breaks while a request holds it, between two
    // statements, would emit with no listener and end the process. Every client keeps a listener for
    // life: the statement in flight or the next one fails (mapped to 503 below) and the pool drops the
    // client on release, since it is no longer queryable.
    this.pool.on("error", () => {});
    this.pool.on("connect", (client) => client.on("error", () => {}));
  }

  /** Connects, and brings the schema up to date (several servers starting at once migrate once). */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const store = new PostgresStore(options);
    try {
      await store.migrate();
    } catch (err) {
      await store.pool.end();
      throw describeConnectError(err, store.location);
    }
    return store;
  }

  /** The schema version this database is at. */
  async schemaVersion(): Promise<number> {
    const r = await this.pool.query<{ v: number }>("SELECT COALESCE(MAX(version), 0)::int AS v FROM allot_schema");
    return r.rows[0]!.v;
  }

  private async migrate(): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query("BEGIN");
      await client.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
      await client.query("CREATE TABLE IF NOT EXISTS allot_schema (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)");
      const r = await client.query<{ v: number }>("SELECT COALESCE(MAX(version), 0)::int AS v FROM allot_schema");
      const current = r.rows[0]!.v;
      if (current > migrations.length) {
        throw new Error(`database ${this.location} has schema version ${current}, newer than this Allot (${migrations.length}); upgrade Allot`);
      }
      for (let v = current; v < migrations.length; v++) {
        await client.query(migrations[v]!);
        await client.query("INSERT INTO allot_schema (version, applied_at) VALUES ($1, $2)", [v + 1, new Date().toISOString()]);
      }
      await client.query("COMMIT");
    } catch (err) {
      await client.query("ROLLBACK").catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  /**
   * A transaction's statements on one connection. Its BEGIN, its savepoints and the writes given to
   * {@link Sql.queue} wait and travel with the next statement (as one multi-statement query, values
   * written in), so a typical change is two round trips: its reads, then its writes with the COMMIT.
   */
  private session(client: pg.PoolClient, begin: string): PgSession {
    let queued: string[] = [];
    let queuedChars = 0;
    let broken = false;
    /** The current change's SAVEPOINT has run (it may wait in `queued` with earlier changes' writes). */
    let savepointSent = true;
    /** A send failed while the current change's SAVEPOINT was still among what it carried. */
    let failedBeforeSavepoint = false;
    /** Statements the queued text EXECUTEs that this connection has yet to PREPARE. */
    const toPrepare = new Map<string, string>();
    const inline = (text: string, params: readonly SqlValue[]) => inlineOn(client, text, params, toPrepare);
    const query = async (q: pg.QueryConfig | string) => {
      try {
        return await client.query(q);
      } catch (err) {
        throw this.mapped(err);
      }
    };
    /** `texts` after whatever is queued, in one round trip: a multi-statement query runs in order, each with a fresh view, and stops at the first error. */
    const withQueued = async (...texts: string[]): Promise<pg.QueryResult> => {
      const batch = [...queued, ...texts].join(";\n");
      queued = [];
      queuedChars = 0;
      if (toPrepare.size > 0) {
        // once per statement and connection, on their own: a prepared statement outlives a rollback, so
        // only this way is it known which ones the connection has
        try {
          await query([...toPrepare.values()].join(";\n"));
        } catch (err) {
          broken = true; // some may have been made: the connection's list can no longer be trusted
          if (!savepointSent) failedBeforeSavepoint = true;
          throw err;
        }
        let made = preparedOn.get(client);
        if (made === undefined) preparedOn.set(client, (made = new Set()));
        for (const name of toPrepare.keys()) made.add(name);
        toPrepare.clear();
      }
      let results: pg.QueryResult | pg.QueryResult[];
      try {
        results = (await query(batch)) as unknown as pg.QueryResult | pg.QueryResult[];
      } catch (err) {
        if (!savepointSent) failedBeforeSavepoint = true;
        throw err;
      }
      savepointSent = true;
      return Array.isArray(results) ? results[results.length - 1]! : results;
    };
    const q = async (text: string, params: readonly SqlValue[]) => {
      if (queued.length > 0 && params.length <= INLINE_MAX_VALUES) return withQueued(inline(text, params));
      // many values (a bulk insert) go faster as parameters than written into the text
      if (queued.length > 0) await withQueued();
      return query({ ...toPg(text), values: params as unknown[] });
    };
    const sql: Sql = {
      lock: (alias) => ` FOR UPDATE OF ${alias}`,
      all: async <T>(text: string, params: readonly SqlValue[] = []) => (await q(text, params)).rows as T[],
      get: async <T>(text: string, params: readonly SqlValue[] = []) => (await q(text, params)).rows[0] as T | undefined,
      run: async (text: string, params: readonly SqlValue[] = []): Promise<RunResult> => ({ changes: (await q(text, params)).rowCount ?? 0 }),
      queue: async (text: string, params: readonly SqlValue[] = []) => {
        if (params.length > INLINE_MAX_VALUES) {
          await q(text, params);
          return;
        }
        const statement = inline(text, params);
        queued.push(statement);
        queuedChars += statement.length;
        if (queuedChars >= QUEUED_CHARS_SENT) await withQueued();
      },
      lockAndRead: async <T>(lock: string, lockParams: readonly SqlValue[], read: string, readParams: readonly SqlValue[]) =>
        (await withQueued(inline(lock, lockParams), inline(read, readParams))).rows as T[],
    };
    return {
      sql,
      get broken() {
        return broken;
      },
      begin: async () => {
        queued.push(begin);
      },
      commit: async () => {
        try {
          await withQueued("COMMIT");
        } catch (err) {
          // the commit may have reached the database before the connection went: say so, not "not made";
          // a database that answered (disk full, read-only) refused it, and nothing was made
          if (err instanceof StoreUnavailableError && /^the (database cannot be reached|connection to the database was lost|database did not answer|database is shutting down)/.test(err.message)) {
            throw new StoreUnavailableError(`${err.message}; the connection was lost while committing, so the change may or may not have been made (retrying with the same owner is safe)`);
          }
          throw err;
        }
      },
      rollback: async () => {
        queued = [];
        queuedChars = 0;
        // a ROLLBACK outside a transaction (the BEGIN was still waiting) only warns
        await client.query("ROLLBACK").catch(() => (broken = true));
      },
      savepoint: async () => {
        queued.push("SAVEPOINT change");
        savepointSent = false;
        failedBeforeSavepoint = false;
      },
      releaseSavepoint: async () => {
        queued.push("RELEASE change");
      },
      rollbackToSavepoint: async () => {
        // A send that failed before this change's SAVEPOINT had run may have failed on an earlier
        // change's queued writes: rolling back to a savepoint would then undo that change, already
        // counted as done. The batch is lost instead, and its changes are run again one by one.
        if (failedBeforeSavepoint) throw new Error("a write queued in this batch failed before this change began");
        // what is still queued goes first: if it fails, the transaction is lost, as it should be
        await withQueued("ROLLBACK TO change");
      },
    };
  }

  /** Runs `work` with a connection of the pool's, dropping the connection if it broke. */
  private async withConnection<T>(begin: string, work: (session: PgSession) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw unavailable(err, this.location) ?? err;
    }
    const session = this.session(client, begin);
    try {
      return await work(session);
    } finally {
      client.release(session.broken);
    }
  }

  /** A database error as the store reports it: unavailable (503), a constraint, or a value it cannot take. */
  private mapped(err: unknown): unknown {
    return unavailable(err, this.location) ?? mapError(err);
  }

  async transaction<T>(fn: (sql: Sql) => Promise<T>, key?: string): Promise<T> {
    try {
      const result = await this.commits.submit(fn, key);
      this.failure = null;
      return result;
    } catch (err) {
      if (err instanceof StoreUnavailableError && /disk is full|out of resources/.test(err.message)) this.failure = { reason: err.message, at: Date.now() };
      throw err;
    }
  }

  /** Null if writes would succeed: the database answers, is no standby, and its sessions may write. */
  async writable(): Promise<string | null> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const answer = this.pool.query<{ recovery: boolean; readonly: string }>(
        "SELECT pg_is_in_recovery() AS recovery, current_setting('transaction_read_only') AS readonly",
      );
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${PROBE_TIMEOUT_MS / 1000} s`)), PROBE_TIMEOUT_MS);
      });
      answer.catch(() => {}); // after a timeout, its own failure has no one to hear it
      const row = (await Promise.race([answer, late])).rows[0]!;
      if (row.recovery) return `the database is a read-only standby (${this.location}; pg_is_in_recovery() is true): point ALLOT_DATABASE_URL at the primary`;
      if (row.readonly === "on") {
        return `the database is read-only (${this.location}; transaction_read_only is on): turn off default_transaction_read_only for this database or user`;
      }
    } catch (err) {
      return unavailable(err, this.location)?.message ?? `the database cannot be reached (${this.location}): ${(err as Error).message}`;
    } finally {
      clearTimeout(timer);
    }
    if (this.failure && Date.now() - this.failure.at < FAILURE_REMEMBERED_MS) return this.failure.reason;
    this.failure = null;
    return null;
  }

  read<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    // one snapshot for all the statements of a read, as SQLite's serial reads see
    return this.withConnection("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", async (s) => {
      await s.begin();
      try {
        const result = await fn(s.sql);
        await s.commit();
        return result;
      } catch (err) {
        await s.rollback();
        throw err;
      }
    });
  }

  /**
   * One connection of its own LISTENs for the notification the followed tables' triggers send at each
   * commit, by any server. Lost, it is made again a second later, and followers are woken then, since
   * changes may have passed unheard meanwhile.
   */
  follow(changed: () => void): () => Promise<void> {
    let stopped = false;
    let client: pg.Client | null = null;
    let retry: NodeJS.Timeout | undefined;
    const listen = async (): Promise<void> => {
      if (stopped) return;
      const c = (client = new pg.Client({ connectionString: this.url, keepAlive: true, connectionTimeoutMillis: 10_000 }));
      const again = () => {
        if (stopped || client !== c) return;
        client = null;
        void c.end().catch(() => {});
        retry = setTimeout(() => void listen(), 1000);
        retry.unref();
      };
      c.on("notification", () => changed());
      c.on("error", again);
      c.on("end", again);
      try {
        await c.connect();
        await c.query("LISTEN allot_changes");
        changed();
      } catch {
        again();
      }
    };
    void listen();
    return async () => {
      stopped = true;
      clearTimeout(retry);
      await client?.end().catch(() => {});
      client = null;
    };
  }

  async afterImport(sql: Sql): Promise<void> {
    // history rows keep their sequence numbers; the next change must number after them
    await sql.run("SELECT setval(pg_get_serial_sequence('history', 'seq'), GREATEST((SELECT MAX(seq) FROM history), 1))");
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

/** Errors that say the database, not the request, is the problem (SQLSTATE classes 08, 53, 57; read-only). */
function unavailable(err: unknown, where: string): StoreUnavailableError | null {
  const e = err as { code?: unknown; message?: string };
  const code = typeof e.code === "string" ? e.code : "";
  const why =
    code === "ECONNREFUSED" || code === "ECONNRESET" || code === "ETIMEDOUT" || code.startsWith("08") ? "the database cannot be reached"
    : code === "57P01" || code === "57P02" || code === "57P03" ? "the database is shutting down or starting up"
    : code === "25006" ? "the database is read-only"
    : code === "53100" ? "the database's disk is full"
    : code.startsWith("53") ? "the database is out of resources"
    : /connection timeout|timeout exceeded when trying to connect/.test(e.message ?? "") ? "the database did not answer within 10 s"
    : /Connection terminated|connection error and is not queryable/.test(e.message ?? "") ? "the connection to the database was lost"
    : null;
  return why ? new StoreUnavailableError(`${why} (${where}): ${e.message ?? code}`) : null;
}

function mapError(err: unknown): unknown {
  if (err instanceof ConstraintError) return err;
  const e = err as { code?: unknown; message?: string };
  if (typeof e.message === "string" && e.message.includes("ALLOT_OVERLAP")) {
    return new ConstraintError(e.message.replace(/^.*ALLOT_OVERLAP\s*/, ""), "overlap");
  }
  switch (e.code) {
    case "23505":
      return new ConstraintError(e.message ?? "unique violation", "unique");
    case "23503":
      return new ConstraintError(e.message ?? "foreign key violation", "foreign-key");
    case "23514":
      return new ConstraintError(e.message ?? "check violation", "check");
    case "40001":
    case "40P01":
      return new ConstraintError(e.message ?? "serialization failure", "retry");
  }
  // class 22, data exceptions: a value from the request the database cannot take
  if (typeof e.code === "string" && e.code.startsWith("22")) return new InvalidValueError(e.message ?? "invalid value");
  return err;
}

/** The URL without its password, for logs and messages. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparsable database URL)";
  }
}

/** Says what went wrong when connecting, in words a person can act on. */
function describeConnectError(err: unknown, where: string): Error {
  const e = err as { code?: string; message?: string };
  const why =
    e.code === "28P01" ? "the password is wrong"
    : e.code === "28000" ? "the user is not allowed to connect"
    : e.code === "3D000" ? "the database does not exist (create it first)"
    : e.code === "ECONNREFUSED" ? "nothing is listening there (is PostgreSQL running?)"
    : e.code === "ENOTFOUND" ? "the host name does not resolve"
    : /connection timeout|timeout exceeded when trying to connect/.test(e.message ?? "") ? "it did not answer within 10 s (is a PostgreSQL server listening there, and up?)"
    : (e.message ?? String(err));
  return new Error(`cannot open the PostgreSQL database at ${where}: ${why}`);
}
