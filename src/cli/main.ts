#!/usr/bin/env node
import { Command, CommanderError, Option } from "commander";
import { VERSION } from "../api/app.js";
import { ApiError, DEFAULT_URL } from "./client.js";
import { allocateCommand, allocationCommand, allocationsCommand, historyCommand, lookupCommand, releaseCommand } from "./commands/allocations.js";
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
import { UsageError, parseFormat } from "./context.js";

const program = new Command("allot")
  .description("Allot IP address management: serve the API, or manage spaces, pools and allocations")
  .version(VERSION)
  .addOption(new Option("--url <url>", "Allot server URL").env("ALLOT_URL").default(DEFAULT_URL))
  .addOption(new Option("--token <token>", "API token (printed by the server at first start, or from 'allot token create')").env("ALLOT_TOKEN"))
  .addOption(new Option("--ca-cert <file>", "trust this PEM certificate for an HTTPS server (its tls.crt when self-signed)").env("ALLOT_CA_CERT"))
  .addOption(new Option("-o, --output <format>", "table, json or yaml").argParser(parseFormat).default("table"))
  .showHelpAfterError()
  .enablePositionalOptions(false);

for (const make of [serveCommand, spaceCommand, poolCommand, allocateCommand, releaseCommand, allocationsCommand, allocationCommand, lookupCommand, usageCommand, historyCommand, tokenCommand, webhookCommand, opennebulaCommand, neutronCommand, applyCommand, getCommand, deleteCommand, dhcpCommand, agentCommand, checkCommand, exportCommand, importCommand]) {
  program.addCommand(make());
}

// Every command throws instead of exiting, so usage errors anywhere exit 2 and API errors exit 1.
const throwInstead = (cmd: Command): void => {
  cmd.exitOverride();
  cmd.commands.forEach(throwInstead);
};
throwInstead(program);
try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
  if (err instanceof ApiError) {
    process.stderr.write(`error: ${err.message}${err.code && err.status ? ` (${err.code})` : ""}\n`);
    process.exit(1);
  }
  if (err instanceof UsageError) {
    process.stderr.write(`error: ${err.message}\n`);
    process.exit(2);
  }
  throw err;
}
