import type { Store } from "../store/store.js";

/**
 * One server's knowledge of committed changes, for everything that follows them (DHCP syncs, watches,
 * webhook delivery, the Metal3 reconcile): a single loop learns of new changes, and followers wait on
 * it instead of each polling the store.
 *
 * The store says when something followed was committed: at once for this process's own commits and,
 * on PostgreSQL, for every server's (LISTEN/NOTIFY); otherwise by a cheap check every second. Each
 * change moves `version` on; a follower remembers the version it last acted on and waits for a newer
 * one, then reads its own state (history after its sequence number, objects after its
 * resourceVersion). A quiet period still wakes followers every `fallbackMs`, so a lost notification
 * delays a follower, never strands it.
 */
export class ChangeFeed {
  private current = 0;
  private waiters = new Set<() => void>();
  private stopFollowing: (() => Promise<void>) | null = null;
  private fallback: NodeJS.Timeout | null = null;
  /** Stopped with its engine: a late follower then waits out its timeout rather than following a closed store. */
  private stopped = false;

  constructor(
    private readonly store: Store,
    private readonly fallbackMs = 5000,
  ) {}

  /** Versions move on with each change learnt of; start from this one. */
  get version(): number {
    this.start();
    return this.current;
  }

  /**
   * Resolves with the newest version once it is past `after`, at `timeoutMs` (with `after` if nothing
   * came), or when `signal` aborts (the client went away). No polling: one timer per waiter, its timeout.
   */
  wait(after: number, timeoutMs: number, signal?: AbortSignal): Promise<number> {
    this.start();
    if (this.current > after || signal?.aborted) return Promise.resolve(this.current);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        signal?.removeEventListener("abort", done);
        resolve(this.current);
      };
      const timer = setTimeout(done, Math.max(0, timeoutMs));
      this.waiters.add(done);
      signal?.addEventListener("abort", done, { once: true });
    });
  }

  /** Something may have changed: every waiter wakes. */
  changed(): void {
    this.current++;
    for (const wake of [...this.waiters]) wake();
  }

  /** Begins following the store; done on the first use, so engines nobody follows hold no connection. */
  private start(): void {
    if (this.stopped || this.stopFollowing || this.fallback) return;
    this.stopFollowing = this.store.follow((): void => this.changed());
    this.fallback = setInterval(() => this.changed(), this.fallbackMs);
    this.fallback.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.fallback) clearInterval(this.fallback);
    this.fallback = null;
    const stop = this.stopFollowing;
    this.stopFollowing = null;
    for (const wake of [...this.waiters]) wake();
    await stop?.();
  }
}
