import { Command } from "commander";
import type { Space } from "../../engine/types.js";
import { seg } from "../client.js";
import { compact, context } from "../context.js";
import { type Column, print, printList } from "../output.js";

const columns: Column<Space>[] = [
  ["NAME", (s) => s.name],
  ["DESCRIPTION", (s) => s.description],
  ["CREATED", (s) => s.createdAt],
];

export function spaceCommand(): Command {
  const space = new Command("space").alias("spaces").description("independent address plans (VRFs, tenants)");
  space
    .command("list")
    .description("list spaces")
    .action(async (_o, cmd: Command) => {
      const { client, format } = context(cmd);
      const res = await client.request<{ items: Space[] }>("GET", "v1/spaces");
      printList(format, res.items, columns);
    });
  space
    .command("create <name>")
    .description("create a space")
    .option("--description <text>", "what the space is for")
    .action(async (name: string, o: { description?: string }, cmd: Command) => {
      const { client, format } = context(cmd);
      print(format, await client.request<Space>("POST", "v1/spaces", compact({ name, description: o.description })), columns);
    });
  space
    .command("show <name>")
    .description("show a space")
    .action(async (name: string, _o, cmd: Command) => {
      const { client, format } = context(cmd);
      print(format, await client.request<Space>("GET", `v1/spaces/${seg(name)}`), columns);
    });
  space
    .command("delete <name>")
    .description("delete an empty space")
    .action(async (name: string, _o, cmd: Command) => {
      const { client, format } = context(cmd);
      print(format, await client.request<Space>("DELETE", `v1/spaces/${seg(name)}`), columns);
    });
  return space;
}
