/**
 * How long each OpenNebula driver action takes, as oned runs it: a new process per call (node start,
 * loading the driver, one or two API calls), request on stdin. oned runs actions one at a time and
 * gives up after 90 s; the figure to watch is how far under a second they stay.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { install } from "../src/integrations/opennebula/install.js";
import { type LatencyStats, summarize, usSince } from "./lib.js";

function runAction(dir: string, action: string, xml: string): Promise<{ code: number | null; stdout: string; us: number }> {
  const t0 = process.hrtime.bigint();
  const proc = spawn(join(dir, action), ["1"]);
  let stdout = "";
  proc.stdout.on("data", (d: Buffer) => (stdout += d));
  proc.stdin.end(Buffer.from(xml).toString("base64"));
  return new Promise((resolve) => proc.on("close", (code) => resolve({ code, stdout, us: usSince(t0) })));
}

const wrap = (ar: Record<string, string>, address: string) =>
  `<IPAM_DRIVER_ACTION_DATA><AR>${Object.keys(ar).sort().map((k) => `<${k}><![CDATA[${ar[k]}]]></${k}>`).join("")}</AR>${address}</IPAM_DRIVER_ACTION_DATA>`;

export async function measureDriver(dir: string, url: string, token: string, rounds: number): Promise<Record<string, LatencyStats>> {
  install({ dir, url, token });
  const samples: Record<string, number[]> = { register_address_range: [], get_address: [], allocate_address: [], free_address: [], unregister_address_range: [] };
  const must = async (action: string, xml: string) => {
    const r = await runAction(dir, action, xml);
    if (r.code !== 0) throw new Error(`${action} failed in the benchmark`);
    samples[action]!.push(r.us);
    return r.stdout;
  };
  for (let i = 0; i < rounds; i++) {
    const reply = await must("register_address_range", wrap({ IPAM_MAD: "allot", TYPE: "IP4", IP: `172.16.${i}.0`, SIZE: "64" }, "<ADDRESS><MAC/><IP/><IP6_GLOBAL/><IP6_ULA/><IP6/><SIZE/></ADDRESS>"));
    const id = /ALLOT_POOL_ID = "([^"]+)"/.exec(reply)![1]!;
    const ar = { IPAM_MAD: "allot", ALLOT_POOL_ID: id, TYPE: "IP4" };
    for (let k = 0; k < 4; k++) await must("get_address", wrap(ar, "<ADDRESS><SIZE>1</SIZE></ADDRESS>"));
    const base = `172.16.${i}`;
    await must("allocate_address", wrap(ar, `<ADDRESS><MAC>02:00:00:00:00:01</MAC><IP>${base}.40</IP><SIZE>1</SIZE></ADDRESS>`));
    for (const last of [0, 1, 40]) await must("free_address", wrap(ar, `<ADDRESS><MAC>02:00:00:00:00:01</MAC><IP>${base}.${last}</IP><SIZE>1</SIZE></ADDRESS>`));
    await must("unregister_address_range", wrap(ar, "<ADDRESS><MAC/><IP/><IP6_GLOBAL/><IP6_ULA/><IP6/><SIZE/></ADDRESS>"));
  }
  return Object.fromEntries(Object.entries(samples).map(([a, s]) => [a, summarize(s, s.reduce((x, y) => x + y, 0) / 1000)]));
}
