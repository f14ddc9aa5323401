/**
 * Group commit. A durable commit costs a disk flush, and a store that commits each change alone
 * spends most of its time waiting for flushes while other changes queue behind it. Here, changes that
 * arrive while a commit is under way run together in the next database transaction, each inside its
 * own savepoint (so one failing change undoes only itself), and are answered only after the single
 * commit that makes them all durable. Each change still sees the ones before it, as if they had run
 * one after another; at low load every batch holds one change and nothing is different.
 *
 * Where transactions run side by side on several connections (PostgreSQL), a batch holds only changes
 * with the same key (the pool they lock), so batches never wait for each other's locks in a cycle;
 * changes to one busy pool then take its lock once per batch, not once each. If a batch fails as a
 * whole (a write that failed only when its statements were sent, with another change's), nothing of
 * it was kept, and each change is run again alone, to meet only its own failure.
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
  /** What the change locks; undefined for a change that must run alone where batches are keyed. */
  key: string | undefined;
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
  /** Batch only changes with the same key (stores whose batches run side by side). */
  keyed: boolean;
  /** A failure of the database itself, which running the changes again one by one would meet again. */
  isUnavailable(err: unknown): boolean;
}

export class GroupCommit {
  private readonly queue: Pending[] = [];
  private active = 0;
  /** Keys with a batch under way: their next batch waits, gathering the changes that arrive meanwhile. */
  private readonly busy = new Set<string>();

  constructor(private readonly options: GroupCommitOptions) {}

  submit<T>(fn: (sql: Sql) => Promise<T>, key?: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, key, resolve: resolve as (v: unknown) => void, reject });
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
      for (let batch = this.nextBatch(); batch.length > 0; batch = this.nextBatch()) {
        const key = this.options.keyed ? batch[0]!.key : undefined;
        if (key !== undefined) this.busy.add(key);
        try {
          await this.runBatch(batch);
        } finally {
          if (key !== undefined) this.busy.delete(key);
        }
      }
    } finally {
      this.active--;
    }
  }

  /** The oldest change (where batches are keyed: whose key has no batch under way), with the later ones of its key; empty if none may run. */
  private nextBatch(): Pending[] {
    const { maxBatch, keyed } = this.options;
    if (!keyed) return this.queue.splice(0, maxBatch);
    const at = this.queue.findIndex((p) => p.key === undefined || !this.busy.has(p.key));
    if (at < 0) return [];
    const first = this.queue.splice(at, 1)[0]!;
    const batch = [first];
    if (first.key === undefined) return batch;
    for (let i = at; i < this.queue.length && batch.length < maxBatch; ) {
      if (this.queue[i]!.key === first.key) batch.push(...this.queue.splice(i, 1));
      else i++;
    }
    return batch;
  }

  /** Runs one batch and settles every change in it; never throws. */
  private async runBatch(batch: Pending[]): Promise<void> {
    let outcomes: Outcome[];
    try {
      outcomes = await this.options.withSession((s) => (batch.length === 1 ? this.runAlone(s, batch[0]!) : this.runTogether(s, batch)));
    } catch (err) {
      if (batch.length > 1 && !this.options.isUnavailable(err)) {
        for (const p of batch) await this.runBatch([p]);
        return;
      }
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
      // nothing of the batch was kept: runBatch runs each change again alone
      await s.rollback();
      throw err;
    }
    return outcomes;
  }
}
