/**
 * Validation messages in a user's terms: what is allowed, not the validator's vocabulary ("Too small:
 * expected number to be >=1" becomes "must be at least 1"). Installed once, for every schema.
 */
import { z } from "zod";
import type { $ZodRawIssue } from "zod/v4/core";

type Issue = $ZodRawIssue;

/** What was sent instead: a short scalar as itself, anything else by its kind. */
const kindOf = (v: unknown) =>
  v === null ? "null" : Array.isArray(v) ? "a list" : typeof v === "object" ? "an object" : (typeof v === "number" || typeof v === "boolean" || (typeof v === "string" && v.length <= 40)) ? JSON.stringify(v) : typeof v === "string" ? "text" : typeof v;
const article = (t: string) => (t === "array" ? "a list" : t === "object" ? "an object" : t === "string" ? "text" : /^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`);

function bound(iss: { origin?: string; inclusive?: boolean }, n: unknown, least: boolean): string {
  const word = least ? (iss.inclusive === false ? "more than" : "at least") : iss.inclusive === false ? "less than" : "at most";
  switch (iss.origin) {
    case "string":
      return least && n === 1 ? "must not be empty" : `must have ${word} ${n} characters`;
    case "array":
    case "set":
      return least && n === 1 ? "must hold at least one item" : `must hold ${word} ${n} items`;
    default:
      return `must be ${word} ${n}`;
  }
}

export function message(iss: Issue): string | undefined {
  switch (iss.code) {
    case "too_small":
      return bound(iss, iss.minimum, true);
    case "too_big":
      return bound(iss, iss.maximum, false);
    case "invalid_type":
      if (iss.input === undefined) return "is required";
      return `must be ${iss.expected === "int" ? "a whole number" : article(iss.expected)}, not ${kindOf(iss.input)}`;
    case "invalid_value":
      return `must be ${iss.values.length === 1 ? JSON.stringify(iss.values[0]) : `one of ${iss.values.map((v: unknown) => JSON.stringify(v)).join(", ")}`}`;
    case "unrecognized_keys":
      return `has ${iss.keys.length === 1 ? "a field" : "fields"} it does not know: ${iss.keys.join(", ")} (check the spelling; /openapi.json lists the fields)`;
    case "not_multiple_of":
      return `must be a multiple of ${iss.divisor}`;
    default:
      return undefined; // the schema's own message (regexes and refinements say what they want)
  }
}

z.config({ customError: message });
