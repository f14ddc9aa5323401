import { FOLLOWED_TABLES, OVERLAP, TABLES_V3, TABLES_V5, TABLES_V6, TABLES_V7, tablesV1, tablesV2, tablesV4, tablesV8, tablesV9 } from "../schema.js";

const refuse = (name: string, on: string, checks: { message: string; when: string }[]) => `
  CREATE FUNCTION allot_${name}() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    ${checks.map((c) => `IF ${c.when} THEN RAISE EXCEPTION 'ALLOT_OVERLAP ${c.message}'; END IF;`).join("\n    ")}
    RETURN NEW;
  END $$;
  CREATE TRIGGER ${name} BEFORE INSERT ON ${on} FOR EACH ROW EXECUTE FUNCTION allot_${name}();`;

/**
 * Versioned migrations for the PostgreSQL store, recorded in the table allot_schema. Bytes are bytea,
 * and bigint columns are read back as JS numbers (see postgres-store.ts), as SQLite's integers are.
 */
export const migrations: readonly string[] = [
  `${tablesV1({ bytes: "BYTEA", bigint: "BIGINT", serial: "BIGSERIAL PRIMARY KEY" })}
  ${refuse("pool_ranges_no_overlap", "pool_ranges", [OVERLAP.poolRange])}
  ${refuse("allocations_no_overlap", "allocations", [OVERLAP.allocationInPool, OVERLAP.allocationInSpace])}
  CREATE FUNCTION allot_allocations_fixed_run() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    RAISE EXCEPTION 'ALLOT_OVERLAP ${OVERLAP.fixedRun.message}';
  END $$;
  CREATE TRIGGER allocations_fixed_run BEFORE UPDATE OF first, last, pool_id, space_id ON allocations
    FOR EACH ROW EXECUTE FUNCTION allot_allocations_fixed_run();
  `,
  `${tablesV2({ bytes: "BYTEA", bigint: "BIGINT", serial: "BIGSERIAL PRIMARY KEY" })}
  -- once per statement (a bulk change inserts hundreds of history rows in one)
  CREATE FUNCTION allot_history_to_webhooks() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    INSERT INTO webhook_outbox (webhook_id, seq) SELECT w.id, n.seq FROM webhooks w CROSS JOIN new_rows n;
    RETURN NULL;
  END $$;
  CREATE TRIGGER history_to_webhooks AFTER INSERT ON history REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION allot_history_to_webhooks();
  `,
  TABLES_V3,
  tablesV4({ bytes: "BYTEA", bigint: "BIGINT", serial: "BIGSERIAL PRIMARY KEY" }),
  TABLES_V5,
  TABLES_V6,
  TABLES_V7,
  // every server learns of a followed change at its commit (LISTEN allot_changes): one notification per
  // transaction, however many rows or statements (PostgreSQL folds identical ones together)
  `CREATE FUNCTION allot_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    PERFORM pg_notify('allot_changes', '');
    RETURN NULL;
  END $$;
  ${FOLLOWED_TABLES.map((t) => `CREATE TRIGGER ${t}_notify AFTER INSERT OR UPDATE OR DELETE ON ${t} FOR EACH STATEMENT EXECUTE FUNCTION allot_notify_change();`).join("\n  ")}
  `,
  tablesV8({ bytes: "BYTEA", bigint: "BIGINT", serial: "BIGSERIAL PRIMARY KEY" }),
  `${tablesV9({ bytes: "BYTEA", bigint: "BIGINT", serial: "BIGSERIAL PRIMARY KEY" })}
  CREATE FUNCTION allot_history_to_dns() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    INSERT INTO dns_outbox (zone_id, seq)
      SELECT z.id, n.seq FROM new_rows n JOIN dns_zones z ON z.space_id = n.space_id WHERE n.entity = 'allocation';
    RETURN NULL;
  END $$;
  CREATE TRIGGER history_to_dns AFTER INSERT ON history REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION allot_history_to_dns();
  `,
];
