import { Command, InvalidArgumentError } from "commander";
import { basename } from "node:path";
import { DEFAULT_TIMEOUT, MAX_TIMEOUT } from "../../integrations/opennebula/driver.js";
import { install } from "../../integrations/opennebula/install.js";
import { UsageError } from "../context.js";

export function opennebulaCommand(): Command {
  const one = new Command("opennebula").description("the OpenNebula IPAM driver");
  one
    .command("install")
    .description("write the five driver actions and their config file into DIR (e.g. /var/lib/one/remotes/ipam/allot); the driver calls the server --url / ALLOT_URL names")
    .requiredOption("--dir <dir>", "driver directory; its last part is the IPAM_MAD name")
    .option("--driver-token <token>", "an Allot token with write scope in the driver's space, for the config file")
    .option("-s, --space <space>", "Allot space that holds OpenNebula's ranges (default: default)")
    .option("--parent <pool>", "pool (name or id, in the space) that ranges registered without IP get a block from")
    .option("--timeout <seconds>", `how long an action may take before it fails with the reason (default ${DEFAULT_TIMEOUT}; oned waits 90 s)`, seconds)
    .option("--force", "overwrite an existing allot-ipam.yaml")
    .action((o: { dir: string; driverToken?: string; space?: string; parent?: string; timeout?: number; force?: boolean }, cmd: Command) => {
      // the driver calls the server this CLI is pointed at (--url / ALLOT_URL)
      const { url } = cmd.optsWithGlobals() as { url: string };
      let r;
      try {
        r = install({ dir: o.dir, url, ...(o.driverToken ? { token: o.driverToken } : {}), ...(o.space ? { space: o.space } : {}), ...(o.parent ? { parent: o.parent } : {}), ...(o.timeout ? { timeout: o.timeout } : {}), ...(o.force ? { force: true } : {}) });
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      const name = basename(r.dir);
      process.stdout.write(
        `installed ${r.files.length} actions in ${r.dir}\n` +
          `${r.configWritten ? "wrote" : "kept"} ${r.config}${r.configWritten && !o.driverToken ? " (put a write token in it, or use --driver-token)" : ""}\n\n` +
          `In /etc/one/oned.conf, add ${name} to the IPAM_MAD arguments and restart oned:\n` +
          `  IPAM_MAD = [ EXECUTABLE = "one_ipam", ARGUMENTS = "-t 1 -i dummy,${name}" ]\n` +
          `Then: onevnet addar <vnet> --ipam ${name} --ip 10.0.0.10 --size 8   (or IPAM_MAD = "${name}" in an AR)\n`,
      );
    });
  return one;
}

function seconds(text: string): number {
  const n = Number(text);
  if (!(n > 0 && n <= MAX_TIMEOUT)) throw new InvalidArgumentError(`must be a number of seconds above 0 and at most ${MAX_TIMEOUT} (oned waits 90 s)`);
  return n;
}
