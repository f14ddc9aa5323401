/**
 * A Kubernetes-style API for the Metal3 and Cluster API IPAM resources, enough for real kubectl:
 * discovery, list (JSON or Table, label and field selectors), watch from a resourceVersion, get,
 * create, replace, merge patch (what `kubectl apply` and `kubectl patch` send), server-side apply,
 * delete with finalizers, the status subresource, and Kubernetes Status errors. Namespaces are Allot
 * spaces; tokens are Allot's (a space-limited token sees only its namespaces). kubectl sends its token
 * only over HTTPS: run `allot serve --tls`.
 */
import { SERVER } from "../../engine/access.js";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import jsonPatch from "fast-json-patch";
import type { TLSSocket } from "node:tls";
import { parse as parseYaml } from "yaml";
import type { Engine } from "../../engine/engine.js";
import { AllotError } from "../../engine/errors.js";
import type { Token } from "../../engine/tokens.js";
import type { TokenCache } from "../../api/auth.js";
import { changesSince, compactedRv, currentRv, getObject, listObjects, putObject, removeObject } from "./objects.js";
import { KubeError, admit, applyDefaults, checkBody, ensureNamespace } from "./admission.js";
import { InvalidObject, reconcile } from "./metal3.js";
import { type KubeObject, RESOURCES, type ResourceType, age, findResource, resourceOfKind } from "./resources.js";
import { acceptsJson, openApiV3Document, openApiV3Index } from "./openapi.js";

/** What /version reports; kubectl's dispatcher picks its client minor from it. */
export const KUBE_VERSION = { major: "1", minor: "30", gitVersion: "v1.30.0", platform: "linux/amd64" };

function sendStatus(reply: FastifyReply, e: KubeError) {
  return reply
    .status(e.code)
    .header("content-type", "application/json")
    .send({ kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message: e.message, reason: e.reason, details: e.details, code: e.code });
}

const notFound = (t: ResourceType, name: string) => new KubeError(404, "NotFound", `${t.resource}.${t.group} "${name}" not found`, { name, group: t.group, kind: t.resource });

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> = target && typeof target === "object" && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** RFC 6902 JSON patch (kubectl patch --type=json); a failing operation changes nothing. */
function applyJsonPatch(target: KubeObject, patch: unknown): KubeObject {
  if (!Array.isArray(patch)) throw new KubeError(400, "BadRequest", "a JSON patch is a list of operations ({op, path, value})");
  try {
    return jsonPatch.applyPatch(structuredClone(target), patch as jsonPatch.Operation[], true, false).newDocument;
  } catch (err) {
    const e = err as { name?: string; index?: number; message?: string };
    const what = e.name === "TEST_OPERATION_FAILED" ? "its test failed" : (e.message ?? "").split("\n")[0];
    throw new KubeError(422, "Invalid", `JSON patch operation ${e.index === undefined ? "?" : e.index + 1} (counting from 1) cannot be applied: ${what}`);
  }
}

/** `a=b,c!=d,e` label selectors (equality, inequality, existence). */
function matchesLabels(o: KubeObject, selector: string | undefined): boolean {
  if (!selector) return true;
  const labels = o.metadata.labels ?? {};
  return selector.split(",").every((term) => {
    const t = term.trim();
    let m;
    if ((m = /^([^!=]+)!=(.*)$/.exec(t))) return labels[m[1]!.trim()] !== m[2]!.trim();
    if ((m = /^([^=]+)==?(.*)$/.exec(t))) return labels[m[1]!.trim()] === m[2]!.trim();
    if (t.startsWith("!")) return !(t.slice(1) in labels);
    return t === "" || t in labels;
  });
}

function matchesFields(o: KubeObject, selector: string | undefined): boolean {
  if (!selector) return true;
  return selector.split(",").every((term) => {
    const m = /^([^=!]+)(!=|==?)(.*)$/.exec(term.trim());
    if (!m) return true;
    const value = m[1] === "metadata.name" ? o.metadata.name : m[1] === "metadata.namespace" ? o.metadata.namespace : undefined;
    return m[2] === "!=" ? value !== m[3] : value === m[3];
  });
}

const BOOKMARK_EVERY_MS = 10_000;

const kubeToken = (req: FastifyRequest) => (req as FastifyRequest & { kubeToken: Token }).kubeToken;

const wantsTable = (req: FastifyRequest) => /as=Table/.test(String(req.headers.accept ?? ""));

function table(t: ResourceType, items: KubeObject[], rv: string, includeObject: boolean) {
  return {
    kind: "Table",
    apiVersion: "meta.k8s.io/v1",
    metadata: { resourceVersion: rv },
    columnDefinitions: [
      { name: "Name", type: "string", format: "name", description: "Name", priority: 0 },
      ...t.columns.map((c) => ({ name: c.name, type: c.type, format: "", description: c.name, priority: c.priority ?? 0 })),
      { name: "Age", type: "string", format: "", description: "Age", priority: 0 },
    ],
    rows: items.map((o) => ({
      cells: [o.metadata.name, ...t.columns.map((c) => c.cell(o)), age(o.metadata.creationTimestamp)],
      object: includeObject ? o : { kind: "PartialObjectMetadata", apiVersion: "meta.k8s.io/v1", metadata: o.metadata },
    })),
  };
}

/** The object as the requested version shows it (versions of a group share storage), with the CRD's defaults. */
const asVersion = (o: KubeObject, group: string, version: string): KubeObject => {
  const shown = { ...o, apiVersion: `${group}/${version}` };
  const t = resourceOfKind(shown.apiVersion, o.kind);
  return t ? applyDefaults(t, shown) : shown;
};

export interface KubeApiOptions {
  engine: Engine;
  tokens: TokenCache;
  /** Set when serving as an aggregated API server: the front-proxy certificate names trusted (empty: any). */
  proxyNames?: string[];
}

/**
 * The user kube-apiserver vouches for, when it proxies a request as an aggregated API server: its
 * front-proxy client certificate verified against the configured CA, and the user in X-Remote-User.
 * Kubernetes has already authorised the request (RBAC), so the user acts on every namespace.
 */
function proxiedUser(req: FastifyRequest, names: string[]): Token | string | null {
  const socket = req.raw.socket as TLSSocket;
  if (typeof socket.getPeerCertificate !== "function" || !socket.getPeerCertificate()?.subject) return null; // no client certificate: not the aggregator
  if (!socket.authorized) return `the client certificate is not signed by the front-proxy CA (--kube-proxy-ca): ${String(socket.authorizationError)}`;
  const cn = String(socket.getPeerCertificate().subject?.CN);
  if (names.length > 0 && !names.includes(cn)) return `the client certificate's name ${cn} is not one of --kube-proxy-names (${names.join(", ")})`;
  const user = req.headers["x-remote-user"];
  if (typeof user !== "string" || user === "") return "a request with the front-proxy certificate must name its user in X-Remote-User";
  return { id: "kube-proxy", name: `kube:${user}`, scope: "admin", spaces: null, hint: "", createdAt: "", expiresAt: null, revokedAt: null };
}

export function registerKubeApi(app: FastifyInstance, { engine, tokens, proxyNames }: KubeApiOptions): void {
  const store = engine.store;
  const tx = <T>(fn: Parameters<typeof store.transaction<T>>[0]) => store.transaction<T>(fn);

  for (const type of ["application/merge-patch+json", "application/strategic-merge-patch+json", "application/json-patch+json"]) {
    app.addContentTypeParser(type, { parseAs: "string" }, (_req, body, done) => {
      try {
        done(null, JSON.parse(body as string));
      } catch {
        done(new KubeError(400, "BadRequest", "the patch is not valid JSON"), undefined);
      }
    });
  }
  app.addContentTypeParser("application/apply-patch+yaml", { parseAs: "string" }, (_req, body, done) => {
    try {
      done(null, parseYaml(body as string));
    } catch {
      done(new KubeError(400, "BadRequest", "the apply patch is not valid YAML"), undefined);
    }
  });

  // open watches end when the server shuts down, so it does not wait on them
  let closing = false;
  app.addHook("preClose", async () => {
    closing = true;
  });

  const kubePaths = (url: string | undefined) => !!url && (url === "/api" || url.startsWith("/api/") || url === "/apis" || url.startsWith("/apis/") || url === "/version" || url.startsWith("/openapi/"));

  /** Bearer token, scope by method, namespace within the token's spaces. */
  app.addHook("onRequest", async (req, reply) => {
    if (!kubePaths(req.routeOptions.url)) return;
    const m = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? "");
    const proxied = !m && proxyNames ? proxiedUser(req, proxyNames) : null;
    if (typeof proxied === "string") return sendStatus(reply, new KubeError(401, "Unauthorized", `Unauthorized: ${proxied}`));
    const token = m ? await tokens.verify(m[1]!) : proxied;
    if (!token) return sendStatus(reply, new KubeError(401, "Unauthorized", "Unauthorized: send an Allot API token as the bearer token (over HTTPS: allot serve --tls)"));
    const write = !["GET", "HEAD"].includes(req.method);
    if (write && token.scope === "read") return sendStatus(reply, new KubeError(403, "Forbidden", `token ${token.name} has read scope; ${req.method} needs write`));
    const ns = (req.params as { ns?: string }).ns;
    if (ns !== undefined && token.spaces !== null && !token.spaces.includes(ns)) {
      return sendStatus(reply, new KubeError(403, "Forbidden", `token ${token.name} is limited to namespaces ${token.spaces.join(", ")}; it cannot use namespace ${ns}`));
    }
    (req as FastifyRequest & { kubeToken: Token }).kubeToken = token;
  });

  app.setErrorHandler((err, req, reply) => {
    if (err instanceof KubeError) return sendStatus(reply, err);
    if (err instanceof InvalidObject) {
      const o = req.body as { kind?: string; metadata?: { name?: string } } | undefined;
      const what = `${o?.kind ?? "object"} "${o?.metadata?.name ?? (req.params as { name?: string }).name ?? ""}"`;
      const bare = err.message.startsWith(`${err.field}: `) ? err.message.slice(err.field.length + 2) : err.message;
      return sendStatus(reply, new KubeError(422, "Invalid", `${what} is invalid: ${err.message}`, { name: o?.metadata?.name, causes: [{ reason: "FieldValueInvalid", message: bare, field: err.field }] }));
    }
    if (err instanceof AllotError) {
      const reason = { 400: "BadRequest", 403: "Forbidden", 404: "NotFound", 409: "Conflict", 503: "ServiceUnavailable" }[err.status] ?? "InternalError";
      return sendStatus(reply, new KubeError(err.status, reason, err.message));
    }
    const status = (err as { statusCode?: number }).statusCode;
    if (status && status < 500) return sendStatus(reply, new KubeError(status, "BadRequest", (err as Error).message));
    req.log.error({ err }, "unexpected error");
    return sendStatus(reply, new KubeError(500, "InternalError", `an unexpected error occurred; quote request id ${req.id}`));
  });

  const resourceOf = (p: { g: string; v: string; res: string }): ResourceType => {
    const t = findResource(p.g, p.v, p.res);
    if (!t) throw new KubeError(404, "NotFound", `the server could not find the requested resource (${p.res}.${p.g}/${p.v})`);
    return t;
  };
  const actor = (req: FastifyRequest) => ({ actor: `token:${kubeToken(req).name}`, requestId: req.id });
  const hidden = { schema: { hide: true } };

  app.get("/version", hidden, async () => KUBE_VERSION);
  app.get("/api", hidden, async () => ({ kind: "APIVersions", versions: ["v1"], serverAddressByClientCIDRs: [] }));
  app.get("/api/v1", hidden, async () => ({
    kind: "APIResourceList",
    groupVersion: "v1",
    resources: [{ name: "namespaces", singularName: "namespace", namespaced: false, kind: "Namespace", verbs: ["get", "list"], shortNames: ["ns"] }],
  }));
  const namespace = (s: { name: string; id: string; createdAt: string }) => ({
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name: s.name, uid: s.id, creationTimestamp: s.createdAt.replace(/\.\d+Z$/, "Z") },
    status: { phase: "Active" },
  });
  // the spaces this token may use: `kubectl get namespaces`
  app.get("/api/v1/namespaces", hidden, async (req) => {
    const token = kubeToken(req);
    const spaces = await engine.listSpaces({ access: token });
    return { apiVersion: "v1", kind: "NamespaceList", metadata: { resourceVersion: "" }, items: spaces.map(namespace) };
  });
  app.get("/api/v1/namespaces/:ns", hidden, async (req) => {
    const { ns } = req.params as { ns: string };
    try {
      return namespace(await engine.getSpace(ns, SERVER));
    } catch {
      throw new KubeError(404, "NotFound", `namespaces "${ns}" not found`, { name: ns, kind: "namespaces" });
    }
  });
  app.get("/apis", hidden, async () => {
    const groups = [...new Set(RESOURCES.map((r) => r.group))].map((g) => {
      const versions = RESOURCES.find((r) => r.group === g)!.versions.map((v) => ({ groupVersion: `${g}/${v}`, version: v }));
      return { name: g, versions, preferredVersion: versions[0] };
    });
    return { kind: "APIGroupList", apiVersion: "v1", groups };
  });
  app.get("/apis/:g/:v", hidden, async (req) => {
    const { g, v } = req.params as { g: string; v: string };
    const resources = RESOURCES.filter((r) => r.group === g && r.versions.includes(v));
    if (resources.length === 0) throw new KubeError(404, "NotFound", `the server could not find the requested resource (${g}/${v})`);
    return {
      kind: "APIResourceList",
      apiVersion: "v1",
      groupVersion: `${g}/${v}`,
      resources: resources.flatMap((r) => [
        { name: r.resource, singularName: r.singular, namespaced: true, kind: r.kind, verbs: ["create", "delete", "get", "list", "patch", "update", "watch"], shortNames: r.shortNames, categories: ["ipam"] },
        { name: `${r.resource}/status`, singularName: "", namespaced: true, kind: r.kind, verbs: ["get", "patch", "update"] },
      ]),
    };
  });
  // a document holding only swagger "2.0" (protobuf): kubectl then leaves field validation to the server
  // (kube-apiserver's aggregator asks for JSON, to merge into the cluster's document: an empty one, the same)
  app.get("/openapi/v2", hidden, async (req, reply) =>
    /protobuf/.test(String(req.headers.accept ?? "")) || !/json/.test(String(req.headers.accept ?? ""))
      ? reply.header("content-type", "application/octet-stream").send(Buffer.from([0x0a, 0x03, 0x32, 0x2e, 0x30]))
      : reply.send({ swagger: "2.0", info: { title: "Allot", version: KUBE_VERSION.gitVersion }, paths: {} }),
  );
  // OpenAPI v3 as kube-apiserver serves it (`kubectl explain` reads it): an index, then each group/version's
  // document at a URL with its hash, which a client may cache for good
  app.get("/openapi/v3", hidden, async () => openApiV3Index());
  app.get("/openapi/v3/apis/:g/:v", hidden, async (req, reply) => {
    const { g, v } = req.params as { g: string; v: string };
    const doc = openApiV3Document(g, v);
    if (!doc) throw new KubeError(404, "NotFound", `no OpenAPI document for ${g}/${v}`);
    // kube-apiserver's only other answer is protobuf: a client asking for nothing else is told so
    if (!acceptsJson(req.headers.accept)) throw new KubeError(406, "NotAcceptable", "the OpenAPI v3 documents are served only as application/json");
    const hash = (req.query as { hash?: string }).hash;
    // an outdated hash: where the current document is
    if (hash !== undefined && hash !== doc.hash) return reply.status(301).header("location", doc.url).send();
    reply.header("etag", `"${doc.hash}"`).header("vary", "Accept");
    if (hash !== undefined) reply.header("cache-control", "public, immutable").header("expires", new Date(Date.now() + 365 * 86_400_000).toUTCString());
    if (req.headers["if-none-match"] === `"${doc.hash}"`) return reply.status(304).send();
    return reply.header("content-type", "application/json").send(doc.json);
  });

  // ---- collections

  const list = async (req: FastifyRequest, reply: FastifyReply) => {
    const p = req.params as { g: string; v: string; res: string; ns?: string };
    const t = resourceOf(p);
    const q = req.query as Record<string, string | undefined>;
    if (q.watch === "true" || q.watch === "1") return watch(req, reply, t, p.ns, q);
    const token = kubeToken(req);
    const { items, rv } = await store.read(async (sql) => ({ items: await listObjects(sql, t, p.ns), rv: await currentRv(sql) }));
    const objects = items
      .map((s) => asVersion(s.object, p.g, p.v))
      .filter((o) => token.spaces === null || token.spaces.includes(o.metadata.namespace))
      .filter((o) => matchesLabels(o, q.labelSelector) && matchesFields(o, q.fieldSelector));
    if (wantsTable(req)) return table(t, objects, String(rv), q.includeObject === "Object");
    return { apiVersion: `${p.g}/${p.v}`, kind: `${t.kind}List`, metadata: { resourceVersion: String(rv) }, items: objects };
  };
  app.get("/apis/:g/:v/:res", hidden, list);
  app.get("/apis/:g/:v/namespaces/:ns/:res", hidden, list);

  async function watch(req: FastifyRequest, reply: FastifyReply, t: ResourceType, ns: string | undefined, q: Record<string, string | undefined>) {
    const p = req.params as { g: string; v: string };
    const token = kubeToken(req);
    // the feed's version before the first read: a change committed during it wakes the loop again
    let seen = engine.changes.version;
    let since = q.resourceVersion && /^\d+$/.test(q.resourceVersion) ? Number(q.resourceVersion) : await store.read(currentRv);
    // deletions before the newest pruned tombstone are gone: a watch from there must list again
    const tooOld = (compacted: number) => new KubeError(410, "Expired", `too old resource version: ${since} (${compacted})`);
    // ("0" asks for any version: it is never too old)
    const anyVersion = q.resourceVersion === undefined || q.resourceVersion === "0";
    const compacted = await store.read(compactedRv);
    if (!anyVersion && since < compacted) throw tooOld(compacted);
    const table = wantsTable(req);
    const deadline = q.timeoutSeconds ? Date.now() + Number(q.timeoutSeconds) * 1000 : Infinity;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked", "cache-control": "no-cache" });
    let open = true;
    const gone = new AbortController();
    req.raw.on("close", () => {
      open = false;
      gone.abort();
    });
    const bookmarks = q.allowWatchBookmarks === "true" || q.allowWatchBookmarks === "1";
    let lastWrite = Date.now();
    // the reply is ours now: whatever happens, the stream is ended (an error cannot be sent any more)
    try {
      while (open && !closing && Date.now() < deadline) {
        const due = bookmarks && Date.now() - lastWrite > BOOKMARK_EVERY_MS;
        // (the version is read with the changes, so none between them is skipped)
        const { changes, rv, compacted } = await store.read(async (sql) => ({
          changes: await changesSince(sql, t, since, ns),
          rv: await currentRv(sql),
          compacted: await compactedRv(sql),
        }));
        // fell behind a pruning of tombstones: say so (as a compacted etcd does) and end, so the client lists again
        if (since < compacted && !(anyVersion && since === 0)) {
          const e = tooOld(compacted);
          res.write(`${JSON.stringify({ type: "ERROR", object: { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message: e.message, reason: e.reason, code: e.code } })}\n`);
          break;
        }
        // a quiet watch still learns how far it has read, so a restart resumes from there (BOOKMARK)
        if (due && changes.length === 0) {
          since = Math.max(since, rv);
          res.write(`${JSON.stringify({ type: "BOOKMARK", object: { kind: t.kind, apiVersion: `${p.g}/${p.v}`, metadata: { resourceVersion: String(since) } } })}\n`);
          lastWrite = Date.now();
        }
        for (const c of changes) {
          lastWrite = Date.now();
          since = Math.max(since, c.rv);
          const o = asVersion(c.object, p.g, p.v);
          if (token.spaces !== null && !token.spaces.includes(o.metadata.namespace)) continue;
          if (!matchesLabels(o, q.labelSelector) || !matchesFields(o, q.fieldSelector)) continue;
          const object = table ? tableRow(t, o) : o;
          res.write(`${JSON.stringify({ type: c.type, object })}\n`);
        }
        // everything up to the version read with these changes has been seen, for this type too: a quiet
        // watch so never falls behind a pruning of other types' tombstones
        since = Math.max(since, rv);
        // until the next committed change (or the next bookmark, or the deadline)
        seen = await engine.changes.wait(seen, Math.min(BOOKMARK_EVERY_MS, deadline - Date.now()), gone.signal);
      }
    } catch (err) {
      req.log.error({ err }, "watch ended by an error");
    } finally {
      res.end();
    }
  }
  const tableRow = (t: ResourceType, o: KubeObject) => table(t, [o], o.metadata.resourceVersion ?? "", false);

  /** After a change to pools or claims the namespace is reconciled before answering, so answers show the outcome. */
  const settle = async (req: FastifyRequest, t: ResourceType, ns: string, name: string, g: string, v: string): Promise<KubeObject | null> => {
    await reconcile({ engine, store, ctx: actor(req), log: (err) => req.log.error({ err }, "metal3 reconcile failed") }, ns);
    const fresh = await store.read((sql) => getObject(sql, t, ns, name));
    return fresh ? asVersion(fresh.object, g, v) : null;
  };

  app.post("/apis/:g/:v/namespaces/:ns/:res", hidden, async (req, reply) => {
    const p = req.params as { g: string; v: string; ns: string; res: string };
    const t = resourceOf(p);
    const o = checkBody(t, p, req.body);
    admit(t, o, null);
    const dry = (req.query as { dryRun?: string }).dryRun === "All";
    if (!dry) await ensureNamespace(engine, kubeToken(req), p.ns, actor(req));
    const created = await tx(async (sql) => {
      if (await getObject(sql, t, p.ns, o.metadata.name)) throw new KubeError(409, "AlreadyExists", `${t.resource}.${t.group} "${o.metadata.name}" already exists`, { name: o.metadata.name, group: t.group, kind: t.resource });
      const { status: _s, ...rest } = o;
      return dry ? rest : putObject(sql, t, { ...rest, metadata: { ...rest.metadata, deletionTimestamp: undefined, uid: undefined, creationTimestamp: undefined, resourceVersion: undefined, generation: undefined } } as KubeObject);
    });
    const answer = dry ? created : ((await settle(req, t, p.ns, o.metadata.name, p.g, p.v)) ?? created);
    return reply.status(201).send(asVersion(answer, p.g, p.v));
  });

  // ---- items

  const item = "/apis/:g/:v/namespaces/:ns/:res/:name";
  app.get(item, hidden, async (req) => {
    const p = req.params as { g: string; v: string; ns: string; res: string; name: string };
    const t = resourceOf(p);
    const found = await store.read((sql) => getObject(sql, t, p.ns, p.name));
    if (!found) throw notFound(t, p.name);
    return wantsTable(req) ? table(t, [asVersion(found.object, p.g, p.v)], String(found.rv), false) : asVersion(found.object, p.g, p.v);
  });
  app.get(`${item}/status`, hidden, async (req) => {
    const p = req.params as { g: string; v: string; ns: string; res: string; name: string };
    const t = resourceOf(p);
    const found = await store.read((sql) => getObject(sql, t, p.ns, p.name));
    if (!found) throw notFound(t, p.name);
    return asVersion(found.object, p.g, p.v);
  });

  /** PUT and PATCH of an object or its status: the new object from the old one, admitted, stored, settled. */
  const update = (mode: "put" | "patch", sub: "main" | "status") => async (req: FastifyRequest, reply: FastifyReply) => {
    const p = req.params as { g: string; v: string; ns: string; res: string; name: string };
    const t = resourceOf(p);
    const q = req.query as { dryRun?: string; fieldManager?: string };
    const type = String(req.headers["content-type"] ?? "");
    const jsonPatch = type.startsWith("application/json-patch+json");
    const serverSideApply = type.startsWith("application/apply-patch+yaml");
    const dry = q.dryRun === "All";
    // server-side apply may create: its namespace must be there (or be made) before anything is stored
    if (serverSideApply && !dry) await ensureNamespace(engine, kubeToken(req), p.ns, actor(req));
    let created = false;
    const result = await tx(async (sql) => {
      const live = await getObject(sql, t, p.ns, p.name);
      if (!live && !serverSideApply) throw notFound(t, p.name);
      const before = live?.object ?? null;
      let next: KubeObject;
      if (mode === "put") next = checkBody(t, p, req.body, p.name);
      else if (jsonPatch) next = applyJsonPatch(asVersion(before!, p.g, p.v), req.body);
      else next = mergePatch(before ? asVersion(before, p.g, p.v) : {}, req.body) as KubeObject;
      // a patched object is held to the same shape as a written one (kind, name, labels, spec)
      if (mode === "patch") next = checkBody(t, p, next, p.name);
      if (sub === "status" && next.status !== undefined && (next.status === null || typeof next.status !== "object" || Array.isArray(next.status))) {
        throw new InvalidObject("status: must be an object", "status");
      }
      // the main resource ignores status, and /status changes only status
      if (sub === "main") next = { ...next, ...(before?.status !== undefined ? { status: before.status } : {}) };
      else next = { ...before!, status: next.status ?? {} };
      if (mode === "put" && before && next.metadata.resourceVersion && next.metadata.resourceVersion !== before.metadata.resourceVersion) {
        throw new KubeError(409, "Conflict", `Operation cannot be fulfilled on ${t.resource}.${t.group} "${p.name}": the object has been modified; please apply your changes to the latest version and try again`);
      }
      next.metadata = { ...next.metadata, name: p.name, namespace: p.ns, uid: before?.metadata.uid, creationTimestamp: before?.metadata.creationTimestamp, deletionTimestamp: before?.metadata.deletionTimestamp };
      if (sub === "main") admit(t, next, before);
      created = !before;
      return dry ? next : putObject(sql, t, next);
    });
    const answer = dry ? result : ((await settle(req, t, p.ns, p.name, p.g, p.v)) ?? result);
    return reply.status(created ? 201 : 200).send(asVersion(answer, p.g, p.v));
  };
  app.put(item, hidden, update("put", "main"));
  app.patch(item, hidden, update("patch", "main"));
  app.put(`${item}/status`, hidden, update("put", "status"));
  app.patch(`${item}/status`, hidden, update("patch", "status"));

  app.delete(item, hidden, async (req) => {
    const p = req.params as { g: string; v: string; ns: string; res: string; name: string };
    const t = resourceOf(p);
    const dry = (req.query as { dryRun?: string }).dryRun === "All";
    const result = await tx(async (sql) => {
      const live = await getObject(sql, t, p.ns, p.name);
      if (!live) throw notFound(t, p.name);
      if (dry) return live.object;
      // with finalizers it only starts terminating; whoever owns each finalizer finishes the job
      if ((live.object.metadata.finalizers ?? []).length > 0) {
        if (live.object.metadata.deletionTimestamp) return live.object;
        return putObject(sql, t, { ...live.object, metadata: { ...live.object.metadata, deletionTimestamp: new Date().toISOString().replace(/\.\d{3}Z$/, "Z") } });
      }
      return removeObject(sql, t, live.object);
    });
    if (!dry) await settle(req, t, p.ns, p.name, p.g, p.v);
    return asVersion(result, p.g, p.v);
  });
}
