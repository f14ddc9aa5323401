import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Engine, type EngineOptions } from "../src/engine/engine.js";
import { SqliteStore } from "../src/store/sqlite/sqlite-store.js";

export const ctx = { actor: "test" };

/** A fresh engine on a real SQLite file in a temporary directory; `cleanup` closes and removes it. */
export async function tempEngine(options: EngineOptions & { synchronous?: "full" | "normal" } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "allot-test-"));
  const store = new SqliteStore({ file: join(dir, "allot.db"), synchronous: options.synchronous ?? "normal" });
  const engine = await Engine.open(store, options);
  return {
    engine,
    store,
    dir,
    async cleanup() {
      await engine.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A clock tests can move forward. */
export function manualClock(start = Date.parse("2026-01-01T00:00:00Z")) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}
