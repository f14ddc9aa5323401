// BIND 9 and PowerDNS started by the tests as plain processes on loopback (bind9, bind9-dnsutils,
// pdns-server, pdns-backend-sqlite3 and sqlite3 from Debian), and dig to look at what they answer.
import { type ChildProcess, execFile, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../process-helpers.js";

/** The servers these tests start must be installed: a missing one fails the run (it is not skipped). */
function installed(commands: string[], packages: string): true {
  if (spawnSync("sh", ["-c", commands.map((c) => `command -v ${c}`).join(" && ")]).status !== 0) {
    throw new Error(`${commands.join(", ")} must be installed for the DNS tests: apt-get install ${packages}`);
  }
  return true;
}
export const hasBind = installed(["named", "dig"], "bind9 bind9-dnsutils");
export const hasPdns = installed(["pdns_server", "sqlite3", "dig"], "pdns-server pdns-backend-sqlite3 sqlite3 bind9-dnsutils");


function waitFor(proc: ChildProcess, ready: (text: string) => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let text = "";
    const timer = setTimeout(() => reject(new Error(`${what} did not become ready:\n${text}`)), timeoutMs);
    const on = (d: Buffer) => {
      text += d.toString();
      if (ready(text)) {
        clearTimeout(timer);
        resolve();
      }
    };
    proc.stderr!.on("data", on);
    proc.stdout!.on("data", on);
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}:\n${text}`));
    });
  });
}

const stopProc = (p: ChildProcess | null) =>
  new Promise<void>((resolve) => {
    if (!p || p.exitCode !== null || p.signalCode !== null) return resolve();
    p.once("exit", () => resolve());
    p.kill("SIGTERM");
  });

export interface Named {
  port: number;
  server: string;
  keyName: string;
  secret: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  cleanup(): Promise<void>;
}

/** named with a TSIG key that may update and transfer each zone; each zone starts with SOA and NS only. */
export async function startNamed(zones: string[]): Promise<Named> {
  const dir = mkdtempSync(join(tmpdir(), "allot-named-"));
  const port = await freePort();
  const keyName = "allot-key";
  const secret = randomBytes(32).toString("base64");
  const conf = [
    `key "${keyName}" { algorithm hmac-sha256; secret "${secret}"; };`,
    `options { directory "${dir}"; pid-file "${dir}/named.pid"; managed-keys-directory "${dir}"; session-keyfile none;`,
    `  listen-on port ${port} { 127.0.0.1; }; listen-on-v6 { none; }; recursion no; dnssec-validation no; notify no;`,
    `  allow-transfer { key "${keyName}"; }; };`,
    "controls { };",
    ...zones.map((z, i) => `zone "${z}" { type primary; file "${dir}/zone${i}.db"; update-policy { grant ${keyName} zonesub ANY; }; };`),
  ].join("\n");
  writeFileSync(join(dir, "named.conf"), conf);
  zones.forEach((z, i) =>
    writeFileSync(join(dir, `zone${i}.db`), `$TTL 300\n@ IN SOA ns1.${z}. hostmaster.${z}. 1 3600 600 86400 300\n@ IN NS ns1.${z}.\nns1 IN A 127.0.0.1\n`),
  );
  let proc: ChildProcess | null = null;
  const start = async () => {
    proc = spawn("named", ["-g", "-c", join(dir, "named.conf"), "-p", String(port)], { stdio: ["ignore", "pipe", "pipe"] });
    // the line "<date> <time> running" once zones are loaded (not "running on Linux", the first line)
    await waitFor(proc, (t) => /^\S+ \S+ running$/m.test(t), "named");
  };
  await start();
  return {
    port,
    server: `127.0.0.1:${port}`,
    keyName,
    secret,
    start,
    stop: () => stopProc(proc),
    async cleanup() {
      await stopProc(proc);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Pdns {
  port: number;
  url: string;
  apiKey: string;
  cleanup(): Promise<void>;
}

/** PowerDNS with the gsqlite3 backend and its API; the zones are created through the API. */
export async function startPdns(zones: string[]): Promise<Pdns> {
  const dir = mkdtempSync(join(tmpdir(), "allot-pdns-"));
  const port = await freePort();
  const web = await freePort();
  const apiKey = randomBytes(12).toString("hex");
  const db = join(dir, "pdns.sqlite3");
  const made = spawnSync("sh", ["-c", `sqlite3 ${db} < /usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql`]);
  if (made.status !== 0) throw new Error(`sqlite3: ${made.stderr}`);
  writeFileSync(
    join(dir, "pdns.conf"),
    [
      "launch=gsqlite3",
      `gsqlite3-database=${db}`,
      "local-address=127.0.0.1",
      `local-port=${port}`,
      `socket-dir=${dir}`,
      "guardian=no",
      "daemon=no",
      "disable-syslog=yes",
      "security-poll-suffix=",
      "api=yes",
      `api-key=${apiKey}`,
      "webserver=yes",
      "webserver-address=127.0.0.1",
      `webserver-port=${web}`,
      "webserver-allow-from=127.0.0.1",
      "default-soa-content=ns1.@ hostmaster.@ 0 10800 3600 604800 300",
    ].join("\n") + "\n",
  );
  const proc = spawn("pdns_server", [`--config-dir=${dir}`], { stdio: ["ignore", "pipe", "pipe"] });
  await waitFor(proc, (t) => t.includes("ready to distribute questions") && t.includes("Listening for HTTP requests"), "pdns_server");
  const url = `http://127.0.0.1:${web}`;
  for (const z of zones) {
    const res = await fetch(`${url}/api/v1/servers/localhost/zones`, {
      method: "POST",
      headers: { "x-api-key": apiKey, "content-type": "application/json" },
      body: JSON.stringify({ name: `${z}.`, kind: "Native", nameservers: [`ns1.${z}.`] }),
    });
    if (res.status !== 201) throw new Error(`creating zone ${z} on PowerDNS: ${res.status} ${await res.text()}`);
  }
  return {
    port,
    url,
    apiKey,
    async cleanup() {
      await stopProc(proc);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** What the server answers for a name and type (dig +short), sorted. */
export function dig(port: number, name: string, type: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile("dig", [`@127.0.0.1`, "-p", String(port), "+short", "+tries=1", "+time=2", name, type], (err, stdout) => {
      if (err) return reject(err);
      resolve(stdout.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith(";")).sort());
    });
  });
}

/** Waits until dig answers exactly `want` (sorted); fails with the last answer after `timeoutMs`. */
export async function until(port: number, name: string, type: string, want: string[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: string[] = [];
  const wanted = [...want].sort();
  for (;;) {
    last = await dig(port, name, type).catch(() => ["(dig failed)"]);
    if (JSON.stringify(last) === JSON.stringify(wanted)) return;
    if (Date.now() > deadline) throw new Error(`${name} ${type}: expected ${JSON.stringify(wanted)}, got ${JSON.stringify(last)} after ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Polls `fn` until it returns something truthy. */
export async function eventually<T>(fn: () => Promise<T>, what: string, timeoutMs = 30_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export const quietLog = { warn() {}, error() {} };
