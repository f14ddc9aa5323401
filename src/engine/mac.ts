import { AllotError } from "./errors.js";

/**
 * Normalises a 48-bit MAC written as aa:bb:cc:dd:ee:ff, AA-BB-CC-DD-EE-FF or aabb.ccdd.eeff
 * to lower-case colon form, so one NIC is one key however a platform writes it.
 */
export function normalizeMac(text: string): string {
  const hex = text.trim().toLowerCase();
  const m =
    /^([0-9a-f]{2})([:-])([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})$/.exec(hex) ??
    /^([0-9a-f]{2})([0-9a-f]{2})\.([0-9a-f]{2})([0-9a-f]{2})\.([0-9a-f]{2})([0-9a-f]{2})$/.exec(hex) ??
    /^([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/.exec(hex);
  if (!m) throw new AllotError("invalid-address", `mac: "${text}" is not a MAC address (write it as aa:bb:cc:dd:ee:ff)`);
  const groups = m.slice(1).filter((g) => g !== ":" && g !== "-");
  return groups.join(":");
}
