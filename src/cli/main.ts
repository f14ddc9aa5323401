#!/usr/bin/env node
import { Command, CommanderError, Option } from "commander";
import { VERSION } from "../api/app.js";
import { ApiError, DEFAULT_URL } from "./client.js";
import { allocateCommand, allocationCommand, allocationsCommand, historyCommand, lookupCommand, releaseCommand, searchCommand } from "./commands/allocations.js";
import { poolCommand, usageCommand } from "./commands/pools.js";
import { checkCommand } from "./commands/check.js";
import { serveCommand } from "./commands/serve.js";
import { exportCommand, importCommand } from "./commands/transfer.js";
import { opennebulaCommand } from "./commands/opennebula.js";
import { neutronCommand } from "./commands/neutron.js";
import { applyCommand, deleteCommand, getCommand } from "./commands/kubernetes.js";
import { agentCommand, dhcpCommand } from "./commands/dhcp.js";
import { spaceCommand } from "./commands/spaces.js";
import { tokenCommand, webhookCommand } from "./commands/admin.js";
import { dnsCommand } from "./commands/dns.js";
import { UsageError, parseFormat } from "./context.js";

// npx and npm scripts run a command through `sh -c`, and that shell does not pass SIGTERM on: it dies and
// leaves this process running. So, started by npm, stop as on SIGTERM once the parent is gone. serve and
// agent handle SIGINT and SIGTERM once each: one handled and not the other means a stop is under way.
// Only the long-running commands watch (a script's short commands end by themselves).
const longRunning = process.argv.slice(2).some((a) => a === "serve" || a === "agent");
const npmParent = longRunning && process.env.npm_lifecycle_event !== undefined && process.ppid > 1 ? process.ppid : null;
if (npmParent !== null) {
  const watch = setInterval(() => {
    try {
      process.kill(npmParent, 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ESRCH") return;
      clearInterval(watch);
      if (process.listenerCount("SIGINT") === process.listenerCount("SIGTERM")) process.kill(process.pid, "SIGTERM");
    }
  }, 500);
  watch.unref();
}

const program = new Command("allot")
  .description("Allot IP address management: serve the API, or manage spaces, pools and allocations")
  .version(VERSION)
  .addOption(new Option("--url <url>", "Allot server URL").env("ALLOT_URL").default(DEFAULT_URL))
  .addOption(new Option("--token <token>", "API token (printed by the server at first start, or from 'allot token create')").env("ALLOT_TOKEN"))
  .addOption(new Option("--ca-cert <file>", "trust this PEM certificate for an HTTPS server (its tls.crt when self-signed)").env("ALLOT_CA_CERT"))
  .addOption(new Option("-o, --output <format>", "table, json or yaml").argParser(parseFormat).default("table"))
  .enablePositionalOptions(false);

for (const make of [serveCommand, spaceCommand, poolCommand, allocateCommand, releaseCommand, allocationsCommand, allocationCommand, lookupCommand, searchCommand, usageCommand, historyCommand, tokenCommand, webhookCommand, dnsCommand, opennebulaCommand, neutronCommand, applyCommand, getCommand, deleteCommand, dhcpCommand, agentCommand, checkCommand, exportCommand, importCommand]) {
  program.addCommand(make());
}

// Every command throws instead of exiting, so usage errors anywhere exit 2 and API errors exit 1; a
// mistake gets its one line (with "did you mean", where commander has a guess) and where help is, not the whole help.
const throwInstead = (cmd: Command): void => {
  cmd.exitOverride();
  cmd.showHelpAfterError(`(${["allot", ...ancestry(cmd)].join(" ")} --help lists what it takes)`);
  cmd.commands.forEach(throwInstead);
};
function ancestry(cmd: Command): string[] {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names;
}
throwInstead(program);
// the command that ran: API errors about a field are told in its flags' terms
let running: Command = program;
program.hook("preAction", (_top, action) => {
  running = action;
});

/**
 * "size: must be at least 1" from the API becomes "--size: must be at least 1" where the command has that
 * flag; a field the user gave as an argument (a pool's CIDR) is dropped where the message quotes the value.
 */
function inFlags(message: string, cmd: Command): string {
  return message
    .split("; ")
    .map((part) =>
      part.replace(/^([A-Za-z][A-Za-z0-9]*)((?:\[\d+\])?(?:\.[A-Za-z0-9]+)*)( \([^)]*\))?: /, (whole, field: string, rest: string) => {
        const flag = `--${field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
        return cmd.options.some((o) => o.long === flag) ? `${flag}${rest}: ` : whole;
      }).replace(/^[A-Za-z][A-Za-z0-9]*(?:\[\d+\])?(?:\.[A-Za-z0-9]+)*: (?=")/, ""),
    )
    .join("; ");
}

const json = () => program.opts<{ output?: string }>().output === "json";
try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
  if (err instanceof ApiError) {
    const message = inFlags(err.message, running);
    // with -o json a script reads the error as JSON too: the server's problem document, or one made alike
    if (json()) process.stderr.write(`${JSON.stringify({ ...(err.problem ?? {}), detail: message, code: err.code, ...(err.status ? { status: err.status } : {}) })}\n`);
    else process.stderr.write(`error: ${message}${err.code && err.status ? ` (${err.code})` : ""}\n`);
    process.exit(1);
  }
  if (err instanceof UsageError) {
    if (json()) process.stderr.write(`${JSON.stringify({ title: "Usage error", detail: err.message, code: "usage" })}\n`);
    else process.stderr.write(`error: ${err.message}\n`);
    process.exit(2);
  }
  throw err;
}
