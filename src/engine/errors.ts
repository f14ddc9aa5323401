/**
 * The one catalogue of errors the engine raises. Each has a stable code (used as the problem type
 * `urn:allot:problem:<code>` in HTTP answers and shown by the CLI), an HTTP status and a title.
 * Adapters map these once, in one place each; messages are written for the person reading them.
 */
export const ERRORS = {
  "invalid-request": { status: 400, title: "The request is malformed or has invalid values" },
  "unsupported-media-type": { status: 415, title: "The request body is not JSON" },
  "invalid-address": { status: 400, title: "An address, prefix or MAC is not valid" },
  "invalid-range": { status: 400, title: "A range, exclusion or gateway does not fit its prefix or pool" },
  "space-not-found": { status: 404, title: "No such space" },
  "pool-not-found": { status: 404, title: "No such pool" },
  "allocation-not-found": { status: 404, title: "No such allocation" },
  "not-found": { status: 404, title: "No such resource" },
  "token-not-found": { status: 404, title: "No such token" },
  "webhook-not-found": { status: 404, title: "No such webhook" },
  "dns-zone-not-found": { status: 404, title: "No such DNS zone is configured" },
  "unauthorized": { status: 401, title: "A valid API token is required" },
  "forbidden": { status: 403, title: "The token's scope or spaces do not allow this" },
  "rate-limited": { status: 429, title: "Too many requests for this token; slow down" },
  "payload-too-large": { status: 413, title: "The request body is larger than the server accepts" },
  "token-exists": { status: 409, title: "A token with this name already exists" },
  "webhook-exists": { status: 409, title: "A webhook with this name already exists" },
  "dns-zone-exists": { status: 409, title: "A DNS zone with this name is already configured" },
  "space-exists": { status: 409, title: "A space with this name already exists" },
  "space-in-use": { status: 409, title: "The space still holds pools" },
  "pool-exists": { status: 409, title: "A pool with this name already exists in the space" },
  "pool-overlap": { status: 409, title: "The pool overlaps another pool in its space" },
  "pool-in-use": { status: 409, title: "The pool still holds allocations or child pools" },
  "pool-exhausted": { status: 409, title: "The pool has no free address left" },
  "block-unavailable": { status: 409, title: "No free run of the requested size exists" },
  "address-unavailable": { status: 409, title: "The requested address is held, excluded or reserved" },
  "address-outside-pool": { status: 409, title: "The requested address is not in the pool" },
  "owner-conflict": { status: 409, title: "The owner already holds a different allocation in this pool" },
  "conflict": { status: 409, title: "The change conflicts with the current state; retry" },
  "provider-failed": { status: 502, title: "The upstream provider refused, failed or could not be reached" },
  "dns-failed": { status: 502, title: "The zone's DNS server refused, failed or could not be reached" },
  "secrets-unavailable": { status: 503, title: "The key that encrypts secrets is missing or differs from the one they were stored with" },
  "store-unavailable": { status: 503, title: "The database cannot be reached or written just now; nothing was changed" },
  "internal": { status: 500, title: "Internal error" },
} as const;

export type ErrorCode = keyof typeof ERRORS;

/** An error a client can act on. `details` are machine-readable extras (the holder of an address, say). */
export class AllotError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.status = ERRORS[code].status;
  }
}

export const problemType = (code: ErrorCode): string => `urn:allot:problem:${code}`;
