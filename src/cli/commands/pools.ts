import { Command, InvalidArgumentError } from "commander";
import { parse as parseYaml } from "yaml";
import type { Forecast } from "../../engine/forecast.js";
import type { Pool, RangeInput, Usage } from "../../engine/types.js";
import { seg } from "../client.js";
import { UsageError, collect, compact, context, keyValues, parseInteger, readInput } from "../context.js";
import { type Column, printList, printObject } from "../output.js";

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
    // one text, so each range's gateway reads with its range
    ranges: p.ranges.map((r) => `${r.cidr ?? `${r.start}-${r.end}/${r.prefixLength}`}${r.gateway ? ` (gateway ${r.gateway})` : ""}`).join(", "),
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

/** A repeatable utilisation percentage, checked as the flag is read. */
function collectPercent(v: string, prev: number[] = []): number[] {
  const n = Number(v.replace(/%$/, ""));
  if (!/^\d+(\.\d+)?%?$/.test(v) || !(n > 0 && n <= 100)) throw new InvalidArgumentError("must be a percentage above 0 and at most 100, such as 80");
  return [...prev, n];
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
    .option("-s, --space <space>", "only this space's pools (default: every space the token may see); with --parent, the parent's space")
    .option("--parent <pool>", "only the children of this pool")
    .action(async (o: { space?: string; parent?: string }, cmd: Command) => {
      const { client, format } = context(cmd);
      const res = await client.request<{ items: Pool[] }>("GET", "v1/pools", undefined, o);
      printList(format, res.items, poolColumns);
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
    .option("--threshold <percent>", "record in history and export as a metric when utilisation crosses this (repeatable)", collectPercent)
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
          thresholds: o.threshold,
        }),
      };
      showPool(format, await client.request<Pool>("POST", "v1/pools", body));
    });

  pool
    .command("update <pool>")
    .description("change a pool's name, description, attributes, strategy or thresholds, or grow it by more ranges")
    .option(...spaceOpt)
    .option("--name <name>", "rename it")
    .option("--description <text>", "what the pool is for")
    .option("--attr <key=value>", "set an attribute, keeping the others (repeatable; key= removes one)", collect)
    .option("--no-attrs", "remove every attribute")
    .option("--strategy <name>", "lowest-free or random")
    .option("--threshold <percent>", "utilisation thresholds, replacing the old ones (repeatable)", collectPercent)
    .option("--no-thresholds", "remove every threshold")
    .option("--add-range <cidr|start-end[/len]>", "grow the pool by this range (repeatable; pools never shrink)", collect)
    .action(async (name: string, o: Record<string, unknown>, cmd: Command) => {
      const { client, format } = context(cmd);
      const set = keyValues(o.attr as string[] | undefined, "--attr");
      // attributes others keep on the pool (Neutron's, Metal3's) stay: the change is merged into what is there
      let attributes: Record<string, unknown> | undefined = o.attrs === false ? {} : undefined;
      if (set) {
        const current = (await client.request<Pool>("GET", `v1/pools/${seg(name)}`, undefined, { space: o.space as string | undefined })).attributes;
        attributes = { ...current };
        for (const [k, v] of Object.entries(set)) {
          if (v === "") delete attributes[k];
          else attributes[k] = v;
        }
      }
      const body = compact({
        name: o.name,
        description: o.description,
        attributes,
        strategy: o.strategy,
        thresholds: o.thresholds === false ? [] : o.threshold,
      });
      const add = ((o.addRange as string[] | undefined) ?? []).map((r) => (r.includes("-") ? parseRange(r) : { cidr: r }));
      if (Object.keys(body).length === 0 && add.length === 0) throw new UsageError("nothing to change: give --name, --description, --attr, --strategy, --threshold or --add-range");
      const space = { space: o.space as string | undefined };
      let p: Pool | undefined;
      // the ranges first, by the name the pool has now; then the rest, which may rename it
      if (add.length > 0) p = await client.request<Pool>("POST", `v1/pools/${seg(name)}/ranges`, { ranges: add }, space);
      if (Object.keys(body).length > 0) p = await client.request<Pool>("PATCH", `v1/pools/${seg(name)}`, body, space);
      showPool(format, p!);
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
      printList(format, res.items, poolColumns);
    });

  return pool;
}

export function usageCommand(): Command {
  return new Command("usage")
    .description("exact usage of a pool (total, allocated, in child pools, free) and when it will run out at its recent pace")
    .argument("<pool>")
    .option("-s, --space <space>", "space of the pool (default: default)")
    .action(async (name: string, o: { space?: string }, cmd: Command) => {
      const { client, format } = context(cmd);
      const u = await client.request<Usage>("GET", `v1/pools/${seg(name)}/usage`, undefined, o);
      const f = await client.request<Forecast>("GET", `v1/pools/${seg(name)}/forecast`, undefined, o);
      if (format !== "table") return printObject(format, { pool: name, ...u, forecast: f });
      const pace = f.growthPerDay === null ? "" : `; ${f.growthPerDay >= 0 ? "+" : ""}${f.growthPerDay} a day over ${f.days} days`;
      printObject(format, {
        pool: name,
        ...u,
        utilization: `${u.utilization}%`,
        forecast: f.daysLeft !== null ? `full in ${f.daysLeft} days (${f.exhaustedAt})${pace}` : `none: ${f.note}${pace}`,
      });
    });
}
