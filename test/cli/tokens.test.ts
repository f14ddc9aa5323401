import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { allot, startServerProcess } from "../process-helpers.js";

const root = fileURLToPath(new URL("../..", import.meta.url));

/** Starts `allot serve` with no ALLOT_ADMIN_TOKEN, as a new user does, and collects what it prints. */
function firstStart(dataDir: string, env: Record<string, string> = {}) {
  const { ALLOT_ADMIN_TOKEN: _a, ALLOT_SECRET_KEY: _k, ALLOT_TOKEN: _t, ...clean } = process.env;
  const proc = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "serve", "--port", "0", "--data-dir", dataDir], {
    cwd: root,
    env: { ...clean, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  proc.stdout.on("data", (d: Buffer) => (stdout += d));
  proc.stderr.on("data", (d: Buffer) => (stderr += d));
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  const listening = new Promise<string>((resolve, reject) => {
    const timer = setInterval(() => {
      const m = /Allot listening on (http:\/\/[^"\s]+)/.exec(stdout);
      if (m) {
        clearInterval(timer);
        resolve(m[1]!);
      }
    }, 50);
    void exited.then((code) => {
      clearInterval(timer);
      reject(new Error(`exited ${code}: ${stderr}`));
    });
  });
  listening.catch(() => {}); // a start expected to fail is awaited through `exited`
  return {
    listening,
    exited,
    out: () => ({ stdout, stderr }),
    stop: async () => {
      proc.kill("SIGTERM");
      return exited;
    },
  };
}

test("first start prints an admin token once and keeps only its hash; later starts print none", async () => {
  const dir = mkdtempSync(join(tmpdir(), "allot-first-"));
  try {
    const s1 = firstStart(dir);
    const url = await s1.listening;
    await new Promise((r) => setTimeout(r, 100));
    const printed = /\n {2}(allot_[A-Za-z0-9_-]{43})\n/.exec(s1.out().stderr)?.[1];
    assert.ok(printed, `no token printed: ${s1.out().stderr}`);
    // logs are JSON lines with request ids, and never carry the token
    const ok = allot(["space", "list"], { ALLOT_URL: url, ALLOT_TOKEN: printed });
    assert.equal(ok.code, 0, ok.stderr);
    const none = allot(["space", "list"], { ALLOT_URL: url, ALLOT_TOKEN: "" });
    assert.equal(none.code, 1);
    assert.match(none.stderr, /Authorization: Bearer.*--token or set ALLOT_TOKEN/);
    await s1.stop();
    const lines = s1.out().stdout.trim().split("\n").map((l) => JSON.parse(l) as { reqId?: string; msg: string; status?: number });
    const requests = lines.filter((l) => l.msg === "request");
    assert.ok(requests.length >= 2 && requests.every((l) => typeof l.reqId === "string" && l.reqId.length > 0));
    assert.ok(!s1.out().stdout.includes(printed), "the token reached the logs");
    // the database holds a hash, not the token
    const db = readFileSync(join(dir, "allot.db")).toString("latin1") + readFileSync(join(dir, "allot.db-wal"), { flag: "a+" }).toString("latin1");
    assert.ok(!db.includes(printed), "the token is stored in clear");
    assert.equal(statSync(join(dir, "secret.key")).mode & 0o777, 0o600);

    const s2 = firstStart(dir);
    const url2 = await s2.listening;
    await new Promise((r) => setTimeout(r, 100));
    assert.doesNotMatch(s2.out().stderr, /allot_/);
    assert.equal(allot(["space", "list"], { ALLOT_URL: url2, ALLOT_TOKEN: printed }).code, 0);
    await s2.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("ALLOT_ADMIN_TOKEN at first start is the admin token; a short one is refused", async () => {
  const dir = mkdtempSync(join(tmpdir(), "allot-envtoken-"));
  try {
    const short = firstStart(join(dir, "a"), { ALLOT_ADMIN_TOKEN: "too-short" });
    assert.equal(await short.exited, 2);
    assert.match(short.out().stderr, /ALLOT_ADMIN_TOKEN: a token must be at least 24 characters/);
    const s = firstStart(join(dir, "b"), { ALLOT_ADMIN_TOKEN: "automation-admin-token-0123456789" });
    const url = await s.listening;
    assert.doesNotMatch(s.out().stderr, /automation-admin-token/);
    assert.equal(allot(["space", "list"], { ALLOT_URL: url, ALLOT_TOKEN: "automation-admin-token-0123456789" }).code, 0);
    await s.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("allot token create / list / revoke, and what each scope may do", async () => {
  const dir = mkdtempSync(join(tmpdir(), "allot-tokcli-"));
  const server = await startServerProcess(join(dir, "data"));
  const env = { ALLOT_URL: server.url };
  try {
    assert.equal(allot(["space", "create", "lab"], env).code, 0);
    assert.equal(allot(["pool", "create", "net", "10.60.0.0/24", "--space", "lab"], env).code, 0);
    const made = allot(["token", "create", "ci", "--scope", "write", "--space", "lab"], env);
    assert.equal(made.code, 0, made.stderr);
    const ci = made.stdout.trim();
    assert.match(ci, /^allot_/);
    assert.match(made.stderr, /shown this once/);
    const asCi = { ...env, ALLOT_TOKEN: ci };
    assert.equal(allot(["allocate", "net", "-s", "lab"], asCi).code, 0);
    const outside = allot(["pool", "create", "other", "10.61.0.0/24"], asCi);
    assert.equal(outside.code, 1);
    assert.match(outside.stderr, /limited to spaces lab/);
    assert.match(allot(["token", "list"], asCi).stderr, /needs a token with admin scope/);

    const list = (JSON.parse(allot(["token", "list", "-o", "json"], env).stdout) as { items: { name: string; hint: string; spaces: string[] | null }[] }).items;
    const row = list.find((t) => t.name === "ci")!;
    assert.deepEqual(row.spaces, ["lab"]);
    assert.equal(row.hint, ci.slice(-4));
    assert.ok(!JSON.stringify(list).includes(ci));
    assert.equal(allot(["token", "create", "ci", "--scope", "read"], env).code, 1, "name taken");
    assert.equal(allot(["token", "create", "x", "--scope", "root"], env).code, 2, "no such scope");

    assert.equal(allot(["token", "revoke", "ci"], env).code, 0);
    const after = allot(["allocations", "net", "-s", "lab"], asCi);
    assert.equal(after.code, 1);
    assert.match(after.stderr, /unknown, revoked or expired/);
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a server whose secret key differs from the one the database's secrets were sealed with refuses to start", async () => {
  const dir = mkdtempSync(join(tmpdir(), "allot-key-"));
  try {
    const s = firstStart(join(dir, "d"), { ALLOT_SECRET_KEY: "11".repeat(32) });
    await s.listening;
    await s.stop();
    const other = firstStart(join(dir, "d"), { ALLOT_SECRET_KEY: "22".repeat(32) });
    assert.equal(await other.exited, 2);
    assert.match(other.out().stderr, /secret key .* differs from the one the secrets .* were sealed with/);
    const bad = firstStart(join(dir, "d"), { ALLOT_SECRET_KEY: "nope" });
    assert.equal(await bad.exited, 2);
    assert.match(bad.out().stderr, /ALLOT_SECRET_KEY must be 32 bytes/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
