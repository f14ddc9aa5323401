import Database from "better-sqlite3";
import { statfsSync } from "node:fs";
import { dirname } from "node:path";
import { whyNotWritable } from "./why-not-writable.js";

/** How long a write waits for another process's write lock (PRAGMA busy_timeout). */
export const BUSY_TIMEOUT_MS = 5000;

/** Bytes this user may still write on the filesystem that holds `file`, or null if it cannot be asked. */
export function freeBytes(file: string): number | null {
  try {
    const s = statfsSync(dirname(file));
    return s.bavail * s.bsize;
  } catch {
    return null;
  }
}

/**
 * SQLite errors that say the database, not the request, is the problem, as a sentence an operator can
 * act on (with SQLite's code, for searching); null for any other error. SQLite's own messages ("disk
 * I/O error", "attempt to write a readonly database") name neither the file nor what to do.
 */
export function describeUnavailable(err: unknown, file: string): string | null {
  if (!(err instanceof Database.SqliteError)) return null;
  const code = err.code;
  if (code.startsWith("SQLITE_FULL")) {
    const free = freeBytes(file);
    return `the disk holding the SQLite database ${file} is full (${free === null ? "" : `${free} bytes free; `}${code}): free space on it, and writes resume by themselves`;
  }
  if (code.startsWith("SQLITE_READONLY")) {
    const why = whyNotWritable(file) ?? "SQLite opened it read-only";
    return `the SQLite database ${file} is read-only (${code}): ${why}; make it writable, then restart Allot (SQLite decides at open)`;
  }
  if (code.startsWith("SQLITE_IOERR")) {
    const why = whyNotWritable(file) ?? "check the disk and the kernel log (dmesg)";
    return `the disk reported an error while writing the SQLite database ${file} (${code}): ${why}`;
  }
  if (code.startsWith("SQLITE_CANTOPEN")) {
    const why = whyNotWritable(file) ?? "check that they exist and this user may write them";
    return `the SQLite database ${file} or its -wal and -shm files cannot be opened (${code}): ${why}`;
  }
  if (code.startsWith("SQLITE_BUSY")) {
    return `the SQLite database ${file} has been locked by another process for over ${BUSY_TIMEOUT_MS / 1000} s (${code}): another allot serve, import or tool holds its write lock`;
  }
  return null;
}
