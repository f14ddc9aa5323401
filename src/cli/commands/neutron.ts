import { Command } from "commander";
import { importNeutron } from "../../integrations/neutron-ipam/migrate.js";
import { connectNeutron } from "../../integrations/neutron-ipam/neutron-api.js";
import { type ReconcileItem, reconcile } from "../../integrations/neutron-ipam/reconcile.js";
import { context, parseInteger } from "../context.js";
import { type Format, printList } from "../output.js";

interface NeutronFlags {
  space: string;
  neutronUrl?: string;
  osToken?: string;
}

const withNeutron = (cmd: Command) =>
  cmd
    .option("-s, --space <space>", "the Allot space of the Neutron IPAM driver ([allot] space in neutron.conf)", "neutron")
    .option("--neutron-url <url>", "Neutron's endpoint (else from Keystone's catalog through OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME)")
    .option("--os-token <token>", "a token for Neutron (better: env OS_TOKEN, which ps does not show); none for a Neutron without Keystone");

export function neutronCommand(): Command {
  const neutron = new Command("neutron").description("the Neutron IPAM driver: migrate an existing Neutron, free what Neutron no longer has");

  withNeutron(
    neutron
      .command("import")
      .description("record an existing Neutron's subnet pools, subnets and ports in Allot (before switching ipam_driver to allot); again changes nothing; exit 1 on conflicts"),
  ).action(async (o: NeutronFlags, cmd: Command) => {
    const { client, format } = context(cmd);
    const items = await importNeutron(client, await connectNeutron(o), o.space);
    printList(format, items, [["KIND", (i) => i.kind], ["ID", (i) => i.id], ["WHAT", (i) => i.what], ["RESULT", (i) => i.result]]);
    const conflicts = items.filter((i) => i.result.startsWith("conflict")).length;
    const imported = items.filter((i) => i.result === "imported").length;
    process.stderr.write(`${imported} imported, ${items.length - imported - conflicts} already there, ${conflicts} conflicts (left as they are in Allot)\n`);
    if (conflicts > 0) process.exitCode = 1;
  });

  withNeutron(
    neutron
      .command("reconcile")
      .description("free the addresses and subnets Allot holds for Neutron that Neutron no longer has (a failed ML2 pre-commit leaves them), once older than --grace")
      .option("--grace <seconds>", "leave anything younger alone: a port being made has its address before Neutron commits it", parseInteger, 300)
      .option("--dry-run", "report, free nothing")
      .option("--every <seconds>", "run a pass every so many seconds until stopped", parseInteger),
  ).action(async (o: NeutronFlags & { grace: number; dryRun?: boolean; every?: number }, cmd: Command) => {
    const { client, format } = context(cmd);
    const pass = async () => report(format, await reconcile(client, await connectNeutron(o), { space: o.space, graceSeconds: o.grace, dryRun: o.dryRun ?? false }));
    if (o.every === undefined) return pass();
    for (;;) {
      // each pass signs in again (a Keystone token lasts an hour) and a failed pass waits for the next
      await pass().catch((err: unknown) => process.stderr.write(`${new Date().toISOString()} pass failed, next in ${o.every} s: ${(err as Error).message}\n`));
      await new Promise((r) => setTimeout(r, o.every! * 1000));
    }
  });
  return neutron;
}

function report(format: Format, items: ReconcileItem[]) {
  printList(format, items, [["KIND", (i) => i.kind], ["SUBNET", (i) => i.subnet], ["ADDRESS", (i) => i.address], ["PORT", (i) => i.port], ["AGE", (i) => `${i.ageSeconds}s`], ["ACTION", (i) => i.action]]);
  const freed = items.filter((i) => i.action === "freed").length;
  process.stderr.write(`${new Date().toISOString()} ${freed} freed, ${items.length - freed} kept or reported: Allot and Neutron ${items.length === 0 ? "agree" : "differed"}\n`);
}
