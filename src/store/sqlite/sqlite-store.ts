import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { dirname } from "node:path";
import { GroupCommit, type TxSession } from "../group-commit.js";
import { Mutex } from "../mutex.js";
import { ConstraintError, type RunResult, type Sql, type SqlValue, type Store, StoreUnavailableError } from "../store.js";
import { migrations } from "./schema.js";
import { FOLLOWED_TABLES } from "../schema.js";
import { BUSY_TIMEOUT_MS, describeUnavailable, freeBytes } from "./unavailable.js";
import { whyNotWritable } from "./why-not-writable.js";

export interface SqliteStoreOptions {
  /** Path of the database file. */
  file: string;
  /**
   * "full" (the default) syncs every commit to disk, so an acknowledged change survives power loss;
   * "normal" survives a crash of the process but may lose the last commits on power loss.
   */
  synchronous?: "full" | "normal";
  /** How often to try emptying the -wal file after writes (default 30 s; tests shorten it). */
  checkpointEveryMs?: number;
}

/** The -wal file is cut back to this size whenever a checkpoint lets SQLite start it again. */
export const WAL_SIZE_LIMIT = 64 * 1024 * 1024;

/** A write that failed because of the database, not the request, and what it said. */
interface WriteFailure {
  reason: string;
  /** For a full disk: the bytes free when it failed, to tell when some were freed. */
  full: { free: number | null } | null;
}

/** Space that must come free after a full disk before the probe's small write is taken as proof that writes work again. */
const FREED_ENOUGH = 1024 * 1024;

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
    withSession: async (work) => {
      const session = this.session();
      const result = await this.mutex.run(() => work(session));
      await this.flushWal();
      // followers hear of a change once it is durable: they show nothing a power cut could take back
      if (session.followed) for (const f of this.followers) f();
      return result;
    },
    // while one batch waits for its flush, the next one runs
    runners: 2,
    maxBatch: 256,
    // one connection: batches never run side by side, so any changes may share one
    keyed: false,
    isUnavailable: (err) => err instanceof StoreUnavailableError,
  });
  /**
   * With synchronous FULL asked for, the connection runs NORMAL (a commit writes the -wal file but does
   * not flush it) and the flush SQLite would have made inside COMMIT, on the event loop, is made here
   * instead, on libuv's thread pool: requests go on meanwhile, and a change is answered only after it.
   */
  private readonly flushAfterCommit: boolean;
  private wal: FileHandle | null = null;
  /** Commits not yet known to be on disk: a flush covers every commit before it began. */
  private unflushed = false;
  private flushing: Promise<void> = Promise.resolve();
  /** A followed table changed in the transaction under way (set by this connection's TEMP triggers). */
  private followedChange = false;
  private readonly followers = new Set<() => void>();
  /** A flush asked for that has not started: later commits join it. */
  private nextFlush: Promise<void> | null = null;

  /** Why the last statement failed for the database's sake (full, read-only…), until a write succeeds; what /readyz reports. */
  private failure: WriteFailure | null = null;
  private probed: { at: number; result: Promise<string | null> } | null = null;
  /** Something was committed since the -wal file was last emptied. */
  private unCheckpointed = false;
  private readonly checkpointer: NodeJS.Timeout;

  constructor(options: SqliteStoreOptions) {
    this.location = options.file;
    this.flushAfterCommit = options.synchronous !== "normal";
    let db: Database.Database | undefined;
    try {
      mkdirSync(dirname(options.file), { recursive: true });
      this.db = db = new Database(options.file);
      this.db.pragma("journal_mode = WAL");
      // FULL is kept, with the flush moved off the event loop (see flushAfterCommit)
      this.db.pragma("synchronous = NORMAL");
      this.db.pragma("foreign_keys = ON");
      this.db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      this.db.pragma("cache_size = -65536");
      this.db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT}`);
      this.db.defaultSafeIntegers(false);
      this.migrate();
      this.markFollowedChanges();
    } catch (err) {
      db?.close();
      throw describeOpenError(err, options.file);
    }
    this.sql = {
      lock: () => "",
      all: async <T>(q: string, p: readonly SqlValue[] = []) => this.call(() => this.prepare(q).all(...p) as T[]),
      get: async <T>(q: string, p: readonly SqlValue[] = []) => this.call(() => this.prepare(q).get(...p) as T | undefined),
      run: async (q: string, p: readonly SqlValue[] = []): Promise<RunResult> =>
        this.call(() => ({ changes: this.prepare(q).run(...p).changes })),
      // in-process statements cost no round trip: nothing to gain by holding them
      queue: async (q: string, p: readonly SqlValue[] = []) => {
        this.call(() => this.prepare(q).run(...p));
      },
      lockAndRead: async <T>(_lock: string, _lp: readonly SqlValue[], q: string, p: readonly SqlValue[]) => this.call(() => this.prepare(q).all(...p) as T[]),
    };
    this.checkpointer = setInterval(() => void this.checkpoint(), options.checkpointEveryMs ?? 30_000);
    this.checkpointer.unref();
  }

  /**
   * This connection's own triggers (TEMP: not in the file, so other programs opening it need nothing)
   * note that a followed table changed; the commit then tells the followers.
   */
  private markFollowedChanges(): void {
    this.db.function("allot_followed_change", { deterministic: false, varargs: false }, () => {
      this.followedChange = true;
      return null;
    });
    for (const t of FOLLOWED_TABLES) {
      for (const op of ["INSERT", "UPDATE", "DELETE"]) {
        this.db.exec(`CREATE TEMP TRIGGER ${t}_${op.toLowerCase()}_followed AFTER ${op} ON main.${t} BEGIN SELECT allot_followed_change(); END`);
      }
    }
  }

  follow(changed: () => void): () => Promise<void> {
    this.followers.add(changed);
    // another process's commits (a second server, the CLI on the same file) show as a new data_version
    let seen = this.dataVersion();
    const timer = setInterval(() => {
      const now = this.dataVersion();
      if (now !== seen) changed();
      seen = now;
    }, 1000);
    timer.unref();
    return async () => {
      clearInterval(timer);
      this.followers.delete(changed);
    };
  }

  private dataVersion(): number {
    return this.db.open ? (this.db.pragma("data_version", { simple: true }) as number) : 0;
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
      const mapped = mapError(err, this.location);
      if (mapped instanceof StoreUnavailableError) this.failed(mapped.message, err);
      throw mapped;
    }
  }

  /** Rows this connection has changed since it opened. */
  private totalChanges(): number {
    return (this.prepare("SELECT total_changes() AS n").get() as { n: number }).n;
  }

  private failed(reason: string, err: unknown): void {
    const full = err instanceof Database.SqliteError && err.code.startsWith("SQLITE_FULL");
    this.failure = { reason, full: full ? { free: freeBytes(this.location) } : null };
  }

  /**
   * Null if writes would succeed now, else why not. A tiny real write (the schema version rewritten
   * as it is, committed): BEGIN IMMEDIATE alone succeeds even on a file SQLite opened read-only. At
   * most one probe a second, shared by the callers within it.
   */
  writable(): Promise<string | null> {
    if (!this.db.open) return Promise.resolve(`the SQLite database ${this.location} is closed: the server is stopping`);
    if (this.probed && Date.now() - this.probed.at < 1000) return this.probed.result;
    const result = this.mutex.run(async () => this.probe());
    this.probed = { at: Date.now(), result };
    return result;
  }

  /**
   * Empties the -wal file after writes. SQLite's automatic checkpoints (every 1000 pages) copy pages
   * back but never shrink the file, and cannot finish while another process (an export, say) holds
   * an older snapshot; this one runs between transactions and, with no busy wait, never blocks the
   * event loop: if a reader is still there, it is tried again on the next tick.
   */
  private async checkpoint(): Promise<void> {
    if (!this.unCheckpointed) return;
    await this.mutex.run(async () => {
      if (!this.db.open) return;
      this.db.pragma("busy_timeout = 0");
      try {
        const [row] = this.db.pragma("wal_checkpoint(TRUNCATE)") as { busy: number }[];
        if (row?.busy === 0) this.unCheckpointed = false;
      } catch {
        // a failing disk shows in the next write, and in /readyz
      } finally {
        this.db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      }
    });
  }

  private probe(): string | null {
    if (!this.db.open) return `the SQLite database ${this.location} is closed: the server is stopping`;
    try {
      this.call(() => {
        this.db.exec("BEGIN IMMEDIATE");
        this.db.pragma(`user_version = ${this.db.pragma("user_version", { simple: true }) as number}`);
        this.db.exec("COMMIT");
      });
      this.unCheckpointed = true;
    } catch (err) {
      try {
        if (this.db.inTransaction) this.db.exec("ROLLBACK");
      } catch {
        // undone already: a failed ROLLBACK leaves no transaction open
      }
      if (err instanceof StoreUnavailableError) return err.message;
      return `the SQLite database ${this.location} cannot be written: ${(err as Error).message}`;
    }
    // one page fits where the WAL already has room, so after a full disk it proves little: wait for
    // free space to grow, or a real write to succeed
    const full = this.failure?.full;
    if (full) {
      const free = freeBytes(this.location);
      if (free === null || full.free === null || free < full.free + FREED_ENOUGH) return this.failure!.reason;
    }
    this.failure = null;
    return null;
  }

  transaction<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    return this.commits.submit(fn);
  }

  /**
   * Makes every commit so far durable: one fdatasync of the -wal file, the flush synchronous FULL makes
   * at each commit. Calls that arrive while one runs share the next.
   */
  private flushWal(): Promise<void> {
    // a batch that wrote nothing waits for the flush under way, but inherits no earlier flush's failure
    if (!this.flushAfterCommit || !this.unflushed) return this.flushing.catch(() => {});
    if (this.nextFlush) return this.nextFlush;
    const next = this.flushing.catch(() => {}).then(async () => {
      this.nextFlush = null;
      // commits from here on need the flush after this one
      this.unflushed = false;
      try {
        this.wal ??= await open(`${this.location}-wal`, "r");
        await this.wal.datasync();
      } catch (err) {
        const why = describeUnavailable(err, this.location) ?? (err as Error).message;
        this.failed(why, err);
        throw new StoreUnavailableError(`the change was written but could not be flushed to disk, so it may be lost if the machine stops: ${why}`);
      }
    });
    this.nextFlush = next;
    this.flushing = next;
    return next;
  }

  /** The one connection's statements for a group-commit batch; BEGIN and COMMIT can fail too (another process holds the lock; a full disk shows at COMMIT). */
  private session(): TxSession & { followed: boolean } {
    // prepared once and cached like every statement: a batch runs two savepoint statements per change
    const exec = async (statement: string): Promise<void> => {
      this.call(() => this.prepare(statement).run());
    };
    let changesBefore = 0;
    const session = {
      /** The batch committed a change to a followed table. */
      followed: false,
      sql: this.sql,
      begin: async () => {
        await exec("BEGIN IMMEDIATE");
        changesBefore = this.totalChanges();
      },
      commit: async () => {
        // a commit that changed nothing writes nothing (a background loop with nothing to do): it proves nothing about the disk
        const wrote = this.totalChanges() !== changesBefore;
        await exec("COMMIT");
        if (wrote) {
          this.failure = null;
          this.unCheckpointed = true;
          this.unflushed = true;
        }
        if (this.followedChange) {
          this.followedChange = false;
          session.followed = true;
        }
      },
      rollback: async () => {
        this.followedChange = false;
        try {
          if (this.db.inTransaction) this.db.exec("ROLLBACK");
        } catch {
          // SQLite has already undone the transaction when a rollback fails (the disk, the lock)
        }
      },
      savepoint: () => exec("SAVEPOINT change"),
      releaseSavepoint: () => exec("RELEASE change"),
      rollbackToSavepoint: async () => {
        if (!this.db.inTransaction) throw new Error("the transaction was rolled back by SQLite");
        await exec("ROLLBACK TO change");
      },
    };
    return session;
  }

  async read<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    // a deferred transaction is a snapshot in WAL mode, even against writers in other processes
    const result = await this.mutex.run(async () => {
      this.call(() => this.db.exec("BEGIN"));
      try {
        return await fn(this.sql);
      } finally {
        if (this.db.inTransaction) this.db.exec("COMMIT");
      }
    });
    // show nothing that a power cut could still take back: wait for the flush of what this read saw
    await this.flushing.catch(() => {});
    return result;
  }

  async close(): Promise<void> {
    clearInterval(this.checkpointer);
    await this.flushing.catch(() => {});
    await this.mutex.run(async () => {
      if (this.db.open) this.db.close();
    });
    await this.wal?.close();
    this.wal = null;
  }
}

/** Why the database cannot be opened, naming the file and what stops it. */
function describeOpenError(err: unknown, file: string): unknown {
  const code = (err as { code?: unknown }).code;
  // the filesystem refused (mkdir) or SQLite could not open, read or lock it; a schema newer than
  // this Allot, say, already says what to do
  const fs = typeof code === "string" && /^E[A-Z]+$/.test(code);
  if (!fs && !(err instanceof Database.SqliteError && /^SQLITE_(CANTOPEN|READONLY|IOERR|PERM|FULL|BUSY|NOTADB)/.test(err.code))) return err;
  const why =
    whyNotWritable(file) ??
    (code === "SQLITE_NOTADB" ? "it is not a SQLite database (is this the right data directory?)" : (describeUnavailable(err, file) ?? (err as Error).message));
  return new Error(`cannot open the SQLite database ${file}: ${why}`);
}

function mapError(err: unknown, file: string): unknown {
  if (err instanceof Database.SqliteError) {
    if (err.message.includes("ALLOT_OVERLAP")) {
      return new ConstraintError(err.message.replace(/^.*ALLOT_OVERLAP\s*/, ""), "overlap");
    }
    if (err.code === "SQLITE_CONSTRAINT_UNIQUE" || err.code === "SQLITE_CONSTRAINT_PRIMARYKEY") {
      return new ConstraintError(err.message, "unique");
    }
    if (err.code === "SQLITE_CONSTRAINT_FOREIGNKEY") return new ConstraintError(err.message, "foreign-key");
    if (err.code === "SQLITE_CONSTRAINT_CHECK") return new ConstraintError(err.message, "check");
    const unavailable = describeUnavailable(err, file);
    if (unavailable) return new StoreUnavailableError(unavailable);
  }
  return err;
}
