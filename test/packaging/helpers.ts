import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, readFileSync, readdirSync, symlinkSync } from "node:fs";
import { get as httpGet } from "node:http";
import { get as httpsGet } from "node:https";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
export { freePort } from "../process-helpers.js";

export const root = fileURLToPath(new URL("../..", import.meta.url));

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


/** The status of a GET, or null when nothing answers. `ca`: trust this PEM (a self-signed server). */
export function status(url: string, ca?: string): Promise<number | null> {
  return new Promise((resolve) => {
    const done = (res: { statusCode?: number; resume(): void }) => {
      res.resume();
      resolve(res.statusCode ?? null);
    };
    const req = url.startsWith("https:") ? httpsGet(url, { ca, timeout: 5000 }, done) : httpGet(url, { timeout: 5000 }, done);
    req.on("error", () => resolve(null));
    req.on("timeout", () => req.destroy());
  });
}

/** Waits until GET /readyz answers 200; generous, since the machine may be busy. */
export async function waitReady(base: string, opts: { ca?: () => string | undefined; ms?: number; alive?: () => boolean } = {}): Promise<void> {
  const until = Date.now() + (opts.ms ?? 60_000);
  while (Date.now() < until) {
    if ((await status(`${base}/readyz`, opts.ca?.())) === 200) return;
    if (opts.alive && !opts.alive()) throw new Error(`the server at ${base} exited before it was ready`);
    await sleep(250);
  }
  throw new Error(`${base}/readyz did not answer 200 within ${(opts.ms ?? 60_000) / 1000} s`);
}

/** Waits until `done()` holds, polling; false if it did not within `ms`. */
export async function waitFor(done: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  for (;;) {
    if (await done()) return true;
    if (Date.now() > until) return false;
    await sleep(200);
  }
}

/** Every process below `pid` (Linux /proc). */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid …": comm may hold spaces and parentheses
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

/** Whether a process runs (a zombie, already exited but not reaped, does not count). */
export function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/** The environment of this process without npm's variables, as a user's shell would have it. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && k !== "NODE_OPTIONS" && !k.startsWith("ALLOT_")));
  return { ...env, ...extra };
}

/**
 * `npm pack` of this checkout, done in a copy of it so the checkout's dist/ (which other suites run)
 * is not rebuilt under them. `build: false` packs the dist/ that scripts/test.mjs built instead of
 * building it again (npm pack's own build is then not run). Returns the tarball's path.
 */
export function packTarball(dir: string, { build = true } = {}): string {
  const copy = join(dir, "checkout");
  mkdirSync(copy, { recursive: true });
  for (const f of ["package.json", "package-lock.json", "README.md", "tsconfig.json", "tsconfig.build.json", "tsconfig.ui.json", "scripts", "src", "packaging", ...(build ? [] : ["dist"])]) {
    cpSync(join(root, f), join(copy, f), { recursive: true });
  }
  // the build's compiler and types, as installed by npm ci
  symlinkSync(join(root, "node_modules"), join(copy, "node_modules"));
  const r = spawnSync("npm", ["pack", "--pack-destination", dir, ...(build ? [] : ["--ignore-scripts"])], { cwd: copy, env: cleanEnv(), encoding: "utf8" });
  if (r.status !== 0) throw new Error(`npm pack failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  const tgz = readdirSync(dir).find((f) => /^allot-.*\.tgz$/.test(f));
  if (!tgz) throw new Error(`npm pack made no tarball:\n${r.stdout}\n${r.stderr}`);
  return join(dir, tgz);
}
