/**
 * The engine as one token sees it. Every call names or resolves the space it touches and is refused
 * unless the token may act there; lists are cut down to the token's spaces. Routes only ever get this
 * view, so no route can forget the check. Pools never move between spaces and allocations never move
 * between pools, so resolving a space first and acting second cannot be raced into the wrong space.
 */
import { applyManifest } from "../integrations/kubernetes/manifests.js";
import { exportNamespace, importNamespace } from "../integrations/kubernetes/namespace-bundle.js";
import type { z } from "zod";
import { type AgentReport, assignmentsOf, changeMark, forgetAgent, holdSync, listAgents, recordAgent, schedule } from "../dhcp/agents.js";
import { type DhcpNetworkInput, createNetwork, deleteNetwork, listNetworks, networkConfig, readNetwork, updateNetwork } from "../dhcp/networks.js";
import type { Engine, HistoryQuery, ReleaseTarget } from "../engine/engine.js";
import type { BulkRequest } from "../engine/bulk.js";
import { AllotError } from "../engine/errors.js";
import type { Holding } from "../engine/history.js";
import type { ListFilter } from "../engine/allocation-repo.js";
import type { Token, TokenInput } from "../engine/tokens.js";
import type { WebhookInput } from "../engine/webhooks.js";
import type { AllocateRequest, AllocationPatch, ChangeContext, ChildPoolInput, Pool, PoolInput, PoolPatch, PoolRef } from "../engine/types.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DEFAULT_SPACE = "default";

export class ScopedEngine {
  /** Spaces this token may act in; null for all. */
  private readonly allowed: ReadonlySet<string> | null;

  constructor(
    private readonly engine: Engine,
    readonly token: Token,
  ) {
    this.allowed = token.spaces === null ? null : new Set(token.spaces);
  }

  private may(space: string): boolean {
    return this.allowed === null || this.allowed.has(space);
  }

  /** For a space the caller named: 403, saying which spaces the token has. */
  private see(space: string): void {
    if (!this.may(space)) {
      throw new AllotError("forbidden", `token ${this.token.name} is limited to spaces ${[...this.allowed!].join(", ")}; it cannot act in space ${space}`);
    }
  }

  private unrestricted(what: string): void {
    if (this.allowed !== null) throw new AllotError("forbidden", `token ${this.token.name} is limited to spaces ${[...this.allowed].join(", ")}; ${what} needs a token for every space`);
  }

  /** A pool reference's space; a pool by id in another space answers exactly like a missing one. */
  private async poolSpace(ref: PoolRef): Promise<void> {
    if (this.allowed === null) return;
    if (UUID.test(ref.pool)) {
      let pool: Pool | null = null;
      try {
        pool = await this.engine.getPool(ref);
      } catch (err) {
        if (err instanceof AllotError && err.code === "pool-not-found") return; // the engine will say so
        throw err;
      }
      if (!this.may(pool.space)) throw new AllotError("pool-not-found", `no pool has id ${ref.pool}`);
      return;
    }
    this.see(ref.space ?? DEFAULT_SPACE);
  }

  private async allocationSpace(id: string): Promise<void> {
    if (this.allowed === null) return;
    const a = await this.engine.getAllocation(id);
    if (!this.may(a.space)) throw new AllotError("allocation-not-found", `no allocation has id ${id}`);
  }

  // ---- spaces

  async listSpaces() {
    return (await this.engine.listSpaces()).filter((s) => this.may(s.name));
  }
  async getSpace(name: string) {
    this.see(name);
    return this.engine.getSpace(name);
  }
  async createSpace(input: { name: string; description?: string }, ctx: ChangeContext) {
    this.unrestricted("creating a space");
    return this.engine.createSpace(input, ctx);
  }
  async deleteSpace(name: string, ctx: ChangeContext) {
    this.unrestricted("deleting a space");
    return this.engine.deleteSpace(name, ctx);
  }

  // ---- pools

  async createPool(input: PoolInput, ctx: ChangeContext) {
    this.see(input.space ?? DEFAULT_SPACE);
    return this.engine.createPool(input, ctx);
  }
  async getPool(ref: PoolRef) {
    await this.poolSpace(ref);
    return this.engine.getPool(ref);
  }
  async listPools(filter: { space?: string; parent?: PoolRef } = {}) {
    if (filter.space !== undefined) this.see(filter.space);
    if (filter.parent) await this.poolSpace(filter.parent);
    return (await this.engine.listPools(filter)).filter((p) => this.may(p.space));
  }
  async updatePool(ref: PoolRef, patch: PoolPatch, ctx: ChangeContext) {
    await this.poolSpace(ref);
    return this.engine.updatePool(ref, patch, ctx);
  }
  async deletePool(ref: PoolRef, options: { force?: boolean }, ctx: ChangeContext) {
    await this.poolSpace(ref);
    return this.engine.deletePool(ref, options, ctx);
  }
  /** The pool's secrets in clear, for the server's own use after an access check; never for an answer. */
  async poolSecrets(ref: PoolRef) {
    await this.poolSpace(ref);
    return this.engine.poolSecrets(ref);
  }
  async createChildPool(parent: PoolRef, input: ChildPoolInput, ctx: ChangeContext) {
    await this.poolSpace(parent);
    return this.engine.createChildPool(parent, input, ctx);
  }
  async usage(ref: PoolRef) {
    await this.poolSpace(ref);
    return this.engine.usage(ref);
  }

  // ---- allocations

  async allocate(ref: PoolRef, req: AllocateRequest, ctx: ChangeContext) {
    await this.poolSpace(ref);
    return this.engine.allocate(ref, req, ctx);
  }
  async allocateMany(ref: PoolRef, req: BulkRequest, ctx: ChangeContext) {
    await this.poolSpace(ref);
    return this.engine.allocateMany(ref, req, ctx);
  }
  async release(target: ReleaseTarget, ctx: ChangeContext) {
    if ("id" in target) await this.allocationSpace(target.id);
    else await this.poolSpace(target.pool);
    return this.engine.release(target, ctx);
  }
  async updateAllocation(id: string, patch: AllocationPatch, ctx: ChangeContext) {
    await this.allocationSpace(id);
    return this.engine.updateAllocation(id, patch, ctx);
  }
  async getAllocation(id: string) {
    await this.allocationSpace(id);
    return this.engine.getAllocation(id);
  }
  async listAllocations(ref: PoolRef, filter: Omit<ListFilter, "after"> & { after?: string }) {
    await this.poolSpace(ref);
    return this.engine.listAllocations(ref, filter);
  }
  async lookup(address: string, space?: string) {
    if (space !== undefined) this.see(space);
    return (await this.engine.lookup(address, space)).filter((r) => this.may(r.space));
  }

  // ---- looking: the map of a pool, search, who am I

  async poolMap(ref: PoolRef, o: { cells: number; start?: string; end?: string }) {
    await this.poolSpace(ref);
    return this.engine.poolMap(ref, o);
  }
  async search(text: string, limit: number) {
    return this.engine.search(text, this.allowed === null ? null : [...this.allowed], limit);
  }
  whoami() {
    const { id, name, scope, spaces, expiresAt } = this.token;
    return { id, name, scope, spaces, expiresAt };
  }

  // ---- history

  async history(query: HistoryQuery) {
    if (query.space !== undefined) this.see(query.space);
    if (query.address !== undefined && query.space === undefined) this.see(DEFAULT_SPACE);
    if (query.pool) await this.poolSpace(query.pool);
    return this.engine.history(this.allowed === null ? query : { ...query, visibleSpaces: [...this.allowed] });
  }
  async holderAt(address: string, at: string, space = DEFAULT_SPACE): Promise<Holding | null> {
    this.see(space);
    return this.engine.holderAt(address, at, space);
  }

  // ---- tokens and webhooks (admin routes; a space-limited admin manages those within its spaces)

  private within(t: { spaces?: string[] | null }): boolean {
    return this.allowed === null || (!!t.spaces && t.spaces.length > 0 && t.spaces.every((s) => this.allowed!.has(s)));
  }
  async createToken(input: TokenInput, ctx: ChangeContext) {
    if (!this.within(input)) {
      throw new AllotError("forbidden", `token ${this.token.name} is limited to spaces ${[...this.allowed!].join(", ")}; it can only create tokens limited to some of them (give spaces)`);
    }
    return this.engine.createToken(input, ctx);
  }
  async listTokens() {
    return (await this.engine.listTokens()).filter((t) => this.within(t));
  }
  async createWebhook(input: WebhookInput, ctx: ChangeContext) {
    if (!this.within(input)) {
      throw new AllotError("forbidden", `token ${this.token.name} is limited to spaces ${[...this.allowed!].join(", ")}; its webhooks must be limited to some of them (give spaces)`);
    }
    return this.engine.createWebhook(input, ctx);
  }
  async listWebhooks() {
    return (await this.engine.listWebhooks()).filter((w) => this.within(w));
  }
  async deleteWebhook(idOrName: string, ctx: ChangeContext) {
    const hooks = await this.engine.listWebhooks();
    const hook = hooks.find((w) => w.id === idOrName) ?? hooks.find((w) => w.name === idOrName);
    if (!hook || !this.within(hook)) throw new AllotError("webhook-not-found", `no webhook has the id or name ${idOrName}`);
    // by id: the row checked is the row deleted
    return this.engine.deleteWebhook(hook.id, ctx);
  }
  async revokeToken(idOrName: string, ctx: ChangeContext) {
    const t = await this.engine.getToken(idOrName);
    if (!this.within(t)) throw new AllotError("token-not-found", `no token has the id or name ${idOrName}`);
    return this.engine.revokeToken(t.id, ctx);
  }

  // ---- Kubernetes namespaces (Metal3 / Cluster API objects); apply checks each document's namespace itself

  async applyManifest(docs: unknown[], options: { namespace: string; dryRun: boolean }, ctx: ChangeContext) {
    return applyManifest({ engine: this.engine, token: this.token, ctx }, docs, options);
  }
  async exportNamespace(namespace: string) {
    this.see(namespace);
    return exportNamespace(this.engine, namespace);
  }
  async importNamespace(namespace: string, bundle: unknown, ctx: ChangeContext) {
    this.see(namespace);
    return importNamespace(this.engine, this.token, namespace, bundle, ctx);
  }

  // ---- DHCP delivery: networks belong to a space; agents serve the networks of their token's spaces

  async listDhcpNetworks() {
    return (await listNetworks(this.engine)).filter((n) => this.may(n.space));
  }
  private async dhcpNetwork(name: string) {
    const n = await readNetwork(this.engine, name);
    if (!this.may(n.space)) throw new AllotError("not-found", `no DHCP network is named ${name}; see allot dhcp network list`);
    return n;
  }
  async getDhcpNetwork(name: string) {
    const n = await this.dhcpNetwork(name);
    const agents = await listAgents(this.engine);
    const config = await networkConfig(this.engine, name);
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
  async createDhcpNetwork(input: z.infer<typeof DhcpNetworkInput>) {
    this.see(input.space);
    return createNetwork(this.engine, input);
  }
  async updateDhcpNetwork(name: string, patch: Parameters<typeof updateNetwork>[2]) {
    await this.dhcpNetwork(name);
    return updateNetwork(this.engine, name, patch);
  }
  async deleteDhcpNetwork(name: string) {
    await this.dhcpNetwork(name);
    return deleteNetwork(this.engine, name);
  }
  async dhcpConfig(name: string) {
    await this.dhcpNetwork(name);
    return networkConfig(this.engine, name);
  }
  async listDhcpAgents() {
    const visible = new Set((await this.listDhcpNetworks()).map((n) => n.name));
    return (await listAgents(this.engine)).map((a) => ({
      ...a,
      networks: a.networks.filter((r) => visible.has(r.network)),
      assignments: a.assignments.filter((n) => visible.has(n)),
      health: Object.fromEntries(Object.entries(a.health).filter(([n]) => visible.has(n))),
    }));
  }
  /** An agent's report, and what it is to serve (a space-limited token's agent only its spaces' networks). */
  async dhcpAgentSync(name: string, report: AgentReport) {
    // what a space-limited token's agent says it reaches is kept to its spaces' networks
    const visible = new Set((await this.listDhcpNetworks()).map((n) => n.name));
    const mine = this.allowed === null ? report : { ...report, networks: report.networks.filter((r) => visible.has(r.network)) };
    await recordAgent(this.engine, name, mine, Date.now(), this.token.id);
    await schedule(this.engine);
    return assignmentsOf(this.engine, name, this.token);
  }
  async dhcpAssignments(name: string) {
    return assignmentsOf(this.engine, name, this.token);
  }
  /** Keeps assignments in line while a sync is held open (see holdSync). */
  dhcpHold(onError: (err: unknown) => void) {
    return holdSync(this.engine, onError);
  }
  /** Every committed change, for requests that wait for one. */
  get changes() {
    return this.engine.changes;
  }
  async dhcpChangeMark() {
    return changeMark(this.engine);
  }
  async forgetDhcpAgent(name: string) {
    this.unrestricted("removing an agent");
    return forgetAgent(this.engine, name);
  }
}
