/**
 * Group commit. A durable commit costs a disk flush, and a store that commits each change alone
 * spends most of its time waiting for flushes while other changes queue behind it. Here, changes that
 * arrive while a commit is under way run together in the next database transaction, each inside its
 * own savepoint (so one failing change undoes only itself), and are answered only after the single
 * commit that makes them all durable. Each change still sees the ones before it, as if they had run
 * one after another; at low load every batch holds one change and nothing is different.
 */
import type { Sql } from "./store.js";

/** One database transaction's worth of statements, as a backend provides them. */
export interface TxSession {
  sql: Sql;
  begin(): Promise<void>;
  commit(): Promise<void>;
  /** Ends the transaction, if one is open, undoing it; never throws. */
  rollback(): Promise<void>;
  savepoint(): Promise<void>;
  releaseSavepoint(): Promise<void>;
  /** Undoes the work since the savepoint; throws if the transaction as a whole is lost. */
  rollbackToSavepoint(): Promise<void>;
}

interface Pending {
  fn: (sql: Sql) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

export interface GroupCommitOptions {
  /** Runs `work` with a session to itself (a connection, or the one connection behind a lock). */
  withSession<T>(work: (session: TxSession) => Promise<T>): Promise<T>;
  /** Batches that may run side by side (PostgreSQL: connections; SQLite: 1). */
  runners: number;
  /** The most changes in one transaction: bounds how long one commit keeps the others waiting. */
  maxBatch: number;
}

export class GroupCommit {
  private readonly queue: Pending[] = [];
  private active = 0;

  constructor(private readonly options: GroupCommitOptions) {}

  submit<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (this.active < this.options.runners) {
        this.active++;
        // start on the next turn of the event loop, so that every request that arrived in this one
        // (a synchronous store runs a whole batch without yielding to I/O) joins the batch
        setImmediate(() => void this.run());
      }
    });
  }

  private async run(): Promise<void> {
    try {
      while (this.queue.length > 0) await this.runBatch(this.queue.splice(0, this.options.maxBatch));
    } finally {
      this.active--;
    }
  }

  /** Runs one batch and settles every change in it; never throws. */
  private async runBatch(batch: Pending[]): Promise<void> {
    let outcomes: Outcome[];
    try {
      outcomes = await this.options.withSession((s) => (batch.length === 1 ? this.runAlone(s, batch[0]!) : this.runTogether(s, batch)));
    } catch (err) {
      outcomes = batch.map(() => ({ ok: false, error: err }));
    }
    batch.forEach((p, i) => {
      const o = outcomes[i]!;
      if (o.ok) p.resolve(o.value);
      else p.reject(o.error);
    });
  }

  private async runAlone(s: TxSession, p: Pending): Promise<Outcome[]> {
    await s.begin();
    let value: unknown;
    try {
      value = await p.fn(s.sql);
    } catch (error) {
      await s.rollback();
      return [{ ok: false, error }];
    }
    try {
      await s.commit();
    } catch (err) {
      await s.rollback();
      throw err;
    }
    return [{ ok: true, value }];
  }

  private async runTogether(s: TxSession, batch: Pending[]): Promise<Outcome[]> {
    await s.begin();
    const outcomes: Outcome[] = [];
    for (const p of batch) {
      try {
        await s.savepoint();
        const value = await p.fn(s.sql);
        await s.releaseSavepoint();
        outcomes.push({ ok: true, value });
      } catch (error) {
        try {
          await s.rollbackToSavepoint();
          await s.releaseSavepoint();
        } catch {
          // the transaction itself is gone (the disk, the connection): nothing in it survives
          await s.rollback();
          throw error;
        }
        outcomes.push({ ok: false, error });
      }
    }
    if (!outcomes.some((o) => o.ok)) {
      await s.rollback();
      return outcomes;
    }
    try {
      await s.commit();
    } catch (err) {
      await s.rollback();
      return outcomes.map((o) => (o.ok ? { ok: false, error: err } : o));
    }
    return outcomes;
  }
}
