import { Command } from "commander";
import { parse as parseYaml } from "yaml";
import type { Pool, RangeInput, Usage } from "../../engine/types.js";
import { seg } from "../client.js";
import { UsageError, collect, compact, context, keyValues, parseInteger, readInput } from "../context.js";
import { type Column, print, printObject } from "../output.js";

export const poolColumns: Column<Pool>[] = [
  ["NAME", (p) => p.name],
  ["SPACE", (p) => p.space],
  ["RANGES", (p) => p.ranges.map((r) => r.cidr ?? `${r.start}-${r.end}`)],
  ["PARENT", (p) => p.parent],
  ["STRATEGY", (p) => p.strategy],
  ["ALLOCATED", (p) => p.usage.allocated],
  ["FREE", (p) => p.usage.free],
  ["USED%", (p) => p.usage.utilization],
];

function showPool(format: "table" | "json" | "yaml", p: Pool): void {
  if (format !== "table") return printObject(format, p as unknown as Record<string, unknown>);
  printObject(format, {
    name: p.name,
    id: p.id,
    space: p.space,
    parent: p.parent,
    family: `IPv${p.family}`,
    ranges: p.ranges.map((r) => `${r.cidr ?? `${r.start}-${r.end}/${r.prefixLength}`}${r.gateway ? ` gw ${r.gateway}` : ""}`),
    exclusions: p.exclusions.map((e) => (e.start === e.end ? e.start : `${e.start}-${e.end}`)),
    strategy: p.strategy,
    allocateReserved: p.allocateReserved,
    dns: p.dns,
    attributes: p.attributes,
    total: p.usage.total,
    allocated: p.usage.allocated,
    inChildPools: p.usage.inChildPools,
    free: p.usage.free,
    utilization: `${p.usage.utilization}%`,
  });
}

function parseRange(text: string): RangeInput {
  const slash = text.lastIndexOf("/");
  const body = slash > 0 && !text.slice(slash + 1).includes(".") && !text.slice(slash + 1).includes(":") ? text.slice(0, slash) : text;
  const len = body === text ? undefined : parseInteger(text.slice(slash + 1));
  const dash = body.indexOf("-");
  if (dash < 1) throw new UsageError(`${text}: write a range as START-END or START-END/PREFIXLEN`);
  return compact({ start: body.slice(0, dash), end: body.slice(dash + 1), prefixLength: len }) as RangeInput;
}

function readBody(file: string): Record<string, unknown> {
  const data: unknown = parseYaml(readInput(file)); // YAML is a superset of JSON, so either works
  if (typeof data !== "object" || data === null || Array.isArray(data)) throw new UsageError(`${file} must hold one pool as a mapping`);
  return data as Record<string, unknown>;
}

export function poolCommand(): Command {
  const pool = new Command("pool").alias("pools").description("pools: ranges of addresses to allocate from");
  const spaceOpt = ["-s, --space <space>", "space of the pool (default: default)"] as const;

  pool
    .command("list")
    .description("list pools")
    .option(...spaceOpt)
    .option("--parent <pool>", "only the children of this pool")
    .action(async (o: { space?: string; parent?: string }, cmd: Command) => {
      const { client, format } = context(cmd);
      const res = await client.request<{ items: Pool[] }>("GET", "v1/pools", undefined, o);
      print(format, res.items, poolColumns, res.items);
    });

  pool
    .command("create <name> [cidr...]")
    .description("create a pool from CIDRs and/or --range START-END[/LEN], or from a YAML/JSON file (-f)")
    .option(...spaceOpt)
    .option("-r, --range <start-end[/len]>", "a start-end range (repeatable)", collect)
    .option("--prefix-length <n>", "netmask length handed out (needed for start-end ranges)", parseInteger)
    .option("-g, --gateway <address>", "gateway for the pool's addresses")
    .option("--dns <addresses>", "comma-separated DNS servers")
    .option("-x, --exclude <address|cidr|first-last>", "never hand these out (repeatable)", collect)
    .option("--strategy <name>", "lowest-free (default) or random")
    .option("--allocate-reserved", "allow network, broadcast and gateway addresses to be allocated")
    .option("--attr <key=value>", "attribute (repeatable)", collect)
    .option("--description <text>", "what the pool is for")
    .option("-f, --file <file>", "the whole pool as YAML or JSON (- for stdin); flags override its fields")
    .action(async (name: string, cidrs: string[], o: Record<string, unknown>, cmd: Command) => {
      const { client, format } = context(cmd);
      const base = o.file ? readBody(o.file as string) : {};
      const ranges = [...(base.ranges as RangeInput[] | undefined ?? []), ...cidrs.map((cidr) => ({ cidr })), ...((o.range as string[] | undefined) ?? []).map(parseRange)];
      const body = {
        ...base,
        ...compact({
          name,
          space: o.space,
          ranges: ranges.length ? ranges : undefined,
          prefixLength: o.prefixLength,
          gateway: o.gateway,
          dns: typeof o.dns === "string" ? o.dns.split(",").map((s) => s.trim()).filter(Boolean) : undefined,
          exclusions: o.exclude,
          strategy: o.strategy,
          allocateReserved: o.allocateReserved === true ? true : undefined,
          attributes: keyValues(o.attr as string[] | undefined, "--attr"),
          description: o.description,
        }),
      };
      showPool(format, await client.request<Pool>("POST", "v1/pools", body));
    });

  pool
    .command("show <pool>")
    .description("show a pool with its ranges and usage")
    .option(...spaceOpt)
    .action(async (name: string, o: { space?: string }, cmd: Command) => {
      const { client, format } = context(cmd);
      showPool(format, await client.request<Pool>("GET", `v1/pools/${seg(name)}`, undefined, o));
    });

  pool
    .command("delete <pool>")
    .description("delete a pool (refused while it holds allocations or children, unless --force)")
    .option(...spaceOpt)
    .option("--force", "also release its allocations and delete its child pools")
    .action(async (name: string, o: { space?: string; force?: boolean }, cmd: Command) => {
      const { client, format } = context(cmd);
      const p = await client.request<Pool>("DELETE", `v1/pools/${seg(name)}`, undefined, { space: o.space, force: o.force ? "true" : undefined });
      if (format === "table") process.stdout.write(`deleted pool ${p.name}\n`);
      else showPool(format, p);
    });

  pool
    .command("child <parent> <name>")
    .description("carve a child pool: the first free aligned block of --prefix-length, or exactly --cidr")
    .option(...spaceOpt)
    .option("--prefix-length <n>", "length of the block to carve", parseInteger)
    .option("--cidr <cidr>", "exact prefix to carve")
    .option("-g, --gateway <address>", "gateway for the child's addresses")
    .option("--strategy <name>", "lowest-free or random (default: the parent's)")
    .option("--allocate-reserved", "allow network, broadcast and gateway addresses to be allocated")
    .option("--attr <key=value>", "attribute (repeatable)", collect)
    .action(async (parent: string, name: string, o: Record<string, unknown>, cmd: Command) => {
      const { client, format } = context(cmd);
      const body = compact({
        name,
        prefixLength: o.prefixLength,
        cidr: o.cidr,
        gateway: o.gateway,
        strategy: o.strategy,
        allocateReserved: o.allocateReserved === true ? true : undefined,
        attributes: keyValues(o.attr as string[] | undefined, "--attr"),
      });
      showPool(format, await client.request<Pool>("POST", `v1/pools/${seg(parent)}/children`, body, { space: o.space as string | undefined }));
    });

  pool
    .command("children <pool>")
    .description("list a pool's child pools")
    .option(...spaceOpt)
    .action(async (name: string, o: { space?: string }, cmd: Command) => {
      const { client, format } = context(cmd);
      const res = await client.request<{ items: Pool[] }>("GET", `v1/pools/${seg(name)}/children`, undefined, o);
      print(format, res.items, poolColumns, res.items);
    });

  return pool;
}

export function usageCommand(): Command {
  return new Command("usage")
    .description("exact usage of a pool (total, allocated, in child pools, free)")
    .argument("<pool>")
    .option("-s, --space <space>", "space of the pool (default: default)")
    .action(async (name: string, o: { space?: string }, cmd: Command) => {
      const { client, format } = context(cmd);
      const u = await client.request<Usage>("GET", `v1/pools/${seg(name)}/usage`, undefined, o);
      printObject(format, { pool: name, ...u, utilization: format === "table" ? `${u.utilization}%` : u.utilization });
    });
}
