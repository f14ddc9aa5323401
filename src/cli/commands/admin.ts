import { Command, Option } from "commander";
import type { NewToken, Token } from "../../engine/tokens.js";
import type { NewWebhook, Webhook } from "../../engine/webhooks.js";
import { seg } from "../client.js";
import { collect, compact, context } from "../context.js";
import { type Column, print, printList } from "../output.js";

const columns: Column<Token>[] = [
  ["NAME", (t) => t.name],
  ["SCOPE", (t) => t.scope],
  ["SPACES", (t) => (t.spaces ? t.spaces.join(",") : "(all)")],
  ["HINT", (t) => t.hint],
  ["EXPIRES", (t) => t.expiresAt],
  ["REVOKED", (t) => t.revokedAt],
  ["ID", (t) => t.id],
];

export function tokenCommand(): Command {
  const token = new Command("token").alias("tokens").description("API tokens (needs an admin token)");
  token
    .command("create <name>")
    .description("create a token; its secret is printed this once")
    .addOption(new Option("--scope <scope>", "read, write or admin").choices(["read", "write", "admin"]).makeOptionMandatory())
    .option("-s, --space <space>", "limit the token to this space (repeat for several; default: every space)", collect, [])
    .option("--expires-at <time>", "ISO 8601 time after which the token stops working")
    .action(async (name: string, o: { scope: string; space: string[]; expiresAt?: string }, cmd: Command) => {
      const { client, format } = context(cmd);
      const made = await client.request<NewToken>("POST", "v1/tokens", compact({ name, scope: o.scope, spaces: o.space.length ? o.space : undefined, expiresAt: o.expiresAt }));
      if (format !== "table") return print(format, made, [], made);
      process.stdout.write(`${made.token}\n`);
      process.stderr.write(`token ${made.name} (${made.scope}${made.spaces ? ` in ${made.spaces.join(", ")}` : ""}) created; the line above is its secret, shown this once\n`);
    });
  token
    .command("list")
    .description("list tokens (never their secrets)")
    .action(async (_o, cmd: Command) => {
      const { client, format } = context(cmd);
      const res = await client.request<{ items: Token[] }>("GET", "v1/tokens");
      printList(format, res.items, columns);
    });
  token
    .command("revoke <token>")
    .description("revoke a token by name or id (at once on this server, within 10 s on others)")
    .action(async (t: string, _o, cmd: Command) => {
      const { client, format } = context(cmd);
      print(format, await client.request<Token>("DELETE", `v1/tokens/${seg(t)}`), columns);
    });
  return token;
}

const hookColumns: Column<Webhook>[] = [
  ["NAME", (w) => w.name],
  ["URL", (w) => w.url],
  ["SPACES", (w) => (w.spaces ? w.spaces.join(",") : "(all)")],
  ["DELIVERED", (w) => w.delivered],
  ["FAILURES", (w) => w.failures],
  ["LAST ERROR", (w) => w.lastError],
  ["ID", (w) => w.id],
];

export function webhookCommand(): Command {
  const hook = new Command("webhook").alias("webhooks").description("change events POSTed to a URL, signed with HMAC-SHA256 (needs an admin token)");
  hook
    .command("create <name>")
    .description("create a webhook; every later change is POSTed to --target")
    .requiredOption("--target <url>", "http:// or https:// URL that receives the events (--url names the Allot server)")
    .option("--secret <secret>", "signing secret, at least 16 characters (default: a random one, printed once)")
    .option("-s, --space <space>", "only changes in this space (repeat for several; default: every change)", collect, [])
    .action(async (name: string, o: { target: string; secret?: string; space: string[] }, cmd: Command) => {
      const { client, format } = context(cmd);
      const made = await client.request<NewWebhook>("POST", "v1/webhooks", compact({ name, url: o.target, secret: o.secret, spaces: o.space.length ? o.space : undefined }));
      if (format !== "table") return print(format, made, [], made);
      process.stdout.write(`${made.secret}\n`);
      process.stderr.write(`webhook ${made.name} created; the line above is its signing secret, shown this once\n`);
    });
  hook
    .command("list")
    .description("list webhooks with their delivery state")
    .action(async (_o, cmd: Command) => {
      const { client, format } = context(cmd);
      const res = await client.request<{ items: Webhook[] }>("GET", "v1/webhooks");
      printList(format, res.items, hookColumns);
    });
  hook
    .command("delete <webhook>")
    .description("delete a webhook by name or id")
    .action(async (w: string, _o, cmd: Command) => {
      const { client, format } = context(cmd);
      print(format, await client.request<Webhook>("DELETE", `v1/webhooks/${seg(w)}`), hookColumns);
    });
  return hook;
}
