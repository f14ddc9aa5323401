import { Command, Option } from "commander";
import type { HistoryEntry } from "../../engine/history.js";
import type { LookupResult } from "../../engine/lookup.js";
import { ALLOCATION_SORTS, type Allocation } from "../../engine/types.js";
import { seg } from "../client.js";
import { UsageError, collect, compact, context, keyValues, parseInteger } from "../context.js";
import { type Column, print, printObject, printList } from "../output.js";

export const allocationColumns: Column<Allocation>[] = [
  ["ADDRESS", (a) => (a.size > 1 ? `${a.address}-${a.lastAddress}` : a.address)],
  ["POOL", (a) => a.pool],
  ["OWNER", (a) => a.owner],
  ["MAC", (a) => a.mac],
  ["HOSTNAME", (a) => a.hostname],
  ["EXPIRES", (a) => a.expiresAt],
  ["ID", (a) => a.id],
];

const spaceOpt = ["-s, --space <space>", "space of the pool (default: default)"] as const;

export function allocateCommand(): Command {
  return new Command("allocate")
    .alias("alloc")
    .description("allocate the next free address, a specific one (--address) or a block (--size)")
    .argument("<pool>")
    .option(...spaceOpt)
    .option("-a, --address <address>", "this address exactly")
    .option("--size <n>", "a contiguous block of n addresses", parseInteger)
    .option("-c, --count <n>", "n separate addresses in one request, all or none", parseInteger)
    .option("-O, --owner <key>", "who holds it; asking again with the same owner returns the same allocation")
    .option("-m, --mac <mac>", "MAC address")
    .option("--hostname <name>", "hostname")
    .option("--label <key=value>", "label (repeatable)", collect)
    .option("--ttl <seconds>", "release automatically after this many seconds", parseInteger)
    .action(async (pool: string, o: Record<string, unknown>, cmd: Command) => {
      const { client, format } = context(cmd);
      const space = { space: o.space as string | undefined };
      if (o.count !== undefined) {
        if (o.address !== undefined || o.size !== undefined || o.owner !== undefined || o.mac !== undefined || o.hostname !== undefined) {
          throw new UsageError("--count takes separate addresses with no owner, MAC or hostname; leave out --address, --size, --owner, --mac and --hostname");
        }
        const body = compact({ count: o.count, labels: keyValues(o.label as string[] | undefined, "--label"), ttl: o.ttl });
        const res = await client.request<{ items: Allocation[] }>("POST", `v1/pools/${seg(pool)}/allocations/bulk`, body, space);
        printList(format, res.items, allocationColumns);
        return;
      }
      const body = compact({
        address: o.address,
        size: o.size,
        owner: o.owner,
        mac: o.mac,
        hostname: o.hostname,
        labels: keyValues(o.label as string[] | undefined, "--label"),
        ttl: o.ttl,
      });
      const a = await client.request<Allocation>("POST", `v1/pools/${seg(pool)}/allocations`, body, { space: o.space as string | undefined });
      print(format, a, allocationColumns);
    });
}

export function releaseCommand(): Command {
  return new Command("release")
    .description("release an allocation: POOL with --address or --owner, or --id alone")
    .argument("[pool]")
    .option(...spaceOpt)
    .option("-a, --address <address>", "any address of the allocation")
    .option("-O, --owner <key>", "the owner holding it")
    .option("--id <id>", "the allocation's id")
    .action(async (pool: string | undefined, o: { space?: string; address?: string; owner?: string; id?: string }, cmd: Command) => {
      const { client, format } = context(cmd);
      let a: Allocation;
      if (o.id) {
        a = await client.request<Allocation>("DELETE", `v1/allocations/${seg(o.id)}`);
      } else {
        if (!pool || (o.address === undefined) === (o.owner === undefined)) {
          throw new UsageError("give POOL with exactly one of --address or --owner, or --id alone");
        }
        a = await client.request<Allocation>("DELETE", `v1/pools/${seg(pool)}/allocations`, undefined, { space: o.space, address: o.address, owner: o.owner });
      }
      if (format === "table") process.stdout.write(`released ${a.size > 1 ? `${a.address}-${a.lastAddress}` : a.address} from pool ${a.pool}\n`);
      else print(format, a, allocationColumns);
    });
}

export function allocationsCommand(): Command {
  return new Command("allocations")
    .description("list a pool's allocations, in address order unless --sort says otherwise")
    .argument("<pool>")
    .option(...spaceOpt)
    .option("-O, --owner <key>", "only this owner's")
    .option("-m, --mac <mac>", "only this MAC's")
    .option("--hostname <name>", "only this hostname's")
    .addOption(new Option("--sort <order>", "address, -address, created (oldest first) or -created (newest first)").choices(ALLOCATION_SORTS))
    .option("--after <cursor>", "start after this one in the sort order: the previous page's next (paging)")
    .option("--limit <n>", "at most n (default 100, at most 1000)", parseInteger)
    .action(async (pool: string, o: Record<string, string | number | undefined>, cmd: Command) => {
      const { client, format } = context(cmd);
      const res = await client.request<{ items: Allocation[]; next: string | null }>("GET", `v1/pools/${seg(pool)}/allocations`, undefined, o);
      printList(format, res.items, allocationColumns, res.next ? { cursor: res.next, flag: "--after" } : null);
    });
}

export function allocationCommand(): Command {
  const cmd = new Command("allocation").description("one allocation, by id");
  cmd
    .command("show <id>")
    .description("show an allocation")
    .action(async (id: string, _o, c: Command) => {
      const { client, format } = context(c);
      print(format, await client.request<Allocation>("GET", `v1/allocations/${seg(id)}`), allocationColumns);
    });
  cmd
    .command("update <id>")
    .description("change MAC, hostname, labels or time-to-live (renew) of an allocation")
    .option("-m, --mac <mac>", "MAC address")
    .option("--hostname <name>", "hostname")
    .option("--label <key=value>", "labels, replacing the old ones (repeatable)", collect)
    .option("--ttl <seconds>", "release after this many seconds from now", parseInteger)
    .option("--no-ttl", "never release automatically")
    .action(async (id: string, o: { mac?: string; hostname?: string; label?: string[]; ttl?: number | false }, c: Command) => {
      const { client, format } = context(c);
      const body = compact({ mac: o.mac, hostname: o.hostname, labels: keyValues(o.label, "--label"), ttl: o.ttl === false ? null : o.ttl });
      print(format, await client.request<Allocation>("PATCH", `v1/allocations/${seg(id)}`, body), allocationColumns);
    });
  return cmd;
}

const lookupColumns: Column<LookupResult>[] = [
  ["ADDRESS", (r) => r.address],
  ["SPACE", (r) => r.space],
  ["POOL", (r) => r.pool],
  ["STATE", (r) => r.state],
  ["OWNER", (r) => r.allocation?.owner],
  ["MAC", (r) => r.allocation?.mac],
  ["SINCE", (r) => r.allocation?.createdAt],
];

export function searchCommand(): Command {
  return new Command("search")
    .description("find allocations by MAC, owner or host name (or its beginning) in the token's spaces; an address gives its holders")
    .argument("<text>")
    .option("--limit <n>", "at most n allocations (default 50, at most 200)", parseInteger)
    .action(async (text: string, o: { limit?: number }, cmd: Command) => {
      const { client, format } = context(cmd);
      const res = await client.request<{ addresses: LookupResult[]; allocations: Allocation[] }>("GET", "v1/search", undefined, { q: text, limit: o.limit });
      if (format !== "table") return print(format, res, [], res);
      if (res.addresses.length > 0) print(format, res.addresses, lookupColumns);
      if (res.allocations.length > 0) {
        if (res.addresses.length > 0) process.stdout.write("\n");
        print(format, res.allocations, allocationColumns);
      }
      // a released host name or owner is no longer held: its past is in history
      if (res.addresses.length === 0 && res.allocations.length === 0) process.stdout.write(`nothing matches ${text} now; what was released is in allot history (--owner, --address)\n`);
    });
}

export function lookupCommand(): Command {
  return new Command("lookup")
    .description("who holds an address: its pool, state and allocation")
    .argument("<address>")
    .option("-s, --space <space>", "look only in this space (default: every space)")
    .action(async (address: string, o: { space?: string }, cmd: Command) => {
      const { client, format } = context(cmd);
      const res = await client.request<{ items: LookupResult[] }>("GET", "v1/lookup", undefined, { address, space: o.space });
      const columns = lookupColumns;
      if (format === "table" && res.items.length === 0) {
        process.stdout.write(`${address} is in no pool${o.space ? ` of space ${o.space}` : ""}\n`);
        return;
      }
      printList(format, res.items, columns);
    });
}

interface HistoryOptions {
  pool?: string;
  space?: string;
  address?: string;
  owner?: string;
  actor?: string;
  entity?: string;
  from?: string;
  to?: string;
  at?: string;
  before?: number;
  limit?: number;
}

export function historyCommand(): Command {
  return new Command("history")
    .description("changes, newest first; with --address and --at, who held the address at that moment")
    .option("--pool <pool>", "only this pool's")
    .option("-s, --space <space>", "only this space's (with --address: the space to search, default: default)")
    .option("-a, --address <address>", "only changes to allocations that held this address")
    .option("--owner <owner>", "only changes to this owner's allocations")
    .option("--actor <actor>", "only changes made by this actor (token:NAME, system:expiry, …)")
    .option("--entity <entity>", "only changes to space, pool, allocation, token or webhook")
    .option("--from <time>", "only changes at or after this ISO 8601 time")
    .option("--to <time>", "only changes at or before this ISO 8601 time")
    .option("--at <time>", "with --address: who held it at this ISO 8601 time")
    .option("--before <seq>", "only changes numbered below this (the next page)", parseInteger)
    .option("--limit <n>", "at most n (default 100)", parseInteger)
    .action(async (o: HistoryOptions, cmd: Command) => {
      const { client, format } = context(cmd);
      if (o.at !== undefined) {
        if (o.address === undefined) throw new UsageError("--at asks who held an address then: give --address too");
        const held = await client.request<{ holder: { allocation: Allocation; allocatedAt: string; releasedAt: string | null } | null }>(
          "GET", "v1/history/holder", undefined, { address: o.address, at: o.at, space: o.space },
        );
        if (format !== "table") return print(format, held, [], held);
        if (!held.holder) return void process.stdout.write(`nobody held ${o.address} at ${o.at}\n`);
        const a = held.holder.allocation;
        return printObject(format, {
          address: o.address, pool: a.pool, owner: a.owner, mac: a.mac, hostname: a.hostname, allocation: a.id,
          allocatedAt: held.holder.allocatedAt, releasedAt: held.holder.releasedAt ?? "(still held)",
        });
      }
      const { at: _at, ...query } = o;
      const res = await client.request<{ items: HistoryEntry[] }>("GET", "v1/history", undefined, { ...query });
      // what the entry is about, as recorded: an allocation's whole run, and the pool and space it was in
      const subject = (h: HistoryEntry) => ((h.after ?? h.before) as Record<string, unknown> | null) ?? {};
      const what = (h: HistoryEntry) => {
        const x = subject(h);
        if (typeof x.address === "string") return typeof x.lastAddress === "string" && x.lastAddress !== x.address ? `${x.address}-${x.lastAddress}` : x.address;
        return x.name ?? "";
      };
      const named = (h: HistoryEntry, field: "pool" | "space") => subject(h)[field] ?? (h.entity === field ? subject(h).name : undefined);
      const last = res.items[res.items.length - 1];
      printList(
        format,
        res.items,
        [["SEQ", (h) => h.seq], ["AT", (h) => h.at], ["ACTOR", (h) => h.actor], ["ACTION", (h) => h.action], ["ENTITY", (h) => h.entity], ["SPACE", (h) => named(h, "space")], ["POOL", (h) => named(h, "pool")], ["WHAT", what]],
        last && res.items.length === (o.limit ?? 100) ? { cursor: last.seq, flag: "--before" } : null,
      );
    });
}
