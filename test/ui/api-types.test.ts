import assert from "node:assert/strict";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { tempApp } from "../helpers.js";

/**
 * The web UI declares its own JSON types (it is built apart from the server). Each `api<T>(method, path)`
 * call in src/ui/app.ts is checked against the OpenAPI document the server publishes: every field T
 * reads must be in that route's answer, present whenever T says it always is, and of the same kind.
 * A field renamed or dropped on the server side fails here, not in a browser.
 */

type Schema = { type?: string | string[]; properties?: Record<string, Schema>; required?: string[]; items?: Schema; anyOf?: Schema[]; oneOf?: Schema[]; $ref?: string; enum?: unknown[]; const?: unknown };
interface Doc {
  paths: Record<string, Record<string, { responses?: Record<string, { content?: Record<string, { schema?: Schema }> }> }>>;
  components?: { schemas?: Record<string, Schema> };
}

const UI = fileURLToPath(new URL("../../src/ui/app.ts", import.meta.url));

/** Every api<T>(method, path) call: T, the method, and the path as an OpenAPI template (`${…}` as a parameter, no query). */
function uiCalls(): { checker: ts.TypeChecker; calls: { type: ts.Type; method: string; path: string; line: number }[] } {
  const program = ts.createProgram([UI], { strict: true, target: ts.ScriptTarget.ES2022, lib: ["lib.es2022.d.ts", "lib.dom.d.ts"], noEmit: true });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(UI)!;
  const calls: { type: ts.Type; method: string; path: string; line: number }[] = [];
  const visit = (n: ts.Node): void => {
    if (ts.isCallExpression(n) && ts.isIdentifier(n.expression) && n.expression.text === "api" && n.typeArguments?.length === 1) {
      const [m, p] = n.arguments;
      const path = p && (ts.isStringLiteral(p) || ts.isNoSubstitutionTemplateLiteral(p)) ? p.text
        : p && ts.isTemplateExpression(p) ? p.head.text + p.templateSpans.map((s) => `{}${s.literal.text}`).join("")
        : null;
      if (m && ts.isStringLiteral(m) && path !== null) {
        calls.push({ type: checker.getTypeFromTypeNode(n.typeArguments[0]!), method: m.text.toLowerCase(), path: path.split("?")[0]!, line: source.getLineAndCharacterOfPosition(n.getStart()).line + 1 });
      }
    }
    ts.forEachChild(n, visit);
  };
  visit(source);
  return { checker, calls };
}

function routeOf(doc: Doc, path: string): string | undefined {
  const segments = path.split("/");
  return Object.keys(doc.paths).find((p) => {
    const s = p.split("/");
    return s.length === segments.length && s.every((x, i) => x === segments[i] || (x.startsWith("{") && segments[i]!.includes("{}")) || (x.startsWith("{") && segments[i] === "{}"));
  });
}

/** The JSON kinds a schema admits ("string", "number", "object", "array", "null", "boolean"). */
function kinds(doc: Doc, s: Schema): Set<string> {
  const r = resolve(doc, s);
  const out = new Set<string>();
  for (const t of [r.type ?? []].flat()) out.add(t === "integer" ? "number" : t);
  for (const sub of [...(r.anyOf ?? []), ...(r.oneOf ?? [])]) for (const k of kinds(doc, sub)) out.add(k);
  if (r.properties) out.add("object");
  if (r.items) out.add("array");
  if (r.const !== undefined || r.enum) for (const v of [r.const, ...(r.enum ?? [])]) if (v !== undefined) out.add(v === null ? "null" : typeof v);
  return out;
}

function resolve(doc: Doc, s: Schema): Schema {
  if (!s.$ref) return s;
  return resolve(doc, doc.components!.schemas![s.$ref.replace("#/components/schemas/", "")]!);
}

/** The object variant of a schema (a nullable object is anyOf object | null). */
function objectOf(doc: Doc, s: Schema): Schema | undefined {
  const r = resolve(doc, s);
  if (r.properties) return r;
  for (const sub of [...(r.anyOf ?? []), ...(r.oneOf ?? [])]) {
    const o = objectOf(doc, sub);
    if (o) return o;
  }
  return undefined;
}

function arrayItems(doc: Doc, s: Schema): Schema | undefined {
  const r = resolve(doc, s);
  if (r.items) return r.items;
  for (const sub of [...(r.anyOf ?? []), ...(r.oneOf ?? [])]) {
    const i = arrayItems(doc, sub);
    if (i) return i;
  }
  return undefined;
}

/** The JSON kinds a TypeScript type admits, and its object / array parts. */
function tsKinds(checker: ts.TypeChecker, t: ts.Type): Set<string> {
  const out = new Set<string>();
  for (const u of t.isUnion() ? t.types : [t]) {
    if (u.flags & (ts.TypeFlags.StringLike)) out.add("string");
    else if (u.flags & ts.TypeFlags.NumberLike) out.add("number");
    else if (u.flags & ts.TypeFlags.BooleanLike) out.add("boolean");
    else if (u.flags & ts.TypeFlags.Null) out.add("null");
    else if (u.flags & ts.TypeFlags.Undefined) continue;
    else if (checker.isArrayType(u)) out.add("array");
    else if (u.flags & ts.TypeFlags.Object) out.add("object");
  }
  return out;
}

function compare(doc: Doc, checker: ts.TypeChecker, t: ts.Type, s: Schema, where: string, problems: string[]): void {
  const want = tsKinds(checker, t);
  const have = kinds(doc, s);
  // an open schema (no type given: anything) satisfies any reading
  if (have.size > 0) for (const k of want) if (!have.has(k) && !(k === "object" && have.has("null") && want.has("null"))) problems.push(`${where}: the UI reads ${[...want].join(" | ")}, the API answers ${[...have].join(" | ")}`);
  for (const u of t.isUnion() ? t.types : [t]) {
    if (checker.isArrayType(u)) {
      const items = arrayItems(doc, s);
      const elem = checker.getTypeArguments(u as ts.TypeReference)[0];
      if (items && elem) compare(doc, checker, elem, items, `${where}[]`, problems);
    } else if (u.flags & ts.TypeFlags.Object && !checker.isArrayType(u)) {
      const obj = objectOf(doc, s);
      if (!obj) continue;
      if (checker.getIndexInfosOfType(u).length > 0) continue; // a record: any keys
      for (const prop of checker.getPropertiesOfType(u)) {
        const schema = obj.properties?.[prop.name];
        const at = `${where}.${prop.name}`;
        if (!schema) {
          problems.push(`${at}: the UI reads it; the API's answer has no such field`);
          continue;
        }
        const optional = (prop.flags & ts.SymbolFlags.Optional) !== 0;
        if (!optional && !(obj.required ?? []).includes(prop.name)) problems.push(`${at}: the UI expects it always; the API may leave it out`);
        compare(doc, checker, checker.getTypeOfSymbol(prop), schema, at, problems);
      }
    }
  }
}

test("the web UI's JSON types match the OpenAPI document, field by field, for every call it makes", async () => {
  const env = await tempApp();
  try {
    const doc = (await env.inject({ method: "GET", url: "/openapi.json" })).json() as Doc;
    const { checker, calls } = uiCalls();
    assert.ok(calls.length >= 10, `found only ${calls.length} api<T>() calls in the UI`);
    const problems: string[] = [];
    for (const c of calls) {
      const route = routeOf(doc, c.path);
      const op = route ? doc.paths[route]![c.method] : undefined;
      if (!op) {
        problems.push(`app.ts:${c.line}: ${c.method.toUpperCase()} ${c.path} is not in the OpenAPI document`);
        continue;
      }
      const answer = op.responses?.["200"] ?? op.responses?.["201"];
      const schema = answer?.content?.["application/json"]?.schema;
      if (!schema) {
        problems.push(`app.ts:${c.line}: ${c.method.toUpperCase()} ${route} documents no JSON answer`);
        continue;
      }
      compare(doc, checker, c.type, schema, `app.ts:${c.line} ${c.method.toUpperCase()} ${route}`, problems);
    }
    assert.deepEqual(problems, []);
  } finally {
    await env.cleanup();
  }
});

test("the check finds a field the API does not answer", async () => {
  // the same comparison against a schema without `hostname`: it must complain
  const { calls, checker: uiChecker } = uiCalls();
  const env = await tempApp();
  try {
    const doc = (await env.inject({ method: "GET", url: "/openapi.json" })).json() as Doc;
    const call = calls.find((c) => c.method === "get" && c.path.startsWith("/v1/pools/{}/allocations"))!;
    const route = routeOf(doc, call.path)!;
    const schema = structuredClone(doc.paths[route]!.get!.responses!["200"]!.content!["application/json"]!.schema!);
    const item = resolve(doc, arrayItems(doc, objectOf(doc, schema)!.properties!.items!)!);
    delete item.properties!.hostname;
    const problems: string[] = [];
    compare(doc, uiChecker, call.type, schema, "mutated", problems);
    assert.ok(problems.some((p) => p.includes("hostname")), problems.join("\n"));
  } finally {
    await env.cleanup();
  }
});
