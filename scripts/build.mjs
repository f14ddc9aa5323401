// Compiles src/ to dist/ (the server and CLI for Node, the web UI for browsers) and marks the CLI
// executable, so `npx allot` works straight after `npm ci`.
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync } from "node:fs";
import { createRequire } from "node:module";

const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
for (const project of ["tsconfig.build.json", "tsconfig.ui.json"]) {
  const r = spawnSync(process.execPath, [tsc, "-p", project], { stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
// the web UI's page and styles go beside its compiled script
for (const f of ["index.html", "app.css"]) copyFileSync(`src/ui/${f}`, `dist/ui/${f}`);
chmodSync("dist/cli/main.js", 0o755);
