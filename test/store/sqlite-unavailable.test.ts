// A SQLite database that cannot be written, on a real filesystem: the server answers 503 with the reason
// (never 500), /readyz says what writes would meet, and it recovers by itself once the cause is gone.
// Root ignores file modes, and these tests run as root (CI too), so read-only here is the immutable
// attribute (chattr +i), which stops root as well; a full disk is a small tmpfs mounted for the test.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { startServerProcess } from "../process-helpers.js";
import { AUTH } from "../helpers.js";

const post = (url: string, body: unknown) =>
  fetch(url, { method: "POST", headers: { ...AUTH, "content-type": "application/json" }, body: JSON.stringify(body) });
const readyz = async (url: string) => {
  const res = await fetch(`${url}/readyz`);
  return { status: res.status, body: (await res.json()) as { status: string; reason?: string } };
};

/** Polls /readyz until it answers `status` (the SQLite probe runs at most once a second). */
async function readyzBecomes(url: string, status: number) {
  const deadline = Date.now() + 5000;
  for (;;) {
    const r = await readyz(url);
    if (r.status === status || Date.now() > deadline) return r;
    await new Promise((res) => setTimeout(res, 200));
  }
}

const chattr = (flag: string, ...paths: string[]) => execFileSync("chattr", [flag, ...paths]);

test("a full disk: writes answer 503 store-unavailable, /readyz says so, and both recover when space is freed", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "allot-full-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=3m", "tmpfs", dir], { stdio: "pipe" });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    return t.skip(`cannot mount a small tmpfs to fill (${(err as Error).message.split("\n")[0]})`);
  }
  let server;
  try {
    server = await startServerProcess(join(dir, "data"));
    assert.equal((await post(`${server.url}/v1/pools`, { name: "p", cidr: "10.8.0.0/16" })).status, 201);
    assert.equal((await readyz(server.url)).status, 200);
    // leave a few pages free: the next commits' WAL frames do not fit
    const s = statfsSync(dir);
    writeFileSync(join(dir, "filler"), Buffer.alloc(Math.max(0, s.bavail * s.bsize - 32 * 1024)));
    let failed: Response | null = null;
    for (let i = 0; i < 2000 && !failed; i++) {
      const res = await post(`${server.url}/v1/pools/p/allocations`, { owner: `o${i}` });
      if (res.status !== 201) failed = res;
      else await res.body?.cancel();
    }
    assert.ok(failed, "the disk filled up");
    const problem = (await failed.json()) as { code: string; detail: string };
    assert.equal(failed.status, 503, JSON.stringify(problem));
    assert.equal(problem.code, "store-unavailable");
    assert.match(problem.detail, /the disk holding the SQLite database .*allot\.db is full/);

    const notReady = await readyzBecomes(server.url, 503);
    assert.equal(notReady.status, 503, JSON.stringify(notReady.body));
    assert.equal(notReady.body.status, "unavailable");
    assert.match(notReady.body.reason!, /is full/);
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200, "liveness is not readiness");

    rmSync(join(dir, "filler"));
    const ready = await readyzBecomes(server.url, 200);
    assert.equal(ready.status, 200, JSON.stringify(ready.body));
    assert.equal((await post(`${server.url}/v1/pools/p/allocations`, { owner: "after" })).status, 201);
  } finally {
    await server?.stop();
    execFileSync("umount", [dir]);
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a database file made read-only under a running server: 503 naming why, /readyz too, and recovery once writable", async () => {
  const dir = mkdtempSync(join(tmpdir(), "allot-ro-"));
  const db = join(dir, "data", "allot.db");
  const server = await startServerProcess(join(dir, "data"));
  try {
    assert.equal((await post(`${server.url}/v1/pools`, { name: "p", cidr: "10.9.0.0/24" })).status, 201);
    chattr("+i", db, `${db}-wal`);
    const res = await post(`${server.url}/v1/pools/p/allocations`, { owner: "x" });
    const problem = (await res.json()) as { code: string; detail: string };
    assert.equal(res.status, 503, JSON.stringify(problem));
    assert.equal(problem.code, "store-unavailable");
    assert.match(problem.detail, /allot\.db.* is read-only: it has the immutable or append-only attribute/);

    const notReady = await readyzBecomes(server.url, 503);
    assert.equal(notReady.status, 503, JSON.stringify(notReady.body));
    assert.match(notReady.body.reason!, /immutable/);

    chattr("-i", db, `${db}-wal`);
    assert.equal((await readyzBecomes(server.url, 200)).status, 200);
    assert.equal((await post(`${server.url}/v1/pools/p/allocations`, { owner: "y" })).status, 201);
  } finally {
    execFileSync("chattr", ["-i", db, `${db}-wal`], { stdio: "ignore" });
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
