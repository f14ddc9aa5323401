/**
 * Puts the driver where oned looks for it: one small executable per action, each handing its argv
 * and stdin to driver.js of this Allot installation, and a config file for the server's URL and token.
 */
import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { stringify } from "yaml";
import { ACTIONS, CONFIG_FILE, DEFAULT_TIMEOUT } from "./driver.js";

/** The compiled driver module the scripts load (plain node runs them, so never the TypeScript source). */
export function compiledDriver(): string {
  const here = fileURLToPath(import.meta.url);
  // from dist/integrations/opennebula/ or src/integrations/opennebula/, the package root is three up
  return resolve(here, "../../../../dist/integrations/opennebula/driver.js");
}

export interface InstallOptions {
  dir: string;
  url?: string;
  token?: string;
  space?: string;
  /** Seconds an action may take before it fails (oned waits 90 s, one action at a time). */
  timeout?: number;
  /** The pool that ranges registered without IP get a block from. */
  parent?: string;
  /** Overwrite an existing config file. */
  force?: boolean;
}

export function install(o: InstallOptions): { dir: string; files: string[]; config: string; configWritten: boolean } {
  const driver = compiledDriver();
  if (!existsSync(driver)) throw new Error(`${driver} is missing: build Allot first (npm ci, or npm run build)`);
  const dir = resolve(o.dir);
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  for (const action of ACTIONS) {
    const file = join(dir, action);
    // CommonJS-safe (no package.json beside it): a dynamic import of the ES module
    writeFileSync(
      file,
      `#!${process.execPath}\n// Allot IPAM driver for OpenNebula: ${action}. Installed by 'allot opennebula install'.\n` +
        `import(${JSON.stringify(pathToFileURL(driver).href)}).then((m) => m.main(${JSON.stringify(action)}));\n`,
    );
    chmodSync(file, 0o755);
    files.push(file);
  }
  const config = join(dir, CONFIG_FILE);
  const configWritten = o.force || !existsSync(config);
  if (configWritten) {
    writeFileSync(config, `# Allot IPAM driver settings (ALLOT_URL, ALLOT_TOKEN and ALLOT_SPACE in the environment win)\n${stringify({
      url: o.url ?? "http://127.0.0.1:7878",
      token: o.token ?? "PUT-A-WRITE-TOKEN-HERE",
      space: o.space ?? "default",
      timeout: o.timeout ?? DEFAULT_TIMEOUT,
      ...(o.parent ? { parent: o.parent } : {}),
    })}`, { mode: 0o600 });
    chmodSync(config, 0o600);
  }
  return { dir, files, config, configWritten };
}
