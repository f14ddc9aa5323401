/** What a zone's DNS server must do for Allot, whatever protocol it speaks. */
import type { Rr, RrsetChange } from "./wire.js";

export interface RrKey {
  name: string;
  type: "A" | "AAAA" | "PTR";
}

export interface DnsBackend {
  /** Sets each RRset to exactly its records (none: deleted), as one message or request where it can. */
  apply(changes: readonly RrsetChange[]): Promise<void>;
  /** The records the server has now for each name and type, keyed "name TYPE". */
  lookup(keys: readonly RrKey[]): Promise<Map<string, string[]>>;
  /** Every record of the zone (SOA left out). */
  list(): Promise<Rr[]>;
}
