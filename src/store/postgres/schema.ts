/**
 * Versioned migrations for the PostgreSQL store: the same tables, keys and guarantees as the SQLite
 * schema (src/store/sqlite/schema.ts), in PostgreSQL's dialect. The engine's queries run unchanged on
 * both, so a column here has the type that reads back as the SQLite one does (bytea for address keys,
 * text for JSON and decimal counts, bigint read as a JS number for times and sequence numbers).
 */
export const migrations: readonly string[] = [
  /* 1: spaces, pools, ranges, exclusions, allocations, the free-space index, history */ `
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
    first         BYTEA NOT NULL,
    last          BYTEA NOT NULL CHECK (last >= first),
    prefix_length INTEGER NOT NULL,
    gateway       TEXT,
    dns           TEXT,
    PRIMARY KEY (pool_id, seq)
  );
  CREATE INDEX pool_ranges_space ON pool_ranges(space_id, family, top_level, first);
  CREATE FUNCTION allot_pool_ranges_no_overlap() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF NEW.top_level = 1 AND (
      SELECT r.last FROM pool_ranges r
      WHERE r.space_id = NEW.space_id AND r.family = NEW.family AND r.top_level = 1 AND r.first <= NEW.last
      ORDER BY r.first DESC LIMIT 1) >= NEW.first THEN
      RAISE EXCEPTION 'ALLOT_OVERLAP pool range overlaps another pool in its space';
    END IF;
    RETURN NEW;
  END $$;
  CREATE TRIGGER pool_ranges_no_overlap BEFORE INSERT ON pool_ranges
    FOR EACH ROW EXECUTE FUNCTION allot_pool_ranges_no_overlap();

  CREATE TABLE exclusions (
    pool_id TEXT NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
    first   BYTEA NOT NULL,
    last    BYTEA NOT NULL CHECK (last >= first),
    PRIMARY KEY (pool_id, first)
  );

  CREATE TABLE allocations (
    id            TEXT PRIMARY KEY,
    pool_id       TEXT NOT NULL REFERENCES pools(id),
    space_id      TEXT NOT NULL,
    family        INTEGER NOT NULL,
    first         BYTEA NOT NULL,
    last          BYTEA NOT NULL CHECK (last >= first),
    size          TEXT NOT NULL,
    child_pool_id TEXT,
    owner         TEXT,
    mac           TEXT,
    hostname      TEXT,
    labels        TEXT NOT NULL DEFAULT '{}',
    expires_at    BIGINT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
  );
  CREATE UNIQUE INDEX allocations_first ON allocations(pool_id, first);
  CREATE UNIQUE INDEX allocations_space_first ON allocations(space_id, family, first) WHERE child_pool_id IS NULL;
  CREATE UNIQUE INDEX allocations_owner ON allocations(pool_id, owner) WHERE owner IS NOT NULL;
  CREATE INDEX allocations_expiry ON allocations(expires_at) WHERE expires_at IS NOT NULL;
  CREATE INDEX allocations_pool_expiry ON allocations(pool_id, expires_at) WHERE expires_at IS NOT NULL;
  CREATE INDEX allocations_mac ON allocations(mac, pool_id) WHERE mac IS NOT NULL;
  CREATE INDEX allocations_hostname ON allocations(hostname, pool_id) WHERE hostname IS NOT NULL;
  CREATE INDEX allocations_space_owner ON allocations(space_id, owner) WHERE owner IS NOT NULL;
  CREATE FUNCTION allot_allocations_no_overlap() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF (SELECT a.last FROM allocations a
        WHERE a.pool_id = NEW.pool_id AND a.first <= NEW.last
        ORDER BY a.first DESC LIMIT 1) >= NEW.first THEN
      RAISE EXCEPTION 'ALLOT_OVERLAP allocation overlaps another in its pool';
    END IF;
    IF NEW.child_pool_id IS NULL AND (
        SELECT a.last FROM allocations a
        WHERE a.space_id = NEW.space_id AND a.family = NEW.family AND a.child_pool_id IS NULL AND a.first <= NEW.last
        ORDER BY a.first DESC LIMIT 1) >= NEW.first THEN
      RAISE EXCEPTION 'ALLOT_OVERLAP allocation overlaps another in its space';
    END IF;
    RETURN NEW;
  END $$;
  CREATE TRIGGER allocations_no_overlap BEFORE INSERT ON allocations
    FOR EACH ROW EXECUTE FUNCTION allot_allocations_no_overlap();
  CREATE FUNCTION allot_allocations_fixed_run() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    RAISE EXCEPTION 'ALLOT_OVERLAP an allocation''s addresses never change; release and allocate instead';
  END $$;
  CREATE TRIGGER allocations_fixed_run BEFORE UPDATE OF first, last, pool_id, space_id ON allocations
    FOR EACH ROW EXECUTE FUNCTION allot_allocations_fixed_run();

  CREATE TABLE free_runs (
    pool_id    TEXT NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
    first      BYTEA NOT NULL,
    last       BYTEA NOT NULL CHECK (last >= first),
    size_class INTEGER NOT NULL,
    PRIMARY KEY (pool_id, first)
  );
  CREATE INDEX free_runs_class ON free_runs(pool_id, size_class, first);

  CREATE TABLE history (
    seq        BIGSERIAL PRIMARY KEY,
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
  `,
];
