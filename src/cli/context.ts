import { type Command, InvalidArgumentError } from "commander";
import { readFileSync } from "node:fs";
import { Client, DEFAULT_URL } from "./client.js";
import type { Format } from "./output.js";

export interface GlobalOptions {
  url: string;
  token?: string;
  caCert?: string;
  output: Format;
}

/** The client and output format for a command, from the global --url and -o options. */
export function context(cmd: Command): { client: Client; format: Format; opts: Record<string, unknown> } {
  const all = cmd.optsWithGlobals() as GlobalOptions & Record<string, unknown>;
  const token = all.token ?? process.env.ALLOT_TOKEN;
  const ca = all.caCert ?? process.env.ALLOT_CA_CERT;
  return { client: new Client(all.url ?? process.env.ALLOT_URL ?? DEFAULT_URL, token || undefined, ca || undefined), format: all.output ?? "table", opts: cmd.opts() };
}

export function parseFormat(v: string): Format {
  if (v !== "table" && v !== "json" && v !== "yaml") throw new InvalidArgumentError("use table, json or yaml");
  return v;
}

export function parseInteger(v: string): number {
  if (!/^-?\d+$/.test(v)) throw new InvalidArgumentError("must be a whole number");
  return Number(v);
}

/** Bad arguments found while a command runs (after parsing): printed without a stack, exit code 2. */
export class UsageError extends Error {}

/** Collects a repeatable option. */
export const collect = (v: string, prev: string[] = []) => [...prev, v];

/** key=value pairs into an object (repeatable --attr / --label). */
export function keyValues(list: string[] | undefined, flag: string): Record<string, string> | undefined {
  if (!list?.length) return undefined;
  const out: Record<string, string> = {};
  for (const kv of list) {
    const eq = kv.indexOf("=");
    if (eq < 1) throw new UsageError(`${flag} ${kv}: write it as key=value`);
    out[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return out;
}

/** Drops undefined fields so the request body holds only what the user gave. */
export function compact<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** A file's text, or standard input's for "-"; an unreadable file is a usage error that says why. */
export function readInput(file: string): string {
  try {
    return readFileSync(file === "-" ? 0 : file, "utf8");
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as { code?: string }).code === "ENOENT" ? "no such file" : (err as Error).message}`);
  }
}
