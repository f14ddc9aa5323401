/**
 * OpenNebula's side of the IPAM driver protocol, as oned really speaks it (not as its docs say): the
 * request is base64 of `<IPAM_DRIVER_ACTION_DATA><AR>…</AR><ADDRESS>…</ADDRESS></IPAM_DRIVER_ACTION_DATA>`
 * with AR values in CDATA; replies are OpenNebula template text (`AR = [ KEY = "value", … ]`), read
 * by oned's template parser; a failure is a non-zero exit with the reason on stderr.
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

const parser = new XMLParser({ ignoreAttributes: true, parseTagValue: false, trimValues: true, processEntities: true });

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

/** `NAME = [ K = "v", … ]` with values quoted as oned's template grammar reads them. */
export function renderVector(name: string, values: Record<string, string>): string {
  const body = Object.entries(values)
    .map(([k, v]) => `  ${k} = "${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, " ")}"`)
    .join(",\n");
  return `${name} = [\n${body} ]\n`;
}

/**
 * What oned does with stderr on failure: lines that look like its own log lines (ERROR:, INFO:…) are
 * logged and dropped from the message. A reason must therefore not start with one of those words.
 */
export const ONED_LOG_LINE = /^(ERROR|INFO|WARN|DEBUG):\s+(\d+)?\s*(.*)$/;
