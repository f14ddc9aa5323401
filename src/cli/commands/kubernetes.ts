/**
 * Metal3 / Cluster API manifests without kubectl: `allot apply`, `allot get` and `allot delete`, and
 * the namespace half of `allot export` / `allot import` (moving a namespace between Allot servers).
 */
import { Command } from "commander";
import { writeFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { type KubeObject, RESOURCES, type ResourceType, age, resourceOfKind } from "../../integrations/kubernetes/resources.js";
import { seg } from "../client.js";
import { UsageError, context, readInput } from "../context.js";
import { print } from "../output.js";

/** Every document of a YAML or JSON manifest (a `kind: List` gives its items); empty documents are skipped. */
export function readManifest(text: string, source: string): unknown[] {
  const docs = parseAllDocuments(text);
  const out: unknown[] = [];
  for (const [i, doc] of docs.entries()) {
    if (doc.errors.length > 0) {
      const e = doc.errors[0]!;
      throw new UsageError(`${source}: document ${i + 1} is not valid YAML: ${e.message.split("\n")[0]}`);
    }
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue;
    const list = value as { kind?: unknown; items?: unknown };
    if (list.kind === "List" && Array.isArray(list.items)) out.push(...list.items);
    else out.push(value);
  }
  if (out.length === 0) throw new UsageError(`${source} holds no objects`);
  return out;
}

/** A kind as kubectl takes it: plural, singular, Kind, short name, optionally with .group. */
export function resolveKind(name: string): ResourceType {
  const lower = name.toLowerCase();
  const found = RESOURCES.find((r) => {
    const names = [r.resource, r.singular, r.kind.toLowerCase(), ...r.shortNames];
    return names.includes(lower) || names.some((n) => lower === `${n}.${r.group}`);
  });
  if (!found) {
    const known = RESOURCES.map((r) => `${r.resource}.${r.group}`).join(", ");
    throw new UsageError(`${name} is not a kind Allot serves; use one of ${known} (a bare ipaddresses means Metal3's)`);
  }
  return found;
}

const collection = (t: ResourceType, ns: string | undefined) =>
  ns === undefined ? `apis/${t.group}/${t.versions[0]}/${t.resource}` : `apis/${t.group}/${t.versions[0]}/namespaces/${seg(ns)}/${t.resource}`;

export function applyCommand(): Command {
  return new Command("apply")
    .description("create or update Metal3 / Cluster API objects from a YAML manifest: all documents are checked first, then all applied or none")
    .requiredOption("-f, --file <file>", "the manifest (- for stdin); several documents separated by ---")
    .option("-n, --namespace <namespace>", "for objects that name no namespace", "default")
    .option("--dry-run", "check and report, change nothing")
    .action(async (o: { file: string; namespace: string; dryRun?: boolean }, cmd: Command) => {
      const { client, format } = context(cmd);
      const source = o.file === "-" ? "stdin" : o.file;
      const objects = readManifest(readInput(o.file), source);
      const res = await client.request<{ items: { apiVersion: string; kind: string; namespace: string; name: string; action: string }[] }>("POST", "v1/kubernetes/apply", {
        objects,
        namespace: o.namespace,
        dryRun: !!o.dryRun,
      });
      if (format !== "table") return print(format, res.items, [], res.items);
      for (const a of res.items) {
        const t = resourceOfKind(a.apiVersion, a.kind)!;
        process.stdout.write(`${t.singular}.${t.group}/${a.name} ${a.action}${o.dryRun ? " (dry run)" : ""}\n`);
      }
    });
}

export function getCommand(): Command {
  return new Command("get")
    .description("list or show Metal3 / Cluster API objects (ippools, ipclaims, ipaddresses, ipaddressclaims) as kubectl would")
    .argument("<kind>", "ippools, ipclaims, ipaddresses, ipaddressclaims or ipaddresses.ipam.cluster.x-k8s.io")
    .argument("[name]", "one object")
    .option("-n, --namespace <namespace>", "the namespace (an Allot space)", "default")
    .option("-A, --all-namespaces", "every namespace the token can see")
    .option("-l, --selector <labels>", "only objects with these labels (a=b,c!=d)")
    .action(async (kind: string, name: string | undefined, o: { namespace: string; allNamespaces?: boolean; selector?: string }, cmd: Command) => {
      const { client, format } = context(cmd);
      const t = resolveKind(kind);
      const all = !!o.allNamespaces && name === undefined;
      let items: KubeObject[];
      if (name !== undefined) {
        const one = await client.request<KubeObject>("GET", `${collection(t, o.namespace)}/${seg(name)}`);
        if (format !== "table") return print(format, one, [], one);
        items = [one];
      } else {
        const list = await client.request<{ items: KubeObject[] }>("GET", collection(t, all ? undefined : o.namespace), undefined, { labelSelector: o.selector });
        if (format !== "table") return print(format, list.items, [], { apiVersion: "v1", kind: "List", items: list.items });
        items = list.items;
        if (items.length === 0) {
          process.stderr.write(`No resources found${all ? "" : ` in ${o.namespace} namespace`}.\n`);
          return;
        }
      }
      print<KubeObject>(format, items, [
        ...(all ? [["NAMESPACE", (x: KubeObject) => x.metadata.namespace] as [string, (x: KubeObject) => unknown]] : []),
        ["NAME", (x) => x.metadata.name],
        // the default columns, as kubectl prints them without -o wide
        ...t.columns.filter((c) => !c.priority).map((c): [string, (x: KubeObject) => unknown] => [c.name.toUpperCase(), (x) => c.cell(x)]),
        ["AGE", (x) => age(x.metadata.creationTimestamp)],
      ]);
    });
}

export function deleteCommand(): Command {
  return new Command("delete")
    .description("delete Metal3 / Cluster API objects (a claim's address is released)")
    .argument("<kind>", "ippool, ipclaim, ipaddressclaim, …")
    .argument("<names...>", "the objects")
    .option("-n, --namespace <namespace>", "the namespace (an Allot space)", "default")
    .action(async (kind: string, names: string[], o: { namespace: string }, cmd: Command) => {
      const { client } = context(cmd);
      const t = resolveKind(kind);
      for (const name of names) {
        await client.request("DELETE", `${collection(t, o.namespace)}/${seg(name)}`);
        process.stdout.write(`${t.singular}.${t.group} "${name}" deleted\n`);
      }
    });
}

const count = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;

/** `allot export -n NS`: one namespace from a running server. */
export async function exportNamespace(cmd: Command, namespace: string, file: string | undefined): Promise<void> {
  const { client } = context(cmd);
  const bundle = await client.request<{ objects: unknown[]; pools: { allocations: unknown[] }[] }>("GET", `v1/kubernetes/namespaces/${seg(namespace)}/export`);
  // one line, so a whole-database import that is handed this file can tell what it is from its first line
  const text = `${JSON.stringify(bundle)}\n`;
  if (file) writeFileSync(file, text);
  else process.stdout.write(text);
  const allocations = bundle.pools.reduce((n, p) => n + p.allocations.length, 0);
  process.stderr.write(`exported namespace ${namespace}: ${count(bundle.objects.length, "object")}, ${count(bundle.pools.length, "pool")}, ${count(allocations, "allocation")}\n`);
}

/** `allot import -n NS`: one namespace into a running server. */
export async function importNamespace(cmd: Command, namespace: string, file: string): Promise<void> {
  const { client } = context(cmd);
  let bundle: unknown;
  try {
    bundle = JSON.parse(readInput(file));
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`${file} is not a namespace export (not JSON); make one with allot export -n ${namespace}`);
  }
  const r = await client.request<{ objects: number; pools: number; allocations: number }>("POST", `v1/kubernetes/namespaces/${seg(namespace)}/import`, bundle);
  process.stderr.write(`imported namespace ${namespace}: ${count(r.objects, "object")}, ${count(r.pools, "pool")}, ${count(r.allocations, "allocation")}\n`);
}
