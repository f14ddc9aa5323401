import { OVERLAP, TABLES_V3, TABLES_V5, TABLES_V6, TABLES_V7, tablesV1, tablesV2, tablesV4, tablesV8, tablesV9 } from "../schema.js";

const refuse = (name: string, on: string, c: { message: string; when: string }) =>
  `CREATE TRIGGER ${name} BEFORE INSERT ON ${on} WHEN ${c.when}
   BEGIN SELECT RAISE(ABORT, 'ALLOT_OVERLAP ${c.message}'); END;`;

/**
 * Versioned migrations for the SQLite store. Each entry runs once, in order, inside a transaction;
 * `PRAGMA user_version` records how far a database has come.
 */
export const migrations: readonly string[] = [
  `${tablesV1({ bytes: "BLOB", bigint: "INTEGER", serial: "INTEGER PRIMARY KEY AUTOINCREMENT" })}
  ${refuse("pool_ranges_no_overlap", "pool_ranges", OVERLAP.poolRange)}
  ${refuse("allocations_no_overlap", "allocations", OVERLAP.allocationInPool)}
  ${refuse("allocations_no_overlap_in_space", "allocations", OVERLAP.allocationInSpace)}
  CREATE TRIGGER allocations_fixed_run BEFORE UPDATE OF first, last, pool_id, space_id ON allocations
  BEGIN SELECT RAISE(ABORT, 'ALLOT_OVERLAP ${OVERLAP.fixedRun.message}'); END;
  `,
  `${tablesV2({ bytes: "BLOB", bigint: "INTEGER", serial: "INTEGER PRIMARY KEY AUTOINCREMENT" })}
  CREATE TRIGGER history_to_webhooks AFTER INSERT ON history WHEN EXISTS (SELECT 1 FROM webhooks)
  BEGIN INSERT INTO webhook_outbox (webhook_id, seq) SELECT id, NEW.seq FROM webhooks; END;
  `,
  TABLES_V3,
  tablesV4({ bytes: "BLOB", bigint: "INTEGER", serial: "INTEGER PRIMARY KEY AUTOINCREMENT" }),
  TABLES_V5,
  TABLES_V6,
  TABLES_V7,
  tablesV8({ bytes: "BLOB", bigint: "INTEGER", serial: "INTEGER PRIMARY KEY AUTOINCREMENT" }),
  `${tablesV9({ bytes: "BLOB", bigint: "INTEGER", serial: "INTEGER PRIMARY KEY AUTOINCREMENT" })}
  CREATE TRIGGER history_to_dns AFTER INSERT ON history
  WHEN NEW.entity = 'allocation' AND EXISTS (SELECT 1 FROM dns_zones WHERE space_id = NEW.space_id)
  BEGIN INSERT INTO dns_outbox (zone_id, seq) SELECT id, NEW.seq FROM dns_zones WHERE space_id = NEW.space_id; END;
  `,
];
