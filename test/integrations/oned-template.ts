/**
 * oned's reading of a driver's reply, rule for rule (`Template::parse_str_or_xml`): a reply whose first
 * byte is `<` is XML, whose root's child elements are the attributes; anything else goes through the
 * template lexer (`template_parser.l`, flex: longest match, the earlier rule on a tie) and grammar
 * (`template_syntax.y`). The test harness reads replies only through this, so a reply oned would misread
 * fails here too.
 */
import { XMLParser, XMLValidator } from "fast-xml-parser";

export class TemplateError extends Error {}

type Token = { t: "VARIABLE" | "STRING"; v: string } | { t: "EQUAL" | "EQUAL_EMPTY" | "COMMA" | "OBRACKET" | "CBRACKET" | "CCDATA" };

const BLANK = "[ \\t]";
/** Anchored at the current position, as flex matches. */
const at = (re: string) => new RegExp(re, "y");
const INITIAL_RULES: [RegExp, (m: string) => Token | null, boolean?][] = [
  [at(`${BLANK}*#.*\\n`), () => null],
  [at(`[ \\t\\n]+`), () => null],
  [at(`[A-Za-z0-9_]+`), (m) => ({ t: "VARIABLE", v: m })],
  [at(`${BLANK}*=${BLANK}*`), () => ({ t: "EQUAL" }), true],
  [at(`${BLANK}*=${BLANK}*\\n`), () => ({ t: "EQUAL_EMPTY" })],
  [at(`[ \\t\\n]*,[ \\t\\n]*`), () => ({ t: "COMMA" })],
  [at(`[ \\t\\n]*\\][ \\t\\n]*`), () => ({ t: "CBRACKET" })],
];

/** The longest match of `\"([^\"]|\\\")*\"` at `i`: a quote not preceded by a backslash must close it. */
function quoted(s: string, i: number): string | null {
  if (s[i] !== '"') return null;
  let end = -1;
  for (let j = i + 1; j < s.length; j++) {
    if (s[j] !== '"') continue;
    end = j;
    if (s[j - 1] !== "\\") break; // a bare quote ends the token; an escaped one may or may not
  }
  return end === -1 ? null : s.slice(i, end + 1);
}

function lex(s: string): Token[] {
  const out: Token[] = [];
  let value = false;
  for (let i = 0; i < s.length; ) {
    const candidates: [string, Token | null, boolean][] = [];
    if (!value) {
      for (const [re, make, toValue] of INITIAL_RULES) {
        re.lastIndex = i;
        const m = re.exec(s);
        if (m && m[0].length > 0) candidates.push([m[0], make(m[0]), toValue ?? false]);
      }
    } else {
      const ob = at(`${BLANK}*\\[[ \\t\\n]*`);
      ob.lastIndex = i;
      const o = ob.exec(s);
      if (o) candidates.push([o[0], { t: "OBRACKET" }, false]);
      const line = s.slice(i, s.indexOf("\n", i) === -1 ? s.length : s.indexOf("\n", i));
      if (line.includes("]]>")) candidates.push([line, { t: "CCDATA" }, false]);
      const q = quoted(s, i);
      if (q !== null) candidates.push([q, { t: "STRING", v: q.slice(1, -1) }, false]);
      const bare = at(`[^=#[ \\t\\n,\\[\\]]+`);
      bare.lastIndex = i;
      const b = bare.exec(s);
      if (b) candidates.push([b[0], { t: "STRING", v: b[0] }, false]);
    }
    // longest wins; on a tie the earlier rule (candidates are in rule order)
    const best = candidates.reduce<[string, Token | null, boolean] | null>((a, c) => (a === null || c[0].length > a[0].length ? c : a), null);
    if (best === null) throw new TemplateError(`oned's lexer matches nothing at ${JSON.stringify(s.slice(i, i + 20))}`);
    if (best[1]) out.push(best[1]);
    value = best[2];
    i += best[0].length;
  }
  return out;
}

/** `unescape` in template_syntax.y: each `\"` becomes `"`, and nothing else changes. */
const unescape = (v: string) => v.replace(/\\"/g, '"');

/** The vector attributes of a template text, in order (keys upper-cased, the first of a repeated key kept). */
function parseText(text: string): { name: string; values: Record<string, string> | string }[] {
  const toks = lex(text);
  const attrs: { name: string; values: Record<string, string> | string }[] = [];
  let k = 0;
  const expect = (t: Token["t"]) => {
    const tok = toks[k++];
    if (tok?.t !== t) throw new TemplateError(`syntax error: expected ${t}, got ${tok?.t ?? "end of input"}`);
    return tok;
  };
  while (k < toks.length) {
    const name = (expect("VARIABLE") as { v: string }).v;
    const eq = toks[k++];
    if (eq?.t === "EQUAL_EMPTY") {
      attrs.push({ name, values: "" });
      continue;
    }
    if (eq?.t !== "EQUAL") throw new TemplateError(`syntax error after ${name}`);
    const next = toks[k++];
    if (next?.t === "STRING") attrs.push({ name, values: unescape(next.v) });
    else if (next?.t === "OBRACKET") {
      const values: Record<string, string> = {};
      if (toks[k]?.t === "CBRACKET") k++;
      else {
        for (;;) {
          const key = (expect("VARIABLE") as { v: string }).v.toUpperCase();
          expect("EQUAL");
          const v = unescape((expect("STRING") as { v: string }).v);
          if (!(key in values)) values[key] = v;
          const sep = toks[k++];
          if (sep?.t === "CBRACKET") break;
          if (sep?.t !== "COMMA") throw new TemplateError(`syntax error in ${name}: expected , or ], got ${sep?.t ?? "end of input"}`);
        }
      }
      attrs.push({ name, values });
    } else throw new TemplateError(`syntax error: ${name} = ${next?.t ?? "end of input"}`);
  }
  return attrs;
}

type XmlNode = Record<string, unknown>;
const xml = new XMLParser({ preserveOrder: true, ignoreAttributes: true, parseTagValue: false, trimValues: false, processEntities: true, htmlEntities: true, cdataPropName: "#cdata" });
const nameOf = (n: XmlNode) => Object.keys(n).find((k) => k !== ":@")!;
/** A text or CDATA node's content, or null (libxml2's XML_TEXT_NODE / XML_CDATA_SECTION_NODE). */
function textOf(n: XmlNode | undefined): string | null {
  if (!n) return null;
  if ("#text" in n) return String(n["#text"]);
  if ("#cdata" in n) return ((n["#cdata"] as XmlNode[])[0]?.["#text"] as string | undefined) ?? "";
  return null;
}

/** `Template::from_xml`: single attributes are elements with one text child; vectors take each child element's first text node. */
function parseXml(text: string): { name: string; values: Record<string, string> | string }[] {
  if (XMLValidator.validate(text) !== true) throw new TemplateError("Parse error: XML Template malformed.");
  const doc = xml.parse(text) as XmlNode[];
  const root = doc.find((n) => !("#text" in n) && !("?xml" in n));
  if (!root) throw new TemplateError("Parse error: XML Template malformed.");
  const attrs: { name: string; values: Record<string, string> | string }[] = [];
  for (const el of root[nameOf(root)] as XmlNode[]) {
    if (textOf(el) !== null) continue; // text between the root's elements
    const children = el[nameOf(el)] as XmlNode[];
    const single = children.length === 1 ? textOf(children[0]) : null;
    if (single !== null) {
      attrs.push({ name: nameOf(el), values: single });
      continue;
    }
    if (!children.some((c) => textOf(c) === null)) continue; // no element child: not an attribute at all
    const values: Record<string, string> = {};
    for (const c of children) {
      if (textOf(c) !== null) continue;
      const v = textOf((c[nameOf(c)] as XmlNode[])[0]);
      if (v !== null) values[nameOf(c)] = v; // VectorAttribute::replace: the last wins
    }
    attrs.push({ name: nameOf(el), values });
  }
  return attrs;
}

/** The first vector attribute `name` of a reply as oned reads it, or null when there is none. Throws oned's parse error. */
export function readReply(text: string, name: string): Record<string, string> | null {
  const attrs = text.startsWith("<") ? parseXml(text) : parseText(text);
  const found = attrs.find((a) => a.name.toUpperCase() === name && typeof a.values === "object");
  return (found?.values as Record<string, string> | undefined) ?? null;
}
