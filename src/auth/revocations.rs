//! Making revocations take effect everywhere: evict locally in the request that
//! revoked, and on PostgreSQL broadcast with `NOTIFY` so that every instance
//! `LISTEN`ing evicts too. If the listener loses its connection it reconnects and
//! clears the cache, since notifications sent meanwhile are lost.

use std::sync::Arc;

use loco_rs::app::AppContext;
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, Statement};
use sqlx::postgres::PgListener;

use super::{cache::Revocation, AuthState};

pub const CHANNEL: &str = "authgate_revocations";

/// Evicts `revocation` on this instance and tells the others.
///
/// # Errors
/// When the `NOTIFY` cannot be sent; the local eviction has happened by then.
pub async fn publish(
    ctx: &AppContext,
    state: &AuthState,
    revocation: Revocation,
) -> Result<(), DbErr> {
    state.cache.apply(&revocation);
    notify(&ctx.db, &revocation).await
}

async fn notify<C: ConnectionTrait>(db: &C, revocation: &Revocation) -> Result<(), DbErr> {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(());
    }
    db.execute_raw(Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [CHANNEL.into(), revocation.to_payload().into()],
    ))
    .await
    .map(|_| ())
}

/// On PostgreSQL, spawns the task that applies other instances' revocations here.
pub fn spawn_listener(ctx: &AppContext, state: Arc<AuthState>) {
    if ctx.db.get_database_backend() != DatabaseBackend::Postgres {
        return;
    }
    let uri = ctx.config.database.uri.clone();
    tokio::spawn(async move {
        loop {
            let Err(err) = listen(&uri, &state).await;
            tracing::warn!(error = %err, "revocation listener lost its connection; retrying");
            state.cache.clear();
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    });
}

async fn listen(uri: &str, state: &AuthState) -> Result<std::convert::Infallible, sqlx::Error> {
    let mut listener = PgListener::connect(uri).await?;
    listener.listen(CHANNEL).await?;
    // Anything revoked while we were not listening is unknown: start from empty.
    state.cache.clear();
    tracing::info!(channel = CHANNEL, "listening for revocations");
    loop {
        match listener.try_recv().await? {
            Some(notification) => {
                if let Some(revocation) = Revocation::from_payload(notification.payload()) {
                    state.cache.apply(&revocation);
                }
            }
            // The connection dropped and sqlx reconnected: notifications may be lost.
            None => state.cache.clear(),
        }
    }
}
