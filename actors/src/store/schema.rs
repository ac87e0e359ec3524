//! Migrations: the numbered files of `migrations/`, embedded and applied in order at open.

use rusqlite::Connection;

use super::StoreError;
use crate::types::now_ms;

/// Every migration, in order: (version, SQL).
pub const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../../../migrations/0001_init.sql")),
    (2, include_str!("../../../migrations/0002_traceparent.sql")),
    (3, include_str!("../../../migrations/0003_heartbeat.sql")),
];

/// Applies the migrations not yet recorded in `schema_migrations`, each in its own
/// transaction. Returns the schema version after migrating.
///
/// # Errors
/// Fails naming the version whose SQL did not apply.
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
    Ok(MIGRATIONS.last().map(|(v, _)| *v).unwrap_or(0).max(current))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_are_idempotent() {
        let mut conn = Connection::open_in_memory().expect("open");
        assert_eq!(migrate(&mut conn).expect("first"), 3);
        assert_eq!(migrate(&mut conn).expect("second"), 3);
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 3);
        for table in [
            "quotes",
            "orders",
            "order_events",
            "fills",
            "outbox",
            "outbox_sends",
            "balances",
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
