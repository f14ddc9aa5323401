// `allot serve` on a data directory it cannot write stops at once (exit 2) naming the path and the cause,
// not SQLite's "unable to open database file". Root ignores file modes, and these tests run as root, so
// read-only here is the immutable attribute (chattr +i), and "not writable by this user" runs the server
// as uid 65534.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { TEST_SECRET_KEY } from "../helpers.js";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
/** `allot serve` as a user runs it; one that starts after all is ended after 20 s, and fails the test. */
function serve(dataDir: string, env: Record<string, string> = { ALLOT_SECRET_KEY: TEST_SECRET_KEY }, uid?: number) {
  const r = spawnSync(process.execPath, ["--import", "tsx", "src/cli/main.ts", "serve", "--port", "0", "--data-dir", dataDir], {
    cwd: root,
    env: { ...process.env, HOME: tmpdir(), ...env },
    encoding: "utf8",
    timeout: 20_000,
    ...(uid === undefined ? {} : { uid, gid: uid }),
  });
  return { code: r.status, stderr: r.stderr };
}

/** Runs `fn` with the immutable attribute on `paths`, always taking it off again (rmSync could not remove them). */
function immutable<T>(paths: string[], fn: () => T): T {
  execFileSync("chattr", ["+i", ...paths]);
  try {
    return fn();
  } finally {
    execFileSync("chattr", ["-i", ...paths]);
  }
}

test("a data directory that cannot be created: exit 2 naming the directory and why", () => {
  const dir = mkdtempSync(join(tmpdir(), "allot-open-"));
  try {
    mkdirSync(join(dir, "ro"));
    const data = join(dir, "ro", "data");
    const r = immutable([join(dir, "ro")], () => serve(data));
    assert.equal(r.code, 2, r.stderr);
    assert.equal(
      r.stderr.trim(),
      `error: cannot open the SQLite database ${data}/allot.db: ${data} cannot be created: the directory ${dir}/ro is read-only: it has the immutable or append-only attribute (see lsattr; chattr -i -a clears it)`,
    );
    // without ALLOT_SECRET_KEY the key file is made first, in the same directory: that says so too
    const r2 = immutable([join(dir, "ro")], () => serve(data, { ALLOT_SECRET_KEY: "" }));
    assert.equal(r2.code, 2, r2.stderr);
    assert.match(r2.stderr, new RegExp(`^error: cannot create the secret key ${data}/secret.key: ${data} cannot be created: the directory ${dir}/ro is read-only`));
    assert.doesNotMatch(r2.stderr, /at mkdirSync/, "no stack trace");

    writeFileSync(join(dir, "file"), "");
    const r3 = serve(join(dir, "file", "data"));
    assert.equal(r3.code, 2, r3.stderr);
    assert.match(r3.stderr, new RegExp(`cannot open the SQLite database ${dir}/file/data/allot.db: ${dir}/file is not a directory`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a read-only database file or directory: exit 2 saying so, where SQLite would open it read-only or not at all", async () => {
  const dir = mkdtempSync(join(tmpdir(), "allot-open-"));
  try {
    const data = join(dir, "data");
    // make the database, then close it: the last connection's close removes the -wal and -shm files
    await new SqliteStore({ file: join(data, "allot.db") }).close();

    // the directory must take the -wal and -shm files
    const r = immutable([data], () => serve(data));
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`^error: cannot open the SQLite database ${data}/allot.db: the directory ${data} is read-only: it has the immutable`));

    // SQLite opens a file it may not write read-only, without a word
    const r2 = immutable([join(data, "allot.db")], () => serve(data));
    assert.equal(r2.code, 2, r2.stderr);
    assert.match(r2.stderr, new RegExp(`^error: cannot start: the SQLite database ${data}/allot.db is read-only \\(SQLITE_READONLY\\): the file ${data}/allot.db is read-only: it has the immutable`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a data directory another user owns: exit 2 naming this user's uid", (t) => {
  if (process.getuid?.() !== 0) return t.skip("runs the server as uid 65534, which needs root");
  const dir = mkdtempSync(join(tmpdir(), "allot-open-"));
  try {
    chmodSync(dir, 0o755);
    const r = serve(join(dir, "data"), { ALLOT_SECRET_KEY: TEST_SECRET_KEY }, 65534);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(
      r.stderr.trim(),
      `error: cannot open the SQLite database ${dir}/data/allot.db: ${dir}/data cannot be created: the directory ${dir} is not writable by this user (uid 65534; it belongs to uid 0 with mode 0755)`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
