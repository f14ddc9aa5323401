/**
 * The schema both stores share: the same tables, keys and indexes, written once and given each
 * store's words for bytes, 64-bit integers and an auto-numbered key. The engine's queries run on both
 * unchanged, so each column reads back the same way in both (address keys as 16-byte big-endian
 * bytes, JSON and 128-bit counts as text, times in milliseconds and sequence numbers as integers).
 * Each backend adds its own triggers around the OVERLAP conditions below.
 */
export interface Dialect {
  bytes: string;
  bigint: string;
  serial: string;
}

/** Version 1: spaces, pools, ranges, exclusions, allocations, the free-space index, history. */
export function tablesV1(d: Dialect): string {
  return `
  CREATE TABLE spaces (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL
  );

  CREATE TABLE pools (
    id                TEXT PRIMARY KEY,
    space_id          TEXT NOT NULL REFERENCES spaces(id),
    name              TEXT NOT NULL,
    family            INTEGER NOT NULL CHECK (family IN (4, 6)),
    parent_id         TEXT REFERENCES pools(id),
    strategy          TEXT NOT NULL,
    allocate_reserved INTEGER NOT NULL,
    prefix_length     INTEGER,
    gateway           TEXT,
    dns               TEXT NOT NULL DEFAULT '[]',
    description       TEXT NOT NULL DEFAULT '',
    attributes        TEXT NOT NULL DEFAULT '{}',
    -- counts are decimal text: an IPv6 pool holds up to 2^128 addresses
    total             TEXT NOT NULL,
    allocated         TEXT NOT NULL DEFAULT '0',
    carved            TEXT NOT NULL DEFAULT '0',
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    UNIQUE (space_id, name)
  );
  CREATE INDEX pools_parent ON pools(parent_id);

  CREATE TABLE pool_ranges (
    pool_id       TEXT NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    space_id      TEXT NOT NULL,
    family        INTEGER NOT NULL,
    top_level     INTEGER NOT NULL,
    first         ${d.bytes} NOT NULL,
    last          ${d.bytes} NOT NULL CHECK (last >= first),
    prefix_length INTEGER NOT NULL,
    gateway       TEXT,
    dns           TEXT,
    PRIMARY KEY (pool_id, seq)
  );
  CREATE INDEX pool_ranges_space ON pool_ranges(space_id, family, top_level, first);

  CREATE TABLE exclusions (
    pool_id TEXT NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
    first   ${d.bytes} NOT NULL,
    last    ${d.bytes} NOT NULL CHECK (last >= first),
    PRIMARY KEY (pool_id, first)
  );

  CREATE TABLE allocations (
    id            TEXT PRIMARY KEY,
    pool_id       TEXT NOT NULL REFERENCES pools(id),
    space_id      TEXT NOT NULL,
    family        INTEGER NOT NULL,
    first         ${d.bytes} NOT NULL,
    last          ${d.bytes} NOT NULL CHECK (last >= first),
    size          TEXT NOT NULL, -- decimal: a carved IPv6 child can span 2^64 and more
    -- set when this run of the pool was carved out as a child pool rather than handed to a holder
    child_pool_id TEXT,
    owner         TEXT,
    mac           TEXT,
    hostname      TEXT,
    labels        TEXT NOT NULL DEFAULT '{}',
    expires_at    ${d.bigint},
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
  );
  CREATE UNIQUE INDEX allocations_first ON allocations(pool_id, first);
  -- An address is held once per space: the first address of every holder's run is unique in its space.
  CREATE UNIQUE INDEX allocations_space_first ON allocations(space_id, family, first) WHERE child_pool_id IS NULL;
  CREATE UNIQUE INDEX allocations_owner ON allocations(pool_id, owner) WHERE owner IS NOT NULL;
  -- Only allocations with a time-to-live are indexed: the global sweep reads the first, the sweep
  -- before each allocation in a pool reads the second, so neither walks a pool's other rows.
  CREATE INDEX allocations_expiry ON allocations(expires_at) WHERE expires_at IS NOT NULL;
  CREATE INDEX allocations_pool_expiry ON allocations(pool_id, expires_at) WHERE expires_at IS NOT NULL;
  CREATE INDEX allocations_mac ON allocations(mac, pool_id) WHERE mac IS NOT NULL;
  CREATE INDEX allocations_hostname ON allocations(hostname, pool_id) WHERE hostname IS NOT NULL;
  CREATE INDEX allocations_space_owner ON allocations(space_id, owner) WHERE owner IS NOT NULL;
  CREATE INDEX allocations_child ON allocations(child_pool_id) WHERE child_pool_id IS NOT NULL;

  -- The free-space index: maximal runs of allocatable addresses. Lowest-free and specific requests are
  -- one index seek; size_class (floor(log2(size))) lets a block request skip runs that are too small.
  CREATE TABLE free_runs (
    pool_id    TEXT NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
    first      ${d.bytes} NOT NULL,
    last       ${d.bytes} NOT NULL CHECK (last >= first),
    size_class INTEGER NOT NULL,
    PRIMARY KEY (pool_id, first)
  );
  CREATE INDEX free_runs_class ON free_runs(pool_id, size_class, first);

  CREATE TABLE history (
    seq        ${d.serial},
    at         TEXT NOT NULL,
    actor      TEXT NOT NULL,
    request_id TEXT,
    action     TEXT NOT NULL,
    entity     TEXT NOT NULL,
    entity_id  TEXT NOT NULL,
    space_id   TEXT,
    pool_id    TEXT,
    before     TEXT,
    after      TEXT
  );
  CREATE INDEX history_entity ON history(entity, entity_id);
  CREATE INDEX history_pool ON history(pool_id, seq);
`;
}

/**
 * Version 2: API tokens; history rows that carry the address run and owner they are about (so "who
 * held this address then" and owner filters are index seeks); pool secrets and utilisation thresholds;
 * webhooks; and settings (the fingerprint of the key that encrypts secrets).
 */
export function tablesV2(d: Dialect): string {
  return `
  CREATE TABLE tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    scope      TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    spaces     TEXT, -- JSON array of space names; NULL for every space
    hash       TEXT NOT NULL UNIQUE, -- SHA-256 of the secret, which is never stored
    hint       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
  );

  ALTER TABLE history ADD COLUMN family INTEGER;
  ALTER TABLE history ADD COLUMN first ${d.bytes};
  ALTER TABLE history ADD COLUMN last ${d.bytes};
  ALTER TABLE history ADD COLUMN owner TEXT;
  CREATE INDEX history_address ON history(space_id, family, first) WHERE first IS NOT NULL;
  -- blocks alone, so "which block reached this address" walks blocks, not every address below it
  CREATE INDEX history_blocks ON history(space_id, family, first) WHERE first <> last;
  CREATE INDEX history_owner ON history(owner, seq) WHERE owner IS NOT NULL;
  CREATE INDEX history_actor ON history(actor, seq);
  CREATE INDEX history_at ON history(at);

  -- name -> encrypted value (see src/engine/secrets.ts); thresholds: utilisation percentages to watch
  ALTER TABLE pools ADD COLUMN secrets TEXT NOT NULL DEFAULT '{}';
  ALTER TABLE pools ADD COLUMN thresholds TEXT NOT NULL DEFAULT '[]';

  CREATE TABLE webhooks (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    url             TEXT NOT NULL,
    secret          TEXT NOT NULL, -- encrypted, like pool secrets
    spaces          TEXT, -- JSON array of space names; NULL for every space
    delivered       ${d.bigint} NOT NULL DEFAULT 0,
    failures        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at ${d.bigint} NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      TEXT NOT NULL
  );

  -- history entries each webhook has yet to deliver, filled by a trigger on history in the change's own
  -- transaction: whatever is committed is here, in whatever order transactions committed
  CREATE TABLE webhook_outbox (
    webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    seq        ${d.bigint} NOT NULL,
    PRIMARY KEY (webhook_id, seq)
  );

  CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
`;
}

/** Version 3: where a pool's addresses came from, when an upstream provider supplied them (JSON). */
export const TABLES_V3 = "ALTER TABLE pools ADD COLUMN provider TEXT;";

/**
 * Version 4: Kubernetes-style objects (Metal3 and Cluster API IPAM resources), each a JSON document with
 * a resourceVersion from one counter, and a tombstone kept after deletion so watchers see it go.
 */
export function tablesV4(d: Dialect): string {
  return `
  CREATE TABLE kube_objects (
    grp        TEXT NOT NULL,
    resource   TEXT NOT NULL,
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    uid        TEXT NOT NULL,
    rv         ${d.bigint} NOT NULL,
    created_rv ${d.bigint} NOT NULL,
    deleted    INTEGER NOT NULL DEFAULT 0,
    body       TEXT NOT NULL,
    PRIMARY KEY (grp, resource, namespace, name)
  );
  CREATE INDEX kube_objects_rv ON kube_objects(rv);
  CREATE TABLE kube_rv (id INTEGER PRIMARY KEY CHECK (id = 1), rv ${d.bigint} NOT NULL);
  INSERT INTO kube_rv (id, rv) VALUES (1, 1);
`;
}

/**
 * Version 5: Neutron-style networks, subnets, subnet pools and ports (the OpenStack / oVirt API), each a
 * JSON document in its project (an Allot space, by name). A port's MAC is unique on its network.
 */
export const TABLES_V5 = `
  CREATE TABLE neutron_objects (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    project    TEXT NOT NULL,
    network_id TEXT,
    mac        TEXT,
    -- the document's revision_number: an update applies only to the revision it was made from
    revision   INTEGER NOT NULL DEFAULT 0,
    body       TEXT NOT NULL
  );
  CREATE INDEX neutron_objects_kind ON neutron_objects(kind, project);
  CREATE INDEX neutron_objects_network ON neutron_objects(network_id);
  CREATE UNIQUE INDEX neutron_ports_mac ON neutron_objects(network_id, mac);
`;

/**
 * Version 6: DHCP delivery. Networks (what is served: a space's pools, and the options), the agents on
 * hosts with what they can reach and when they were last heard from, and which agent serves which
 * network, kept so that a restart of the server changes nothing that was running.
 */
export const TABLES_V6 = `
  CREATE TABLE dhcp_networks (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL
  );
  CREATE TABLE dhcp_agents (
    name      TEXT PRIMARY KEY,
    body      TEXT NOT NULL,
    last_seen BIGINT NOT NULL
  );
  CREATE TABLE dhcp_assignments (
    network TEXT NOT NULL,
    agent   TEXT NOT NULL,
    since   BIGINT NOT NULL,
    PRIMARY KEY (network, agent)
  );
`;

/** Version 7: a pool's allocations in order of creation, for listing newest first. */
export const TABLES_V7 = `
  CREATE INDEX allocations_pool_created ON allocations(pool_id, created_at, id);
`;

/**
 * The tables whose changes something follows (see ChangeFeed): history (every engine change), DHCP
 * networks and assignments, Kubernetes and Neutron objects. Not dhcp_agents, which each agent's sync
 * rewrites every few seconds and which no follower reads.
 */
export const FOLLOWED_TABLES = ["history", "dhcp_networks", "dhcp_assignments", "kube_objects", "neutron_objects"] as const;

/**
 * Version 8: a deleted Kubernetes object's tombstone records when it was deleted, so tombstones can be
 * pruned after a while; kube_rv.compacted is the newest resourceVersion pruned, below which a watch
 * can no longer be resumed (410 Gone, as a compacted etcd answers).
 */
export function tablesV8(d: Dialect): string {
  return `
  ALTER TABLE kube_objects ADD COLUMN deleted_at ${d.bigint};
  ALTER TABLE kube_rv ADD COLUMN compacted ${d.bigint} NOT NULL DEFAULT 0;
`;
}

/**
 * What the overlap triggers refuse, as conditions on NEW (the row being inserted). Each looks only at
 * the nearest run below NEW.last, an O(log n) seek, which suffices because runs never overlap.
 */
export const OVERLAP = {
  /** Top-level pools in one space never overlap; children live inside a carve of their parent. */
  poolRange: {
    message: "pool range overlaps another pool in its space",
    when: `NEW.top_level = 1 AND (
      SELECT r.last FROM pool_ranges r
      WHERE r.space_id = NEW.space_id AND r.family = NEW.family AND r.top_level = 1 AND r.first <= NEW.last
      ORDER BY r.first DESC LIMIT 1) >= NEW.first`,
  },
  /** No run overlaps another in its pool (carves included). */
  allocationInPool: {
    message: "allocation overlaps another in its pool",
    when: `(SELECT a.last FROM allocations a
      WHERE a.pool_id = NEW.pool_id AND a.first <= NEW.last
      ORDER BY a.first DESC LIMIT 1) >= NEW.first`,
  },
  /** Nor does a holder's run (not a carve) overlap one in another pool of the space. */
  allocationInSpace: {
    message: "allocation overlaps another in its space",
    when: `NEW.child_pool_id IS NULL AND (
      SELECT a.last FROM allocations a
      WHERE a.space_id = NEW.space_id AND a.family = NEW.family AND a.child_pool_id IS NULL AND a.first <= NEW.last
      ORDER BY a.first DESC LIMIT 1) >= NEW.first`,
  },
  fixedRun: { message: "an allocation''s addresses never change; release and allocate instead" },
} as const;

/**
 * Version 9: DNS publishing. Zones (where a space's records go, and the sealed backend credential),
 * the outbox of history entries each zone has yet to publish (filled by a trigger on history in the
 * change's own transaction, as webhook_outbox is), the records Allot wrote (so it changes only its
 * own), and names it could not write because something else holds them.
 */
export function tablesV9(d: Dialect): string {
  return `
  CREATE TABLE dns_zones (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    space_id        TEXT NOT NULL REFERENCES spaces(id),
    pools           TEXT, -- JSON array of pool names; NULL for every pool of the space
    ttl             INTEGER NOT NULL,
    backend         TEXT NOT NULL, -- JSON, without the credential
    secret          TEXT NOT NULL, -- the TSIG secret or API key, encrypted like pool secrets
    published       ${d.bigint} NOT NULL DEFAULT 0,
    failures        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at ${d.bigint} NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      TEXT NOT NULL
  );
  CREATE INDEX dns_zones_space ON dns_zones(space_id);
  CREATE TABLE dns_outbox (
    zone_id TEXT NOT NULL REFERENCES dns_zones(id) ON DELETE CASCADE,
    seq     ${d.bigint} NOT NULL,
    PRIMARY KEY (zone_id, seq)
  );
  CREATE TABLE dns_records (
    zone_id       TEXT NOT NULL REFERENCES dns_zones(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    type          TEXT NOT NULL,
    data          TEXT NOT NULL,
    allocation_id TEXT NOT NULL,
    PRIMARY KEY (zone_id, name, type)
  );
  CREATE INDEX dns_records_allocation ON dns_records(zone_id, allocation_id);
  CREATE TABLE dns_conflicts (
    zone_id       TEXT NOT NULL REFERENCES dns_zones(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    type          TEXT NOT NULL,
    wanted        TEXT NOT NULL,
    found         TEXT NOT NULL, -- JSON array of what the name holds
    allocation_id TEXT NOT NULL,
    at            TEXT NOT NULL,
    PRIMARY KEY (zone_id, name, type)
  );
  CREATE INDEX dns_conflicts_allocation ON dns_conflicts(zone_id, allocation_id);
`;
}
