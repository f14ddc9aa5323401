import { SingleBar } from "cli-progress";
import { Command } from "commander";
import { createReadStream, createWriteStream } from "node:fs";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { ImportError, exportStore, importStore } from "../../store/transfer.js";
import { UsageError } from "../context.js";
import { openStoreFrom, withStoreOptions } from "./check.js";
import { exportNamespace, importNamespace } from "./kubernetes.js";

export function exportCommand(): Command {
  return withStoreOptions(
    new Command("export").description(
      "write a whole database (spaces, pools, allocations, history) as JSON lines; with -n, one Kubernetes namespace from a running server (--url)",
    ),
  )
    .option("-f, --file <file>", "write here instead of stdout")
    .option("-n, --namespace <namespace>", "only this namespace's Metal3 / Cluster API objects and their pools and allocations, from the server at --url")
    .action(async (o: { dataDir?: string; databaseUrl?: string; file?: string; namespace?: string }, cmd: Command) => {
      if (o.namespace !== undefined) return exportNamespace(cmd, o.namespace, o.file);
      const store = await openStoreFrom(o, true);
      const out = o.file ? createWriteStream(o.file) : process.stdout;
      try {
        const header = await exportStore(store, async (line) => {
          if (!out.write(`${line}\n`)) await once(out, "drain");
        });
        const rows = Object.values(header.counts).reduce((a, b) => a + b, 0);
        process.stderr.write(`exported ${rows} rows from ${store.location}\n`);
      } finally {
        if (o.file) await new Promise<void>((r) => (out as ReturnType<typeof createWriteStream>).end(r));
        await store.close();
      }
    });
}

export function importCommand(): Command {
  return withStoreOptions(
    new Command("import").description("load an export into an empty database, all or nothing; with -n, a namespace export into a running server (--url)"),
  )
    .requiredOption("-f, --file <file>", "the export (- for stdin)")
    .option("-n, --namespace <namespace>", "load a namespace export (allot export -n) into the server at --url")
    .action(async (o: { dataDir?: string; databaseUrl?: string; file: string; namespace?: string }, cmd: Command) => {
      if (o.namespace !== undefined) return importNamespace(cmd, o.namespace, o.file);
      const store = await openStoreFrom(o, false);
      const input = o.file === "-" ? process.stdin : createReadStream(o.file);
      const bar = process.stderr.isTTY ? new SingleBar({ format: "importing [{bar}] {percentage}% {value}/{total} rows, eta {eta}s", hideCursor: true }) : null;
      try {
        input.on("error", () => {}); // surfaced by the line reader below
        const header = await importStore(store, createInterface({ input, crlfDelay: Infinity }), (done, total) => {
          if (done === 1) bar?.start(total, 0);
          if (done % 1000 === 0 || done === total) bar?.update(done);
        });
        bar?.stop();
        const rows = Object.values(header.counts).reduce((a, b) => a + b, 0);
        process.stderr.write(`imported ${rows} rows into ${store.location}\n`);
      } catch (err) {
        bar?.stop();
        if (err instanceof ImportError) throw new UsageError(`import refused, nothing was changed: ${err.message}`);
        if ((err as { code?: string }).code === "ENOENT") throw new UsageError(`cannot read ${o.file}: no such file`);
        throw err;
      } finally {
        await store.close();
      }
    });
}
