//! Making revocations take effect everywhere: evict locally in the request that
//! revoked, and on PostgreSQL broadcast with `NOTIFY` so that every instance
//! `LISTEN`ing evicts too. If the listener loses its connection it clears the
//! cache once it is listening again (notifications sent meanwhile are lost), not
//! when the connection drops: while the database is down nothing can be revoked,
//! and the cache is what keeps verified credentials working then.

use std::sync::{
    atomic::{AtomicU8, Ordering},
    Arc,
};

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

/// Whether revocations from other instances reach this one, for `/ready`.
#[derive(Default)]
pub struct ListenerStatus(AtomicU8);

const DISABLED: u8 = 0;
const LISTENING: u8 = 1;
const LOST: u8 = 2;

impl ListenerStatus {
    /// `"ok"`, `"down"`, or `"disabled"` (SQLite: one instance, nothing to hear).
    pub fn describe(&self) -> &'static str {
        match self.0.load(Ordering::Relaxed) {
            DISABLED => "disabled",
            LISTENING => "ok",
            _ => "down",
        }
    }

    fn set(&self, status: u8) {
        self.0.store(status, Ordering::Relaxed);
    }
}

/// On PostgreSQL, spawns the task that applies other instances' revocations here.
pub fn spawn_listener(ctx: &AppContext, state: Arc<AuthState>) {
    if ctx.db.get_database_backend() != DatabaseBackend::Postgres {
        return;
    }
    state.listener.set(LOST);
    let uri = ctx.config.database.uri.clone();
    tokio::spawn(async move {
        loop {
            let err = listen(&uri, &state).await;
            state.listener.set(LOST);
            tracing::warn!(error = %err, "revocation listener lost its connection; retrying");
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    });
}

/// Listens until the connection is lost, and says why.
async fn listen(uri: &str, state: &AuthState) -> sqlx::Error {
    let mut listener = match PgListener::connect(uri).await {
        Ok(listener) => listener,
        Err(err) => return err,
    };
    if let Err(err) = listener.listen(CHANNEL).await {
        return err;
    }
    // Anything revoked while we were not listening is unknown: start from empty.
    state.cache.clear();
    state.listener.set(LISTENING);
    tracing::info!(channel = CHANNEL, "listening for revocations");
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                if let Some(revocation) = Revocation::from_payload(notification.payload()) {
                    state.cache.apply(&revocation);
                }
            }
            // The connection dropped: start over, and clear once listening again.
            Ok(None) => return sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into()),
            Err(err) => return err,
        }
    }
}
