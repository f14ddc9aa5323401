import { accessSync, constants, statSync } from "node:fs";
import { dirname } from "node:path";

/**
 * Why this process cannot create or write `file` (a SQLite database, which also needs to create its
 * -wal and -shm files beside it), in words an operator can act on; null if the filesystem allows it.
 * SQLite itself only says "unable to open database file" or "attempt to write a readonly database".
 */
export function whyNotWritable(file: string): string | null {
  try {
    return check(file);
  } catch (err) {
    // stat(2) itself refused: a directory on the way is not searchable by this user
    return `${file} cannot be reached: ${(err as Error).message}`;
  }
}

function check(file: string): string | null {
  const dir = dirname(file);
  const ancestor = nearestExisting(dir);
  if (!ancestor.isDirectory) return `${ancestor.path} is not a directory`;
  if (ancestor.path !== dir) {
    // the directory is still to be made, in the nearest one that exists
    const denied = deniedWrite(ancestor.path, "the directory");
    return denied ? `${dir} cannot be created: ${denied}` : null;
  }
  // the directory must take new files (-wal, -shm, a new database); existing files must take writes
  for (const [path, what] of [[dir, "the directory"], [file, "the file"], [`${file}-wal`, "the file"], [`${file}-shm`, "the file"]] as const) {
    if (path !== dir && !exists(path)) continue;
    const denied = deniedWrite(path, what);
    if (denied) return denied;
  }
  return null;
}

function nearestExisting(path: string): { path: string; isDirectory: boolean } {
  for (let p = path; ; p = dirname(p)) {
    try {
      return { path: p, isDirectory: statSync(p).isDirectory() };
    } catch (err) {
      const code = (err as { code?: string }).code;
      if ((code !== "ENOENT" && code !== "ENOTDIR") || dirname(p) === p) throw err;
    }
  }
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** What stops this user writing `path`, or null. access(2) answers for this process's user, root included. */
function deniedWrite(path: string, what: string): string | null {
  try {
    accessSync(path, constants.W_OK);
    return null;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "EROFS") return `${what} ${path} is on a read-only filesystem (remount it read-write)`;
    // what root meets: the immutable or append-only attribute (lsattr shows it; chattr -i clears it)
    if (code === "EPERM") return `${what} ${path} is read-only: it has the immutable or append-only attribute (see lsattr; chattr -i -a clears it)`;
    if (code === "EACCES") {
      const st = statSync(path);
      return `${what} ${path} is not writable by this user (uid ${process.getuid?.() ?? "?"}; it belongs to uid ${st.uid} with mode ${(st.mode & 0o777).toString(8).padStart(4, "0")})`;
    }
    return `${what} ${path} cannot be written: ${(err as Error).message}`;
  }
}
