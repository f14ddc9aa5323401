import { z } from "zod";
import "./zod-messages.js";
import { STRATEGIES } from "../engine/types.js";

/**
 * Request and response shapes. They validate input (unknown fields are refused, so a typo is an error
 * rather than silently ignored) and generate the OpenAPI document.
 */
const name = z.string().min(1).max(128).describe("ASCII letters (a-z, A-Z), digits, '.', '_', ':' or '-', starting with a letter or digit");
const addressText = z.string().min(1).max(100).describe("An IPv4 or IPv6 address in any valid text form");
const cidrText = z.string().min(1).max(110).describe("A CIDR prefix such as 10.0.0.0/24 or 2001:db8::/64");
const prefixLength = z.number().int().min(0).max(128);
const dns = z.array(addressText).max(16);
const attributes = z.record(z.string(), z.unknown()).describe("Free-form attributes, returned exactly as given");
const labels = z.record(z.string().max(256), z.string().max(1024)).describe("String labels");

export const SpaceInput = z.strictObject({ name, description: z.string().max(1024).optional() });
export const Space = z.object({ id: z.string(), name: z.string(), description: z.string(), createdAt: z.string() });

export const RangeInput = z
  .strictObject({
    cidr: cidrText.optional(),
    start: addressText.optional(),
    end: addressText.optional(),
    prefixLength: prefixLength.optional().describe("Netmask length handed out with this range's addresses"),
    gateway: addressText.optional(),
    dns: dns.optional(),
  })
  .describe("A CIDR, or start and end inside a prefix of prefixLength");

const Exclusion = z.union([
  z.string().max(230).describe("An address, a CIDR, or first-last"),
  z.strictObject({ start: addressText, end: addressText.optional() }),
]);

const thresholds = z.array(z.number().gt(0).max(100)).max(10).describe("Utilisation percentages whose crossing is recorded in history and exported as a metric, e.g. [80, 95]");
const secretName = z.string().min(1).max(128);
const secretValue = z.string().min(1).max(8192);

export const PoolInput = z.strictObject({
  name,
  space: name.optional().describe("Space the pool belongs to (default: default)"),
  cidr: cidrText.optional().describe("Shorthand for a single range"),
  ranges: z.array(RangeInput).max(1024).optional(),
  exclusions: z.array(Exclusion).max(4096).optional(),
  prefixLength: prefixLength.optional(),
  gateway: addressText.optional(),
  dns: dns.optional(),
  strategy: z.enum(STRATEGIES as [string, ...string[]]).optional().describe("lowest-free (default) or random"),
  allocateReserved: z.boolean().optional().describe("Whether network, broadcast and gateway addresses may be allocated (default false)"),
  description: z.string().max(4096).optional(),
  attributes: attributes.optional(),
  secrets: z.record(secretName, secretValue).optional().describe("Attributes stored encrypted; read APIs show only a hint"),
  thresholds: thresholds.optional(),
  provider: z
    .looseObject({ type: z.string().min(1).max(64), size: z.number().int().min(1) })
    .optional()
    .describe("Obtain the pool's range from an upstream provider: {type: equinix|allot, size, …its parameters}; its token goes in secrets.token"),
});

export const ChildPoolInput = z.strictObject({
  name,
  prefixLength: prefixLength.optional().describe("Carve the first free aligned block of this length"),
  cidr: cidrText.optional().describe("Carve exactly this prefix"),
  gateway: addressText.optional(),
  dns: dns.optional(),
  exclusions: z.array(Exclusion).max(4096).optional(),
  strategy: z.enum(STRATEGIES as [string, ...string[]]).optional(),
  allocateReserved: z.boolean().optional(),
  description: z.string().max(4096).optional(),
  attributes: attributes.optional(),
  secrets: z.record(secretName, secretValue).optional(),
  thresholds: thresholds.optional(),
});

export const PoolPatch = z.strictObject({
  name: name.optional(),
  description: z.string().max(4096).optional(),
  attributes: attributes.optional(),
  strategy: z.enum(STRATEGIES as [string, ...string[]]).optional(),
  secrets: z.record(secretName, secretValue.nullable()).optional().describe("Sets each named secret; null removes it"),
  thresholds: thresholds.optional(),
});

export const Forecast = z.object({
  method: z.string().describe("How the forecast is made"),
  days: z.number().describe("Days of history the line was fitted over"),
  growthPerDay: z.number().nullable().describe("Addresses a day by the fitted line; null with too little history"),
  daysLeft: z.number().nullable().describe("Days until no address is free at that rate; null without a forecast or when not growing"),
  exhaustedAt: z.string().nullable(),
  note: z.string().nullable().describe('"too little history" or "not growing" when there is no date'),
});

export const Usage = z.object({
  total: z.string().describe("Allocatable addresses (decimal string: exact for IPv6)"),
  allocated: z.string(),
  inChildPools: z.string(),
  free: z.string(),
  utilization: z.number().describe("Percent of total that is allocated or in child pools"),
});

export const Pool = z.object({
  id: z.string(),
  name: z.string(),
  space: z.string(),
  family: z.union([z.literal(4), z.literal(6)]),
  parent: z.string().nullable(),
  strategy: z.string(),
  allocateReserved: z.boolean(),
  prefixLength: z.number().nullable(),
  gateway: z.string().nullable(),
  dns: z.array(z.string()),
  ranges: z.array(
    z.object({
      cidr: z.string().optional(),
      start: z.string(),
      end: z.string(),
      prefixLength: z.number(),
      gateway: z.string().nullable(),
      dns: z.array(z.string()),
    }),
  ),
  exclusions: z.array(z.object({ start: z.string(), end: z.string() })),
  description: z.string(),
  attributes,
  secrets: z.record(z.string(), z.string()).describe("Secret names with a hint of each value (its last four characters)"),
  thresholds: z.array(z.number()),
  provider: z
    .object({ type: z.string(), blockId: z.string(), params: z.record(z.string(), z.union([z.string(), z.number()])) })
    .nullable()
    .describe("The upstream block the pool's addresses came from"),
  usage: Usage,
  createdAt: z.string(),
  updatedAt: z.string(),
});

export const AllocateInput = z.strictObject({
  address: addressText.optional().describe("A specific address; otherwise the pool's strategy picks"),
  size: z.number().int().min(1).max(2 ** 32).optional().describe("Contiguous addresses wanted (default 1)"),
  owner: z.string().min(1).max(512).optional().describe("Idempotency key: the same owner always gets the same allocation"),
  mac: z.string().max(32).optional(),
  hostname: z.string().max(253).optional(),
  labels: labels.optional(),
  ttl: z.number().int().describe("Seconds until the allocation is released automatically (positive)").optional(),
  within: z
    .strictObject({ start: addressText, end: addressText })
    .optional()
    .describe("Only an address from start to end (inclusive), picked by the pool's strategy: for callers with their own ordered ranges, such as Neutron's allocation pools"),
});

export const BulkAllocateInput = z.strictObject({
  count: z.number().int().min(1).max(1_000_000).describe("How many separate addresses"),
  contiguous: z.boolean().optional().describe("They must form one run (each still released on its own)"),
  address: addressText.optional().describe("With contiguous: the run starts exactly here"),
  labels: labels.optional(),
  ttl: z.number().int().optional().describe("Seconds until they are released automatically (positive)"),
});

export const AllocationPatch = z.strictObject({
  mac: z.string().max(32).nullable().optional(),
  hostname: z.string().max(253).nullable().optional(),
  labels: labels.optional(),
  ttl: z.number().int().nullable().optional().describe("Seconds from now until release (a renewal); null removes the time-to-live"),
});

export const Allocation = z.object({
  id: z.string(),
  pool: z.string(),
  poolId: z.string(),
  space: z.string(),
  address: z.string(),
  lastAddress: z.string(),
  size: z.number(),
  prefixLength: z.number(),
  gateway: z.string().nullable(),
  dns: z.array(z.string()),
  owner: z.string().nullable(),
  mac: z.string().nullable(),
  hostname: z.string().nullable(),
  labels,
  expiresAt: z.string().nullable(),
  createdAt: z.string(),
  childPool: z.string().optional(),
});

export const LookupResult = z.object({
  address: z.string(),
  space: z.string(),
  pool: z.string(),
  poolId: z.string(),
  state: z.enum(["allocated", "free", "excluded", "reserved"]),
  allocation: Allocation.nullable(),
});

export const HistoryEntry = z.object({
  seq: z.number(),
  at: z.string(),
  actor: z.string(),
  requestId: z.string().nullable(),
  action: z.string(),
  entity: z.string(),
  entityId: z.string(),
  spaceId: z.string().nullable(),
  poolId: z.string().nullable(),
  before: z.unknown(),
  after: z.unknown(),
});

const isoTime = z.string().min(1).max(64).describe("ISO 8601 time, e.g. 2026-11-01T12:00:00Z");

export const HistoryQuery = z.strictObject({
  space: z.string().max(128).optional().describe("Only this space (with address: the space to search, default 'default')"),
  pool: z.string().max(200).optional().describe("Only this pool (by id, or by name within space)"),
  address: z.string().min(1).max(100).optional().describe("Only allocation changes whose run held this address"),
  owner: z.string().min(1).max(512).optional(),
  actor: z.string().min(1).max(256).optional().describe("e.g. token:ci, system:expiry"),
  entity: z.enum(["space", "pool", "allocation", "token", "webhook", "dns-zone"]).optional(),
  from: isoTime.optional(),
  to: isoTime.optional(),
  before: z.coerce.number().int().min(1).optional().describe("Only entries numbered below this seq (the next page)"),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
});

export const Holding = z.object({
  address: z.string(),
  space: z.string(),
  at: z.string(),
  holder: z
    .object({ allocation: z.unknown(), allocatedAt: z.string(), releasedAt: z.string().nullable() })
    .nullable()
    .describe("The allocation live at that moment (as it was made), or null when nobody held the address"),
});

export const Token = z.object({
  id: z.string(),
  name: z.string(),
  scope: z.enum(["read", "write", "admin"]),
  spaces: z.array(z.string()).nullable(),
  hint: z.string(),
  createdAt: z.string(),
  expiresAt: z.string().nullable(),
  revokedAt: z.string().nullable(),
});

export const NewToken = Token.extend({ token: z.string().describe("The secret: shown this once, stored only as a hash") });

export const Webhook = z.object({
  id: z.string(),
  name: z.string(),
  url: z.string(),
  spaces: z.array(z.string()).nullable(),
  secretHint: z.string(),
  delivered: z.number(),
  failures: z.number(),
  lastError: z.string().nullable(),
  createdAt: z.string(),
});

export const NewWebhook = Webhook.extend({ secret: z.string().describe("The signing secret: shown this once") });

export const WebhookInput = z.strictObject({
  name,
  url: z.string().min(1).max(2048).describe("http:// or https:// URL that receives POSTed change events"),
  secret: z.string().min(16).max(512).optional().describe("HMAC-SHA256 signing secret (default: a random one, returned once)"),
  spaces: z.array(name).min(1).max(256).optional().describe("Only changes in these spaces (default: every change)"),
});

export const TokenInput = z.strictObject({
  name,
  scope: z.enum(["read", "write", "admin"]),
  spaces: z.array(name).min(1).max(256).optional().describe("Limit the token to these spaces (default: every space)"),
  expiresAt: isoTime.optional(),
});

export const Problem = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number(),
    detail: z.string(),
    code: z.string(),
    instance: z.string().optional(),
  })
  .catchall(z.unknown())
  .describe("RFC 9457 problem details");

export const PoolParams = z.strictObject({ pool: z.string().min(1).max(200) });

/** The engine's pool reference from a `:pool` path parameter and an optional `?space=`. */
export const poolRef = (p: { pool: string }, q: { space?: string | undefined }) => ({ pool: p.pool, ...(q.space ? { space: q.space } : {}) });
export const SpaceQuery = z.strictObject({ space: name.optional() });
export const items = <T extends z.ZodTypeAny>(t: T) => z.object({ items: z.array(t) });
export const problems = { 400: Problem, 404: Problem, 409: Problem };

const dnsBackendInput = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("rfc2136"),
    server: z.string().min(1).max(300).describe("host:port of the primary server taking updates (port 53 if left out)"),
    keyName: z.string().min(1).max(253).describe("TSIG key name"),
    algorithm: z.string().min(1).max(32).describe("hmac-sha256 (or hmac-sha1, hmac-sha224, hmac-sha384, hmac-sha512)"),
    secret: z.string().min(1).max(1024).describe("TSIG secret, base64 (as tsig-keygen writes it); stored encrypted, never returned"),
  }),
  z.strictObject({
    type: z.literal("powerdns"),
    url: z.string().min(1).max(2048).describe("PowerDNS webserver URL, e.g. http://127.0.0.1:8081"),
    apiKey: z.string().min(1).max(1024).describe("PowerDNS api-key; stored encrypted, never returned"),
    serverId: z.string().min(1).max(64).optional().describe("default localhost"),
  }),
]);

export const DnsZoneInput = z.strictObject({
  name: z.string().min(1).max(255).optional().describe("The zone: a forward zone (example.com) or a reverse zone (2.0.192.in-addr.arpa, 0-25.2.0.192.in-addr.arpa, …ip6.arpa)"),
  prefix: cidrText.optional().describe("Instead of name: the reverse zone of this prefix"),
  space: name.optional().describe("The space whose allocations it follows (default 'default')"),
  pools: z.array(name).min(1).max(256).nullable().optional().describe("Only these pools of the space (default: every pool)"),
  ttl: z.number().int().min(0).max(2147483647).optional().describe("TTL of the records Allot writes (default 300)"),
  backend: dnsBackendInput,
});

export const DnsZonePatch = z.strictObject({
  pools: z.array(name).min(1).max(256).nullable().optional(),
  ttl: z.number().int().min(0).max(2147483647).optional(),
  backend: dnsBackendInput.optional().describe("Replaces the backend (give its credential again)"),
});

export const DnsZone = z.object({
  id: z.string(),
  name: z.string(),
  kind: z.enum(["forward", "reverse"]),
  prefix: z.string().nullable(),
  space: z.string(),
  pools: z.array(z.string()).nullable(),
  ttl: z.number(),
  backend: z.union([
    z.object({ type: z.literal("rfc2136"), server: z.string(), keyName: z.string(), algorithm: z.string(), secretHint: z.string() }),
    z.object({ type: z.literal("powerdns"), url: z.string(), serverId: z.string(), apiKeyHint: z.string() }),
  ]),
  published: z.number().describe("Record changes sent so far"),
  pending: z.number().describe("Changes waiting to be published"),
  failures: z.number().describe("Failed attempts since the last success"),
  lastError: z.string().nullable(),
  conflicts: z.number().describe("Names Allot left alone because records it did not write hold them"),
  createdAt: z.string(),
});

export const DnsConflict = z.object({
  zone: z.string(),
  name: z.string(),
  type: z.string(),
  wanted: z.string(),
  found: z.array(z.string()),
  allocationId: z.string(),
  at: z.string(),
});

const DnsDrift = z.object({ name: z.string(), type: z.string(), wanted: z.string().nullable(), found: z.array(z.string()), allocationId: z.string().nullable() });

export const DnsCheckReport = z.object({
  zone: z.string(),
  missing: z.array(DnsDrift),
  stale: z.array(DnsDrift),
  foreign: z.array(DnsDrift),
  fixed: z.number().nullable(),
});
