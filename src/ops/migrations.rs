//! Instances that start together on one PostgreSQL database take turns running
//! their migrations, under a session-level advisory lock: without it, two of
//! them create the same tables at once and one dies (`relation … already
//! exists`). SQLite serves one instance and needs no lock.

use std::future::Future;

use sqlx::{postgres::PgConnection, Connection};

/// The advisory lock's key: "authgate" in ASCII, as a number no other
/// application is likely to pick.
const MIGRATION_LOCK: i64 = 0x6175_7468_6761_7465;

/// Runs `start` (which migrates) while holding the migration lock when `uri` is
/// a PostgreSQL database.
///
/// # Errors
/// When the lock's connection fails, or whatever `start` returns.
pub async fn one_at_a_time<T, E>(
    uri: &str,
    start: impl Future<Output = Result<T, E>>,
) -> Result<T, E>
where
    E: From<sqlx::Error>,
{
    if !(uri.starts_with("postgres://") || uri.starts_with("postgresql://")) {
        return start.await;
    }
    let mut lock = PgConnection::connect(uri).await?;
    let acquired: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .fetch_one(&mut lock)
        .await?;
    if !acquired {
        tracing::info!("another instance is migrating the database; waiting for its lock");
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut lock)
            .await?;
        tracing::info!("migration lock acquired");
    }
    let started = start.await;
    // Closing the session releases the lock even if the unlock fails.
    let _ = lock.close().await;
    started
}
