/** Types for pg-server.mjs, the throwaway PostgreSQL server of the test run and the benchmark. */
export interface RunningPostgres {
  /** Admin connection URL on a loopback port. */
  url: string;
  /** Stops the server and removes its data directory. */
  stop(): Promise<void>;
}

/** Starts PostgreSQL; `durable` keeps fsync and synchronous_commit on (the benchmark), off otherwise (tests). */
export function startPostgres(options?: { durable?: boolean }): Promise<RunningPostgres>;
