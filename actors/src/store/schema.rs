//! Migrations: the numbered files of `migrations/`, embedded and applied in order at open.

use rusqlite::Connection;

use super::StoreError;
use crate::types::now_ms;

/// Every migration, in order: (version, SQL).
pub const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../../../migrations/0001_init.sql")),
    (2, include_str!("../../../migrations/0002_traceparent.sql")),
    (3, include_str!("../../../migrations/0003_heartbeat.sql")),
    (4, include_str!("../../../migrations/0004_venue_sends.sql")),
    (
        5,
        include_str!("../../../migrations/0005_venue_touch_and_denials.sql"),
    ),
];

/// The schema version this binary writes.
pub fn latest_version() -> u32 {
    MIGRATIONS.last().map(|(v, _)| *v).unwrap_or(0)
}

/// Applies the migrations not yet recorded in `schema_migrations`, each in its own
/// transaction. Returns the schema version after migrating.
///
/// # Errors
/// [`StoreError::SchemaTooNew`] for a database written by a newer binary (nothing is changed);
/// otherwise fails naming the version whose SQL did not apply.
pub fn migrate(conn: &mut Connection) -> Result<u32, StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY, applied_at_ms INTEGER NOT NULL)",
    )?;
    let current: u32 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    if current > latest_version() {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported: latest_version(),
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .map_err(|source| StoreError::Migration {
                version: *version,
                source,
            })?;
        tx.execute(
            "INSERT INTO schema_migrations(version, applied_at_ms) VALUES (?1, ?2)",
            rusqlite::params![version, now_ms()],
        )?;
        tx.commit()?;
    }
    Ok(latest_version().max(current))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_are_idempotent() {
        let mut conn = Connection::open_in_memory().expect("open");
        assert_eq!(migrate(&mut conn).expect("first"), 5);
        assert_eq!(migrate(&mut conn).expect("second"), 5);
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 5);
        for table in [
            "quotes",
            "orders",
            "order_events",
            "fills",
            "outbox",
            "outbox_sends",
            "balances",
            "denials",
        ] {
            let found: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name=?1",
                    [table],
                    |r| r.get(0),
                )
                .expect("lookup");
            assert_eq!(found, 1, "table {table} missing");
        }
    }
}

#[cfg(test)]
mod version_tests {
    use super::*;

    #[test]
    fn a_database_from_a_newer_binary_is_refused_untouched() {
        let mut conn = Connection::open_in_memory().expect("open");
        migrate(&mut conn).expect("migrate");
        conn.execute(
            "INSERT INTO schema_migrations(version, applied_at_ms) VALUES (99, 0)",
            [],
        )
        .expect("future version");
        match migrate(&mut conn) {
            Err(StoreError::SchemaTooNew { found, supported }) => {
                assert_eq!((found, supported), (99, latest_version()))
            }
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
    }

    #[test]
    fn sends_of_version_three_survive_the_rebuild() {
        let mut conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at_ms INTEGER NOT NULL)",
        )
        .expect("table");
        for (v, sql) in &MIGRATIONS[..3] {
            conn.execute_batch(sql).expect("old migration");
            conn.execute(
                "INSERT INTO schema_migrations(version, applied_at_ms) VALUES (?1, 0)",
                [v],
            )
            .expect("record");
        }
        conn.execute_batch(
            "INSERT INTO outbox(id, kind, market, status, created_at_ms, next_attempt_at_ms)
                 VALUES (7, 'cancel', 'ADAUSDM', 'done', 1, 1);
             INSERT INTO outbox_sends(outbox_id, attempt, sent_at_ms) VALUES (7, 1, 1234);",
        )
        .expect("old rows");
        assert_eq!(migrate(&mut conn).expect("migrate"), 5);
        let row: (i64, String, String) = conn
            .query_row(
                "SELECT sent_at_ms, kind, market FROM outbox_sends WHERE outbox_id = 7",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("kept");
        assert_eq!(row, (1234, "cancel".into(), "ADAUSDM".into()));
    }
}
