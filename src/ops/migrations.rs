//! Instances that start together on one PostgreSQL database take turns running
//! their migrations, under a session-level advisory lock: without it, two of
//! them create the same tables at once and one dies (`relation … already
//! exists`). SQLite serves one instance and needs no lock.
//!
//! Loco migrates in `create_app`, after `Hooks::after_context`, with no hook
//! around it; so the app migrates here, in `after_context`, under the lock, and
//! Loco's own pass that follows finds nothing pending.

use migration::{Migrator, MigratorTrait};
use sea_orm::DatabaseConnection;
use sqlx::{postgres::PgConnection, Connection};

/// The advisory lock's key: "authgate" in ASCII, as a number no other
/// application is likely to pick.
const MIGRATION_LOCK: i64 = 0x6175_7468_6761_7465;

/// On PostgreSQL, applies pending migrations while holding the migration lock;
/// elsewhere leaves them to Loco.
///
/// # Errors
/// When the lock's connection fails, or a migration does.
pub async fn migrate_one_at_a_time(uri: &str, db: &DatabaseConnection) -> loco_rs::Result<()> {
    if !(uri.starts_with("postgres://") || uri.starts_with("postgresql://")) {
        return Ok(());
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
    let migrated = Migrator::up(db, None).await;
    // Closing the session releases the lock, whatever happened.
    let _ = lock.close().await;
    Ok(migrated?)
}
