import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { GroupCommit, type TxSession } from "../group-commit.js";
import { Mutex } from "../mutex.js";
import { ConstraintError, type RunResult, type Sql, type SqlValue, type Store, StoreUnavailableError } from "../store.js";
import { migrations } from "./schema.js";

export interface SqliteStoreOptions {
  /** Path of the database file. */
  file: string;
  /**
   * "full" (the default) syncs every commit to disk, so an acknowledged change survives power loss;
   * "normal" survives a crash of the process but may lose the last commits on power loss.
   */
  synchronous?: "full" | "normal";
}

/**
 * The embedded store: one better-sqlite3 connection in WAL mode. better-sqlite3 is synchronous, so
 * transactions are serialised by a mutex rather than by the database; this keeps a transaction's
 * statements from interleaving with another request's while the engine awaits between them. Changes
 * that queue behind a commit share the next one (group commit), so one disk flush serves many.
 */
export class SqliteStore implements Store {
  readonly kind = "sqlite";
  readonly location: string;
  private readonly db: Database.Database;
  private readonly mutex = new Mutex();
  private readonly statements = new Map<string, Database.Statement>();
  private readonly sql: Sql;
  private readonly commits = new GroupCommit({
    withSession: (work) => this.mutex.run(() => work(this.session())),
    runners: 1,
    maxBatch: 256,
  });

  constructor(options: SqliteStoreOptions) {
    this.location = options.file;
    mkdirSync(dirname(options.file), { recursive: true });
    this.db = new Database(options.file);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma(`synchronous = ${options.synchronous === "normal" ? "NORMAL" : "FULL"}`);
    this.db.pragma("foreign_keys = ON");
    this.db.pragma("busy_timeout = 5000");
    this.db.pragma("cache_size = -65536");
    this.db.defaultSafeIntegers(false);
    this.migrate();
    this.sql = {
      lock: () => "",
      all: async <T>(q: string, p: readonly SqlValue[] = []) => this.call(() => this.prepare(q).all(...p) as T[]),
      get: async <T>(q: string, p: readonly SqlValue[] = []) => this.call(() => this.prepare(q).get(...p) as T | undefined),
      run: async (q: string, p: readonly SqlValue[] = []): Promise<RunResult> =>
        this.call(() => ({ changes: this.prepare(q).run(...p).changes })),
    };
  }

  /** The schema version this database is at. */
  get schemaVersion(): number {
    return this.db.pragma("user_version", { simple: true }) as number;
  }

  private migrate(): void {
    const current = this.schemaVersion;
    if (current > migrations.length) {
      throw new Error(
        `database ${this.location} has schema version ${current}, newer than this Allot (${migrations.length}); upgrade Allot`,
      );
    }
    for (let v = current; v < migrations.length; v++) {
      this.db.transaction(() => {
        this.db.exec(migrations[v]!);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  private prepare(q: string): Database.Statement {
    let st = this.statements.get(q);
    if (!st) {
      st = this.db.prepare(q);
      this.statements.set(q, st);
    }
    return st;
  }

  private call<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw mapError(err);
    }
  }

  transaction<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    return this.commits.submit(fn);
  }

  /** The one connection's statements for a group-commit batch; BEGIN and COMMIT can fail too (another process holds the lock; a full disk shows at COMMIT). */
  private session(): TxSession {
    // prepared once and cached like every statement: a batch runs two savepoint statements per change
    const exec = async (statement: string): Promise<void> => {
      this.call(() => this.prepare(statement).run());
    };
    return {
      sql: this.sql,
      begin: () => exec("BEGIN IMMEDIATE"),
      commit: () => exec("COMMIT"),
      rollback: async () => {
        if (this.db.inTransaction) this.db.exec("ROLLBACK");
      },
      savepoint: () => exec("SAVEPOINT change"),
      releaseSavepoint: () => exec("RELEASE change"),
      rollbackToSavepoint: async () => {
        if (!this.db.inTransaction) throw new Error("the transaction was rolled back by SQLite");
        await exec("ROLLBACK TO change");
      },
    };
  }

  async read<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    // a deferred transaction is a snapshot in WAL mode, even against writers in other processes
    return this.mutex.run(async () => {
      this.db.exec("BEGIN");
      try {
        return await fn(this.sql);
      } finally {
        if (this.db.inTransaction) this.db.exec("COMMIT");
      }
    });
  }

  async close(): Promise<void> {
    await this.mutex.run(async () => {
      if (this.db.open) this.db.close();
    });
  }
}

function mapError(err: unknown): unknown {
  if (err instanceof Database.SqliteError) {
    if (err.message.includes("ALLOT_OVERLAP")) {
      return new ConstraintError(err.message.replace(/^.*ALLOT_OVERLAP\s*/, ""), "overlap");
    }
    if (err.code === "SQLITE_CONSTRAINT_UNIQUE" || err.code === "SQLITE_CONSTRAINT_PRIMARYKEY") {
      return new ConstraintError(err.message, "unique");
    }
    if (err.code === "SQLITE_CONSTRAINT_FOREIGNKEY") return new ConstraintError(err.message, "foreign-key");
    if (err.code === "SQLITE_CONSTRAINT_CHECK") return new ConstraintError(err.message, "check");
    if (/^SQLITE_(FULL|READONLY|IOERR|CANTOPEN|BUSY)/.test(err.code)) {
      return new StoreUnavailableError(`the SQLite database cannot be written (${err.code}): ${err.message}`);
    }
  }
  return err;
}
