/**
 * OpenNebula's side of the IPAM driver protocol, as oned really speaks it (not as its docs say): the
 * request is base64 of `<IPAM_DRIVER_ACTION_DATA><AR>…</AR><ADDRESS>…</ADDRESS></IPAM_DRIVER_ACTION_DATA>`
 * with AR values in CDATA; replies are OpenNebula template text (`AR = [ KEY = "value", … ]`) or, for
 * values that text cannot carry, XML, read by oned's template parser; a failure is a non-zero exit with
 * the reason on stderr.
 */
import { XMLParser, XMLValidator } from "fast-xml-parser";

export class DriverError extends Error {}

export interface ActionData {
  /** The address range's attributes, keys upper-case as oned writes them. */
  ar: Record<string, string>;
  /** The ADDRESS part (SIZE, IP, MAC…); empty elements are left out. */
  address: Record<string, string>;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Strict base64 (Node's decoder skips junk silently, which would hide a truncated message). */
export function decodeBase64(text: string): string {
  const t = text.trim();
  if (t === "") throw new DriverError("no request on stdin (oned sends the action's data there as base64)");
  if (!BASE64.test(t) || t.length % 4 !== 0) throw new DriverError("the request on stdin is not valid base64 (truncated or altered?)");
  return Buffer.from(t, "base64").toString("utf8");
}

// values are kept exactly as oned sent them (blanks included): they go back to oned in the register reply
const parser = new XMLParser({ ignoreAttributes: true, parseTagValue: false, trimValues: false, processEntities: true });

export function parseActionData(xml: string): ActionData {
  const valid = XMLValidator.validate(xml);
  if (valid !== true) throw new DriverError(`the request is not well-formed XML: ${valid.err.msg} (line ${valid.err.line})`);
  const doc = parser.parse(xml) as Record<string, unknown>;
  const root = doc.IPAM_DRIVER_ACTION_DATA as Record<string, unknown> | undefined;
  if (!root || typeof root !== "object") throw new DriverError("the request has no IPAM_DRIVER_ACTION_DATA element");
  return { ar: flat(root.AR, "AR"), address: flat(root.ADDRESS, "ADDRESS") };
}

function flat(node: unknown, what: string): Record<string, string> {
  if (node === undefined || node === "") return {};
  if (typeof node !== "object" || node === null || Array.isArray(node)) throw new DriverError(`the request's ${what} element is malformed`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(node)) {
    if (typeof v === "string" || typeof v === "number") {
      if (String(v) !== "") out[k.toUpperCase()] = String(v);
    } else if (Array.isArray(v)) throw new DriverError(`the request's ${what} has ${k} more than once`);
    // nested elements (none in oned's ARs) are ignored
  }
  return out;
}

/**
 * Whether oned's template text carries this attribute exactly. oned's lexer reads a quoted value up to
 * the next `"` not preceded by `\\`, and its grammar then turns each `\\"` into `"`, nothing else: so
 * quotes are escaped and backslashes written as they are. That fails for a value ending in a backslash
 * (its closing quote would read as escaped) and for `]]>` (the lexer aborts the whole template on it),
 * and leaves line breaks and surrounding blanks to chance.
 */
function plainTextCarries(key: string, value: string): boolean {
  return /^[A-Za-z0-9_]+$/.test(key) && !value.endsWith("\\") && !value.includes("]]>") && !/[\r\n]/.test(value) && value === value.trim();
}

// XML 1.0 cannot carry these at all, escaped or not
const NOT_XML = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/;
const xmlText = (v: string) => v.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/\r/g, "&#13;");

/**
 * Refuses attributes that no reply can give back to oned exactly (checked before anything is made): XML
 * cannot carry a control character, and oned's text parser cuts a value at a NUL, so the rule does not
 * depend on which form the other attributes need.
 */
export function assertRepliable(values: Record<string, string>): void {
  for (const [k, v] of Object.entries(values)) {
    if (NOT_XML.test(v)) throw new DriverError(`${k} holds a control character that oned cannot be given back; remove it from the address range`);
  }
}

/**
 * A reply vector `NAME = [ K = "v", … ]` that oned reads back exactly. oned parses a reply that starts
 * with `<` as XML instead (the root's child elements are the attributes), which carries any value; the
 * readable template text is used whenever it can carry every value, XML otherwise. A value XML cannot
 * carry either (a control character) is refused with the attribute's name.
 */
export function renderVector(name: string, values: Record<string, string>): string {
  assertRepliable(values);
  const entries = Object.entries(values);
  if (entries.every(([k, v]) => plainTextCarries(k, v))) {
    return `${name} = [\n${entries.map(([k, v]) => `  ${k} = "${v.replace(/"/g, '\\"')}"`).join(",\n")} ]\n`;
  }
  // no blanks between elements, and escaped text rather than CDATA: oned reads only an element's first
  // text or CDATA node, so a value must be one node
  return `<TEMPLATE><${name}>${entries.map(([k, v]) => `<${k}>${xmlText(v)}</${k}>`).join("")}</${name}></TEMPLATE>\n`;
}

/**
 * What oned does with stderr on failure: lines that look like its own log lines (ERROR:, INFO:…) are
 * logged and dropped from the message. A reason must therefore not start with one of those words.
 */
export const ONED_LOG_LINE = /^(ERROR|INFO|WARN|DEBUG):\s+(\d+)?\s*(.*)$/;
