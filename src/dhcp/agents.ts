/**
 * The server's side of DHCP agents: each agent says which networks it can reach and how its DHCP
 * servers are doing; the server keeps `servers` live agents assigned to each network, takes a network
 * from an agent that stops reporting and gives it to another, and drops extras. Assignments are rows
 * in the store, so a restart of the server changes nothing that was running.
 */
import { createHash } from "node:crypto";
import type { Engine } from "../engine/engine.js";
import { type Caller, SERVER, checkEverySpace, mayUse } from "../engine/access.js";
import { AllotError } from "../engine/errors.js";
import type { Token } from "../engine/tokens.js";
import { type DhcpNetwork, type NetworkConfig, listNetworks, networkConfig, readNetwork } from "./networks.js";

/** An agent unheard from for this long has lost its networks. */
export const AGENT_TIMEOUT_MS = Number(process.env.ALLOT_DHCP_AGENT_TIMEOUT_MS ?? 6000);
/**
 * While this server was down nobody could be heard from: silence is counted from its start, so a
 * restart does not take networks from agents that were serving them.
 */
const STARTED = Date.now();
const isAlive = (lastSeen: number, now: number) => Math.max(lastSeen, STARTED) >= now - AGENT_TIMEOUT_MS;

export interface Reach {
  network: string;
  interface: string;
  /** A network namespace the DHCP server runs in, if any. */
  netns?: string | undefined;
}

export interface Health {
  state: "starting" | "serving" | "failed" | "stopped";
  error?: string | undefined;
  since: string;
}

export interface AgentReport {
  networks: Reach[];
  server: "dnsmasq" | "kea";
  health: Record<string, Health>;
}

export interface Agent extends AgentReport {
  name: string;
  lastSeen: string;
  alive: boolean;
  assignments: string[];
}

export interface Assignment extends Reach {
  config: NetworkConfig;
  /** Changes whenever anything the DHCP server is given changes. */
  hash: string;
}

const hashOf = (c: NetworkConfig, r: Reach, server: string) => createHash("sha256").update(JSON.stringify([c, r, server])).digest("hex").slice(0, 16);

/** Records an agent's report (it is alive now). */
export async function recordAgent(engine: Engine, name: string, report: AgentReport, now = Date.now(), tokenId?: string): Promise<void> {
  const body = JSON.stringify({ ...report, ...(tokenId ? { tokenId } : {}) });
  await engine.store.transaction(async (sql) => {
    // an agent's name belongs to the token that first used it: another token cannot speak for it
    const prior = await sql.get<{ body: string }>("SELECT body FROM dhcp_agents WHERE name = ?", [name]);
    const owner = prior ? (JSON.parse(prior.body) as { tokenId?: string }).tokenId : undefined;
    if (prior && owner && tokenId && owner !== tokenId) {
      throw new AllotError("conflict", `agent name ${name} is used by another token's agent; give this agent another --name (or remove the old one: allot dhcp forget-agent ${name})`);
    }
    if (prior) await sql.run("UPDATE dhcp_agents SET body = ?, last_seen = ? WHERE name = ?", [body, now, name]);
    else await sql.run("INSERT INTO dhcp_agents (name, body, last_seen) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", [name, body, now]);
  });
}

/**
 * Brings assignments in line: drops those of agents unheard from (or that can no longer reach the
 * network) and extras beyond `servers`, then fills each network up from live agents that reach it,
 * the least busy first. Answers whether anything changed.
 */
export async function schedule(engine: Engine, now = Date.now()): Promise<boolean> {
  const networks = await listNetworks(engine, SERVER);
  return engine.store.transaction(async (sql) => {
    const agents = (await sql.all<{ name: string; body: string; last_seen: number }>("SELECT name, body, last_seen FROM dhcp_agents ORDER BY name")).map((a) => ({
      name: a.name,
      report: JSON.parse(a.body) as AgentReport,
      alive: isAlive(Number(a.last_seen), now),
    }));
    const rows = await sql.all<{ network: string; agent: string; since: number }>("SELECT network, agent, since FROM dhcp_assignments ORDER BY since, agent");
    let changed = false;
    const load = new Map<string, number>();
    const keep: typeof rows = [];
    for (const r of rows) {
      const a = agents.find((x) => x.name === r.agent);
      const n = networks.find((x) => x.name === r.network);
      const reaches = a?.report.networks.some((x) => x.network === r.network);
      const full = keep.filter((k) => k.network === r.network).length >= (n?.servers ?? 0);
      // a failed server gives its network up when a healthy agent can take it (else it keeps retrying)
      const failed = a?.report.health[r.network]?.state === "failed";
      const standby = failed && agents.some((x) => x.alive && x.name !== r.agent && x.report.networks.some((y) => y.network === r.network) && x.report.health[r.network]?.state !== "failed" && !rows.some((y) => y.agent === x.name && y.network === r.network));
      if (!a || !a.alive || !reaches || !n || full || standby) {
        await sql.run("DELETE FROM dhcp_assignments WHERE network = ? AND agent = ?", [r.network, r.agent]);
        changed = true;
        continue;
      }
      keep.push(r);
      load.set(r.agent, (load.get(r.agent) ?? 0) + 1);
    }
    for (const n of networks) {
      const have = keep.filter((k) => k.network === n.name).map((k) => k.agent);
      const candidates = agents
        .filter((a) => a.alive && !have.includes(a.name) && a.report.networks.some((x) => x.network === n.name) && a.report.health[n.name]?.state !== "failed")
        .sort((x, y) => (load.get(x.name) ?? 0) - (load.get(y.name) ?? 0) || x.name.localeCompare(y.name));
      for (const a of candidates.slice(0, Math.max(0, n.servers - have.length))) {
        // two servers scheduling at once may both pick this: the second insert is a no-op
        await sql.run("INSERT INTO dhcp_assignments (network, agent, since) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", [n.name, a.name, now]);
        load.set(a.name, (load.get(a.name) ?? 0) + 1);
        changed = true;
      }
    }
    return changed;
  });
}

/**
 * While any agent's sync is held open on this server, one timer brings assignments in line every
 * second (an agent may have gone quiet): a change it makes wakes the held syncs through the change
 * feed. Returns what ends the hold.
 */
export function holdSync(engine: Engine, onError: (err: unknown) => void): () => void {
  let h = holds.get(engine);
  if (!h) {
    const state = { count: 0, timer: null as NodeJS.Timeout | null, busy: false };
    holds.set(engine, (h = state));
  }
  const state = h;
  if (state.count++ === 0) {
    state.timer = setInterval(() => {
      if (state.busy) return;
      state.busy = true;
      schedule(engine)
        .catch(onError)
        .finally(() => (state.busy = false));
    }, 1000);
    state.timer.unref();
  }
  let ended = false;
  return () => {
    if (ended) return;
    ended = true;
    if (--state.count === 0 && state.timer) {
      clearInterval(state.timer);
      state.timer = null;
    }
  };
}
const holds = new WeakMap<Engine, { count: number; timer: NodeJS.Timeout | null; busy: boolean }>();

/** Network configurations by the change mark they were read at: waiting agents share one read per change. */
const configs = new Map<string, { mark: string; config: Promise<NetworkConfig> }>();
async function cachedConfig(engine: Engine, network: string): Promise<NetworkConfig> {
  const mark = await changeMark(engine);
  const hit = configs.get(network);
  if (hit && hit.mark === mark) return hit.config;
  const config = networkConfig(engine, network, SERVER); // the agent's token was checked
  if (configs.size > 1000) configs.clear();
  configs.set(network, { mark, config });
  return config;
}

/** What an agent is to serve now, each with the network's current configuration. */
export async function assignmentsOf(engine: Engine, name: string, token: Token): Promise<Assignment[]> {
  const row = await engine.store.read((sql) => sql.get<{ body: string }>("SELECT body FROM dhcp_agents WHERE name = ?", [name]));
  if (!row) return [];
  const report = JSON.parse(row.body) as AgentReport;
  const networks = await listNetworks(engine, SERVER);
  const assigned = await engine.store.read((sql) => sql.all<{ network: string }>("SELECT network FROM dhcp_assignments WHERE agent = ? ORDER BY network", [name]));
  const out: Assignment[] = [];
  for (const { network } of assigned) {
    const n = networks.find((x) => x.name === network);
    // a space-limited token's agent serves only networks of its spaces
    if (!n || !mayUse({ access: token }, n.space)) continue;
    const reach = report.networks.find((r) => r.network === network);
    if (!reach) continue;
    const config = await cachedConfig(engine, network);
    out.push({ ...reach, config, hash: hashOf(config, reach, report.server) });
  }
  return out;
}

export async function listAgents(engine: Engine, now = Date.now()): Promise<Agent[]> {
  const rows = await engine.store.read(async (sql) => ({
    agents: await sql.all<{ name: string; body: string; last_seen: number }>("SELECT name, body, last_seen FROM dhcp_agents ORDER BY name"),
    assigned: await sql.all<{ network: string; agent: string }>("SELECT network, agent FROM dhcp_assignments"),
  }));
  return rows.agents.map((a) => ({
    name: a.name,
    ...(JSON.parse(a.body) as AgentReport),
    lastSeen: new Date(Number(a.last_seen)).toISOString(),
    alive: isAlive(Number(a.last_seen), now),
    assignments: rows.assigned.filter((r) => r.agent === a.name).map((r) => r.network),
  }));
}

export async function forgetAgent(engine: Engine, name: string, caller: Caller): Promise<void> {
  checkEverySpace(caller, "removing an agent");
  await engine.store.transaction(async (sql) => {
    const n = await sql.run("DELETE FROM dhcp_agents WHERE name = ?", [name]);
    if (n.changes === 0) throw new AllotError("not-found", `no DHCP agent is named ${name}`);
    await sql.run("DELETE FROM dhcp_assignments WHERE agent = ?", [name]);
  });
}

/** The newest change anywhere: when it moves, configurations may have. */
export async function changeMark(engine: Engine): Promise<string> {
  return engine.store.read(async (sql) => {
    const h = await sql.get<{ s: number | null }>("SELECT MAX(seq) AS s FROM history");
    const a = await sql.get<{ n: number; s: number | null }>("SELECT COUNT(*) AS n, MAX(since) AS s FROM dhcp_assignments");
    const nets = await sql.all<{ name: string; body: string }>("SELECT name, body FROM dhcp_networks ORDER BY name");
    const n = createHash("sha256").update(JSON.stringify(nets)).digest("hex").slice(0, 12);
    return `${h?.s ?? 0}/${a?.n ?? 0}/${a?.s ?? 0}/${n}`;
  });
}

/** Agents as a caller sees them: only what concerns the networks of its spaces. */
export async function agentsSeenBy(engine: Engine, caller: Caller): Promise<Agent[]> {
  const visible = new Set((await listNetworks(engine, caller)).map((n) => n.name));
  return (await listAgents(engine)).map((a) => ({
    ...a,
    networks: a.networks.filter((r) => visible.has(r.network)),
    assignments: a.assignments.filter((n) => visible.has(n)),
    health: Object.fromEntries(Object.entries(a.health).filter(([n]) => visible.has(n))),
  }));
}

/** A network with its reservation count, its problems, and the agents serving it with their health. */
export async function networkStatus(engine: Engine, name: string, caller: Caller): Promise<DhcpNetwork & { reservations: number; problems: string[]; agents: unknown[] }> {
  const n = await readNetwork(engine, name, caller);
  const agents = await listAgents(engine);
  const config = await networkConfig(engine, name, caller);
  const serving = agents.filter((a) => a.assignments.includes(name));
  const healthy = serving.filter((a) => a.alive && a.health[name]?.state === "serving").length;
  const problems = [...config.problems];
  if (healthy < n.servers) {
    const reach = agents.filter((a) => a.alive && a.networks.some((r) => r.network === name)).length;
    problems.unshift(`${healthy} of ${n.servers} wanted agents are serving it (${reach} live agents reach it)`);
  }
  return {
    ...n,
    reservations: config.reservations.length,
    problems,
    // a lost agent's last report says nothing about now
    agents: serving.map((a) => ({ name: a.name, alive: a.alive, lastSeen: a.lastSeen, health: a.alive ? (a.health[name] ?? null) : { state: "lost", since: a.lastSeen } })),
  };
}

/** An agent's report, and what it is to serve: a space-limited token's agent reaches and serves only its spaces' networks. */
export async function syncAgent(engine: Engine, name: string, report: AgentReport, token: Token): Promise<Assignment[]> {
  const caller: Caller = { access: token };
  const visible = new Set((await listNetworks(engine, caller)).map((n) => n.name));
  const mine = token.spaces === null ? report : { ...report, networks: report.networks.filter((r) => visible.has(r.network)) };
  await recordAgent(engine, name, mine, Date.now(), token.id);
  await schedule(engine);
  return assignmentsOf(engine, name, token);
}
